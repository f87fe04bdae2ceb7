"""Structured logging: one JSON object per line, with the current trace ids.

``EntrypointLog`` (on every service through ``AgoraService``) writes one line
per handled RPC, event and timer run: its outcome and duration, under the
worker's trace id, so one order's saga reads as one trace across services.
"""

import json
import logging
import logging.config
import time
from weakref import WeakKeyDictionary

from services.chassis.eventlet_notice import ignore_eventlet_notice

# This module imports Nameko (so eventlet), and a process's logging config
# (gunicorn's --log-config-json) may load it before anything else.
ignore_eventlet_notice()

from nameko.events import EventHandler  # noqa: E402
from nameko.extensions import DependencyProvider  # noqa: E402
from nameko.rpc import Rpc  # noqa: E402
from py_zipkin.storage import get_default_tracer  # noqa: E402

from services.chassis.errors import Unavailable  # noqa: E402

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def current_trace_ids():
    """(trace_id, span_id) of the span active in this thread or greenlet, or (None, None)."""
    attrs = get_default_tracer().get_zipkin_attrs()
    if attrs is None:
        return None, None
    return attrs.trace_id, attrs.span_id


class JsonFormatter(logging.Formatter):
    def __init__(self, service, instance=None):
        super().__init__()
        self.service = service
        self.instance = instance

    def format(self, record):
        trace_id, span_id = current_trace_ids()
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            **({"instance": self.instance} if self.instance else {}),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_NOISY = ("kombu", "amqp", "nameko", "py_zipkin", "urllib3")


def logging_config(service, level="INFO", instance=None):
    """The ``logging.config.dictConfig`` dict: every record one JSON line on stderr,
    naming the ``instance`` (``orders-2``) too when a service runs several.

    Used for the gateway (and gunicorn's own logger) and, rendered into the
    Nameko config, for every service."""
    quiet = level if level == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "services.chassis.logs.JsonFormatter",
                "service": service,
                "instance": instance,
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            **{name: {"level": quiet} for name in _NOISY},
            # Named business errors (not found, conflict) are answers, not
            # incidents: Nameko would log each with a traceback at WARNING.
            "nameko.containers": {"level": "ERROR"},
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
        },
    }


def setup_logging(service, level="INFO"):
    logging.config.dictConfig(logging_config(service, level))


# --- one line per handled entrypoint --------------------------------------------

OK, REJECTED, ERROR = "ok", "rejected", "error"


def entrypoint_kind(entrypoint):
    """``rpc``, ``event`` or ``timer`` (any other entrypoint: the chassis'
    timers and the notifications send loop)."""
    if isinstance(entrypoint, Rpc):
        return "rpc"
    if isinstance(entrypoint, EventHandler):
        return "event"
    return "timer"


def entrypoint_outcome(entrypoint, exc_info):
    """``ok``; ``rejected``: a named business error sent back to the caller
    (not found, conflict, validation...); ``error``: anything else, including
    ``Unavailable`` (the service's own database or Redis is down)."""
    if exc_info is None:
        return OK
    exc = exc_info[1]
    expected = getattr(entrypoint, "expected_exceptions", ())
    if expected and isinstance(exc, expected) and not isinstance(exc, Unavailable):
        return REJECTED
    return ERROR


class EntrypointLog(DependencyProvider):
    """One line per handled worker: ``rpc orders.place_order ok 12.3 ms``, with
    the fields ``entrypoint``, ``kind``, ``outcome``, ``duration_ms``, ``event``
    (``<source>.<type>``, for an event) and, unless ok, ``error`` (the exception's
    class name). The trace id is the worker's own span's (``Tracing``), still
    current when the result is known, so one saga reads as one trace.

    Levels: ok and rejected at INFO, error at ERROR. A timer run that ends ok
    is logged at DEBUG only: timers wake every few seconds, mostly to find
    nothing to do, and the ones that do something say what they did
    (``swept 2 overdue orders``). A timer run that fails is logged as above.

    Nameko calls ``worker_result`` after the entrypoint's own ``handle_result``,
    so the outcome is the final one: a commit that failed is an error here."""

    def setup(self):
        self.log = logging.getLogger("agora.entrypoints")
        self.started = WeakKeyDictionary()

    def worker_setup(self, worker_ctx):
        self.started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started.pop(worker_ctx, None)
        if started is None:
            return
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        outcome = entrypoint_outcome(entrypoint, exc_info)
        level = logging.ERROR if outcome == ERROR else logging.INFO
        if kind == "timer" and outcome == OK:
            level = logging.DEBUG
        if not self.log.isEnabledFor(level):
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        name = f"{worker_ctx.service_name}.{entrypoint.method_name}"
        fields = {"entrypoint": name, "kind": kind, "outcome": outcome, "duration_ms": duration_ms}
        summary = outcome
        if exc_info is not None:
            fields["error"] = exc_info[0].__name__
            summary = f"{outcome} {fields['error']}"
        if kind == "event":
            fields["event"] = f"{entrypoint.source_service}.{entrypoint.event_type}"
            name = f"{name} <- {fields['event']}"
        self.log.log(level, "%s %s %s %.1f ms", kind, name, summary, duration_ms, extra=fields)
