"""Run the platform's processes in the foreground; stop them all cleanly.

Each child runs in its own session so a terminal's Ctrl-C reaches only the
supervisor, which then stops children in reverse start order (SIGTERM, then
SIGKILL after a grace period). A child that dies on its own is restarted with
exponential backoff.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("agora.supervisor")


@dataclass
class ProcessSpec:
    name: str
    argv: list
    env: dict = field(default_factory=dict)
    # Seconds between SIGTERM and SIGKILL: the process's own stop bound
    # (shutdown_timeout, gateway.graceful_timeout) plus a margin.
    grace: float = 10.0


class Child:
    def __init__(self, spec, cwd=None):
        self.spec = spec
        self.cwd = cwd
        self.process = None
        self.restarts = 0
        self.next_start = 0.0

    def start(self):
        env = {**os.environ, **self.spec.env}
        self.process = subprocess.Popen(
            self.spec.argv, env=env, cwd=self.cwd, start_new_session=True
        )
        return self

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
            return self.process.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %ss, killing it", self.spec.name, grace)
            self.process.kill()
            return self.process.wait(5)

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait(5)


def interrupt_on_signals():
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, even where SIGINT was
    inherited as ignored (a job started in the background by a script)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


class Supervisor:
    def __init__(self, cwd=None):
        self.cwd = cwd
        self.children = []
        self._stopping = False

    def start(self, spec):
        child = Child(spec, self.cwd).start()
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
