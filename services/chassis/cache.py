"""Cache-aside in Redis: JSON values, TTL with jitter, no stampede, race-free invalidation.

``Cache(client, prefix, ttl=..., jitter=..., lock_ttl=..., lock_wait=...)`` wraps
a redis-py client (any ``decode_responses``). It knows nothing about what it
caches; a service decides the keys and when to invalidate.

Reading::

    cache.get_or_load("product:42", load_product, depends_on=["product:42"])

* The value lives under a key that embeds the current *generation* of every
  name in ``depends_on``, read before loading. A read is one Redis round trip:
  a script reads the generations and then the value under the key they name.
  ``cache.invalidate("product:42")`` bumps that generation, so readers move to
  a new key at once, and a reader that loaded a stale row just before the
  change can only refill the old key, which nobody reads any more (it expires
  with its TTL). Invalidate *after* the database commit (``db.on_commit``): a
  reader that sees the new generation then necessarily loads committed data.
* On a miss one caller takes a short lock (``SET NX PX lock_ttl``) and runs the
  loader; the others poll for the value every ``poll_interval`` up to
  ``lock_wait`` and load it themselves only if it never shows up (or the lock
  holder gave up without a value). The lock is released by compare-and-delete,
  so a holder that outlived its lock never deletes somebody else's.
* TTLs get ``± jitter`` so keys filled together do not expire together.
* Only successful loads are cached: an exception from the loader (NotFound,
  say) propagates and nothing is stored. No negative caching, so an unknown id
  costs a query each time, but a product created a moment later is never hidden.
* Redis is an optimisation, never a dependency of a read: any Redis error is
  logged (at most once every ``warn_every`` seconds) and the loader runs directly.
  ``invalidate`` does raise on Redis errors; callers decide (see below).

Generations are ``max(previous + 1, Redis clock in ms)``, not plain counters, and
their keys expire after ``generation_ttl`` (default 30 days, far above any value
TTL) so that an entity changed once does not keep a key forever. If a
generation key expires, readers fall back to generation 0, whose values are far
older than any TTL, and the next bump jumps past every generation used before,
so an old value can never become visible again.

``stats`` (``metrics.cache_stats(service, name)``) counts each read of
``get_or_load`` as a hit or a miss (``agora_cache_requests_total``); a read
while Redis is down is a miss.
"""

import hashlib
import json
import logging
import random
import time
import uuid

import redis as redis_lib

log = logging.getLogger(__name__)

DEFAULT_GENERATION_TTL = 30 * 24 * 3600
_last_warning = {}

# Delete the lock only if it still holds our token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# The generation of each name in KEYS (0 if never bumped), then the value under
# ARGV[1] .. "g1.g2...": {value key, value or nil}. The value key is built here,
# so this needs one Redis node, not a cluster.
_READ = """
local generations = {}
for i, key in ipairs(KEYS) do
    generations[i] = redis.call('GET', key) or '0'
end
local value_key = ARGV[1] .. table.concat(generations, '.')
return {value_key, redis.call('GET', value_key)}
"""
_READ_SHA = hashlib.sha1(_READ.encode()).hexdigest()

# Move each generation to max(current + 1, now in ms) and refresh its expiry.
_BUMP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
    local current = tonumber(redis.call('GET', key) or '0') or 0
    local nxt = math.max(current + 1, now)
    redis.call('SET', key, string.format('%.0f', nxt), 'EX', ARGV[1])
end
return #KEYS
"""


def jittered_ttl(ttl, jitter, rand=random.random):
    """``ttl`` seconds spread uniformly over ``[ttl * (1 - jitter), ttl * (1 + jitter)]``."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    return ttl * (1 + jitter * (2 * rand() - 1))


def _ms(seconds):
    return max(1, int(round(seconds * 1000)))


