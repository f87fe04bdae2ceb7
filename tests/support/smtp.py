"""A real SMTP server for tests: ``SmtpServer().start()``, ``.port``, ``.messages()``.

The server (aiosmtpd) runs in a child process (``tests/support/smtp_server.py``)
because the test process is monkey-patched by eventlet, which breaks asyncio's
threads. It writes every message it accepts as a file; ``messages()`` parses
them into ``email.message.EmailMessage`` objects (``msg["To"]``,
``msg["Subject"]``, ``msg.get_content()``, plus ``X-Envelope-To``).

``SmtpServer(port=...)`` takes a fixed port, so a test can point a service at
a server that is not up yet and start it later. ``stop()`` ends the child by
its own PID; the maildir lives on until ``cleanup()`` (or the next ``start``
keeps appending to it).
"""

import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SmtpServer:
    def __init__(self, port=None, host="127.0.0.1", auth=None, maildir=None):
        """``auth=("user", "password")`` makes the server require AUTH LOGIN/PLAIN."""
        self.host = host
        self.port = port or free_port(host)
        self.auth = auth
        self._own_dir = maildir is None
        self.maildir = Path(maildir or tempfile.mkdtemp(prefix="agora-smtp-"))
        self.process = None
        self._log = None

    # --- process -----------------------------------------------------------------

    def start(self, timeout=10.0):
        if self.process is not None:
            raise RuntimeError("already started")
        ready = self.maildir / "ready"
        ready.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "tests.support.smtp_server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--maildir",
            str(self.maildir),
        ]
        if self.auth:
            command += ["--auth", f"{self.auth[0]}:{self.auth[1]}"]
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        self._log = open(self.maildir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._log
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None:
                self.stop()
                log = (self.maildir / "server.log").read_text(errors="replace")
                raise RuntimeError(f"SMTP server exited on start:\n{log[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SMTP server not ready on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self, timeout=5.0):
        """End the server process (by its PID), politely first."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.maildir, ignore_errors=True)

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # --- mail --------------------------------------------------------------------

    def _files(self):
        folder = self.maildir / "new"
        return sorted(folder.iterdir()) if folder.exists() else []

    def messages(self, predicate=None, to=None):
        """Messages received so far, oldest first; only those matching ``predicate``
        and sent to ``to`` (an address in the envelope) when given."""
        found = []
        for path in self._files():
            raw = path.read_bytes().replace(b"\r\n", b"\n")
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if to is not None and to.lower() not in _envelope_to(msg):
                continue
            if predicate is None or predicate(msg):
                found.append(msg)
        return found

    def clear(self):
        for path in self._files():
            path.unlink(missing_ok=True)

    def wait_for(self, expected=1, timeout=10.0, to=None, interval=0.05):
        """Wait until ``expected`` messages exist (an int), or one matches it (a predicate).

        ``to`` counts only messages sent to that address. Returns the messages
        (the matching ones for a predicate); raises ``AssertionError`` naming
        what did arrive when the deadline passes.
        """
        deadline = time.monotonic() + timeout
        while True:
            if callable(expected):
                found = self.messages(expected, to=to)
                if found:
                    return found
            else:
                found = self.messages(to=to)
                if len(found) >= expected:
                    return found
            if time.monotonic() > deadline:
                seen = [(m["To"], m["Subject"]) for m in self.messages()]
                raise AssertionError(f"no such mail within {timeout}s; received: {seen}")
            time.sleep(interval)


def _envelope_to(msg):
    return {a.strip().lower() for a in str(msg.get("X-Envelope-To", "")).split(",") if a.strip()}
