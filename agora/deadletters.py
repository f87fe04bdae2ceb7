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

The same from a terminal: ``agora dead-letters list|show|replay|discard``.
Listing does not consume: messages are read without an ack and go back to the
queue when the channel closes. A replay publishes the message (with publisher
confirms) to the queue it failed on, with its attempt count reset, and only
then removes it from the dead letters.
"""

import json

from kombu import Connection, Producer

from services.chassis.deadletter import (
    ATTEMPTS,
    ERROR,
    FAILED_AT,
    ORIGIN_QUEUE,
    dead_letter_queue,
    dead_letter_queue_name,
)

EVENT_SERVICES = ("inventory", "orders", "billing", "notifications")


def _connect(config):
    return Connection(config["amqp"]["uri"], transport_options={"confirm_publish": True})


def _body(message):
    try:
        return json.loads(message.body)
    except (TypeError, ValueError):
        return message.body if isinstance(message.body, str) else repr(message.body)


def _summary(service, message):
    headers = message.headers or {}
    body = _body(message)
    envelope = body if isinstance(body, dict) else {}
    return {
        "service": service,
        "event_id": envelope.get("event_id"),
        "type": envelope.get("type"),
        "queue": headers.get(ORIGIN_QUEUE),
        "attempts": headers.get(ATTEMPTS),
        "error": headers.get(ERROR),
        "failed_at": headers.get(FAILED_AT),
    }


def _each(config, service, visit, limit=10_000):
    """Call ``visit(message)`` for each dead letter of ``service``, unacked;
    ``visit`` may ack. The rest return to the queue when the channel closes."""
    with _connect(config) as connection:
        channel = connection.channel()
        queue = dead_letter_queue(service)(channel)
        queue.declare()
        try:
            for _ in range(limit):
                message = queue.get(no_ack=False)
                if message is None:
                    break
                visit(channel, message)
        finally:
            channel.close()


def dead_letters(config, service=None):
    """One summary per dead letter, of ``service`` or of every event service."""
    found = []
    for name in [service] if service else EVENT_SERVICES:
        _each(
            config, name, lambda channel, message, name=name: found.append(_summary(name, message))
        )
    return found


def show_dead_letter(config, service, event_id):
    """The whole dead letter: summary, headers and body; None if it is not there."""
    shown = []

    def visit(channel, message):
        if not shown and _summary(service, message)["event_id"] == event_id:
            shown.append(
                {**_summary(service, message), "headers": message.headers, "body": _body(message)}
            )

    _each(config, service, visit)
    return shown[0] if shown else None


def replay_dead_letters(config, service, event_id=None):
    """Send dead letters (all, or the one with ``event_id``) back to their handler queue.

    Returns how many were replayed."""
    replayed = []

    def visit(channel, message):
        summary = _summary(service, message)
        if event_id is not None and summary["event_id"] != event_id:
            return
        if not summary["queue"]:
            return  # not from a handler queue: leave it for a human
        headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-agora-")}
        Producer(channel).publish(
            message.body,
            exchange="",
            routing_key=summary["queue"],
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=2,
            retry=False,
        )
        message.ack()  # only after the broker confirmed the replay
        replayed.append(summary)

    _each(config, service, visit)
    return len(replayed)


def discard_dead_letter(config, service, event_id):
    """Drop one dead letter for good; True if it was found."""
    dropped = []

    def visit(channel, message):
        if not dropped and _summary(service, message)["event_id"] == event_id:
            message.ack()
            dropped.append(event_id)

    _each(config, service, visit)
    return bool(dropped)


__all__ = [
    "dead_letters",
    "show_dead_letter",
    "replay_dead_letters",
    "discard_dead_letter",
    "dead_letter_queue_name",
]
