"""Where a hung test is waiting: every greenlet's stack, on demand or by a watchdog.

A test process is monkey-patched by eventlet, so a hang is a greenlet parked in
the hub, invisible to faulthandler and py-spy (they show the hub's thread).
``kill -USR1 <pytest pid>`` prints every greenlet's stack to stderr, and a
watchdog does it once for any test still running after ``AGORA_TEST_HANG_SECONDS``
(default 300; 0 turns it off). It only reports: the test goes on.
"""

import contextlib
import gc
import os
import signal
import sys
import time
import traceback

import eventlet
import greenlet

HANG_SECONDS = float(os.environ.get("AGORA_TEST_HANG_SECONDS", "300"))


def dump_greenlets(reason, uncaptured=contextlib.nullcontext):
    """Every greenlet's stack to stderr; ``uncaptured()`` lifts pytest's capture."""
    lines = [f"\n===== greenlet stacks ({reason}) ====="]
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, greenlet.greenlet) or obj.gr_frame is None:
                continue
        except ReferenceError:  # a weak proxy whose referent is gone
            continue
        lines.append(f"--- {obj!r}")
        lines.extend(line.rstrip("\n") for line in traceback.format_stack(obj.gr_frame))
    lines.append("===== end of greenlet stacks =====")
    with uncaptured():
        print("\n".join(lines), file=sys.stderr, flush=True)


class Watchdog:
    """Tracks the running test; dumps the stacks once if it outlives ``limit``."""

    def __init__(self, limit, uncaptured):
        self.limit = limit
        self.uncaptured = uncaptured
        self.test = None
        self.started = 0.0
        self.reported = None

    def begin(self, nodeid):
        self.test, self.started = nodeid, time.monotonic()

    def end(self):
        self.test = None

    def watch(self):
        while True:
            eventlet.sleep(min(10.0, self.limit / 4))
            test = self.test
            if test is None or test == self.reported:
                continue
            running = time.monotonic() - self.started
            if running > self.limit:
                self.reported = test
                dump_greenlets(f"{test} running for {running:.0f} s", self.uncaptured)


def install(pytest_config):
    """The USR1 handler and, unless turned off, the watchdog; returns the watchdog."""
    capture = pytest_config.pluginmanager.getplugin("capturemanager")
    uncaptured = capture.global_and_fixture_disabled if capture else contextlib.nullcontext
    signal.signal(signal.SIGUSR1, lambda *_: dump_greenlets("SIGUSR1", uncaptured))
    if HANG_SECONDS <= 0:
        return None
    watchdog = Watchdog(HANG_SECONDS, uncaptured)
    eventlet.spawn(watchdog.watch)
    return watchdog
