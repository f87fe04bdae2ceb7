"""Operator helpers for dead letters: list, show, replay and discard them.

Every service that handles events has a durable queue ``<service>.dead-letters``
holding the messages its handlers failed on ``events.max_attempts`` times (see
``services/chassis/deadletter.py``). In ``make shell``::

    >>> dead_letters()                        # every service, one line each
    >>> dead_letters("billing")
    >>> show_dead_letter("billing", "<event_id>")
    >>> replay_dead_letters("billing")        # all of them, back to their handler queue
    >>> replay_dead_letters("billing", "<event_id>")
    >>> discard_dead_letter("billing", "<event_id>")

The same from a terminal: ``agora dead-letters list|show|replay|discard``, and
over HTTP ``/v1/ops/dead-letters`` (each service answering for its own). These
use the same code, ``services.chassis.deadletter.DeadLetterQueue``, here with the
operator's broker account (``amqp.uri``). Listing does not consume; a replay
publishes the message (with publisher confirms) back to the queue it failed
on, its attempt count reset, and only then removes it from the dead letters.
"""

from services.chassis.deadletter import DeadLetterQueue, dead_letter_queue_name
from services.chassis.schemas import DEAD_LETTER_SERVICES

EVENT_SERVICES = DEAD_LETTER_SERVICES


def _queue(config, service):
    return DeadLetterQueue(config["amqp"]["uri"], service)


def dead_letters(config, service=None):
    """One summary per dead letter, of ``service`` or of every event service."""
    found = []
    for name in [service] if service else EVENT_SERVICES:
        found.extend(_queue(config, name).summaries())
    return found


def show_dead_letter(config, service, event_id):
    """The whole dead letter: summary, ``event`` (its body) and ``headers``; None
    if it is not there."""
    return _queue(config, service).find(event_id)


def replay_dead_letters(config, service, event_id=None):
    """Send dead letters (all, or the one with ``event_id``) back to their handler queue.

    Returns how many were replayed."""
    return _queue(config, service).replay(event_id)


def discard_dead_letter(config, service, event_id):
    """Drop one dead letter for good; True if it was found."""
    return _queue(config, service).discard(event_id)


__all__ = [
    "dead_letters",
    "show_dead_letter",
    "replay_dead_letters",
    "discard_dead_letter",
    "dead_letter_queue_name",
]
