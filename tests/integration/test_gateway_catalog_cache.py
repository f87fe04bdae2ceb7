"""The gateway's catalog cache against a real catalog service, RabbitMQ and
Redis: hits make no RPC, the catalog's events invalidate at once, and with the
event connection cut the cache is bypassed until it is back.

The gateway is the real one (create_app) on this run's vhost with its own
broker user; products change through the catalog's own entrypoint, so each
change publishes its event through the outbox like in production."""

import copy
import uuid

import pytest

from gateway.app import create_app
from services.catalog.service import CatalogService
from services.chassis.testing import call_entrypoint as call
from tests.support.broker import close_connection
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

EVENT_TIMEOUT = 10.0


@pytest.fixture
def catalog(start_service):
    return start_service(CatalogService)


@pytest.fixture
def gateway(config, rabbit_vhost, redis_client, catalog):
    cfg = copy.deepcopy(config)
    prefix = f"{config['redis']['key_prefix']}gwcache-{uuid.uuid4().hex[:8]}:"
    cfg["redis"]["key_prefix"] = prefix
    cfg["gateway"]["rate_limits"]["groups"]["read"] = "100000/minute"
    app = create_app(cfg)
    cache = app.extensions["agora.catalog_cache"]
    rpc = app.extensions["agora.rpc"]
    real_call = rpc.call
    app.rpc_calls = []

    def counting_call(service, method, *args, **kwargs):
        app.rpc_calls.append((service, method))
        return real_call(service, method, *args, **kwargs)

    rpc.call = counting_call
    client = app.test_client()
    client.get("/v1/products")  # the first catalog read starts the event listener
    wait_until(lambda: cache.live, EVENT_TIMEOUT, "the gateway consuming catalog events")
    client.app = app
    client.cache = cache
    yield client
    cache.stop()
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def create(container, gateway, **overrides):
    """A new product, once the gateway has received its product_created event
    (which drops every list page, and would drop the product cached before it)."""
    payload = {
        "sku": f"SKU-{uuid.uuid4().hex[:10]}".upper(),
        "name": "Cached mug",
        "price": {"amount": 1299, "currency": "EUR"},
        **overrides,
    }
    events = gateway.cache.events
    product = call(container, "create_product", payload)
    wait_until(lambda: gateway.cache.events > events, EVENT_TIMEOUT, "product_created")
    return product


def catalog_calls(gateway):
    return [call for call in gateway.app.rpc_calls if call[0] == "catalog"]


