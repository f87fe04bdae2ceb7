"""Remove an unhealthy instance from the work, for real.

Every ``health_monitor.interval`` seconds each service instance checks its own
database (if it has one) and Redis, each within ``health_monitor.timeout``
seconds. When one of ``health_monitor.dependencies`` (by default both) fails
``health_monitor.failure_threshold`` checks in a row, the instance cancels its
consumers of the
RPC queue and of its event handlers' queues, so the broker gives every call
and event to the healthy instances, instead of to one that can only answer
"unavailable" or send events towards their dead letters. It consumes again as
soon as both answer. Workers already running finish as they are.

Gauges (services/chassis/metrics): ``agora_instance_consuming{service}`` and
``agora_dependency_up{service, dependency}``.
"""

import logging
import threading

import eventlet
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer
from prometheus_client import Gauge

from services.chassis.messaging import set_consuming

log = logging.getLogger(__name__)

INSTANCE_CONSUMING = Gauge(
    "agora_instance_consuming",
    "1 while this instance consumes its RPC and event queues, 0 while it has "
    "stopped because its database or Redis is unreachable",
    ["service"],
)
DEPENDENCY_UP = Gauge(
    "agora_dependency_up",
    "1 if this instance reached the dependency at its last health check",
    ["service", "dependency"],
)


def _database_of(container):
    from services.chassis.db import Database

    for provider in container.dependencies:
        if isinstance(provider, Database):
            return provider
    return None


def _redis_of(container):
    from services.chassis.redis import Redis

    for provider in container.dependencies:
        if isinstance(provider, Redis):
            return provider
    return None


def _database_health(database):
    """The database's ``health()``, or None while every pooled connection is in
    use: a probe would only wait for one (longer than its timeout), and a busy
    instance is not a broken one. Its workers meet an outage themselves then."""
    pool = database.engine.pool
    max_overflow = getattr(pool, "_max_overflow", -1)  # a QueuePool's; -1: no cap
    if max_overflow >= 0 and pool.checkedin() == 0 and pool.overflow() >= max_overflow:
        return None
    return database.health()


class HealthMonitor(DependencyProvider):
    """Part of every ``AgoraService``: stops and resumes consuming with the
    health of the instance's database and Redis."""

    def setup(self):
        settings = self.container.config["AGORA"]["health_monitor"]
        self.interval = settings["interval"]
        self.timeout = settings["timeout"]
        self.service = self.container.service_name
        self.checks = {}
        database = _database_of(self.container)
        if database is not None:
            self.checks["database"] = lambda: _database_health(database)
        redis = _redis_of(self.container)
        if redis is not None:
            self.checks["redis"] = redis.health
        self.required = set(settings["dependencies"])
        self.threshold = settings["failure_threshold"]
        self.up = dict.fromkeys(self.checks, True)
        # Consecutive failed checks: one slow answer on a loaded machine is not an outage.
        self.failures = dict.fromkeys(self.checks, 0)
        self.consuming = True
        self._stopped = threading.Event()

    def start(self):
        INSTANCE_CONSUMING.labels(self.service).set(1)
        self.container.spawn_managed_thread(self._run, identifier="health_monitor")

    def stop(self):
        self._stopped.set()

    kill = stop

    def _run(self):
        # A first round at once: the gauges exist from the start.
        while True:
            self.check()
            if self._stopped.wait(self.interval):
                return

    def _probe(self, check):
        """True (up), False (down) or None (cannot tell now)."""
        # A check that hangs (a black-holed connection) counts as down.
        with eventlet.Timeout(self.timeout, False):
            state = check()
            return None if state is None else state == "ok"
        return False

    def check(self):
        """One round: every dependency probed, gauges set, consuming paused or resumed."""
        for dependency, check in self.checks.items():
            try:
                up = self._probe(check)
            except Exception:
                log.debug("%s health check failed", dependency, exc_info=True)
                up = False
            if up is not None:
                self.up[dependency] = up
                self.failures[dependency] = 0 if up else self.failures[dependency] + 1
            DEPENDENCY_UP.labels(self.service, dependency).set(1 if self.up[dependency] else 0)
        down = [d for d, failures in self.failures.items() if failures >= self.threshold]
        healthy = not self.required.intersection(down)
        if healthy != self.consuming:
            self.consuming = healthy
            self._set_consuming(healthy)
            if healthy:
                log.info("%s reaches its dependencies again: consuming resumed", self.service)
            else:
                log.warning(
                    "%s cannot reach its %s: stopped consuming its RPC and event queues "
                    "until it recovers",
                    self.service,
                    " and ".join(down),
                )
        return healthy

    def _set_consuming(self, consuming):
        for extension in self.container.subextensions:
            if isinstance(extension, QueueConsumer):
                set_consuming(extension, consuming)
        INSTANCE_CONSUMING.labels(self.service).set(1 if consuming else 0)
