"""Eventlet's import-time notice, kept out of the platform's output.

Eventlet warns on import that it is in bugfix-only mode: once per process that
imports Nameko (every service, every gateway worker), so nine copies of a
six-line paragraph on every `make run`. The choice is known and written down
(docs, STACK notes; the chassis keeps Nameko behind it): operators need not
read it nine times. Only that message is dropped, every other warning stays.

This module imports nothing, so it can run before anything imports eventlet.
"""

import warnings

EVENTLET_NOTICE = r"\s*Eventlet is deprecated"


def ignore_eventlet_notice():
    """Drop Eventlet's deprecation notice in this process (call before eventlet is imported)."""
    warnings.filterwarnings("ignore", message=EVENTLET_NOTICE)
