"""Waiting for something that happens asynchronously (an event handled, a row
written, an email sent), with a deadline instead of a fixed sleep."""

import time


def wait_until(probe, timeout=15.0, what="condition", interval=0.05):
    """Poll ``probe()`` until it returns something truthy and return that value;
    fail with an AssertionError naming ``what`` (and the last value) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what} within {timeout}s (last: {value!r})"
            )
        time.sleep(interval)
