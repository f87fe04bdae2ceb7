"""The catalog service in a real container: PostgreSQL, Redis and RabbitMQ."""

import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter

from services.catalog.schemas import PRODUCT, PRODUCT_PAGE
from services.catalog.service import CatalogService
from services.chassis.errors import Conflict, NotFound, ValidationError
from services.chassis.messaging import event_handler
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call

pytestmark = pytest.mark.integration


def token(tag="t"):
    """A fragment unique to this test, for SKUs and for the q filter."""
    return f"{tag}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def catalog(start_service):
    return start_service(CatalogService)


def create(container, name="Mug", **overrides):
    payload = {
        "sku": token("SKU-").upper(),
        "name": name,
        "price": {"amount": 1299, "currency": "EUR"},
        **overrides,
    }
    return call(container, "create_product", payload)


class Listener:
    name = "catalog_test_listener"
    received = []

    @event_handler("catalog", "product_updated")
    def on_updated(self, envelope):
        Listener.received.append(envelope)


# --- create --------------------------------------------------------------------


def test_create_returns_the_product(catalog):
    sku = token("SKU-").upper()
    product = call(
        catalog,
        "create_product",
        {"sku": sku, "name": "Blue mug", "price": {"amount": 1299, "currency": "EUR"}},
    )
    validate(PRODUCT, product)
    assert product["sku"] == sku
    assert product["description"] == "" and product["active"] is True
    assert product["price"] == {"amount": 1299, "currency": "EUR"}
    assert product["created_at"] == product["updated_at"]
    assert product["created_at"].endswith("Z")


def test_duplicate_sku_is_a_conflict(catalog):
    first = create(catalog)
    with pytest.raises(Conflict) as info:
        create(catalog, sku=first["sku"], name="Other")
    assert info.value.details == {"sku": "already exists"}


def test_concurrent_duplicate_skus_one_wins(catalog, service_config):
    """The race the pre-check cannot see: the unique index decides, the losers get Conflict."""
    sku = token("SKU-").upper()
    payload = {"sku": sku, "name": "Race", "price": {"amount": 1, "currency": "EUR"}}
    config = service_config("tests")
    with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"], "SERIALIZER": "json"}) as rpc:
        replies = [rpc.catalog.create_product.call_async(payload) for _ in range(4)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["sku"])
            except Conflict as exc:
                assert exc.details == {"sku": "already exists"}
                outcomes.append("conflict")
    assert sorted(outcomes) == sorted(["conflict"] * 3 + [sku])


def test_bad_payload_names_the_fields(catalog):
    with pytest.raises(ValidationError) as info:
        call(
            catalog,
            "create_product",
            {"sku": "lower", "name": "", "price": {"amount": -5, "currency": "EUR"}, "x": 1},
        )
    assert set(info.value.details) == {"sku", "name", "price.amount", "x"}


def test_errors_cross_rpc_intact(catalog, service_config):
    config = service_config("tests")
    with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"], "SERIALIZER": "json"}) as rpc:
        with pytest.raises(ValidationError) as info:
            rpc.catalog.create_product({"name": "no sku"})
        assert info.value.details["sku"] == "is required"
        with pytest.raises(NotFound):
            rpc.catalog.get_product(str(uuid.uuid4()))
        product = rpc.catalog.create_product(
            {
                "sku": token("RPC-").upper(),
                "name": "Via RPC",
                "price": {"amount": 1, "currency": "USD"},
            }
        )
        assert rpc.catalog.get_product(product["id"]) == product


# --- get -----------------------------------------------------------------------


def test_known_skus_answers_which_skus_a_product_has(catalog):
    active = create(catalog)
    inactive = create(catalog, active=False)
    unknown = token("NOPE-").upper()
    asked = [unknown, inactive["sku"], active["sku"]]
    assert call(catalog, "known_skus", asked) == sorted([active["sku"], inactive["sku"]])
    assert call(catalog, "known_skus", []) == []
    with pytest.raises(ValidationError) as info:
        call(catalog, "known_skus", ["lower-case"])
    assert list(info.value.details) == ["skus.0"]


def test_get_returns_the_product_inactive_too(catalog):
    product = create(catalog, active=False, description="hidden")
    assert call(catalog, "get_product", product["id"]) == product
    assert call(catalog, "get_product", product["id"].upper()) == product  # cached now


@pytest.mark.parametrize("product_id", [None, "", "nope", "123", 5])
def test_get_malformed_id_is_not_found(catalog, product_id):
    with pytest.raises(NotFound):
        call(catalog, "get_product", product_id)


def test_get_unknown_id_is_not_found_and_not_cached(catalog, redis_client):
    product_id = str(uuid.uuid4())
    with pytest.raises(NotFound):
        call(catalog, "get_product", product_id)
    assert redis_client.keys(redis_client.key("catalog", f"*{product_id}*")) == []


