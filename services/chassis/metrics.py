"""Prometheus metrics: one registry and one ``/metrics`` endpoint per process.

Every process (a service instance, a gateway worker) serves the default
``prometheus_client`` registry on ``metrics.host:metrics.port`` (port 0: any free
port). ``serve(settings)`` is idempotent: the first call starts the endpoint,
later calls return its URL. ``exposed_url()`` is that URL, or None when metrics
are off or not started yet; the registry (discovery) publishes it.

The chassis's metrics are defined here, once per process (prometheus_client
refuses a name registered twice); ``docs/metrics.md`` is their reference.
Every service metric carries a ``service`` label, so several services in one
process (the tests) keep their series apart. Hot paths keep the labelled
child (``.labels(...)``) they use instead of looking it up per call.

``EntrypointMetrics`` (on ``AgoraService``) starts the endpoint when the
service starts and counts and times every entrypoint. The outbox backlog and
the database pools are read when Prometheus scrapes (``ScrapeTimeGauges``),
so they cost nothing between scrapes.
"""

import logging
import threading
import time

from nameko.events import EventHandler as NamekoEventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc as NamekoRpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

_lock = threading.Lock()
_url = None


def serve(settings, port_offset=0):
    """Start this process's /metrics endpoint (once); returns its URL or None.

    ``settings`` is the ``metrics`` section of the config. With a fixed port
    (not 0) the endpoint listens on ``port + port_offset``: gunicorn worker i
    passes i, so the workers of one gateway never try the same port."""
    global _url
    if not settings.get("enabled", True):
        return None
    with _lock:
        if _url is None:
            port = settings["port"] + port_offset if settings["port"] else 0
            server, _thread = start_http_server(port, addr=settings["host"])
            host, port = server.server_address[:2]
            _url = f"http://{host}:{port}/metrics"
            log.debug("metrics at %s", _url)
        return _url


def exposed_url():
    """This process's metrics URL, or None."""
    return _url


def enabled(config):
    """Whether ``config`` (the full Agora config) turns metrics on."""
    return bool(config.get("metrics", {}).get("enabled", True))


# --- every process -----------------------------------------------------------------

BUILD_INFO = Gauge(
    "agora_build_info", "Always 1: the service and version of this process.", ["service", "version"]
)

# --- every service (chassis) ---------------------------------------------------------

ENTRYPOINT_CALLS = Counter(
    "agora_entrypoint_calls_total",
    "Entrypoint runs by outcome: ok, rejected (a named business error sent back to "
    "the RPC caller) or error (unexpected, or the service could not do it).",
    ["service", "entrypoint", "kind", "outcome"],
)
ENTRYPOINT_DURATION = Histogram(
    "agora_entrypoint_duration_seconds",
    "Entrypoint run time, from the worker's start to its result (RPC reply sent, event acked).",
    ["service", "entrypoint", "kind"],
)
OUTBOX_PUBLISH_DURATION = Histogram(
    "agora_outbox_publish_duration_seconds",
    "One outbox relay batch: publish every event and wait for the broker's confirms.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "agora_outbox_published_total",
    "Events the outbox relay published (confirmed by the broker).",
    ["service"],
)
INBOX_DUPLICATES = Counter(
    "agora_inbox_duplicates_total",
    "Events skipped because the handler's inbox already had them (redelivered or duplicated).",
    ["service", "event"],
)
EVENT_RETRIES = Counter(
    "agora_event_retries_total",
    "Event handler failures whose message was sent to a delay queue for another try.",
    ["service", "event"],
)
DEAD_LETTERS = Counter(
    "agora_dead_letters_total",
    "Event messages moved to the service's dead-letter queue, by the handler queue they failed on.",
    ["service", "queue"],
)
CACHE_REQUESTS = Counter(
    "agora_cache_requests_total",
    "Cache-aside reads (services.chassis.cache) by result: hit or miss.",
    ["service", "cache", "result"],
)

