"""``/v1/ops``: what runs, where, and how busy; and the dead letters.

``GET /v1/ops/services`` (scope ``ops:read``):
For every service: its live instances from the registry (services/chassis/
discovery.py), its RPC queue's depth and consumers (a passive declare on this
gateway's broker connection) and this gateway process's circuit breaker for it;
and the gateway's own processes with their metrics endpoints. Made at most once
per ``gateway.health_report_ttl`` seconds per gateway process however many
callers ask, like ``GET /v1/ops/health``. A registry or broker that cannot be
reached is reported as such; the answer is 200 either way.

``/v1/ops/dead-letters`` (read: ``ops:read``; replay and discard: ``ops:write``):
the events that the services' handlers failed on ``events.max_attempts``
times. Each event-handling service answers for its own ``<service>.dead-letters``
queue over RPC (``services.chassis.service.DeadLetterAdmin``) with its own
broker user, so the gateway's broker user needs no right on those queues. The
list asks every such service at once and names the ones that could not answer
in ``unavailable`` instead of failing as a whole.
"""

import logging
import time

import pybreaker
from flask import Blueprint, current_app, jsonify

from gateway.api import query_args, rpc
from gateway.api.health import OPS_SCOPE, Snapshot
from gateway.auth.guard import requires
from gateway.discovery import registry_of
from gateway.errors import ApiError
from gateway.openapi import operation
from gateway.rpc import ServiceUnavailable, UpstreamError
from services.chassis.errors import AgoraError
from services.chassis.schemas import (
    DEAD_LETTER,
    DEAD_LETTER_DETAIL,
    DEAD_LETTER_ID,
    DEAD_LETTER_ID_PATTERN,
    DEAD_LETTER_SERVICES,
    obj,
    pattern_matches,
)

log = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)

_UNREACHABLE = {"type": "object", "properties": {"status": {"enum": ["ok", "unreachable"]}}}
INSTANCE = {
    "type": "object",
    "properties": {
        "instance_id": {"type": "string", "description": "New on every start"},
        "service": {"type": "string"},
        "process": {"type": "string", "description": "orders-1, gateway-w0..."},
        "version": {"type": "string"},
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "started_at": {"type": "string", "format": "date-time"},
        "metrics_url": {"type": ["string", "null"], "description": "Its /metrics endpoint"},
        "last_heartbeat": {"type": "string", "format": "date-time"},
    },
    "required": [
        "instance_id",
        "service",
        "process",
        "version",
        "host",
        "pid",
        "started_at",
        "metrics_url",
        "last_heartbeat",
    ],
}
RPC_QUEUE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        # null: unknown (the queue does not exist yet, or the broker is unreachable).
        "messages": {"type": ["integer", "null"], "description": "Calls waiting"},
        "consumers": {"type": ["integer", "null"], "description": "Instances consuming"},
    },
    "required": ["name", "messages", "consumers"],
}
SERVICE = {
    "type": "object",
    "properties": {
        "instances": {"type": "array", "items": INSTANCE},
        "rpc_queue": RPC_QUEUE,
        "breaker": {
            "enum": ["closed", "half_open", "open"],
            "description": "This gateway process's circuit breaker for the service",
        },
    },
    "required": ["instances", "rpc_queue", "breaker"],
}
SERVICES_REPORT = {
    "type": "object",
    "properties": {
        "services": {"type": "object", "additionalProperties": SERVICE},
        "gateway": {
            "type": "object",
            "properties": {"instances": {"type": "array", "items": INSTANCE}},
            "required": ["instances"],
        },
        "checks": {
            "type": "object",
            "properties": {"registry": _UNREACHABLE, "rabbitmq": _UNREACHABLE},
            "required": ["registry", "rabbitmq"],
        },
        "checked_at": {"type": "number", "description": "Unix time the report was made"},
    },
    "required": ["services", "gateway", "checks", "checked_at"],
}

_BREAKER_STATES = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_HALF_OPEN: "half_open",
    pybreaker.STATE_OPEN: "open",
}


def _instances(app):
    try:
        return registry_of(app).instances(), {"status": "ok"}
    except Exception as exc:
        log.warning("the registry cannot be read: %s", exc.__class__.__name__)
        return [], {"status": "unreachable", "error": exc.__class__.__name__}


def _report(app):
    with app.app_context():
        rpc = app.extensions["agora.rpc"]
        instances, registry_check = _instances(app)
        broker_check = {"status": "ok"}
        services = {}
        for service in app.extensions["agora.services"]:
            queue = {"name": f"rpc-{service}", "messages": None, "consumers": None}
            if broker_check["status"] == "ok":
                try:
                    state = rpc.instances.queue_state(queue["name"])
                except Exception as exc:
                    broker_check = {"status": "unreachable", "error": exc.__class__.__name__}
                else:
                    if state is not None:
                        queue["messages"], queue["consumers"] = state
            services[service] = {
                "instances": [i for i in instances if i["service"] == service],
                "rpc_queue": queue,
                "breaker": _BREAKER_STATES.get(rpc.breaker(service).current_state, "closed"),
            }
    return {
        "services": services,
        "gateway": {"instances": [i for i in instances if i["service"] == "gateway"]},
        "checks": {"registry": registry_check, "rabbitmq": broker_check},
        "checked_at": time.time(),
    }


