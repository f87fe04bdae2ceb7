"""The cache-aside module against a real Redis."""

import time
import uuid

import eventlet
import pytest
import redis

from services.chassis.cache import Cache
from services.chassis.redis import make_client

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(redis_client):
    """A key prefix of this test's own, under the run's prefix."""
    return redis_client.key("cachetest", uuid.uuid4().hex[:12], "")


def make_cache(client, prefix, **options):
    settings = {"ttl": 60, "jitter": 0.1, "lock_ttl": 2.0, "lock_wait": 2.0}
    settings.update(options)
    return Cache(client, prefix, poll_interval=0.02, **settings)


class Loader:
    def __init__(self, value, delay=0.0):
        self.value = value
        self.delay = delay
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.delay:
            eventlet.sleep(self.delay)
        return self.value


def test_miss_loads_and_stores_then_hit_does_not_load(redis_client, namespace):
    cache = make_cache(redis_client, namespace)
    loader = Loader({"name": "mug", "price": {"amount": 5}})
    assert cache.get_or_load("item:1", loader) == {"name": "mug", "price": {"amount": 5}}
    assert cache.get_or_load("item:1", loader) == {"name": "mug", "price": {"amount": 5}}
    assert loader.calls == 1
    assert cache.get_or_load("item:2", Loader([1, 2])) == [1, 2]


def test_ttl_is_set_within_the_jitter_bounds(redis_client, namespace):
    cache = make_cache(redis_client, namespace, ttl=100, jitter=0.2)
    ttls = []
    for i in range(20):
        cache.get_or_load(f"item:{i}", Loader(i))
        (key,) = redis_client.keys(f"{namespace}v:item:{i}*")
        ttls.append(redis_client.pttl(key))
    assert all(79_000 <= t <= 120_000 for t in ttls), ttls
    assert len(set(ttls)) > 1  # jittered, not one fixed TTL


def test_loader_errors_are_not_cached(redis_client, namespace):
    cache = make_cache(redis_client, namespace)

    def missing():
        raise LookupError("no such item")

    with pytest.raises(LookupError):
        cache.get_or_load("item:9", missing)
    assert redis_client.keys(f"{namespace}*") == []  # no value, and the lock was released
    assert cache.get_or_load("item:9", Loader("now it exists")) == "now it exists"


def test_invalidation_moves_readers_to_a_new_generation(redis_client, namespace):
    cache = make_cache(redis_client, namespace)
    first, second = Loader("v1"), Loader("v2")
    assert cache.get_or_load("item:1", first, depends_on=["item:1", "items"]) == "v1"
    assert cache.get_or_load("item:1", second, depends_on=["item:1", "items"]) == "v1"

    cache.invalidate("items")
    assert cache.get_or_load("item:1", second, depends_on=["item:1", "items"]) == "v2"
    assert second.calls == 1
    # An entry depending on other names is untouched.
    assert cache.get_or_load("other", Loader("o1"), depends_on=["other"]) == "o1"
    cache.invalidate("item:1")
    assert cache.get_or_load("other", Loader("o2"), depends_on=["other"]) == "o1"


def test_a_stale_refill_after_invalidation_is_never_served(redis_client, namespace):
    """A reader that loaded before the change and stores after it cannot win."""
    cache = make_cache(redis_client, namespace)
    loading, release = eventlet.Event(), eventlet.Event()

    def slow_stale_loader():
        loading.send()
        release.wait()
        return "stale"

    reader = eventlet.spawn(cache.get_or_load, "item:1", slow_stale_loader, depends_on=["item:1"])
    loading.wait()  # the reader has read generation 0 and is loading
    cache.invalidate("item:1")  # the writer commits, then invalidates
    release.send()
    assert reader.wait() == "stale"  # that one read raced the write: acceptable
    assert cache.get_or_load("item:1", Loader("fresh"), depends_on=["item:1"]) == "fresh"


