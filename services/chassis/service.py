"""The base every Agora service class extends: tracing and ``health()``."""

import logging
from weakref import WeakKeyDictionary

from eventlet import Timeout
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.chassis import metrics
from services.chassis.deadletter import DeadLetterQueue
from services.chassis.discovery import VERSION, Announcer, instance_record, registry_from_config
from services.chassis.errors import AgoraError, NotFound, Unavailable
from services.chassis.health import HealthMonitor
from services.chassis.logs import EntrypointLog, entrypoint_kind
from services.chassis.messaging import rpc
from services.chassis.metrics import EntrypointMetrics
from services.chassis.offload import offload
from services.chassis.redis import Redis
from services.chassis.schemas import (
    DEAD_LETTER_LIST_ARGS,
    DEAD_LETTER_LIST_MAX,
    DEAD_LETTER_REF,
    validate,
)
from services.chassis.tracing import B3_KEY, Tracer, format_b3, mark_error, parse_b3

log = logging.getLogger(__name__)

_tracers = {}


def process_tracer(container):
    """One Tracer (and one span sender) per service per process."""
    name = container.service_name
    if name not in _tracers:
        _tracers[name] = Tracer(name, container.config["AGORA"]["tracing"])
    return _tracers[name]


class Tracing(DependencyProvider):
    """One server (RPC) or consumer (event) span per worker, child of the caller's span."""

    def setup(self):
        self.tracer = process_tracer(self.container)
        self.spans = WeakKeyDictionary()

    def worker_setup(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        if kind == "event":
            name = f"event {entrypoint.source_service}.{entrypoint.event_type}"
        else:
            name = f"{kind} {worker_ctx.service_name}.{entrypoint.method_name}"
        span = self.tracer.start_root(
            name,
            parent=parse_b3(worker_ctx.data.get(B3_KEY)),
            # py_zipkin reports a local root span as SERVER (or CLIENT) only.
            tags={
                "nameko.call_id": worker_ctx.call_id,
                "nameko.entrypoint": "event_handler" if kind == "event" else kind,
            },
        )
        self.spans[worker_ctx] = span
        # Calls and events made by this worker carry its span as their parent.
        worker_ctx.data[B3_KEY] = format_b3(span.zipkin_attrs)

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        if exc_info is not None:
            mark_error(self.spans.get(worker_ctx), exc_info[1])

    def worker_teardown(self, worker_ctx):
        span = self.spans.pop(worker_ctx, None)
        if span is not None:
            span.stop()

    def stop(self):
        self.tracer.sender.close()


class HealthReport(DependencyProvider):
    """Collects ``health()`` from every dependency of the service that has one."""

    def get_dependency(self, worker_ctx):
        container = self.container

        def report():
            checks = {}
            for provider in container.dependencies:
                check = getattr(provider, "health", None)
                if callable(check) and provider is not self:
                    checks[provider.attr_name] = check()
            healthy = all(state == "ok" for state in checks.values())
            return {
                "service": container.service_name,
                # Which of several processes answered (agora service --instance).
                "instance": container.config.get("INSTANCE", container.service_name),
                "version": VERSION,
                "status": "ok" if healthy else "degraded",
                "checks": checks,
            }

        return report


class Discovery(DependencyProvider):
    """Registers the instance in the registry (services/chassis/discovery.py)
    when the container starts, heartbeats from a green thread, and deregisters
    on stop. A killed container leaves its record to expire after ttl."""

    def setup(self):
        settings = self.container.config["AGORA"]
        self.settings = settings
        self.registry = registry_from_config(settings)
        self.announcer = None

    def start(self):
        name = self.container.service_name
        record = instance_record(
            name,
            # Which of several processes this is (agora service --instance).
            self.container.config.get("INSTANCE", name),
            metrics.serve(self.settings["metrics"]),
        )
        interval = self.settings["discovery"]["heartbeat_interval"]
        self.announcer = Announcer(self.registry, record, interval)
        self.announcer.beat()
        self.container.spawn_managed_thread(self.announcer.run, identifier="discovery")

    def stop(self):
        if self.announcer is not None:
            self.announcer.stop()
        self._close()

    def kill(self):
        if self.announcer is not None:
            self.announcer.halt()
        self._close()

    def _close(self):
        self.registry.redis.close()
        self.registry.redis.connection_pool.disconnect()


class AgoraService:
    """Base class: ``class UsersService(AgoraService): name = "users"``.

    Every service gets tracing, one log line per handled entrypoint,
    ``health()``, the platform's Redis as ``self.cache`` (namespaced by the
    run's key prefix, closed on stop), Prometheus metrics (its /metrics
    endpoint, every entrypoint counted and timed), a record in the registry
    (discovery) and a health monitor that takes the instance off its queues
    while its database or Redis is unreachable.
    """

    tracing = Tracing()
    entrypoint_log = EntrypointLog()
    health_report = HealthReport()
    cache = Redis()
    metrics = EntrypointMetrics()
    discovery = Discovery()
    health_monitor = HealthMonitor()

    @rpc
    def health(self):
        """Name, version and the state of each dependency (database, Redis)."""
        return self.health_report()


class DeadLetterQueueProvider(DependencyProvider):
    """``self.dead_letter_queue``: the service's own dead letters
    (``services.chassis.deadletter.DeadLetterQueue``), on a connection of the
    service's own broker user, opened per call."""

    def setup(self):
        self.queue = DeadLetterQueue(self.container.config["AMQP_URI"], self.container.service_name)

    def get_dependency(self, worker_ctx):
        return self.queue


def _letter_not_found(event_id):
    return NotFound("dead letter not found", {"event_id": str(event_id)})


def _on_the_broker(action, *args):
    """``action(*args)`` on the broker; RabbitMQ unreachable is ``Unavailable`` (503)."""
    try:
        return action(*args)
    except Exception as exc:
        if isinstance(exc, AgoraError):
            raise
        log.warning("dead letters: the broker failed: %s", exc.__class__.__name__)
        raise Unavailable(
            "the broker cannot be reached for the dead letters", {"dependency": "rabbitmq"}
        ) from None


class DeadLetterAdmin:
    """The dead-letter RPCs of a service that handles events (listed in
    ``services.chassis.schemas.DEAD_LETTER_SERVICES``):
    ``class OrdersService(DeadLetterAdmin, AgoraService)``.

    Each service reads its own ``<service>.dead-letters`` queue with its own
    broker user, so the gateway (``/v1/ops/dead-letters``) needs no broker
    rights beyond calling these methods. The operator's CLI does the same with
    the same code (``agora.deadletters``)."""

    dead_letter_queue = DeadLetterQueueProvider()

    @rpc
    def list_dead_letters(self, limit=DEAD_LETTER_LIST_MAX):
        """Up to ``limit`` dead letters (DEAD_LETTER), oldest first; none is consumed."""
        validate(DEAD_LETTER_LIST_ARGS, {"limit": limit})
        return _on_the_broker(self.dead_letter_queue.summaries, limit)

    @rpc
    def get_dead_letter(self, event_id):
        """One dead letter with its event and headers (DEAD_LETTER_DETAIL); NotFound."""
        validate(DEAD_LETTER_REF, {"event_id": event_id})
        letter = _on_the_broker(self.dead_letter_queue.find, event_id)
        if letter is None:
            raise _letter_not_found(event_id)
        return letter

    @rpc
    def replay_dead_letter(self, event_id):
        """Back to the handler queue it failed on, attempts reset: ``{"replayed": 1}``; NotFound."""
        validate(DEAD_LETTER_REF, {"event_id": event_id})
        replayed = _on_the_broker(self.dead_letter_queue.replay, event_id)
        if not replayed:
            raise _letter_not_found(event_id)
        return {"replayed": replayed}

    @rpc
    def discard_dead_letter(self, event_id):
        """Drop it for good: ``{"discarded": 1}``; NotFound."""
        validate(DEAD_LETTER_REF, {"event_id": event_id})
        if not _on_the_broker(self.dead_letter_queue.discard, event_id):
            raise _letter_not_found(event_id)
        return {"discarded": 1}


class SecretHashing(DependencyProvider):
    """A ``services.chassis.hashing.SecretHasher`` (sub)class built with the cost
    in ``services.<this service>.<setting>``, hashing off the event loop."""

    def __init__(self, hasher_cls, setting):
        self.hasher_cls = hasher_cls
        self.setting = setting

    def setup(self):
        services = self.container.config["AGORA"]["services"]
        settings = services[self.container.service_name][self.setting]
        self.hasher = self.hasher_cls.from_config(settings, offload=offload)

    def get_dependency(self, worker_ctx):
        return self.hasher


# A timer whose next work is already due runs again after this pause, not at
# once: the rows are locked by another worker, which will be done in a moment.
DUE_WAIT_FLOOR = 0.1


class SettingTimer(Timer):
    """``@setting_timer("sweep_interval")``: a Nameko timer whose interval (seconds)
    is the setting of that name in ``services.<this service>``. The worker's unit
    of work commits when the method returns (``Database.worker_result``).

    With ``until_due=True`` it runs at start, and the method returns in how many
    seconds its next work is due (None: it knows of none): it runs again then,
    but ``interval`` seconds after its last run at the latest. An idle service
    does not wake every few seconds to find nothing, and due work is not left
    waiting."""

    def __init__(self, setting, until_due=False, **kwargs):
        self.setting = setting
        self.until_due = until_due
        super().__init__(interval=None, **kwargs)

    def setup(self):
        services = self.container.config["AGORA"]["services"]
        self.interval = services[self.container.service_name][self.setting]
        super().setup()

    def _run(self):
        if not self.until_due:
            return super()._run()
        wait = 0
        while True:
            with Timeout(wait, exception=False):
                self.should_stop.wait()
                break
            self.handle_timer_tick()
            due_in = self.worker_complete.wait()
            self.worker_complete.reset()
            wait = self.interval if due_in is None else max(DUE_WAIT_FLOOR, due_in)
            wait = min(self.interval, wait)

    def handle_result(self, worker_ctx, result, exc_info):
        self.worker_complete.send(result if self.until_due and exc_info is None else None)
        return result, exc_info


setting_timer = SettingTimer.decorator
