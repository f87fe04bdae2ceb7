"""Structured logging: one JSON object per line, with the current trace ids."""

import json
import logging
import logging.config
import time

from py_zipkin.storage import get_default_tracer

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
