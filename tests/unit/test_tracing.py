import json
import time

import pytest
import requests
from py_zipkin.util import ZipkinAttrs

from services.chassis.tracing import (
    SpanSender,
    TraceContext,
    Tracer,
    current_b3,
    format_b3,
    parse_b3,
    parse_http_headers,
)

pytestmark = pytest.mark.unit

TRACE = "463ac35c9f6413ad48485a3953bb6124"
SPAN = "a2fb4a1d1a96d312"


def test_parse_b3_single_header():
    assert parse_b3(f"{TRACE}-{SPAN}-1") == TraceContext(TRACE, SPAN, True)
    assert parse_b3(f"{TRACE}-{SPAN}-0") == TraceContext(TRACE, SPAN, False)
    assert parse_b3(f"{TRACE}-{SPAN}") == TraceContext(TRACE, SPAN, None)


def test_parse_b3_rejects_garbage():
    for bad in (None, "", "0", "xyz-abc-1", f"{TRACE}-short-1", f"{TRACE[:-1]}g-{SPAN}", 42):
        assert parse_b3(bad) is None


def test_parse_multi_headers():
    headers = {"X-B3-TraceId": TRACE.upper(), "X-B3-SpanId": SPAN, "X-B3-Sampled": "0"}
    assert parse_http_headers(headers) == TraceContext(TRACE, SPAN, False)
    assert parse_http_headers({"X-B3-TraceId": TRACE}) is None
    assert parse_http_headers({"b3": f"{TRACE}-{SPAN}-1"}).sampled is True


def test_format_b3_round_trips():
    attrs = ZipkinAttrs(TRACE, SPAN, None, "0", True)
    assert parse_b3(format_b3(attrs)) == TraceContext(TRACE, SPAN, True)


class RecordingSender:
    def __init__(self):
        self.payloads = []

    def __call__(self, payload):
        self.payloads.append(json.loads(payload))


SETTINGS = {
    "sample_rate": 1.0,
    "zipkin_url": "http://127.0.0.1:9/api/v2/spans",
    "batch_size": 10,
    "flush_interval": 0.1,
    "queue_size": 10,
    "send_timeout": 0.5,
}


def test_root_and_client_spans_link_parent_to_child():
    sender = RecordingSender()
    tracer = Tracer("gateway", SETTINGS, sender=sender)
    root = tracer.start_root("GET /x", parent=TraceContext(TRACE, SPAN, True))
    with tracer.client_span("rpc catalog.get_product") as b3:
        sent = parse_b3(b3)
    assert current_b3().startswith(f"{TRACE}-{root.zipkin_attrs.span_id}")
    root.stop()
    assert current_b3() is None

    spans = {s["kind"]: s for s in sender.payloads[0]}
    assert spans["SERVER"]["parentId"] == SPAN
    assert spans["CLIENT"]["parentId"] == spans["SERVER"]["id"]
    assert sent == TraceContext(TRACE, spans["CLIENT"]["id"], True)
    assert "shared" not in spans["SERVER"]


def test_unsampled_requests_keep_ids_but_send_nothing():
    sender = RecordingSender()
    tracer = Tracer("gateway", {**SETTINGS, "sample_rate": 0.0}, sender=sender)
    root = tracer.start_root("GET /x")
    assert root.zipkin_attrs.is_sampled is False
    assert current_b3().endswith("-0")
    root.stop()
    assert sender.payloads == []


def test_client_span_outside_a_trace_is_a_no_op():
    tracer = Tracer("gateway", SETTINGS, sender=RecordingSender())
    with tracer.client_span("rpc x.y") as b3:
        assert b3 is None


def test_sender_drops_rather_than_blocks_when_the_collector_is_down():
    sender = SpanSender(
        "http://127.0.0.1:9/api/v2/spans",
        batch_size=1,
        flush_interval=0.05,
        queue_size=2,
        timeout=0.2,
    )
    for _ in range(50):
        sender(b'[{"traceId": "x"}]')  # never blocks, even with the queue full
    deadline = time.monotonic() + 5
    while sender.dropped < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.dropped == 50
    assert sender.sent == 0
    sender.close()