def test_generations_only_move_forward(redis_client, namespace):
    cache = make_cache(redis_client, namespace)
    assert cache.generations(["a"]) == ["0"]
    seen = []
    for _ in range(3):
        cache.invalidate("a")
        seen.append(int(cache.generations(["a"])[0]))
    # Each bump is at least one past the last (more when the clock moved on:
    # a generation is also at least Redis's time in ms, so a flushed key
    # never restarts below a value a reader may still hold).
    assert seen[0] > 0 and seen[1] >= seen[0] + 1 and seen[2] >= seen[1] + 1
    # The clock does not pull a generation back: set one far in the future.
    redis_client.set(f"{namespace}gen:a", str(seen[2] * 10))
    cache.invalidate("a")
    assert int(cache.generations(["a"])[0]) == seen[2] * 10 + 1
    # Generation keys expire (bounded memory) but far later than any value.
    assert redis_client.ttl(f"{namespace}gen:a") > 24 * 3600


# Long enough that a waiter which sat out the lock (instead of polling for the
# holder's value) shows at any machine load: the tests stay far under half of it.
LONG_LOCK_WAIT = 30.0


def test_stampede_runs_the_loader_once(redis_client, namespace):
    cache = make_cache(redis_client, namespace, lock_wait=LONG_LOCK_WAIT)
    loader = Loader({"hot": True}, delay=0.2)
    pool = eventlet.GreenPool(20)
    started = time.monotonic()
    results = list(pool.imap(lambda _: cache.get_or_load("hot", loader), range(20)))
    assert loader.calls == 1
    assert results == [{"hot": True}] * 20
    # The waiters polled and took the holder's value; nobody sat out lock_wait.
    assert time.monotonic() - started < LONG_LOCK_WAIT / 2


def test_waiters_load_themselves_when_the_holder_fails(redis_client, namespace):
    cache = make_cache(redis_client, namespace, lock_wait=LONG_LOCK_WAIT)
    calls = []

    def loader():
        calls.append(1)
        eventlet.sleep(0.1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return "ok"

    pool = eventlet.GreenPool(5)
    started = time.monotonic()
    outcomes = []

    def read(_):
        try:
            outcomes.append(cache.get_or_load("flaky", loader))
        except RuntimeError:
            outcomes.append("error")

    for i in range(5):
        pool.spawn(read, i)
    pool.waitall()
    assert outcomes.count("error") == 1 and outcomes.count("ok") == 4
    # The holder's failure released the lock: a waiter took over at once.
    assert time.monotonic() - started < LONG_LOCK_WAIT / 2


def test_the_lock_is_released_only_by_its_holder(redis_client, namespace):
    cache = make_cache(redis_client, namespace, lock_ttl=0.1)

    def slow():
        eventlet.sleep(0.3)  # outlives its lock
        return "slow"

    holder = eventlet.spawn(cache.get_or_load, "k", slow)
    eventlet.sleep(0.15)
    (lock,) = redis_client.keys(f"{namespace}*:lock") or [None]
    assert lock is None  # expired
    redis_client.set(f"{namespace}v:k:lock", "someone-else", px=5000)
    assert holder.wait() == "slow"
    assert redis_client.get(f"{namespace}v:k:lock") == "someone-else"


def test_redis_down_falls_back_to_the_loader(config, namespace):
    settings = dict(config["redis"], url="redis://127.0.0.1:1/0", socket_timeout=0.2)
    down = make_client(settings)
    cache = make_cache(down, namespace)
    loader = Loader({"from": "db"})
    started = time.monotonic()
    assert cache.get_or_load("item:1", loader, depends_on=["item:1"]) == {"from": "db"}
    assert cache.get_or_load("item:1", loader) == {"from": "db"}
    assert loader.calls == 2
    # Refused connections fail fast: no retries with backoff, no socket timeouts
    # (a generous bound: 0.2 s socket timeouts, and a read and a write per call).
    assert time.monotonic() - started < 10
    with pytest.raises(redis.RedisError):  # invalidation reports the outage to its caller
        cache.invalidate("item:1")
    down.close()