class Cache:
    def __init__(
        self,
        client,
        prefix,
        ttl,
        jitter=0.1,
        lock_ttl=5.0,
        lock_wait=2.0,
        poll_interval=0.025,
        generation_ttl=DEFAULT_GENERATION_TTL,
        warn_every=30.0,
        enabled=True,
        stats=None,
    ):
        self.enabled = enabled
        self.stats = stats
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.jitter = jitter
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.poll_interval = poll_interval
        self.generation_ttl = generation_ttl
        self.warn_every = warn_every

    @classmethod
    def from_settings(cls, client, prefix, settings, **overrides):
        """From a config section with ``ttl``, ``jitter``, ``lock_ttl`` and ``lock_wait``."""
        options = {k: settings[k] for k in ("ttl", "jitter", "lock_ttl", "lock_wait")}
        options["enabled"] = settings.get("enabled", True)
        options.update(overrides)
        return cls(client, prefix, **options)

    # --- keys ------------------------------------------------------------------

    def _value_key(self, key, generations):
        if not generations:
            return f"{self.prefix}v:{key}"
        return f"{self.prefix}v:{key}@{'.'.join(generations)}"

    def _generation_key(self, name):
        return f"{self.prefix}gen:{name}"

    def generations(self, names):
        """The current generation of each name (``"0"`` if never bumped)."""
        if not names:
            return []
        values = self.client.mget([self._generation_key(n) for n in names])
        return [_text(v) if v is not None else "0" for v in values]

    def _read(self, key, names):
        """(value key, cached raw value or None), in one round trip."""
        if not names:
            value_key = self._value_key(key, ())
            return value_key, self.client.get(value_key)
        keys = [self._generation_key(n) for n in names]
        args = (len(keys), *keys, f"{self.prefix}v:{key}@")
        try:
            value_key, cached = self.client.evalsha(_READ_SHA, *args)
        except redis_lib.exceptions.NoScriptError:  # a restarted Redis: load it again
            value_key, cached = self.client.eval(_READ, *args)
        return _text(value_key), cached

    # --- reading ---------------------------------------------------------------

    def get_or_load(self, key, loader, ttl=None, depends_on=()):
        """The cached JSON value of ``key``, or ``loader()`` stored for next time."""
        if not self.enabled:
            return loader()
        try:
            value_key, cached = self._read(key, list(depends_on))
        except redis_lib.RedisError as exc:
            self._degraded("read", exc)
            self._count(hit=False)
            return loader()
        if cached is not None:
            found, value = _decode(cached)
            if found:
                self._count(hit=True)
                return value
        self._count(hit=False)
        return self._fill(value_key, loader, self.ttl if ttl is None else ttl)

    def _count(self, hit):
        if self.stats is not None:
            (self.stats.hit if hit else self.stats.miss).inc()

    def _fill(self, value_key, loader, ttl):
        lock_key = value_key + ":lock"
        token = uuid.uuid4().hex
        try:
            locked = self.client.set(lock_key, token, nx=True, px=_ms(self.lock_ttl))
        except redis_lib.RedisError as exc:
            self._degraded("lock", exc)
            return loader()
        if locked:
            try:
                value = loader()
                self._store(value_key, value, ttl)
                return value
            finally:
                self._release(lock_key, token)
        return self._wait_for(value_key, lock_key, loader)

    def _wait_for(self, value_key, lock_key, loader):
        """Poll for the lock holder's value; load ourselves if it does not come."""
        deadline = time.monotonic() + self.lock_wait
        while time.monotonic() < deadline:
            time.sleep(self.poll_interval)
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    cached, locked = pipe.get(value_key).exists(lock_key).execute()
            except redis_lib.RedisError as exc:
                self._degraded("poll", exc)
                break
            if cached is not None:
                found, value = _decode(cached)
                if found:
                    return value
            if not locked:
                break  # the holder failed (loader raised) or its lock expired
        return loader()

    def _store(self, value_key, value, ttl):
        try:
            payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            log.warning("cache: value for %s is not JSON, not cached", value_key)
            return
        try:
            self.client.set(value_key, payload, px=_ms(jittered_ttl(ttl, self.jitter)))
        except redis_lib.RedisError as exc:
            self._degraded("store", exc)

    def _release(self, lock_key, token):
        try:
            self.client.eval(_RELEASE, 1, lock_key, token)
        except redis_lib.RedisError as exc:
            self._degraded("unlock", exc)  # the lock expires by itself

    # --- invalidation ----------------------------------------------------------

    def invalidate(self, *names):
        """Bump the generation of each name: every value that depends on one is gone.

        Raises ``redis.RedisError`` if Redis cannot be reached: stale entries then
        live until their TTL, and the caller should log it (a committed change
        must not be reported as failed because the cache is down).
        """
        if names:
            keys = [self._generation_key(n) for n in names]
            self.client.eval(_BUMP, len(keys), *keys, int(self.generation_ttl))

    def _degraded(self, operation, exc):
        # Per process, not per instance: services build a Cache per worker.
        now = time.monotonic()
        if now - _last_warning.get(self.prefix, float("-inf")) >= self.warn_every:
            _last_warning[self.prefix] = now
            log.warning(
                "cache unavailable (%s: %s), reading through", operation, exc.__class__.__name__
            )


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw):
    try:
        return True, json.loads(raw)
    except (TypeError, ValueError):
        return False, None
