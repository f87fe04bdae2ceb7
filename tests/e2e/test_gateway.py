"""The real processes over HTTP: services under `nameko run`, the gateway under gunicorn."""

import uuid

import pytest

from agora.seed import DEMO_PRODUCTS, seed
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


def unique_email():
    return f"e2e-{uuid.uuid4().hex[:10]}@Example.COM"


def error_of(response):
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_healthz_and_trace_header(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["X-B3-TraceId"]) == 32


def test_readyz_reports_the_gateways_own_dependencies(api):
    response = api.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"redis": {"status": "ok"}, "rabbitmq": {"status": "ok"}},
    }


def test_the_health_report_names_every_service(api, admin_token):
    response = api.get("/v1/ops/health", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    for name in ("users", "catalog"):
        report = body["checks"]["services"][name]
        assert report["service"] == name
        assert report["status"] == "ok"
        assert report["checks"] == {"db": "ok", "cache": "ok", "dispatch": "ok"}
        assert report["version"]
    assert api.get("/v1/ops/health").status_code == 401


def test_register_then_duplicate_is_409(api):
    email = unique_email()
    created = api.register(email, name="Ada")
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == email.lower()
    assert user["name"] == "Ada"
    assert "password" not in user and "password_hash" not in user
    assert created.headers["Location"] == f"/v1/users/{user['id']}"

    again = api.register(email.upper())
    assert again.status_code == 409
    assert error_of(again)["code"] == "conflict"


def test_bad_register_body_is_400_with_field_names(api):
    response = api.post("/v1/users", json={"email": "not-an-email", "password": "short", "x": 1})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"email", "password", "x"}

    missing = api.post("/v1/users", json={})
    assert set(error_of(missing)["details"]) == {"email", "password"}