def price_of(gateway, product_id):
    response = gateway.get(f"/v1/products/{product_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["price"]["amount"]


def test_a_cached_product_read_makes_no_rpc_and_keeps_the_response_headers(gateway, catalog):
    product = create(catalog, gateway)
    path = f"/v1/products/{product['id']}"
    first = gateway.get(path)
    calls = len(catalog_calls(gateway))
    second = gateway.get(path)
    assert len(catalog_calls(gateway)) == calls, "a hit called the catalog"
    assert second.status_code == 200
    assert second.get_data() == first.get_data()
    assert second.headers["ETag"] == first.headers["ETag"]
    assert len(second.headers["X-B3-TraceId"]) == 32
    assert second.headers["X-B3-TraceId"] != first.headers["X-B3-TraceId"]
    assert int(second.headers["X-RateLimit-Remaining"]) < int(
        first.headers["X-RateLimit-Remaining"]
    )
    assert second.headers["Cache-Control"] == "public, no-cache"
    assert second.headers["Content-Type"] == "application/json"


def test_an_update_is_visible_as_soon_as_its_event_arrives(gateway, catalog):
    product = create(catalog, gateway)
    assert price_of(gateway, product["id"]) == 1299
    assert price_of(gateway, product["id"]) == 1299  # now cached
    for amount in (1500, 1700, 900):
        call(
            catalog,
            "update_product",
            product["id"],
            {"price": {"amount": amount, "currency": "EUR"}},
        )
        wait_until(
            lambda amount=amount: price_of(gateway, product["id"]) == amount,
            EVENT_TIMEOUT,
            f"the gateway to show the price {amount}",
            interval=0.01,
        )
        # Once seen, never the old price again (no stale refill from a read in flight).
        assert {price_of(gateway, product["id"]) for _ in range(5)} == {amount}


def test_a_list_page_is_invalidated_by_a_product_created(gateway, catalog):
    query = f"/v1/products?q=listinv{uuid.uuid4().hex[:8]}&limit=5"
    marker = query.split("q=")[1].split("&")[0]
    assert gateway.get(query).get_json()["items"] == []
    calls = len(catalog_calls(gateway))
    assert gateway.get(query).get_json()["items"] == []
    assert len(catalog_calls(gateway)) == calls, "the list page was not cached"
    product = call(
        catalog,
        "create_product",
        {
            "sku": f"SKU-{marker}".upper(),
            "name": f"Mug {marker}",
            "price": {"amount": 5, "currency": "EUR"},
        },
    )
    items = wait_until(
        lambda: gateway.get(query).get_json()["items"],
        EVENT_TIMEOUT,
        "the new product in the cached list page",
        interval=0.01,
    )
    assert [item["id"] for item in items] == [product["id"]]


def test_unknown_products_are_not_cached(gateway, catalog):
    product_id = str(uuid.uuid4())
    for _ in range(2):
        response = gateway.get(f"/v1/products/{product_id}")
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
        assert "ETag" not in response.headers
    assert catalog_calls(gateway).count(("catalog", "get_product")) == 2


def test_etag_and_304_with_weak_comparison(gateway, catalog):
    product = create(catalog, gateway)
    path = f"/v1/products/{product['id']}"
    first = gateway.get(path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert "Authorization" in first.headers["Vary"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = gateway.get(path, headers={"If-None-Match": sent})
        assert response.status_code == 304, sent
        assert response.get_data() == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == "public, no-cache"
        assert "X-B3-TraceId" in response.headers and "X-RateLimit-Limit" in response.headers
    assert gateway.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    # The copy is stale once the product changes.
    call(catalog, "update_product", product["id"], {"name": "Renamed"})
    wait_until(
        lambda: gateway.get(path, headers={"If-None-Match": etag}).status_code == 200,
        EVENT_TIMEOUT,
        "the old ETag to stop matching",
        interval=0.01,
    )
    pages = gateway.get("/v1/products?limit=2")
    assert pages.status_code == 200
    again = gateway.get("/v1/products?limit=2", headers={"If-None-Match": pages.headers["ETag"]})
    assert again.status_code in (200, 304)  # 200 if another product changed meanwhile


def test_with_the_event_connection_cut_reads_bypass_the_cache_until_it_is_back(gateway, catalog):
    cache = gateway.cache
    product = create(catalog, gateway)
    assert price_of(gateway, product["id"]) == 1299
    assert price_of(gateway, product["id"]) == 1299
    assert len(cache) > 0

    sessions = cache._listener.sessions
    assert close_connection(cache._listener.connection_name)
    # The update's event reaches no gateway queue: the read must not be the
    # cached price all the same.
    call(catalog, "update_product", product["id"], {"price": {"amount": 2100, "currency": "EUR"}})
    calls = len(catalog_calls(gateway))
    assert price_of(gateway, product["id"]) == 2100
    assert price_of(gateway, product["id"]) == 2100
    if not cache.live:
        assert len(catalog_calls(gateway)) == calls + 2, "served from the cache while bypassed"

    # The listener reconnects by itself and the cache serves again.
    wait_until(
        lambda: cache.live and cache._listener.sessions > sessions,
        EVENT_TIMEOUT,
        "the event connection to come back",
    )
    assert price_of(gateway, product["id"]) == 2100
    calls = len(catalog_calls(gateway))
    assert price_of(gateway, product["id"]) == 2100
    assert len(catalog_calls(gateway)) == calls, "the cache did not resume"
    # ...and is invalidated by events again.
    call(catalog, "update_product", product["id"], {"price": {"amount": 2200, "currency": "EUR"}})
    wait_until(
        lambda: price_of(gateway, product["id"]) == 2200,
        EVENT_TIMEOUT,
        "the price after reconnecting",
        interval=0.01,
    )


def staff_token(app, scope):
    """A token for ``scope`` signed by a test key the gateway is told to trust
    (the auth service is not running here)."""
    from gateway.auth.tokens import KeyCache, TokenVerifier
    from tests.unit.test_token_verifier import KEY, claims, public_jwks, sign

    keys = KeyCache(lambda: public_jwks(KEY), ttl=300, min_refresh_interval=5)
    settings = app.config["AGORA"]["auth"]
    app.extensions["agora.tokens"] = TokenVerifier(
        keys, settings, revocations=app.extensions["agora.redis"]
    )
    token = sign(claims(iss=settings["issuer"], aud=settings["audience"], scope=scope))
    return {"Authorization": f"Bearer {token}"}


def test_the_staff_listing_needs_catalog_write_and_is_never_cached(gateway, catalog):
    tag = uuid.uuid4().hex[:12]
    active = create(catalog, gateway, name=f"Mug on sale {tag}")
    inactive = create(catalog, gateway, name=f"Withdrawn mug {tag}", active=False)
    staff = staff_token(gateway.app, "catalog:write")
    customer = staff_token(gateway.app, "profile orders:read")
    path = f"/v1/products?include_inactive=true&q={tag}"

    assert gateway.get(path).status_code == 401
    refused = gateway.get(path, headers=customer)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "insufficient_scope"
    assert gateway.get("/v1/products?include_inactive=maybe", headers=staff).status_code == 400

    # Warm the public listing's cache; it never holds the inactive product.
    public = gateway.get(f"/v1/products?q={tag}")
    assert [p["id"] for p in public.get_json()["items"]] == [active["id"]]
    for _ in range(2):
        calls = len(catalog_calls(gateway))
        listed = gateway.get(path, headers=staff)
        assert listed.status_code == 200, listed.get_json()
        assert len(catalog_calls(gateway)) == calls + 1, "the staff listing came from a cache"
        assert listed.headers["Cache-Control"] == "private, no-store"
        assert "ETag" not in listed.headers
        items = listed.get_json()["items"]
        assert [(p["id"], p["active"]) for p in items] == [
            (active["id"], True),
            (inactive["id"], False),
        ]
    # The public listing, cached or not, still hides it; include_inactive=false is public.
    for query in (f"?q={tag}", f"?q={tag}&include_inactive=false", ""):
        again = gateway.get(f"/v1/products{query}")
        assert again.status_code == 200
        assert inactive["id"] not in {p["id"] for p in again.get_json()["items"]}
