"""services.chassis.hashing: concurrent hashes per process are bounded (memory)."""

import eventlet
import pytest
from eventlet import tpool

from services.chassis.hashing import SecretHasher

pytestmark = pytest.mark.unit

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


class CountingHasher:
    """Wraps argon2's PasswordHasher: counts the hashes running inside it at once."""

    def __init__(self, real, pause):
        self.real = real
        self.pause = pause
        self.lock = eventlet.patcher.original("threading").Lock()
        self.running = 0
        self.peak = 0
        self.calls = 0

    def _enter(self):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)

    def _leave(self):
        with self.lock:
            self.running -= 1

    def hash(self, secret):
        self._enter()
        try:
            self.pause()
            return self.real.hash(secret)
        finally:
            self._leave()

    def verify(self, secret_hash, secret):
        self._enter()
        try:
            self.pause()
            return self.real.verify(secret_hash, secret)
        finally:
            self._leave()

    def __getattr__(self, name):
        return getattr(self.real, name)


def _yield_many():
    # Every greenthread that could enter gets to, before this one leaves.
    for _ in range(20):
        eventlet.sleep(0)


def hammer(hasher, callers):
    stored = hasher.hash("secret")
    pool = eventlet.GreenPool(callers)
    results = list(
        pool.imap(lambda n: hasher.verify(stored, "secret" if n % 2 else "x"), range(callers))
    )
    return results


@pytest.mark.parametrize("bound", (1, 2, 3))
def test_no_more_than_the_bound_of_hashes_run_at_once(bound):
    hasher = SecretHasher.from_config({**CHEAP, "max_concurrent": bound})
    spy = hasher.hasher = CountingHasher(hasher.hasher, _yield_many)
    results = hammer(hasher, 12)
    assert results == [n % 2 == 1 for n in range(12)]
    assert spy.calls == 13
    # The callers did overlap up to the bound, and never beyond it.
    assert spy.peak == bound


def test_the_bound_holds_for_hashes_offloaded_to_native_threads():
    hasher = SecretHasher.from_config({**CHEAP, "max_concurrent": 2}, offload=tpool.execute)
    gate = eventlet.patcher.original("threading").Event()
    spy = hasher.hasher = CountingHasher(hasher.hasher, lambda: gate.wait(0.05))
    pool = eventlet.GreenPool(10)
    for _ in range(10):
        pool.spawn(hasher.hash, "secret")
    pool.waitall()
    assert spy.calls == 10
    assert 1 <= spy.peak <= 2


def test_without_a_bound_setting_two_at_once():
    hasher = SecretHasher.from_config(CHEAP)
    spy = hasher.hasher = CountingHasher(hasher.hasher, _yield_many)
    hammer(hasher, 6)
    assert spy.peak == 2


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError):
        SecretHasher(1, 8, 1, max_concurrent=0)
