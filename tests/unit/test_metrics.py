"""The pure parts of the metrics: outcomes, kinds, the request middleware, the
breaker listener, the worker numbering, the scrape-time gauges, the domain rules."""

import datetime
import sys
from types import SimpleNamespace

import pybreaker
import pytest
from nameko.events import EventHandler
from nameko.rpc import Rpc
from nameko.timer import Timer
from prometheus_client import REGISTRY

from gateway import metrics as gateway_metrics
from gateway.rpc import ServiceUnavailable, UpstreamError, call_outcome
from gateway.workers import post_fork, pre_fork, worker_index
from services.billing.domain import charge_outcome
from services.chassis import metrics
from services.chassis.errors import Conflict, NotFound, Unavailable, ValidationError
from services.orders import domain as orders

pytestmark = pytest.mark.unit


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def absent(name, **labels):
    return REGISTRY.get_sample_value(name, labels) is None


def exc_info(exc):
    try:
        raise exc
    except Exception:
        return sys.exc_info()


# --- services ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "outcome"),
    [
        ("rpc", None, "ok"),
        ("rpc", NotFound("x"), "rejected"),
        ("rpc", Conflict("x"), "rejected"),
        ("rpc", ValidationError("x", {"a": "b"}), "rejected"),
        # Named, but the service could not do its job: an error for the SLO.
        ("rpc", Unavailable("x"), "error"),
        ("rpc", ValueError("a bug"), "error"),
        # Nobody is answered: an event or timer that fails is an error, whatever it raised.
        ("event", NotFound("x"), "error"),
        ("event", None, "ok"),
        ("timer", Conflict("x"), "error"),
    ],
)
def test_an_entrypoint_outcome(kind, error, outcome):
    assert metrics.outcome_of(kind, exc_info(error) if error else None) == outcome


def test_the_kind_of_an_entrypoint():
    assert metrics.entrypoint_kind(Rpc()) == "rpc"
    assert metrics.entrypoint_kind(EventHandler("orders", "order_created")) == "event"
    assert metrics.entrypoint_kind(Timer(interval=1)) == "timer"


def test_children_are_made_once_per_label_set():
    child = metrics.children(metrics.BILLING_CHARGES, "unit")
    assert child("succeeded") is child("succeeded")
    before = value("agora_billing_charges_total", service="unit", outcome="declined")
    child("declined").inc()
    assert value("agora_billing_charges_total", service="unit", outcome="declined") == before + 1


def test_cache_stats_are_made_once_per_service_and_cache():
    assert metrics.cache_stats("unit", "things") is metrics.cache_stats("unit", "things")
    assert metrics.cache_stats("unit", "things") is not metrics.cache_stats("unit", "others")


def test_scrape_time_gauges_read_each_service_and_leave_out_what_fails():
    def read(sources):
        if sources[0] == "down":
            raise ConnectionError("the database is away")
        return [(0, ["a"], sum(sources))]

    gauges = metrics.ScrapeTimeGauges([("agora_unit_gauge", "A test gauge.", ["part"])], read)
    try:
        gauges.add("one", 1)
        gauges.add("one", 2)
        gauges.add("two", "down")
        assert value("agora_unit_gauge", service="one", part="a") == 3
        assert absent("agora_unit_gauge", service="two", part="a")
        gauges.remove("one", 1)
        assert value("agora_unit_gauge", service="one", part="a") == 2
        gauges.remove("one", 2)
        assert absent("agora_unit_gauge", service="one", part="a")
    finally:
        REGISTRY.unregister(gauges)


def test_metrics_are_on_unless_the_config_turns_them_off():
    assert metrics.enabled({"metrics": {"enabled": True}})
    assert not metrics.enabled({"metrics": {"enabled": False}})
    assert metrics.serve({"enabled": False, "host": "127.0.0.1", "port": 0}) is None


# --- domain --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "status", "ends"),
    [
        (orders.PAID, orders.CONFIRMED, True),
        (orders.PENDING, orders.REJECTED, True),
        (orders.RESERVED, orders.EXPIRED, True),
        (orders.PAYMENT_FAILED, orders.CANCELLED, True),
        (orders.PENDING, orders.RESERVED, False),
        # A confirmed order cancelled later: its saga had ended already.
        (orders.CONFIRMED, orders.CANCELLED, False),
    ],
)
def test_which_status_change_ends_the_saga(previous, status, ends):
    assert orders.ends_saga(previous, status) is ends


def test_a_change_counts_the_status_and_a_deadline_close_a_timeout():
    from services.orders.service import _count_change

    placed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=30)
    labels = {"service": "orders"}
    before = {
        "expired": value("agora_orders_status_changes_total", status="expired", **labels),
        "sagas": value("agora_saga_duration_seconds_count", outcome="expired", **labels),
        "slow": value("agora_saga_duration_seconds_bucket", outcome="expired", le="20.0", **labels),
        "timeouts": value("agora_saga_timeouts_total", **labels),
        "paid": value("agora_orders_status_changes_total", status="paid", **labels),
    }
    _count_change(orders.PAID, orders.EXPIRED, placed, orders.DEADLINE)
    _count_change(orders.RESERVED, orders.PAID, placed, orders.PAYMENT_SUCCEEDED)
    count = value("agora_orders_status_changes_total", status="expired", **labels)
    assert count == before["expired"] + 1
    assert value("agora_orders_status_changes_total", status="paid", **labels) == before["paid"] + 1
    sagas = value("agora_saga_duration_seconds_count", outcome="expired", **labels)
    assert sagas == before["sagas"] + 1
    # 30 s: above the 20 s bucket.
    slow = value("agora_saga_duration_seconds_bucket", outcome="expired", le="20.0", **labels)
    assert slow == before["slow"]
    assert value("agora_saga_timeouts_total", **labels) == before["timeouts"] + 1


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(None, "succeeded"), ("card_declined", "declined"), ("timeout", "timeout")]
    + [("processing_error", "error"), ("something_new", "error")],
)
def test_a_charge_outcome(code, outcome):
    assert charge_outcome(code) == outcome