# --- update --------------------------------------------------------------------


def cached(redis_client, pattern):
    return redis_client.keys(redis_client.key("catalog", f"v:{pattern}"))


def test_update_is_visible_through_the_cache(catalog, redis_client):
    product = create(catalog)
    assert call(catalog, "get_product", product["id"]) == product
    assert len(cached(redis_client, f"product:{product['id']}@*")) == 1  # now cached
    updated = call(
        catalog,
        "update_product",
        product["id"],
        {"name": "Renamed", "price": {"amount": 999, "currency": "EUR"}},
    )
    assert updated["name"] == "Renamed" and updated["price"]["amount"] == 999
    assert updated["sku"] == product["sku"] and updated["created_at"] == product["created_at"]
    assert updated["updated_at"] > product["updated_at"]
    assert call(catalog, "get_product", product["id"]) == updated
    # A new generation, a new entry; the old one just expires.
    assert len(cached(redis_client, f"product:{product['id']}@*")) == 2


def test_update_rejects_sku_empty_and_unknown(catalog):
    product = create(catalog)
    with pytest.raises(ValidationError) as info:
        call(catalog, "update_product", product["id"], {"sku": "NEW-SKU"})
    assert info.value.details == {"sku": "is not an allowed field"}
    with pytest.raises(ValidationError):
        call(catalog, "update_product", product["id"], {})
    with pytest.raises(NotFound):
        call(catalog, "update_product", str(uuid.uuid4()), {"name": "x"})
    with pytest.raises(NotFound):
        call(catalog, "update_product", "garbage", {"name": "x"})


def test_update_publishes_product_updated(catalog, container_factory, service_config):
    listener = container_factory(Listener, service_config(Listener.name))
    listener.start()
    product = create(catalog)
    Listener.received.clear()
    with entrypoint_waiter(listener, "on_updated", timeout=5):
        call(catalog, "update_product", product["id"], {"active": False})
    (envelope,) = Listener.received
    assert envelope["type"] == "catalog.product_updated"
    assert envelope["data"]["product"]["id"] == product["id"]
    assert envelope["data"]["product"]["active"] is False
    assert {"event_id", "occurred_at", "version"} <= set(envelope)


# --- list ----------------------------------------------------------------------


def test_list_pages_through_active_products_in_order(catalog):
    tag = token("pg")
    created = [create(catalog, name=f"Item {i} {tag}") for i in range(5)]
    create(catalog, name=f"Inactive {tag}", active=False)

    seen, cursor, pages = [], None, 0
    while True:
        page = call(catalog, "list_products", limit=2, cursor=cursor, q=tag)
        validate(PRODUCT_PAGE, page)
        pages += 1
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [p["id"] for p in seen] == [p["id"] for p in created]


def test_list_q_matches_name_description_and_sku_case_insensitively(catalog):
    tag = token("qf")
    by_name = create(catalog, name=f"Teapot {tag.upper()}")
    by_description = create(catalog, name="Cup", description=f"goes with {tag}")
    by_sku = create(catalog, sku=f"{tag.upper()}-X")
    create(catalog, name="Unrelated")
    page = call(catalog, "list_products", q=f"  {tag}  ")
    assert [p["id"] for p in page["items"]] == [by_name["id"], by_description["id"], by_sku["id"]]
    assert page["next_cursor"] is None
    assert call(catalog, "list_products", q=f"{tag}%")["items"] == []  # % is literal


def test_list_rejects_bad_arguments(catalog):
    for kwargs, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": "!!!"}, "cursor"),
        ({"q": "x" * 101}, "q"),
    ]:
        with pytest.raises(ValidationError) as info:
            call(catalog, "list_products", **kwargs)
        assert field in info.value.details, kwargs
    with pytest.raises(ValidationError) as info:
        call(catalog, "list_products", cursor="bm90LWEtY3Vyc29y")
    assert info.value.details == {"cursor": "is invalid"}


def page_keys(redis_client):
    """The catalog's cached list pages in Redis (values and fill locks)."""
    pattern = redis_client.key("catalog", "") + "*page:*"
    return set(redis_client.scan_iter(match=pattern, count=1000))


