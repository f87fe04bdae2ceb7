"""One log line per handled entrypoint (services.chassis.logs.EntrypointLog), from
real containers on the run's RabbitMQ: outcome, duration and the caller's trace id."""

import io
import json
import logging
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.timer import timer

from services.chassis.config import nameko_config
from services.chassis.errors import NotFound
from services.chassis.logs import JsonFormatter
from services.chassis.messaging import event_handler, rpc
from services.chassis.service import AgoraService
from services.chassis.tracing import B3_KEY
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


class LoggedService(AgoraService):
    name = "logged_things"

    @rpc
    def fetch(self, thing_id):
        if thing_id == "missing":
            raise NotFound(f"no thing {thing_id}")
        if thing_id == "broken":
            raise ValueError("a bug")
        return {"id": thing_id}

    @event_handler("logged_source", "thing_happened")
    def on_thing(self, event):
        return event["data"]

    @timer(interval=0.05)
    def idle_tick(self):
        return None


class FailingTimerService(AgoraService):
    name = "logged_failing_timer"

    @timer(interval=0.05)
    def failing_tick(self):
        raise RuntimeError("the timer's bug")


@pytest.fixture
def entrypoint_lines():
    """Every line ``agora.entrypoints`` writes (as JSON) while the test runs,
    from DEBUG up; returns a function that parses them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("tests"))
    logger = logging.getLogger("agora.entrypoints")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def traced_call(config, trace_id, method, *args):
    b3 = f"{trace_id}-{uuid.uuid4().hex[:16]}-1"
    with ClusterRpcProxy(nameko_config(config, "t"), context_data={B3_KEY: b3}) as proxy:
        return getattr(proxy.logged_things, method)(*args)


def line_of(lines, trace_id):
    found = [line for line in lines() if line["trace_id"] == trace_id]
    return found[0] if len(found) == 1 else None


def test_rpc_outcomes_each_one_line_with_the_callers_trace_id(
    start_service, config, entrypoint_lines
):
    start_service(LoggedService)
    ok, rejected, error = (uuid.uuid4().hex for _ in range(3))
    assert traced_call(config, ok, "fetch", "a") == {"id": "a"}
    with pytest.raises(NotFound):
        traced_call(config, rejected, "fetch", "missing")
    with pytest.raises(Exception, match="ValueError"):
        traced_call(config, error, "fetch", "broken")

    for trace_id, outcome, level, exception in (
        (ok, "ok", "INFO", None),
        (rejected, "rejected", "INFO", "NotFound"),
        (error, "error", "ERROR", "ValueError"),
    ):
        line = wait_until(lambda t=trace_id: line_of(entrypoint_lines, t), what=outcome)
        assert line["level"] == level
        assert line["entrypoint"] == "logged_things.fetch"
        assert (line["kind"], line["outcome"]) == ("rpc", outcome)
        assert line.get("error") == exception
        assert line["duration_ms"] >= 0
        assert line["message"].startswith(f"rpc logged_things.fetch {outcome}")
        assert line["span_id"] is not None


def test_an_event_is_one_line_under_the_dispatchers_trace(start_service, config, entrypoint_lines):
    start_service(LoggedService)
    trace_id = uuid.uuid4().hex
    b3 = f"{trace_id}-{uuid.uuid4().hex[:16]}-1"
    dispatch = event_dispatcher(nameko_config(config, "t"), headers={f"nameko.{B3_KEY}": b3})
    envelope = {"event_id": str(uuid.uuid4()), "type": "logged_source.thing_happened", "data": {}}
    dispatch("logged_source", "thing_happened", envelope)
    line = wait_until(lambda: line_of(entrypoint_lines, trace_id), what="the event's line")
    assert line["level"] == "INFO"
    assert (line["kind"], line["outcome"]) == ("event", "ok")
    assert line["entrypoint"] == "logged_things.on_thing"
    assert line["event"] == "logged_source.thing_happened"


def test_a_timer_with_nothing_to_do_stays_below_info(start_service, entrypoint_lines):
    start_service(LoggedService)
    ticks = wait_until(
        lambda: [line for line in entrypoint_lines() if line["kind"] == "timer"][2:],
        what="three timer runs",
    )
    assert {line["level"] for line in ticks} == {"DEBUG"}
    assert {line["entrypoint"] for line in ticks} == {"logged_things.idle_tick"}


def test_a_failing_timer_is_an_error_line(start_service, entrypoint_lines):
    start_service(FailingTimerService)
    line = wait_until(
        lambda: next((line for line in entrypoint_lines() if line["kind"] == "timer"), None),
        what="the failing timer's line",
    )
    assert line["level"] == "ERROR"
    assert (line["outcome"], line["error"]) == ("error", "RuntimeError")
    assert line["trace_id"] is not None
