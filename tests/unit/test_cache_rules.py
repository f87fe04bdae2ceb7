"""Cache rules that need no Redis: TTL jitter and configuration."""

import pytest

from services.chassis.cache import Cache, jittered_ttl

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("rand, expected", [(0.0, 90.0), (0.5, 100.0), (1.0, 110.0)])
def test_jitter_spans_exactly_plus_minus_the_fraction(rand, expected):
    assert jittered_ttl(100, 0.1, rand=lambda: rand) == pytest.approx(expected)


def test_jittered_ttls_stay_in_bounds_and_spread():
    values = [jittered_ttl(300, 0.2) for _ in range(2000)]
    assert all(240 <= v <= 360 for v in values)
    assert max(values) - min(values) > 60  # actually spread, not constant


def test_zero_jitter_is_the_plain_ttl():
    assert jittered_ttl(300, 0) == 300


@pytest.mark.parametrize("ttl, jitter", [(0, 0.1), (-5, 0.1), (10, -0.1), (10, 1.0)])
def test_bad_ttl_or_jitter_is_refused(ttl, jitter):
    with pytest.raises(ValueError):
        jittered_ttl(ttl, jitter)


def test_cache_from_settings_takes_the_config_section():
    settings = {"ttl": 300, "jitter": 0.1, "lock_ttl": 5.0, "lock_wait": 2.0}
    cache = Cache.from_settings(object(), "p:", settings, poll_interval=0.01)
    assert (cache.ttl, cache.jitter, cache.lock_ttl, cache.lock_wait) == (300, 0.1, 5.0, 2.0)
    assert cache.poll_interval == 0.01 and cache.prefix == "p:"
