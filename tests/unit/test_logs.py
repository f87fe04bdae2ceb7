import io
import json
import logging

import pytest

from services.chassis.logs import JsonFormatter
from services.chassis.tracing import TraceContext, Tracer

pytestmark = pytest.mark.unit

SETTINGS = {
    "sample_rate": 1.0,
    "zipkin_url": "http://127.0.0.1:9/api/v2/spans",
    "batch_size": 10,
    "flush_interval": 1.0,
    "queue_size": 10,
    "send_timeout": 0.5,
}


def capture(service="users"):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service))
    logger = logging.getLogger(f"test.logs.{service}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_the_required_fields():
    logger, stream = capture()
    logger.info("registered %s", "ada", extra={"user_id": "u1"})
    logger.warning("multi\nline message")
    first, second = lines(stream)
    assert first["service"] == "users"
    assert first["level"] == "INFO"
    assert first["message"] == "registered ada"
    assert first["user_id"] == "u1"
    assert first["trace_id"] is None and first["span_id"] is None
    assert second["message"] == "multi\nline message"


def test_log_lines_carry_the_active_span():
    logger, stream = capture()
    tracer = Tracer("users", SETTINGS, sender=lambda payload: None)
    trace_id = "463ac35c9f6413ad48485a3953bb6124"
    span = tracer.start_root(
        "rpc users.get", parent=TraceContext(trace_id, "a2fb4a1d1a96d312", True)
    )
    try:
        logger.info("inside")
    finally:
        span.stop()
    (entry,) = lines(stream)
    assert entry["trace_id"] == trace_id
    assert entry["span_id"] == span.zipkin_attrs.span_id


def test_exceptions_stay_inside_the_json_line():
    logger, stream = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (entry,) = lines(stream)
    assert entry["level"] == "ERROR"
    assert "ValueError: boom" in entry["exception"]


def test_an_instance_of_several_is_named_in_every_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("orders", instance="orders-2"))
    logger = logging.getLogger("test.logs.instance")
    logger.handlers = [handler]
    logger.propagate = False
    logger.warning("swept")
    [entry] = lines(stream)
    assert (entry["service"], entry["instance"]) == ("orders", "orders-2")


def test_entrypoint_outcomes_tell_answers_from_incidents():
    import sys

    from services.chassis.errors import EXPECTED, NotFound, Unavailable
    from services.chassis.logs import entrypoint_outcome

    class Entrypoint:
        expected_exceptions = EXPECTED

    def raised(exc):
        try:
            raise exc
        except Exception:
            return sys.exc_info()

    assert entrypoint_outcome(Entrypoint(), None) == "ok"
    assert entrypoint_outcome(Entrypoint(), raised(NotFound("no such order"))) == "rejected"
    # The service's own database or Redis being down is not an answer.
    assert entrypoint_outcome(Entrypoint(), raised(Unavailable("database down"))) == "error"
    assert entrypoint_outcome(Entrypoint(), raised(KeyError("bug"))) == "error"
    # A timer declares no expected exceptions: anything it raises is an error.
    assert entrypoint_outcome(object(), raised(NotFound("x"))) == "error"
