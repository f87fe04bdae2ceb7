"""The catalog's side of product images, in a real container (PostgreSQL,
Redis, RabbitMQ): which images a product has, in order, as absolute URLs;
product_updated on each change; the cached product follows."""

import hashlib
import uuid

import pytest
from nameko.testing.services import entrypoint_waiter

from services.catalog.domain import IMAGES_MAX
from services.catalog.schemas import IMAGE_REMOVED, PRODUCT
from services.catalog.service import CatalogService
from services.chassis.errors import Conflict, NotFound, ValidationError
from services.chassis.messaging import event_handler
from services.chassis.objectstore import media_base_url
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog(start_service):
    return start_service(CatalogService)


def create(container):
    payload = {
        "sku": f"IMG-{uuid.uuid4().hex[:10]}".upper(),
        "name": "Pictured mug",
        "price": {"amount": 1299, "currency": "EUR"},
    }
    return call(container, "create_product", payload)


def key(seed):
    return f"images/{hashlib.sha256(seed.encode()).hexdigest()}.webp"


def image(seed=None):
    seed = seed or uuid.uuid4().hex
    return {
        "id": hashlib.sha256(seed.encode()).hexdigest()[:32],
        "renditions": {
            "list": {"key": key(f"{seed}-list"), "width": 480, "height": 320},
            "detail": {"key": key(f"{seed}-detail"), "width": 1200, "height": 800},
        },
    }


class Listener:
    name = "catalog_images_test_listener"
    received = []

    @event_handler("catalog", "product_updated")
    def on_updated(self, envelope):
        Listener.received.append(envelope)


def test_images_are_listed_in_order_with_absolute_urls(catalog, config):
    product = create(catalog)
    assert product["images"] == []
    # Cached now: the additions must invalidate it.
    assert call(catalog, "get_product", product["id"])["images"] == []
    first, second = image(), image()
    call(catalog, "add_product_image", product["id"], first)
    updated = call(catalog, "add_product_image", product["id"], second)
    validate(PRODUCT, updated)
    base = media_base_url(config)
    assert base.startswith("http://") and base.endswith("/media")
    assert updated["images"] == [
        {
            "id": added["id"],
            "width": 1200,
            "height": 800,
            "urls": {
                "list": f"{base}/{added['renditions']['list']['key']}",
                "detail": f"{base}/{added['renditions']['detail']['key']}",
            },
        }
        for added in (first, second)
    ]
    assert updated["updated_at"] > product["updated_at"]
    # The (re)cached read and the list page show the images too.
    assert call(catalog, "get_product", product["id"])["images"] == updated["images"]
    page = call(catalog, "list_products", limit=100, q=product["sku"])
    assert page["items"][0]["images"] == updated["images"]


def test_adding_an_image_the_product_has_changes_nothing(catalog):
    product = create(catalog)
    same = image()
    once = call(catalog, "add_product_image", product["id"], same)
    twice = call(catalog, "add_product_image", product["id"], same)
    assert twice == once and len(twice["images"]) == 1


def test_a_product_has_at_most_images_max_images(catalog):
    product = create(catalog)
    for _ in range(IMAGES_MAX):
        call(catalog, "add_product_image", product["id"], image())
    with pytest.raises(Conflict) as info:
        call(catalog, "add_product_image", product["id"], image())
    assert "images" in info.value.details


def test_bad_images_and_unknown_products_are_refused(catalog):
    product = create(catalog)
    bad = image()
    bad["renditions"]["list"]["key"] = "../../etc/passwd"
    with pytest.raises(ValidationError) as info:
        call(catalog, "add_product_image", product["id"], bad)
    assert "renditions.list.key" in info.value.details
    with pytest.raises(NotFound):
        call(catalog, "add_product_image", str(uuid.uuid4()), image())
    with pytest.raises(NotFound):
        call(catalog, "remove_product_image", product["id"], "0" * 32)
    with pytest.raises(NotFound):
        call(catalog, "remove_product_image", str(uuid.uuid4()), "0" * 32)


def test_removal_names_the_keys_no_product_shows_any_more(catalog):
    one, other = create(catalog), create(catalog)
    shared, own = image(), image()
    call(catalog, "add_product_image", one["id"], shared)
    call(catalog, "add_product_image", one["id"], own)
    call(catalog, "add_product_image", other["id"], shared)

    removed = call(catalog, "remove_product_image", one["id"], own["id"])
    validate(IMAGE_REMOVED, removed)
    assert [i["id"] for i in removed["product"]["images"]] == [shared["id"]]
    assert sorted(removed["unreferenced_keys"]) == sorted(
        r["key"] for r in own["renditions"].values()
    )
    # Still shown by the other product: its objects stay.
    removed = call(catalog, "remove_product_image", one["id"], shared["id"])
    assert removed["unreferenced_keys"] == [] and removed["product"]["images"] == []
    removed = call(catalog, "remove_product_image", other["id"], shared["id"])
    assert len(removed["unreferenced_keys"]) == 2
    # A new image goes after the gap the removals left.
    again = call(catalog, "add_product_image", one["id"], image())
    assert len(again["images"]) == 1
    assert call(catalog, "get_product", one["id"])["images"] == again["images"]


def test_image_changes_publish_product_updated(catalog, container_factory, service_config):
    listener = container_factory(Listener, service_config(Listener.name))
    listener.start()
    product = create(catalog)
    added = image()
    Listener.received.clear()
    with entrypoint_waiter(listener, "on_updated", timeout=5):
        call(catalog, "add_product_image", product["id"], added)
    (envelope,) = Listener.received
    assert envelope["data"]["product"]["images"][0]["id"] == added["id"]
    Listener.received.clear()
    with entrypoint_waiter(listener, "on_updated", timeout=5):
        call(catalog, "remove_product_image", product["id"], added["id"])
    (envelope,) = Listener.received
    assert envelope["data"]["product"]["images"] == []