# --- gateway -------------------------------------------------------------------------


def test_rpc_outcomes():
    assert call_outcome(None) == "ok"
    assert call_outcome(NotFound("x")) == "error"
    assert call_outcome(UpstreamError("users", "ValueError")) == "error"
    assert call_outcome(ServiceUnavailable("users", "down")) == "unavailable"
    assert call_outcome(ServiceUnavailable("users", "slow", outcome="timeout")) == "timeout"
    assert call_outcome(pybreaker.CircuitBreakerError("open")) == "breaker_open"


def test_the_call_that_trips_the_breaker_counts_as_its_own_failure():
    try:
        try:
            raise ServiceUnavailable("users", "slow", outcome="timeout")
        except ServiceUnavailable:
            raise pybreaker.CircuitBreakerError("tripped") from None
    except pybreaker.CircuitBreakerError as tripped:
        assert call_outcome(tripped) == "timeout"


def wsgi(status, rule=None):
    """A WSGI app answering ``status``, with a request that matched ``rule``."""

    def app(environ, start_response):
        url_rule = SimpleNamespace(rule=rule) if rule else None
        environ["werkzeug.request"] = SimpleNamespace(url_rule=url_rule)
        start_response(status, [])
        environ["werkzeug.request"] = None  # as Flask does when the context is popped
        return [b""]

    return app


def test_the_middleware_counts_route_method_and_status():
    labels = {"route": "/v1/unit/<thing_id>", "method": "GET", "status": "418"}
    other = {"route": "unmatched", "method": "other", "status": "404"}
    before = value("agora_gateway_http_requests_total", **labels)
    before_other = value("agora_gateway_http_requests_total", **other)
    middleware = gateway_metrics.RequestMetrics(wsgi("418 I'M A TEAPOT", "/v1/unit/<thing_id>"))
    middleware({"REQUEST_METHOD": "GET"}, lambda *args: None)
    middleware({"REQUEST_METHOD": "GET"}, lambda *args: None)
    gateway_metrics.RequestMetrics(wsgi("404 NOT FOUND"))(
        {"REQUEST_METHOD": "X-SCAN"}, lambda *args: None
    )
    assert value("agora_gateway_http_requests_total", **labels) == before + 2
    assert value("agora_gateway_http_requests_total", **other) == before_other + 1
    duration = value(
        "agora_gateway_http_request_duration_seconds_count",
        route="/v1/unit/<thing_id>",
        method="GET",
    )
    assert duration >= 2


def test_a_request_that_raised_through_the_app_counts_as_a_500():
    def crashing(environ, start_response):
        raise RuntimeError("no answer")

    labels = {"route": "unmatched", "method": "POST", "status": "500"}
    before = value("agora_gateway_http_requests_total", **labels)
    with pytest.raises(RuntimeError):
        gateway_metrics.RequestMetrics(crashing)({"REQUEST_METHOD": "POST"}, lambda *a: None)
    assert value("agora_gateway_http_requests_total", **labels) == before + 1


def test_the_breaker_listener_keeps_the_state_and_counts_transitions():
    listener = gateway_metrics.BreakerMetrics("unit_breaker")
    labels = {"service": "unit_breaker"}
    assert value("agora_gateway_breaker_state", **labels) == 0
    opened = value("agora_gateway_breaker_transitions_total", state="open", **labels)
    for state, expected in (("open", 2), ("half-open", 1), ("closed", 0)):
        listener.state_change(None, None, SimpleNamespace(name=state))
        assert value("agora_gateway_breaker_state", **labels) == expected
    assert value("agora_gateway_breaker_transitions_total", state="open", **labels) == opened + 1
    half = value("agora_gateway_breaker_transitions_total", state="half_open", **labels)
    assert half >= 1


def test_workers_take_the_smallest_free_index_and_a_replacement_takes_the_dead_ones():
    server = SimpleNamespace(WORKERS={})
    workers = []
    for pid in (101, 102, 103):
        worker = SimpleNamespace()
        pre_fork(server, worker)
        server.WORKERS[pid] = worker
        workers.append(worker)
    assert [w.agora_index for w in workers] == [0, 1, 2]
    del server.WORKERS[102]  # worker 1 died
    replacement = SimpleNamespace()
    pre_fork(server, replacement)
    assert replacement.agora_index == 1


def test_a_forked_worker_knows_its_index():
    assert worker_index() is None  # not a gunicorn worker
    post_fork(None, SimpleNamespace(agora_index=3))
    try:
        assert worker_index() == 3
    finally:
        post_fork(None, SimpleNamespace(agora_index=None))