def test_non_json_bodies_are_rejected_cleanly(api):
    not_json = api.http.post(
        api.base_url + "/v1/users", data="{oops", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert error_of(not_json)["code"] == "invalid_json"
    form = api.http.post(api.base_url + "/v1/users", data={"email": "a@b.c"})
    assert form.status_code == 415
    array = api.post("/v1/users", json=[1, 2])
    assert array.status_code == 400


def test_unknown_route_and_method_are_json(api):
    assert error_of(api.get("/v1/nope"))["code"] == "not_found"
    response = api.http.delete(api.base_url + "/v1/products")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_list_and_get_the_demo_catalog(api, rpc, platform):
    seed(rpc, platform.config)
    skus = set()
    cursor = None
    while True:
        path = "/v1/products?limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(path)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 4
        skus.update(item["sku"] for item in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert {sku for sku, *_ in DEMO_PRODUCTS} <= skus

    found = api.get("/v1/products?q=parthenon").json()["items"]
    assert [p["sku"] for p in found] == ["AGR-PST-001"]
    product = api.get(f"/v1/products/{found[0]['id']}")
    assert product.status_code == 200
    assert product.json()["price"] == {"amount": 1799, "currency": "EUR"}


def test_bad_queries_and_ids(api):
    assert error_of(api.get("/v1/products?limit=0"))["details"].keys() == {"limit"}
    assert error_of(api.get("/v1/products?limit=abc"))["details"].keys() == {"limit"}
    assert error_of(api.get("/v1/products?cursor=garbage"))["details"].keys() == {"cursor"}
    assert error_of(api.get("/v1/products?colour=red"))["details"].keys() == {"colour"}
    assert api.get("/v1/products/not-a-uuid").status_code == 404
    assert api.get(f"/v1/products/{uuid.uuid4()}").status_code == 404


def test_product_update_invalidates_the_cache(api, rpc):
    sku = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    product = rpc.catalog.create_product(
        {"sku": sku, "name": "Cached thing", "price": {"amount": 100, "currency": "EUR"}}
    )
    path = f"/v1/products/{product['id']}"
    assert api.get(path).json()["name"] == "Cached thing"
    assert api.get(path).json()["name"] == "Cached thing"  # now served from Redis
    listed = api.get(f"/v1/products?q={sku}").json()["items"]
    assert [p["name"] for p in listed] == ["Cached thing"]

    rpc.catalog.update_product(product["id"], {"name": "Renamed thing"})

    # The catalog's own cache is invalidated before the reply; each gateway
    # process's cache when the update's event reaches it.
    wait_until(lambda: api.get(path).json()["name"] == "Renamed thing", 5, "the new name")
    wait_until(
        lambda: (
            [p["name"] for p in api.get(f"/v1/products?q={sku}").json()["items"]]
            == ["Renamed thing"]
        ),
        5,
        "the new name in the list",
    )


def _always(probe, times=10):
    """``probe()`` holds for ``times`` reads in a row (the gateway has several
    processes, each with its own cache)."""
    return all(probe() for _ in range(times))


def test_a_price_changed_through_the_api_is_read_back_once_its_event_arrives(
    api, shop, admin_token
):
    from tests.e2e.commerce import bearer

    product = shop.product(stock=None, price=1000)
    path = f"/v1/products/{product['id']}"

    def price():
        response = api.get(path)
        assert response.status_code == 200, response.text
        return response.json()["price"]["amount"]

    wait_until(lambda: _always(lambda: price() == 1000), 5, "the product in every process")
    for amount in (1100, 1250, 990):
        response = api.http.patch(
            api.base_url + path,
            json={"price": {"amount": amount, "currency": "EUR"}},
            headers=bearer(admin_token),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        # Polled, never slept: visible as soon as the event reaches each process,
        # and from then on never the old price again.
        wait_until(
            lambda amount=amount: _always(lambda: price() == amount),
            5,
            f"the price {amount} in every process",
            interval=0.01,
        )


def test_product_reads_carry_an_etag_and_answer_304(api, shop, user_token):
    from tests.e2e.commerce import bearer

    product = shop.product(stock=None)
    path = f"/v1/products/{product['id']}"
    first = api.get(path)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, no-cache"
    assert "Authorization" in first.headers["Vary"]
    # The ETag is a hash of the body: every gateway process gives the same one.
    for _ in range(6):
        again = api.get(path, headers={"If-None-Match": f"W/{etag}"})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["ETag"] == etag
        assert len(again.headers["X-B3-TraceId"]) == 32
    private = api.get(path, headers=bearer(user_token))
    assert private.status_code == 200
    assert private.headers["Cache-Control"] == "private, no-cache"
    assert private.headers["ETag"] == etag
    listing = api.get("/v1/products?limit=3")
    revalidated = api.get(
        "/v1/products?limit=3", headers={"If-None-Match": listing.headers["ETag"]}
    )
    # 200 only if a product changed in between (another test's).
    assert revalidated.status_code in (200, 304)
    assert revalidated.headers["ETag"] == listing.headers["ETag"] or revalidated.status_code == 200


def test_one_trace_spans_gateway_and_both_sides_of_the_rpc(api, rpc, zipkin):
    product = rpc.catalog.list_products(limit=1)["items"][0]
    parent_trace = uuid.uuid4().hex
    parent_span = uuid.uuid4().hex[:16]
    response = api.get(
        f"/v1/products/{product['id']}",
        headers={"X-B3-TraceId": parent_trace, "X-B3-SpanId": parent_span, "X-B3-Sampled": "1"},
    )
    assert response.status_code == 200
    assert response.headers["X-B3-TraceId"] == parent_trace

    spans = zipkin.trace(parent_trace, count=3)
    by_kind = {(s["localEndpoint"]["serviceName"], s.get("kind")): s for s in spans}
    server = by_kind[("gateway", "SERVER")]
    client = by_kind[("gateway", "CLIENT")]
    catalog = by_kind[("catalog", "SERVER")]
    assert server["parentId"] == parent_span
    assert client["parentId"] == server["id"]
    assert catalog["parentId"] == client["id"]
    assert client["name"] == "rpc catalog.get_product"
    assert catalog["name"] == "rpc catalog.get_product"
    assert len({server["id"], client["id"], catalog["id"]}) == 3


def health_report(api, token):
    response = api.get("/v1/ops/health", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def report_when(api, token, service, status):
    """The health report if it says ``service`` is ``status``, else None."""
    body = health_report(api, token)
    return body if body["checks"]["services"][service]["status"] == status else None


@pytest.mark.parametrize("service", ["catalog"])
def test_a_stopped_service_is_in_the_report_and_the_gateway_stays_ready(
    api, platform, admin_token, service
):
    platform.stop(service)
    try:
        # The report is made at most every health_report_ttl seconds: wait for one
        # made after the stop.
        body = wait_until(
            lambda: report_when(api, admin_token, service, "unreachable"),
            what=f"{service} unreachable in the report",
        )
        assert body["status"] == "degraded"
        assert body["checks"]["services"]["users"]["status"] == "ok"
        # One service down does not pull the gateway out of the load balancer.
        assert api.get("/readyz").status_code == 200

        # Calls to the stopped service fail at once (no instance, or the breaker is
        # open) with 503 + Retry-After: they do not wait for the RPC timeout.
        # A query no one read before: a public read the gateway has cached is
        # still answered while the catalog is down (nothing can change it then).
        unread = f"/v1/products?q=unread{uuid.uuid4().hex[:8]}"
        for _ in range(5):
            listing = api.get(unread)
            assert listing.status_code == 503
            assert int(listing.headers["Retry-After"]) >= 1
            error = error_of(listing)
            assert error["code"] == "service_unavailable"
            assert error["details"]["reason"] in ("no instance is running", "circuit open")
        assert error["details"]["reason"] == "circuit open"
    finally:
        platform.start(service)
    platform.wait_ready(timeout=60)
    body = wait_until(
        lambda: report_when(api, admin_token, service, "ok"), what=f"{service} ok in the report"
    )
    assert body["status"] == "ok"


def test_stock_only_for_a_sku_a_product_has(shop):
    """PUT /v1/inventory/NOPE-1 used to create stock for a SKU no product has."""
    from tests.e2e.commerce import bearer

    response = shop.http.put(
        f"{shop.base}/v1/inventory/NOPE-1",
        json={"warehouse": "main", "on_hand": 5},
        headers=bearer(shop.admin),
        timeout=10,
    )
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_sku" and error["details"] == {"sku": "NOPE-1"}
    assert shop.http.get(f"{shop.base}/v1/inventory/NOPE-1", timeout=10).status_code == 404
    # Stock set right after the product is created (its event may still be on its way).
    product = shop.product(stock=3)
    assert shop.stock(product["sku"])["total"]["on_hand"] == 3
