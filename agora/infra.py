"""Reaching and preparing the three backing services: RabbitMQ, PostgreSQL, Redis."""

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import amqp
import redis
from sqlalchemy.engine import make_url

from services.chassis.migrations import maintenance_connection

START_COMMANDS = {
    "RabbitMQ": "rabbitmq-server -detached",
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


@dataclass
class Problem:
    name: str
    address: str
    reason: str

    def __str__(self):
        return (
            f"{self.name} is not reachable at {self.address} ({self.reason}).\n"
            f"  Start it with: {START_COMMANDS[self.name]}"
        )


def _amqp_parts(uri):
    parts = urlsplit(uri)
    return (
        parts.hostname or "127.0.0.1",
        parts.port or 5672,
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
        unquote(parts.path[1:]) or "/",
    )


def _reason(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}"[:160] if text else exc.__class__.__name__


def check_rabbitmq(config, timeout=3):
    host, port, user, password, _vhost = _amqp_parts(config["amqp"]["uri"])
    try:
        conn = amqp.Connection(
            host=f"{host}:{port}",
            userid=user,
            password=password,
            virtual_host="/",
            connect_timeout=timeout,
        )
        conn.connect()
        conn.close()
    except Exception as exc:  # any failure to connect is the message
        return Problem("RabbitMQ", f"{host}:{port}", _reason(exc))
    return None


def check_postgres(config, timeout=3):
    url = make_url(config["postgres"]["url"] + "/postgres")
    address = f"{url.host}:{url.port or 5432}"
    try:
        maintenance_connection(config, timeout).close()
    except Exception as exc:
        return Problem("PostgreSQL", address, _reason(exc))
    return None


def check_redis(config, timeout=2):
    client = redis.Redis.from_url(
        config["redis"]["url"], socket_timeout=timeout, socket_connect_timeout=timeout
    )
    kwargs = client.connection_pool.connection_kwargs
    address = f"{kwargs.get('host')}:{kwargs.get('port')}"
    try:
        client.ping()
    except Exception as exc:
        return Problem("Redis", address, _reason(exc))
    finally:
        client.close()
    return None


def preflight(config):
    """Every backing service that cannot be reached, as a list of Problems."""
    return [p for p in (check_rabbitmq(config), check_postgres(config), check_redis(config)) if p]


class VhostError(RuntimeError):
    pass


def _rabbitmqctl(*args, stdin=None):
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise VhostError("rabbitmqctl not found: create the vhost by hand (see README)")
    result = subprocess.run(
        [exe, "-q", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise VhostError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()[:200]}")
    return result.stdout


def ensure_vhost(config):
    """Create the configured vhost, give the operator (``amqp.uri``'s user) full
    rights on it, and create every principal's broker user with its least
    privileges (``agora/broker.py``); idempotent, one ``rabbitmqctl`` call."""
    from agora.broker import definitions

    _host, _port, user, _password, vhost = _amqp_parts(config["amqp"]["uri"])
    document = definitions(config, vhost, operator=None if vhost == "/" else user)
    # On standard input: the document holds password hashes, never put in a file.
    _rabbitmqctl("import_definitions", stdin=json.dumps(document))


def delete_principals(config):
    """Delete every principal's broker user (the test suite's per-run users)."""
    from services.chassis.config import BROKER_PRINCIPALS, broker_user

    names = ", ".join("<<" + json.dumps(broker_user(config, p)) + ">>" for p in BROKER_PRINCIPALS)
    _rabbitmqctl(
        "eval",
        f'[catch rabbit_auth_backend_internal:delete_user(U, <<"agora">>) || U <- [{names}]], ok.',
    )


def delete_unused_principals(config):
    """Delete the principals' broker users that hold no permission on any vhost
    any more; the names of those kept. The users are named by ``amqp.user_prefix``
    only, so platforms on other vhosts with the same prefix (a second ``make run``
    with its own AGORA_AMQP_VHOST) share them: ``agora reset`` deletes its vhost
    first, then only the users nobody else still uses. One ``rabbitmqctl`` call."""
    from services.chassis.config import BROKER_PRINCIPALS, broker_user

    names = ", ".join("<<" + json.dumps(broker_user(config, p)) + ">>" for p in BROKER_PRINCIPALS)
    kept = _rabbitmqctl(
        "eval",
        "[U || U <- [" + names + "], "
        "case catch rabbit_auth_backend_internal:list_user_permissions(U) of "
        '[] -> catch rabbit_auth_backend_internal:delete_user(U, <<"agora">>), false; '
        "{error, _} -> false; _ -> true end].",
    )
    return re.findall(r'<<"([^"]+)">>', kept)


def delete_vhost(config):
    _host, _port, _user, _password, vhost = _amqp_parts(config["amqp"]["uri"])
    if vhost != "/":
        _rabbitmqctl("delete_vhost", vhost)


def operator_connection(config, timeout=3):
    """A py-amqp connection to the platform's vhost as the operator (``amqp.uri``)."""
    host, port, user, password, vhost = _amqp_parts(config["amqp"]["uri"])
    conn = amqp.Connection(
        host=f"{host}:{port}",
        userid=user,
        password=password,
        virtual_host=vhost,
        connect_timeout=timeout,
    )
    conn.connect()
    return conn


def queue_consumers(conn, queue):
    """How many consumers ``queue`` has: 0 when it does not exist (yet)."""
    channel = conn.channel()
    try:
        return channel.queue_declare(queue, passive=True).consumer_count
    except amqp.exceptions.NotFound:
        return 0
    finally:
        channel.close()


def vhost_exists(config):
    _host, _port, _user, _password, vhost = _amqp_parts(config["amqp"]["uri"])
    return vhost in _rabbitmqctl("list_vhosts", "name").split("\n")
