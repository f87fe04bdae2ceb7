"""Structured logging: one JSON object per line, with the current trace ids."""

import json
import logging
import sys
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
    def __init__(self, service):
        super().__init__()
        self.service = service

    def format(self, record):
        trace_id, span_id = current_trace_ids()
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
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


def setup_logging(service, level="INFO", stream=None):
    """Route every logger to one JSON line per record on ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that are chatty at INFO about their own plumbing.
    for noisy in ("kombu", "amqp", "urllib3", "nameko.containers", "py_zipkin"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return handler
