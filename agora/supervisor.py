"""Run the platform's processes in the foreground; stop them all cleanly.

Each child runs in its own session so a terminal's Ctrl-C reaches only the
supervisor, which then stops children in reverse start order (SIGTERM, then
SIGKILL after a grace period). A child that dies on its own is restarted with
exponential backoff.

With a log folder, the supervisor reads each child's output (stdout and
stderr, one pipe) and copies every line to the console and to
``<folder>/<process>.log``, rotated by size (``ProcessLog``). The supervisor
is the one place that sees every process's output, whatever wrote it (the JSON
logs, a crash's traceback, gunicorn's workers), and a restarted child appends
to the same file; no process needs to know about files.
"""

import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("agora.supervisor")


@dataclass
class ProcessSpec:
    name: str
    argv: list
    env: dict = field(default_factory=dict)
    # Seconds between SIGTERM and SIGKILL: the process's own stop bound
    # (shutdown_timeout, gateway.graceful_timeout) plus a margin.
    grace: float = 10.0


class ProcessLog:
    """Where one process's output lines go: the console (this process's
    stderr) and ``path``, rotated when it would pass ``max_bytes`` (``backups``
    older files kept: ``orders.log.1`` is the newest of them)."""

    _console_lock = threading.Lock()

    def __init__(self, path, max_bytes, backups, console=None):
        # Private: lines may name customers (emails in notifications, say).
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = Path(path)
        self.console = console if console is not None else sys.stderr
        self.file = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )

    def write(self, line):
        """One line (without its newline) to the console and the file."""
        if self.console is not None:
            with self._console_lock:
                try:
                    self.console.write(line + "\n")
                    self.console.flush()
                except (OSError, ValueError):
                    # The console went away (`make run | head`, a closed
                    # terminal): the file goes on, and the pipe keeps being
                    # read, or the child would block once it is full.
                    self.console = None
        # RotatingFileHandler rotates before a write that would pass max_bytes.
        self.file.emit(logging.makeLogRecord({"msg": line}))

    def close(self):
        self.file.close()


def pump(stream, sink):
    """Copy ``stream``'s lines to ``sink`` until the process closes it."""
    with stream:
        for raw in iter(stream.readline, b""):
            sink.write(raw.decode("utf-8", errors="replace").rstrip("\r\n"))


class Child:
    def __init__(self, spec, cwd=None, log=None):
        self.spec = spec
        self.cwd = cwd
        self.log = log
        self.process = None
        self.pump = None
        self.restarts = 0
        self.next_start = 0.0

    def start(self):
        env = {**os.environ, **self.spec.env}
        if self.log is None:
            self.process = subprocess.Popen(
                self.spec.argv, env=env, cwd=self.cwd, start_new_session=True
            )
            return self
        # Unbuffered: a line printed to stdout reaches the file when printed.
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            self.spec.argv,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.pump = threading.Thread(
            target=pump,
            args=(self.process.stdout, self.log),
            name=f"log-{self.spec.name}",
            daemon=True,
        )
        self.pump.start()
        return self

    def drain(self, timeout=2.0):
        """Wait (briefly) until the exited process's last lines are copied."""
        if self.pump is not None:
            self.pump.join(timeout)

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, grace=None):
        """SIGTERM, then SIGKILL after ``grace`` (the spec's); returns the exit code
        (None if it was not running)."""
        if not self.alive():
            return None
        grace = self.spec.grace if grace is None else grace
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %ss, killing it", self.spec.name, grace)
            self.process.kill()
            code = self.process.wait(5)
        self.drain()
        return code

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait(5)
        self.drain()


def interrupt_on_signals():
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, even where SIGINT was
    inherited as ignored (a job started in the background by a script)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


class Supervisor:
    """``log_dir``: copy each child's output to ``<log_dir>/<name>.log`` too,
    rotated past ``log_max_bytes`` with ``log_backups`` old files kept."""

    def __init__(self, cwd=None, log_dir=None, log_max_bytes=10 * 2**20, log_backups=5):
        self.cwd = cwd
        self.children = []
        self._stopping = False
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        self.logs = {}

    def _log_for(self, name):
        if self.log_dir is None:
            return None
        if name not in self.logs:
            path = self.log_dir / f"{name}.log"
            self.logs[name] = ProcessLog(path, self.log_max_bytes, self.log_backups)
        return self.logs[name]

    def start(self, spec):
        child = Child(spec, self.cwd, log=self._log_for(spec.name)).start()
        self.children.append(child)
        return child

    def stop_all(self, grace=None):
        """Stop children in reverse start order; a second Ctrl-C kills the rest at once."""
        self._stopping = True
        try:
            for child in reversed(self.children):
                child.stop(grace)
        except KeyboardInterrupt:
            for child in self.children:
                child.kill()
        for process_log in self.logs.values():
            process_log.close()

    def watch(self):
        """Block until SIGINT/SIGTERM; restart children that die meanwhile."""
        try:
            while True:
                time.sleep(0.5)
                now = time.monotonic()
                for child in self.children:
                    if child.alive() or self._stopping:
                        continue
                    if child.next_start == 0.0:
                        delay = min(30.0, 2.0 ** min(child.restarts, 5))
                        child.next_start = now + delay
                        print(
                            f"agora: {child.spec.name} exited with code "
                            f"{child.process.returncode}; restarting in {delay:.0f}s",
                            file=sys.stderr,
                        )
                    elif now >= child.next_start:
                        child.restarts += 1
                        child.next_start = 0.0
                        child.start()
        except KeyboardInterrupt:
            print("\nagora: stopping...", file=sys.stderr)
        finally:
            self.stop_all()
