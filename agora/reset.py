"""``agora reset`` (``make clean``): remove what ``agora run`` created.

The environment's RabbitMQ vhost and its broker users, every service's database
and role, the Redis keys under ``redis.key_prefix``, and the local state folder
(rendered configs, logs, benchmark results). Everything is named from config,
so a run on another vhost, prefix or state folder is left alone; the next
``make run`` creates it all again.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from services.chassis.config import (
    BROKER_PRINCIPALS,
    ROOT,
    amqp_vhost,
    broker_user,
    database_name,
)


class ResetRefused(RuntimeError):
    """Resetting would harm something that is not the platform's own: the message says what."""


@dataclass
class Plan:
    vhost: str
    broker_users: list
    databases: list
    redis_url: str
    redis_prefix: str
    state_dir: Path

    def describe(self):
        return [
            f"RabbitMQ vhost {self.vhost!r} and broker users {', '.join(self.broker_users)}",
            f"PostgreSQL databases and their roles {', '.join(self.databases)}",
            f"Redis keys {self.redis_prefix}* at {self.redis_url}",
            f"local state {self.state_dir}",
        ]


def _check_state_dir(path):
    """The state folder is removed whole: never the checkout, a parent of it,
    the home folder or the root, whatever AGORA_STATE_DIR says."""
    resolved = Path(path).resolve()
    forbidden = {Path("/"), Path.home().resolve(), ROOT.resolve(), *ROOT.resolve().parents}
    if resolved in forbidden:
        raise ResetRefused(f"refusing to delete {resolved} as the local state folder")
    return resolved


def plan(config, services, state_dir):
    """What a reset of ``config``'s environment removes; ResetRefused if unsafe."""
    if config["environment"] == "production":
        raise ResetRefused("agora reset does not run in the production environment")
    vhost = amqp_vhost(config)
    if vhost == "/":
        raise ResetRefused("the vhost is '/', the broker's default: not deleted by agora reset")
    prefix = config["redis"]["key_prefix"]
    if not prefix:
        # An empty prefix would match every key of the Redis database.
        raise ResetRefused("redis.key_prefix is empty: refusing to delete every Redis key")
    return Plan(
        vhost=vhost,
        broker_users=[broker_user(config, p) for p in BROKER_PRINCIPALS],
        databases=[database_name(config, s) for s in services],
        redis_url=config["redis"]["url"],
        redis_prefix=prefix,
        state_dir=_check_state_dir(state_dir),
    )


def running_services(config, services):
    """The services whose RPC queue has a consumer on this vhost: the platform
    (or part of it) is running. Empty when the vhost does not exist."""
    from agora.infra import operator_connection, queue_consumers

    try:
        conn = operator_connection(config)
    except Exception:  # no such vhost (already reset), or the broker is down
        return []
    try:
        return [name for name in services if queue_consumers(conn, f"rpc-{name}")]
    finally:
        conn.close()


def live_prefixes(client):
    """The key prefixes of the environments with a client connected now: every
    platform client is named ``<key_prefix><process>`` (services.chassis.redis)."""
    names = (entry.get("name") or "" for entry in client.client_list())
    return {name.rsplit(":", 1)[0] + ":" for name in names if ":" in name}


def redis_keys_to_delete(client, prefix):
    """``(keys, kept_prefixes)``: the keys under ``prefix``, but not those of
    another environment nested under it that is running now (the development
    prefix ``agora:`` holds the test runs' ``agora:t<run>:`` and the
    benchmarks' ``agora:bench<run>:``: a reset must not pull keys from under
    a test run or a benchmark in progress)."""
    nested = sorted(p for p in live_prefixes(client) if p != prefix and p.startswith(prefix))
    keys = [
        key
        for key in client.scan_iter(match=f"{prefix}*", count=1000)
        if not any(key.startswith(other) for other in nested)
    ]
    return keys, nested


def reset(config, services, state_dir):
    """Remove everything in ``plan``; returns one line per step done."""
    from agora.infra import delete_unused_principals, delete_vhost, vhost_exists
    from services.chassis.migrations import drop_database
    from services.chassis.redis import make_client

    target = plan(config, services, state_dir)
    done = []
    if vhost_exists(config):
        delete_vhost(config)
        done.append(f"deleted RabbitMQ vhost {target.vhost!r}")
    kept = delete_unused_principals(config)
    if kept:
        done.append(
            f"kept broker users {', '.join(kept)}: another vhost still grants them permissions"
        )
    else:
        done.append(f"deleted broker users {target.broker_users[0]} ... {target.broker_users[-1]}")
    for service in services:
        drop_database(config, service)
    done.append(f"dropped databases and roles {', '.join(target.databases)}")
    client = make_client(config["redis"], name="agora-reset")
    try:
        keys, kept = redis_keys_to_delete(client, target.redis_prefix)
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()
    done.append(f"deleted {len(keys)} Redis key(s) under {target.redis_prefix}")
    if kept:
        done.append(f"kept the keys of running environments under {', '.join(kept)}")
    if target.state_dir.exists():
        shutil.rmtree(target.state_dir)
        done.append(f"removed {target.state_dir}")
    return done