# --- domain --------------------------------------------------------------------------

ORDERS_STATUS_CHANGES = Counter(
    "agora_orders_status_changes_total",
    "Orders that entered a status (committed), placed orders entering pending included.",
    ["service", "status"],
)
SAGA_DURATION = Histogram(
    "agora_saga_duration_seconds",
    "From an order being placed to its first terminal status, by that status.",
    ["service", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120),
)
SAGA_TIMEOUTS = Counter(
    "agora_saga_timeouts_total",
    "Orders closed by the saga deadline (the sweep), not by an event.",
    ["service"],
)
BILLING_CHARGES = Counter(
    "agora_billing_charges_total",
    "Charges attempted at the payment provider, by outcome: succeeded, declined, timeout, error.",
    ["service", "outcome"],
)
NOTIFICATIONS_SENT = Counter(
    "agora_notifications_sent_total",
    "Notifications by channel and outcome: sent, retry (a try failed, another is due), "
    "failed (for good), suppressed (over the per-recipient cap), skipped (no verified contact).",
    ["service", "channel", "outcome"],
)


# --- entrypoints ---------------------------------------------------------------------

RPC, EVENT, TIMER = "rpc", "event", "timer"
OK, REJECTED, ERROR = "ok", "rejected", "error"


def entrypoint_kind(entrypoint):
    """``rpc``, ``event`` or ``timer`` (timers and the chassis's other loops)."""
    if isinstance(entrypoint, NamekoRpc):
        return RPC
    if isinstance(entrypoint, NamekoEventHandler):
        return EVENT
    return TIMER


def outcome_of(kind, exc_info):
    """``ok``; ``rejected`` for an RPC answered with a named business error (an
    ``AgoraError`` below 500: not found, conflict, validation...), which the
    caller gets back as the answer; ``error`` for anything else: an unexpected
    exception, ``Unavailable`` (the service could not do its job), and any
    failure of an event handler or timer (nobody is answered: it is retried or
    logged)."""
    if exc_info is None:
        return OK
    from services.chassis.errors import AgoraError

    exc = exc_info[1]
    if kind == RPC and isinstance(exc, AgoraError) and exc.status < 500:
        return REJECTED
    return ERROR


class _EntrypointSeries:
    """The labelled children of one entrypoint, made once at setup."""

    __slots__ = ("kind", "calls", "duration")

    def __init__(self, service, entrypoint):
        self.kind = entrypoint_kind(entrypoint)
        name = entrypoint.method_name
        self.calls = {
            outcome: ENTRYPOINT_CALLS.labels(service, name, self.kind, outcome)
            for outcome in (OK, REJECTED, ERROR)
        }
        self.duration = ENTRYPOINT_DURATION.labels(service, name, self.kind)


_STARTED = "_agora_metrics_started"


class EntrypointMetrics(DependencyProvider):
    """On every ``AgoraService``: starts the process's /metrics endpoint, sets
    ``agora_build_info`` and counts and times every entrypoint (calls by
    outcome, duration), each entrypoint's series made once at setup."""

    def setup(self):
        from services.chassis.service import VERSION

        config = self.container.config["AGORA"]
        service = self.container.service_name
        self.active = enabled(config)
        self.series = {}
        if not self.active:
            return
        serve(config["metrics"])
        BUILD_INFO.labels(service, VERSION).set(1)
        for entrypoint in self.container.entrypoints:
            self.series[entrypoint] = _EntrypointSeries(service, entrypoint)

    def worker_setup(self, worker_ctx):
        setattr(worker_ctx, _STARTED, time.perf_counter())

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        series = self.series.get(worker_ctx.entrypoint)
        started = getattr(worker_ctx, _STARTED, None)
        if series is None or started is None:
            return
        series.duration.observe(time.perf_counter() - started)
        series.calls[outcome_of(series.kind, exc_info)].inc()