def canonical_chain(catalog):
    """Every page of the public listing (default limit, no q), first to last."""
    pages, cursor = [], None
    while True:
        page = call(catalog, "list_products", cursor=cursor)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_the_canonical_listing_is_cached_and_invalidated_by_create_and_update(
    catalog, redis_client
):
    tag = token("inv")
    first = create(catalog, name=f"First {tag}")
    pages = canonical_chain(catalog)
    assert first in pages[-1]["items"]
    cached = page_keys(redis_client)
    assert len([k for k in cached if ":v:page:" in k]) >= len(pages)
    # The same chain again is served from the cache: no new entry.
    assert canonical_chain(catalog) == pages
    assert page_keys(redis_client) == cached

    second = create(catalog, name=f"Second {tag}")
    ids = [p["id"] for page in canonical_chain(catalog) for p in page["items"]]
    assert ids[-2:] == [first["id"], second["id"]]

    call(catalog, "update_product", first["id"], {"name": f"First renamed {tag}"})
    items = [p for page in canonical_chain(catalog) for p in page["items"]]
    assert next(p for p in items if p["id"] == first["id"])["name"] == f"First renamed {tag}"

    call(catalog, "update_product", second["id"], {"active": False})
    ids = [p["id"] for page in canonical_chain(catalog) for p in page["items"]]
    assert second["id"] not in ids and first["id"] in ids


def test_other_queries_limits_and_cursors_create_no_cache_entries(catalog, redis_client):
    tag = token("nc")
    made = [create(catalog, name=f"Uncached {i} {tag}") for i in range(3)]
    call(catalog, "list_products")  # the canonical first page may be cached
    before = page_keys(redis_client)

    for n in range(5):
        call(catalog, "list_products", q=token("random"))
        call(catalog, "list_products", limit=1 + n)
    filtered = call(catalog, "list_products", q=tag, limit=1)
    assert [p["id"] for p in filtered["items"]] == [made[0]["id"]]
    # A cursor from a non-canonical listing continues it, uncached, even with
    # the default limit and no q.
    second = call(catalog, "list_products", cursor=filtered["next_cursor"])
    assert second["items"] and second["next_cursor"] != filtered["next_cursor"]
    chained = call(catalog, "list_products", q=tag, cursor=filtered["next_cursor"])
    assert [p["id"] for p in chained["items"]] == [m["id"] for m in made[1:]]

    assert page_keys(redis_client) == before


def test_the_staff_listing_has_inactive_products_and_is_never_cached(catalog, redis_client):
    tag = token("staff")
    active = create(catalog, name=f"On sale {tag}")
    inactive = create(catalog, name=f"Withdrawn {tag}", active=False)
    # The public listing, its first page cached, lists the active product only.
    public = [p["id"] for page in canonical_chain(catalog) for p in page["items"]]
    assert active["id"] in public and inactive["id"] not in public
    before = page_keys(redis_client)

    seen, cursor = [], None
    while True:
        page = call(catalog, "list_products", cursor=cursor, include_inactive=True)
        validate(PRODUCT_PAGE, page)
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    staff = [p["id"] for p in seen]
    assert staff.index(active["id"]) < staff.index(inactive["id"])
    assert next(p for p in seen if p["id"] == inactive["id"])["active"] is False
    filtered = call(catalog, "list_products", q=tag, include_inactive=True)
    assert [p["id"] for p in filtered["items"]] == [active["id"], inactive["id"]]

    # Nothing cached, and the public pages (cached) still hide it.
    assert page_keys(redis_client) == before
    public = [p["id"] for page in canonical_chain(catalog) for p in page["items"]]
    assert inactive["id"] not in public
    with pytest.raises(ValidationError) as info:
        call(catalog, "list_products", include_inactive="yes")
    assert "include_inactive" in info.value.details


def test_a_cursor_signed_with_another_key_is_refused(catalog):
    from services.catalog.domain import ListingCursors
    from services.chassis.cursors import signing_key

    create(catalog)
    forged = ListingCursors(signing_key("not-this-deployment-key")).encode(0, canonical=True)
    with pytest.raises(ValidationError) as info:
        call(catalog, "list_products", cursor=forged)
    assert info.value.details == {"cursor": "is invalid"}
    genuine = call(catalog, "list_products", limit=1)["next_cursor"]
    assert call(catalog, "list_products", cursor=genuine)["items"]


def test_reads_survive_redis_being_down(catalog, redis_client):
    product = create(catalog)
    provider = next(d for d in catalog.dependencies if d.attr_name == "cache")
    healthy = provider.client
    provider.client = type(healthy).from_url(
        "redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=0.2
    )
    provider.client.key_prefix = healthy.key_prefix
    try:
        assert call(catalog, "get_product", product["id"]) == product
        assert call(catalog, "list_products", q=product["sku"])["items"] == [product]
        updated = call(catalog, "update_product", product["id"], {"name": "Still works"})
        assert updated["name"] == "Still works"
    finally:
        provider.client.close()
        provider.client = healthy


def test_health_reports_database_and_cache(catalog):
    report = call(catalog, "health")
    assert report["service"] == "catalog"
    assert report["checks"] == {"db": "ok", "cache": "ok", "dispatch": "ok"}
