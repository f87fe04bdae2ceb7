"""Redis for services: nameko-redis with a pool that is closed on stop,
short timeouts, and the run's key prefix applied by ``key()``."""

import redis as redis_lib
from nameko_redis import Redis as _Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class RedisClient(redis_lib.Redis):
    key_prefix = ""

    def key(self, *parts):
        """Build a namespaced key: ``<prefix><part>:<part>...``."""
        return self.key_prefix + ":".join(str(p) for p in parts)

    def delete_namespace(self):
        """Delete every key under this client's prefix (a test run's or a benchmark's)."""
        keys = list(self.scan_iter(match=f"{self.key_prefix}*", count=1000))
        if keys:
            self.delete(*keys)


def make_client(settings, decode_responses=True, name=None):
    """A client with short timeouts and no retries; ``name`` shows in CLIENT LIST."""
    client = RedisClient.from_url(
        settings["url"],
        client_name=f"{settings['key_prefix']}{name}" if name else None,
        decode_responses=decode_responses,
        socket_timeout=settings["socket_timeout"],
        socket_connect_timeout=settings["socket_timeout"],
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    client.key_prefix = settings["key_prefix"]
    return client


class Redis(_Redis):
    """``cache = Redis()``: the platform's Redis, namespaced by config ``redis.key_prefix``."""

    def __init__(self, key="agora", **options):
        super().__init__(key, **options)

    def setup(self):
        self.settings = self.container.config["AGORA"]["redis"]

    def start(self):
        self.client = make_client(
            self.settings,
            self.options.get("decode_responses", True),
            name=self.container.service_name,
        )

    def stop(self):
        if self.client is not None:
            self.client.close()
            self.client.connection_pool.disconnect()
        self.client = None

    kill = stop

    def health(self):
        try:
            self.client.ping()
            return "ok"
        except redis_lib.RedisError as exc:
            return f"error: {exc.__class__.__name__}"
