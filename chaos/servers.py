"""The chaos suite's own RabbitMQ node, PostgreSQL cluster and Redis server.

Each runs on free loopback ports with its data in a temporary folder the suite
creates and removes, so the suite may stop, kill and restart them without
touching the machine's shared servers. We run as root: RabbitMQ and PostgreSQL
run as their own system users (``runuser``), which own the data folders.

Measured on the 2-core machine: a RabbitMQ node takes 5-10 s to boot (first
boot, with an empty Mnesia database, the longest) and about 1 s to stop;
PostgreSQL starts and stops in well under a second; Redis at once.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_USER = "rabbitmq"
POSTGRES_USER = "postgres"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class ServerError(RuntimeError):
    pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(probe, timeout, what):
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise ServerError(f"{what} within {timeout:.0f}s")
        time.sleep(0.2)


def _owned_folder(parent, name, user):
    path = Path(parent) / name
    path.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _as_user(user, argv):
    """``argv`` run as the system ``user`` when we are root (as we are on CI)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *argv]
    return argv


def _stop_group(process, timeout=10.0):
    """SIGTERM the process group of ``process`` (started with start_new_session), then KILL."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class RabbitMQNode:
    """``rabbitmq-server`` as a node of its own: its own name, AMQP and
    distribution ports, Mnesia and log folders, and no plugins (so no management
    or Prometheus listener can collide with the shared node's). The Erlang
    cookie is the rabbitmq user's, shared with the machine's node: only the node
    name tells them apart, and every ``rabbitmqctl`` names it (``-n``)."""

    name = "RabbitMQ"

    def __init__(self, base):
        self.base = _owned_folder(base, "rabbitmq", RABBITMQ_USER)
        self.node = f"agora-chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.process = None
        config = self.base / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[].\n")
        for path in (config, plugins):
            shutil.chown(path, RABBITMQ_USER, RABBITMQ_USER)
        self.env = {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(config),
        }

    def start(self, timeout=START_TIMEOUT):
        log = open(self.base / "server.out", "ab")
        self.process = subprocess.Popen(
            _as_user(RABBITMQ_USER, [RABBITMQ_SERVER]),
            env={**os.environ, **self.env},
            cwd=self.base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(
                    f"RabbitMQ node {self.node} exited with code {self.process.returncode} "
                    f"(see {self.base / 'server.out'})"
                )
            if port_open(self.port) and self.ctl("await_startup", check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise ServerError(f"RabbitMQ node {self.node} did not start within {timeout:.0f}s")
            time.sleep(0.3)

    def ctl(self, *args, check=True, timeout=60):
        """``rabbitmqctl -n <this node> args``; the environment names the node too,
        so ``agora setup`` run with :attr:`env` reaches this node."""
        result = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ServerError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip()[:300]}")
        return result

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("stop", check=False, timeout=STOP_TIMEOUT)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop_group(self.process)

    def restart(self):
        self.stop()
        return self.start()

    def remove(self):
        self.stop()
        _stop_group(self.process)
        shutil.rmtree(self.base, ignore_errors=True)


def postgres_bin(program):
    """A PostgreSQL server program: /usr/local/bin, else the newest /usr/lib/postgresql."""
    found = shutil.which(program, path="/usr/local/bin")
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if not candidates:
        raise ServerError(f"{program} not found (install PostgreSQL's server package)")
    return candidates[-1]


class PostgresCluster:
    """A cluster of its own (``initdb``): trust authentication on 127.0.0.1, its
    own port, its Unix socket in its own folder, run as the postgres user."""

    name = "PostgreSQL"

    def __init__(self, base, max_connections=200):
        self.base = _owned_folder(base, "postgres", POSTGRES_USER)
        self.data = self.base / "data"
        self.port = free_port()
        self.max_connections = max_connections
        self._initdb()

    def _initdb(self):
        argv = [
            postgres_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ]
        result = subprocess.run(
            _as_user(POSTGRES_USER, argv),
            cwd=self.base,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"initdb failed: {result.stderr.strip()[:300]}")

    def _pg_ctl(self, *args):
        argv = [postgres_bin("pg_ctl"), "-D", str(self.data), *args]
        result = subprocess.run(
            _as_user(POSTGRES_USER, argv),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"pg_ctl {args[-1]} failed: {result.stderr.strip()[:300]}")

    def start(self):
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections} -c fsync=off"
        )
        self._pg_ctl("-o", options, "-l", str(self.base / "server.log"), "-w", "start")
        return self

    def stop(self, mode="fast"):
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", mode, "-w", "stop")

    def restart(self):
        self.stop()
        return self.start()

    def remove(self):
        try:
            self.stop(mode="immediate")
        except ServerError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer:
    """``redis-server`` on its own port, nothing persisted (a restart empties it)."""

    name = "Redis"

    def __init__(self, base):
        self.base = Path(base) / "redis"
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = None

    def start(self):
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.base),
        ]
        log = open(self.base / "server.log", "ab")
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        _wait(lambda: port_open(self.port), START_TIMEOUT, "Redis did not start")
        return self

    def stop(self):
        _stop_group(self.process)

    def remove(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Servers:
    """The three servers in one temporary folder, started in order, removed together."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="agora-chaos-"))
        os.chmod(self.root, 0o755)  # the rabbitmq and postgres users enter it
        self.rabbitmq = RabbitMQNode(self.root)
        self.postgres = PostgresCluster(self.root)
        self.redis = RedisServer(self.root)

    def start(self):
        self.postgres.start()
        self.redis.start()
        self.rabbitmq.start()
        return self

    def remove(self):
        for server in (self.rabbitmq, self.postgres, self.redis):
            try:
                server.remove()
            except Exception as exc:  # remove the others anyway
                print(f"chaos: could not remove {server.name}: {exc}", flush=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self):
        """The platform's settings for these servers (config/agora.yaml variables)."""
        return {
            "AGORA_AMQP_HOST": "127.0.0.1",
            "AGORA_AMQP_PORT": str(self.rabbitmq.port),
            "AGORA_PG_HOST": "127.0.0.1",
            "AGORA_PG_PORT": str(self.postgres.port),
            "AGORA_REDIS_HOST": "127.0.0.1",
            "AGORA_REDIS_PORT": str(self.redis.port),
            # `agora setup` runs rabbitmqctl: these name this node.
            **self.rabbitmq.env,
        }