def init_ops(app):
    """One services-report snapshot per gateway process."""
    app.extensions["agora.services_report"] = Snapshot(
        lambda: _report(app), app.config["AGORA"]["gateway"]["health_report_ttl"]
    )
    app.register_blueprint(bp)


@bp.get("/v1/ops/services")
@operation(
    "Services: live instances, RPC queues and breakers; the gateway's processes",
    tags=("health",),
    responses={200: SERVICES_REPORT},
    rpc=False,
)
@requires(OPS_SCOPE)
def services_report():
    """Every service's live instances (from the registry: an instance that
    stops heartbeating is gone within ``discovery.ttl``), its RPC queue's depth
    and consumer count, and this gateway process's breaker for it; plus the
    gateway's own worker processes with their ``metrics_url``. Made at most once
    per ``gateway.health_report_ttl`` seconds per gateway process."""
    return jsonify(current_app.extensions["agora.services_report"].get())


# --- dead letters ----------------------------------------------------------------

OPS_WRITE_SCOPE = "ops:write"
DEAD_LETTER_PATH = {
    "service": {"enum": list(DEAD_LETTER_SERVICES)},
    "event_id": DEAD_LETTER_ID,
}
DEAD_LETTER_QUERY = obj({"service": {"enum": list(DEAD_LETTER_SERVICES)}})
DEAD_LETTER_LIST = obj(
    {
        "items": {"type": "array", "items": DEAD_LETTER},
        "unavailable": {
            "type": "array",
            "items": {"enum": list(DEAD_LETTER_SERVICES)},
            "description": "Services whose dead letters could not be read now (down, slow, "
            "or their broker connection failed): their letters are missing from items",
        },
    },
    required=("items", "unavailable"),
)
REPLAYED = obj({"replayed": {"const": 1}}, required=("replayed",))


def _letter_ref(service, event_id):
    """404 ``not_found`` for a service without dead letters or an id no letter can have."""
    if service not in DEAD_LETTER_SERVICES or not pattern_matches(DEAD_LETTER_ID_PATTERN, event_id):
        raise ApiError(404, "not_found", "dead letter not found")
    return service, event_id


@bp.get("/v1/ops/dead-letters")
@operation(
    "Dead letters: the events each service's handlers failed on for good",
    description=(
        "Every event-handling service's dead letters (`service` narrows to one), "
        "oldest first per service: the event's id and type, the handler queue it failed "
        "on, how many deliveries failed, the last error and when. Listing consumes "
        "nothing. A service that cannot answer now is named in `unavailable` (the answer "
        "is still 200)."
    ),
    tags=("ops",),
    query=DEAD_LETTER_QUERY,
    responses={200: DEAD_LETTER_LIST},
)
@requires(OPS_SCOPE)
def list_dead_letters():
    query = query_args(DEAD_LETTER_QUERY)
    services = [query["service"]] if "service" in query else list(DEAD_LETTER_SERVICES)
    client = rpc()
    # Every service at once: the slowest decides how long this takes, not their sum.
    pending = {service: client.call_async(service, "list_dead_letters") for service in services}
    items, unavailable = [], []
    for service, call in pending.items():
        try:
            items.extend(call.result())
        except (ServiceUnavailable, UpstreamError, AgoraError) as exc:
            log.info("dead letters of %s cannot be read: %s", service, exc)
            unavailable.append(service)
    return jsonify({"items": items, "unavailable": unavailable})


@bp.get("/v1/ops/dead-letters/<service>/<event_id>")
@operation(
    "One dead letter with its event and headers",
    tags=("ops",),
    path_params=DEAD_LETTER_PATH,
    responses={200: DEAD_LETTER_DETAIL},
    errors=(404,),
)
@requires(OPS_SCOPE)
def get_dead_letter(service, event_id):
    service, event_id = _letter_ref(service, event_id)
    return jsonify(rpc().call(service, "get_dead_letter", event_id))


@bp.post("/v1/ops/dead-letters/<service>/<event_id>/replay")
@operation(
    "Replay a dead letter: back to the handler it failed in",
    description=(
        "Publishes the event again (with publisher confirms) to the handler queue it "
        "failed on, its attempt count reset, and only then removes it from the dead "
        "letters. Fix the cause first: a handler that fails again dead-letters it again "
        "after `events.max_attempts` deliveries."
    ),
    tags=("ops",),
    path_params=DEAD_LETTER_PATH,
    responses={200: REPLAYED},
    errors=(404,),
)
@requires(OPS_WRITE_SCOPE)
def replay_dead_letter(service, event_id):
    service, event_id = _letter_ref(service, event_id)
    return jsonify(rpc().call(service, "replay_dead_letter", event_id))


@bp.delete("/v1/ops/dead-letters/<service>/<event_id>")
@operation(
    "Discard a dead letter for good",
    tags=("ops",),
    path_params=DEAD_LETTER_PATH,
    responses={204: None},
    errors=(404,),
)
@requires(OPS_WRITE_SCOPE)
def discard_dead_letter(service, event_id):
    service, event_id = _letter_ref(service, event_id)
    rpc().call(service, "discard_dead_letter", event_id)
    return "", 204
