"""A real Prometheus (Debian's package, installed where missing) scraping the live
e2e platform through the file-SD targets the service registry gives: every
process is scraped, an order's request and saga series arrive, and every metric
name the dashboards and rules use is one the platform really exports."""

import time

import pytest

from agora import observability
from agora.cli import SERVICES
from agora.platform import free_port
from agora.prometheus import ensure_prometheus, prepare, server_argv
from tests.e2e.commerce import bearer
from tests.support.polling import wait_until
from tests.support.prometheus import PrometheusServer, scrape

pytestmark = pytest.mark.e2e

PROCESSES = {*SERVICES, "gateway"}

# Series that exist only once something specific happened, so a scrape of a
# platform that just placed an order may lack them (prometheus_client creates a
# labelled series at its first use; the chassis creates most of its series at
# zero when a service starts, these not). Each with the event that creates it.
AFTER_SPECIFIC_EVENTS = {
    "agora_inbox_duplicates_total": "an event was delivered twice and skipped",
    "agora_gateway_rate_limited_total": "a request was refused with 429",
    "agora_rpc_client_retries_total": "a service retried an idempotent call",
}


@pytest.fixture(scope="module")
def registry(platform):
    from services.chassis.discovery import registry_from_config

    return registry_from_config(platform.config)


@pytest.fixture(scope="module")
def prometheus(platform, registry, tmp_path_factory):
    """Prometheus on its own port and data dir, its targets file rewritten from
    the registry while it starts, as `agora run` keeps it (a process an earlier
    test killed stays listed until the registry's TTL drops it); ``.instances``:
    the registry's live instances once every one is a target and up."""
    from services.chassis.discovery import file_sd_targets, write_file_sd

    binaries = ensure_prometheus()
    folder = tmp_path_factory.mktemp("prometheus")
    prepare(folder)
    targets_file = folder / "targets" / "agora.json"
    written = []

    def sync_targets():
        instances = [i for i in registry.instances() if i.get("metrics_url")]
        if file_sd_targets(instances) != written:
            write_file_sd(instances, targets_file)
            written[:] = file_sd_targets(instances)
        return instances

    sync_targets()
    port = free_port()
    server = PrometheusServer(
        server_argv(binaries, folder, "127.0.0.1", port, "1h"),
        f"http://127.0.0.1:{port}",
        folder / "prometheus.log",
    ).start()
    try:

        def every_process_up():
            instances = sync_targets()
            if not PROCESSES <= {i["service"] for i in instances}:
                return None
            targets = [t for t in server.active_targets() if t["labels"]["job"] == "agora"]
            scraped = {t["labels"]["instance"] for t in targets if t["health"] == "up"}
            listed = {_endpoint(i["metrics_url"]) for i in instances}
            return instances if len(targets) == len(listed) and scraped == listed else None

        server.instances = wait_until(
            every_process_up, 90, "every registered process a target and up", interval=0.5
        )
        yield server
    finally:
        server.stop()


def _endpoint(url):
    return url.split("//", 1)[1].split("/", 1)[0]


def test_every_live_process_is_a_target_with_its_service_and_process(prometheus):
    targets = {
        t["labels"]["instance"]: t["labels"]
        for t in prometheus.active_targets()
        if t["labels"]["job"] == "agora"
    }
    expected = {_endpoint(i["metrics_url"]): i for i in prometheus.instances}
    assert set(targets) == set(expected)
    for endpoint, labels in targets.items():
        assert labels["service"] == expected[endpoint]["service"]
        assert labels["process"] == expected[endpoint]["process"]
    services = {labels["service"] for labels, _value in prometheus.query('up{job="agora"} == 1')}
    assert services == PROCESSES


def _place_an_order(shop, smtp):
    """A customer orders one product (read first, through the catalog cache) and
    the saga confirms it; also one request without a token (a token rejection)."""
    _email, token = shop.verified_customer(smtp)
    product = shop.product(stock=5, price=700)
    assert shop.http.get(f"{shop.base}/v1/products/{product['id']}", timeout=10).ok
    refused = shop.http.get(f"{shop.base}/v1/orders", timeout=10)
    assert refused.status_code == 401, refused.text
    response = shop.place(token, [(product["id"], 1)])
    assert response.status_code == 202, response.text
    order = response.json()
    shop.wait_for(token, order["id"], {"confirmed"})
    shop.http.get(f"{shop.base}/v1/orders/{order['id']}", headers=bearer(token), timeout=10)
    return order


def test_an_orders_request_and_saga_series_reach_prometheus(prometheus, shop, smtp):
    _place_an_order(shop, smtp)

    def series(expr):
        return lambda: sum(value for _labels, value in prometheus.query(expr))

    placed = 'agora_gateway_http_requests_total{route="/v1/orders", method="POST", status="202"}'
    assert wait_until(series(placed), 30, "the order's request counted") >= 1
    timed = 'agora_gateway_http_request_duration_seconds_count{route="/v1/orders", method="POST"}'
    assert wait_until(series(timed), 30, "the order's request timed") >= 1
    confirmed = 'agora_orders_status_changes_total{status="confirmed"}'
    assert wait_until(series(confirmed), 30, "the confirmation counted") >= 1
    saga = 'agora_saga_duration_seconds_count{outcome="confirmed"}'
    assert wait_until(series(saga), 30, "the saga's duration observed") >= 1
    charged = 'agora_billing_charges_total{outcome="succeeded"}'
    assert wait_until(series(charged), 30, "the charge counted") >= 1
    # The SLO recording rules evaluate on live data.
    assert wait_until(series("agora:gateway_http_requests:rate5m"), 30, "the request rate") > 0


def test_every_metric_the_dashboards_and_rules_use_is_exported(prometheus, shop, smtp):
    _place_an_order(shop, smtp)
    prometheus_made = set(observability.recording_rules()) | observability.PROMETHEUS_SERIES
    used = {
        name: expression.where
        for expression in observability.expressions()
        for name in observability.metric_names(expression.promql)
        if name not in prometheus_made
    }
    # The allowance names only catalogued names some dashboard or rule uses.
    assert set(AFTER_SPECIFIC_EVENTS) <= observability.catalogue_series() & set(used)

    # The notifications of the order's confirmation are sent a little after it.
    deadline = time.monotonic() + 30
    while True:
        samples = [s for i in prometheus.instances for s in scrape(i["metrics_url"])]
        exported = {name for name, _labels in samples}
        absent = {
            name: where
            for name, where in used.items()
            if name not in exported and name not in AFTER_SPECIFIC_EVENTS
        }
        if not absent or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not absent
    # The latency SLO (rules/slo.yml) counts requests under 0.5 s: that bucket must exist.
    bounds = {
        labels["le"]
        for name, labels in samples
        if name == "agora_gateway_http_request_duration_seconds_bucket"
    }
    assert "0.5" in bounds, sorted(bounds)