def test_overlapping_client_spans_are_siblings_under_the_request():
    sender = RecordingSender()
    tracer = Tracer("gateway", SETTINGS, sender=sender)
    root = tracer.start_root("GET /orders/x", parent=TraceContext(TRACE, SPAN, True))
    first, first_b3 = tracer.start_client_span("rpc orders.get_order")
    second, second_b3 = tracer.start_client_span("rpc billing.get_payment_for_order")
    assert current_b3().startswith(f"{TRACE}-{root.zipkin_attrs.span_id}")
    # Finished in another order than started: the request stays the current span.
    tracer.finish_client_span(first)
    tracer.finish_client_span(second, ConnectionError("down"))
    assert current_b3().startswith(f"{TRACE}-{root.zipkin_attrs.span_id}")
    root.stop()

    spans = sender.payloads[0]
    server = next(s for s in spans if s["kind"] == "SERVER")
    clients = {s["name"]: s for s in spans if s["kind"] == "CLIENT"}
    assert {s["parentId"] for s in clients.values()} == {server["id"]}
    assert parse_b3(first_b3).span_id == clients["rpc orders.get_order"]["id"]
    assert parse_b3(second_b3).span_id == clients["rpc billing.get_payment_for_order"]["id"]
    assert clients["rpc billing.get_payment_for_order"]["tags"]["error"] == "ConnectionError"


def test_a_client_span_started_outside_a_trace_is_a_no_op():
    tracer = Tracer("gateway", SETTINGS, sender=RecordingSender())
    span, b3 = tracer.start_client_span("rpc x.y")
    assert span is None and b3 is None
    tracer.finish_client_span(span)


def test_spans_after_an_idle_spell_go_out_together_within_the_flush_interval():
    sender = SpanSender("http://127.0.0.1:9/api/v2/spans", batch_size=100, flush_interval=0.1)
    posted = []
    sender._post = lambda batch: batch and posted.append(batch)

    def wait_for(count):
        deadline = time.monotonic() + 5
        while len(posted) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    sender(b'[{"traceId": "a"}]')
    wait_for(1)
    time.sleep(0.3)  # idle: the sender thread waits for the next span
    sender(b'[{"traceId": "b"}]')
    sender(b'[{"traceId": "c"}]')
    wait_for(2)
    sender.close()
    assert posted == [[{"traceId": "a"}], [{"traceId": "b"}, {"traceId": "c"}]]


def test_a_collector_outage_is_said_once_with_how_to_run_one_then_its_end(caplog):
    """Every failed POST used to warn, once a minute, with no hint; now once per
    outage, naming the compose service, and once when the collector answers again."""
    from tests.support.zipkin import ZipkinCollector

    collector = ZipkinCollector()
    sender = SpanSender(collector.url, batch_size=1, flush_interval=0.05, timeout=0.5)
    sender._http = requests.Session()  # as the sender thread sets it up
    caplog.set_level("INFO", logger="services.chassis.tracing")
    for _ in range(3):
        sender._post([{"traceId": TRACE}])  # the collector's port is bound, nobody answers yet
    collector.start()
    sender._post([{"traceId": TRACE}])
    sender._post([{"traceId": TRACE}])
    collector.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "unreachable" in messages[0]
    assert "docker compose -f compose/docker-compose.yml up -d zipkin" in messages[0]
    assert "AGORA_ZIPKIN_URL=" in messages[0]
    assert "answers again" in messages[1]
    assert (sender.dropped, sender.sent) == (3, 2)


def test_no_collector_configured_keeps_trace_ids_and_sends_nothing():
    tracer = Tracer("gateway", {**SETTINGS, "zipkin_url": ""})
    root = tracer.start_root("GET /x")
    assert len(root.zipkin_attrs.trace_id) == 32
    assert root.zipkin_attrs.is_sampled is False
    root.stop()
    assert tracer.sender.sent == 0
    tracer.close()
