"""Service discovery: which processes run, where their metrics are, and since when.

Every process (a service instance, a gateway worker) registers a record in
Redis when it starts, heartbeats every ``discovery.heartbeat_interval`` seconds
and deregisters when it stops. A process that dies without deregistering
(``kill -9``, a lost host) vanishes within ``discovery.ttl`` seconds: its record
is a key that Redis expires, so no sweeper is needed.

Keys, under the run's prefix (``redis.key_prefix``)::

    discovery:instances          sorted set: instance id -> last heartbeat (Unix time)
    discovery:instance:<id>      the record (JSON), expiring ttl after the last heartbeat

Listing reads the sorted set (never ``KEYS``) and then the records in one
``MGET``: an id whose record has expired is dead, whatever its score says, and
ids older than the ttl are pruned from the set as they are seen.
"""

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import redis as redis_lib

from services.chassis.files import write_private
from services.chassis.values import isoformat_utc, utcnow

log = logging.getLogger(__name__)

try:
    VERSION = metadata.version("agora")
except metadata.PackageNotFoundError:  # running from a source tree without install
    VERSION = "0.0.0"

# The fields every record holds (``last_heartbeat`` is added when listing).
RECORD_FIELDS = (
    "instance_id",
    "service",
    "process",
    "version",
    "host",
    "pid",
    "started_at",
    "metrics_url",
)


class Registry:
    """``Registry(redis_client, ttl)``: the live instances of the platform.

    ``redis_client`` is a ``services.chassis.redis`` client (its ``key()``
    applies the run's prefix), with ``decode_responses=True``."""

    def __init__(self, redis_client, ttl):
        self.redis = redis_client
        self.ttl = ttl
        self._index = redis_client.key("discovery", "instances")

    def _record_key(self, instance_id):
        return self.redis.key("discovery", "instance", instance_id)

    def _expiry_ms(self):
        return max(1, int(self.ttl * 1000))

    def register(self, record):
        """Add (or replace) ``record``, a dict with every field of RECORD_FIELDS."""
        missing = [name for name in RECORD_FIELDS if name not in record]
        if missing:
            raise ValueError(f"an instance record needs {', '.join(missing)}")
        stored = {name: record[name] for name in RECORD_FIELDS}
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._record_key(record["instance_id"]), json.dumps(stored), px=self._expiry_ms())
        pipe.zadd(self._index, {record["instance_id"]: time.time()})
        pipe.execute()

    def heartbeat(self, instance_id):
        """Extend the instance's life by ttl. False if the registry no longer
        knows it (it expired, or Redis lost it): register it again then."""
        alive = self.redis.pexpire(self._record_key(instance_id), self._expiry_ms())
        if alive:
            self.redis.zadd(self._index, {instance_id: time.time()})
        return bool(alive)

    def deregister(self, instance_id):
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._record_key(instance_id))
        pipe.zrem(self._index, instance_id)
        pipe.execute()

    def instances(self, service=None):
        """Live instances (of ``service`` if given), each a record plus
        ``last_heartbeat`` (ISO 8601 UTC), ordered by service then process."""
        cutoff = time.time() - self.ttl
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self._index, "-inf", f"({cutoff}")
        pipe.zrange(self._index, 0, -1, withscores=True)
        _pruned, beats = pipe.execute()
        if not beats:
            return []
        ids = [instance_id for instance_id, _score in beats]
        records = self.redis.mget([self._record_key(i) for i in ids])
        live = []
        for (instance_id, score), raw in zip(beats, records, strict=True):
            if raw is None:  # expired: the instance stopped heartbeating
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                log.warning("discarding an unreadable registry record %s", instance_id)
                continue
            if service is not None and record.get("service") != service:
                continue
            record["last_heartbeat"] = isoformat_utc(datetime.fromtimestamp(score, UTC))
            live.append(record)
        live.sort(key=lambda r: (r["service"], r["process"], r["instance_id"]))
        return live


def registry_from_config(config):
    """A Registry on the platform's Redis; ``config`` holds ``redis`` and
    ``discovery`` (a whole config, a process's settings, or a Nameko config's
    ``AGORA``)."""
    from services.chassis.redis import make_client

    client = make_client(config["redis"], name="discovery")
    return Registry(client, config["discovery"]["ttl"])


