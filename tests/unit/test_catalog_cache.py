"""The gateway's catalog cache: serves only while live, bounded, invalidated
by events, and never stores an answer loaded before an invalidation."""

import uuid

import pytest

from gateway.catalog_cache import CatalogCache, list_key, product_key

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def live_cache(**overrides):
    settings = {"ttl": 60, "max_entries": 10, "max_bytes": 1000, "clock": Clock()}
    settings.update(overrides)
    cache = CatalogCache(**settings)
    cache.set_live(True)
    return cache


def product_event(product_id):
    return {"event_id": str(uuid.uuid4()), "data": {"product": {"id": product_id}}}


def store(cache, key, body=b"{}", etag="e"):
    cache.put(key, cache.ticket(), body, etag)


def test_not_live_is_a_miss_and_stores_nothing():
    cache = CatalogCache(ttl=60, max_entries=10, max_bytes=1000)
    key = product_key(str(uuid.uuid4()))
    assert cache.ticket() is None
    store(cache, key)
    assert cache.get(key) is None and len(cache) == 0


def test_going_down_empties_the_cache_and_coming_back_starts_empty():
    cache = live_cache()
    key = product_key(str(uuid.uuid4()))
    store(cache, key)
    assert cache.get(key).body == b"{}"
    cache.set_live(False)
    assert cache.get(key) is None and len(cache) == 0
    cache.set_live(True)
    assert cache.get(key) is None


def test_keys_ignore_the_case_of_ids_and_the_order_of_query_parameters():
    product_id = str(uuid.uuid4())
    assert product_key(product_id.upper()) == product_key(product_id)
    assert list_key({"limit": 5, "q": "mug"}) == list_key({"q": "mug", "limit": 5})
    assert list_key({"limit": 5}) != list_key({"limit": 6})


def test_an_event_drops_its_product_and_every_list_page_only():
    cache = live_cache()
    changed, other = str(uuid.uuid4()), str(uuid.uuid4())
    for key in (product_key(changed), product_key(other), list_key({}), list_key({"q": "x"})):
        store(cache, key)
    cache.on_event("product_updated", product_event(changed))
    assert cache.get(product_key(changed)) is None
    assert cache.get(list_key({})) is None and cache.get(list_key({"q": "x"})) is None
    assert cache.get(product_key(other)) is not None


def test_an_event_without_a_product_id_empties_the_cache():
    cache = live_cache()
    store(cache, product_key(str(uuid.uuid4())))
    cache.on_event("product_updated", {"data": {}})
    assert len(cache) == 0


def test_an_answer_loaded_before_an_event_or_an_outage_is_not_stored():
    cache = live_cache()
    key = product_key(str(uuid.uuid4()))
    ticket = cache.ticket()
    cache.on_event("product_updated", product_event(str(uuid.uuid4())))
    cache.put(key, ticket, b"old", "e")
    assert cache.get(key) is None
    ticket = cache.ticket()
    cache.set_live(False)
    cache.set_live(True)
    cache.put(key, ticket, b"old", "e")
    assert cache.get(key) is None


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = live_cache(ttl=5, clock=clock)
    key = list_key({})
    store(cache, key)
    clock.now += 4.9
    assert cache.get(key) is not None
    clock.now += 0.2
    assert cache.get(key) is None and len(cache) == 0


def test_bounded_by_entries_least_recently_used_first():
    cache = live_cache(max_entries=2)
    a, b, c = (product_key(str(uuid.uuid4())) for _ in range(3))
    store(cache, a)
    store(cache, b)
    assert cache.get(a) is not None  # a is now the most recently used
    store(cache, c)
    assert cache.get(b) is None
    assert cache.get(a) is not None and cache.get(c) is not None


def test_bounded_by_bytes():
    cache = live_cache(max_bytes=10)
    a, b, big = (product_key(str(uuid.uuid4())) for _ in range(3))
    store(cache, a, b"123456")
    store(cache, b, b"123456")
    assert cache.get(a) is None and cache.get(b) is not None
    store(cache, big, b"x" * 11)  # larger than the whole cache: never stored
    assert cache.get(big) is None and cache.get(b) is not None