def children(metric, *labels, known=()):
    """``children(CACHE_REQUESTS, "catalog", "products")``: a memoised function of
    the remaining label values to their child, for label sets known only at run
    time but bounded (an event name, an outcome).

    ``known`` lists label tuples (or single values) exported at 0 from the
    start: a counter's series that appears only with its first increment hides
    that increment from ``rate()`` and ``increase()``."""
    made = {}

    def child(*rest):
        found = made.get(rest)
        if found is None:
            found = made[rest] = metric.labels(*labels, *rest)
        return found

    for rest in known:
        child(*(rest if isinstance(rest, tuple) else (rest,)))
    return child


class CacheStats:
    """The hit and miss children of one cache of one service."""

    __slots__ = ("hit", "miss")

    def __init__(self, service, cache):
        self.hit = CACHE_REQUESTS.labels(service, cache, "hit")
        self.miss = CACHE_REQUESTS.labels(service, cache, "miss")


_cache_stats = {}


def cache_stats(service, cache):
    """``Cache(..., stats=cache_stats("catalog", "products"))``: made once per pair."""
    stats = _cache_stats.get((service, cache))
    if stats is None:
        stats = _cache_stats.setdefault((service, cache), CacheStats(service, cache))
    return stats


# --- read at scrape time -------------------------------------------------------------


class ScrapeTimeGauges:
    """Gauges read from live objects when Prometheus scrapes, not kept up to date.

    One collector per process for all its services: ``add(service, source)``
    when a provider starts, ``remove`` when it stops. ``families`` is
    ``[(name, documentation, extra label names)]``; ``read(sources)`` returns
    ``[(family index, extra label values, value)]`` for one service's sources
    (every label set starts with ``service``). What fails to read (the database
    is down) is left out of that scrape and logged at debug."""

    def __init__(self, families, read):
        self.families = families
        self.read = read
        self._sources = {}
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def add(self, service, source):
        with self._lock:
            self._sources.setdefault(service, []).append(source)

    def remove(self, service, source):
        with self._lock:
            sources = self._sources.get(service, [])
            if source in sources:
                sources.remove(source)
            if not sources:
                self._sources.pop(service, None)

    def _empty(self):
        return [
            GaugeMetricFamily(name, documentation, labels=["service", *labels])
            for name, documentation, labels in self.families
        ]

    def describe(self):
        return self._empty()

    def collect(self):
        families = self._empty()
        with self._lock:
            by_service = {service: list(sources) for service, sources in self._sources.items()}
        for service, sources in sorted(by_service.items()):
            try:
                values = self.read(sources)
            except Exception as exc:
                log.debug("%s not read for %s: %s", self.families[0][0], service, exc)
                continue
            for index, labels, value in values:
                families[index].add_metric([service, *labels], value)
        return families


def _read_pools(engines):
    """In use and idle connections, summed over the service's engines in this process."""
    in_use = sum(engine.pool.checkedout() for engine in engines)
    idle = sum(engine.pool.checkedin() for engine in engines)
    return [(0, ["in_use"], in_use), (0, ["idle"], idle)]


DB_POOL = ScrapeTimeGauges(
    [
        (
            "agora_db_pool_connections",
            "Connections of the service's SQLAlchemy pool in this process: in_use or idle.",
            ["state"],
        )
    ],
    _read_pools,
)


def _read_backlog(relays):
    # One relay is enough: every relay of a service reads the same table.
    count, age = relays[0].backlog()
    return [(0, [], count), (1, [], age)]


OUTBOX = ScrapeTimeGauges(
    [
        (
            "agora_outbox_backlog",
            "Outbox rows not yet published (the service's whole database, all replicas).",
            [],
        ),
        (
            "agora_outbox_oldest_age_seconds",
            "Age in seconds of the oldest unpublished outbox row, 0 if none.",
            [],
        ),
    ],
    _read_backlog,
)