# Addresses a server binds to that no client can connect to.
_WILDCARDS = ("0.0.0.0", "::")


def advertised_url(url, host=None):
    """``url`` as others reach it: a server bound to every interface
    (``0.0.0.0``, as in a container) is named by this host's name instead."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.hostname not in _WILDCARDS:
        return url
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{host or socket.gethostname()}{port}").geturl()


def instance_record(service, process, metrics_url):
    """A new record for this process: a fresh instance id, this host and pid,
    and the URL of its /metrics endpoint as others reach it."""
    return {
        "instance_id": str(uuid.uuid4()),
        "service": service,
        "process": process,
        "version": VERSION,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": isoformat_utc(utcnow()),
        "metrics_url": advertised_url(metrics_url),
    }


class Announcer:
    """Keeps one record registered: ``register`` at start, a heartbeat every
    ``interval`` seconds from ``run()`` (a background thread: green in a Nameko
    service, a daemon thread in a gateway worker), ``deregister`` on ``stop()``.

    Redis being down is expected now and then: a failed heartbeat is logged
    once per outage, and the record is registered again once Redis answers
    (it may have expired meanwhile)."""

    def __init__(self, registry, record, interval):
        self.registry = registry
        self.record = record
        self.interval = interval
        self._stopped = threading.Event()
        self._registered = False
        self._outage = False

    @property
    def instance_id(self):
        return self.record["instance_id"]

    def beat(self):
        """One heartbeat (a registration first, if needed); never raises for Redis."""
        try:
            if not self._registered or not self.registry.heartbeat(self.instance_id):
                self.registry.register(self.record)
                self._registered = True
        except redis_lib.RedisError as exc:
            if not self._outage:
                self._outage = True
                log.warning(
                    "%s (%s) cannot reach the registry in Redis (%s); heartbeats resume "
                    "when it answers",
                    self.record["process"],
                    self.record["service"],
                    exc.__class__.__name__,
                )
            return False
        if self._outage:
            self._outage = False
            log.info("%s is registered again in the registry", self.record["process"])
        return True

    def run(self):
        """Heartbeat every ``interval`` seconds until ``stop()`` or ``halt()``
        (the first one ``interval`` after the call: ``beat()`` registers at start)."""
        while not self._stopped.wait(self.interval):
            self.beat()

    def start_thread(self):
        """Register now and heartbeat from a daemon thread (processes without Nameko)."""
        self.beat()
        thread = threading.Thread(target=self.run, name="discovery-heartbeat", daemon=True)
        thread.start()
        return thread

    def halt(self):
        """Stop heartbeating without deregistering: the record expires after ttl."""
        self._stopped.set()

    def stop(self):
        """Stop heartbeating and leave the registry at once."""
        self._stopped.set()
        try:
            self.registry.deregister(self.instance_id)
        except redis_lib.RedisError as exc:
            log.warning(
                "%s could not deregister (%s); it expires from the registry within %ss",
                self.record["process"],
                exc.__class__.__name__,
                self.registry.ttl,
            )


def file_sd_targets(instances):
    """Prometheus file-based service discovery groups, one per instance that
    serves metrics: ``{"targets": ["host:port"], "labels": {service, process}}``.

    No instance id in the labels: it changes on every restart, the process
    name (``orders-1``, ``gateway-w0``) does not."""
    groups = []
    for instance in instances:
        url = instance.get("metrics_url")
        if not url:
            continue
        address = urlsplit(url).netloc
        if not address:
            continue
        labels = {"service": instance["service"], "process": instance["process"]}
        groups.append({"targets": [address], "labels": labels})
    groups.sort(key=lambda g: (g["labels"]["service"], g["labels"]["process"], g["targets"]))
    return groups


def write_file_sd(instances, path):
    """Write ``instances`` as a Prometheus file-SD target list at ``path``,
    atomically (Prometheus never reads half a file)."""
    path = Path(path)
    # Readable by a Prometheus running as another user; nothing secret in it.
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(file_sd_targets(instances), indent=2) + "\n"
    return write_private(path, text, mode=0o644)
