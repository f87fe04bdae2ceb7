"""``GET /v1/ops/services`` (scope ``ops:read``): what runs, where, and how busy.

For every service: its live instances from the registry (services/chassis/
discovery.py), its RPC queue's depth and consumers (a passive declare on this
gateway's broker connection) and this gateway process's circuit breaker for it;
and the gateway's own processes with their metrics endpoints. Made at most once
per ``gateway.health_report_ttl`` seconds per gateway process however many
callers ask, like ``GET /v1/ops/health``. A registry or broker that cannot be
reached is reported as such; the answer is 200 either way.
"""

import logging
import time

import pybreaker
from flask import Blueprint, current_app, jsonify

from gateway.api.health import OPS_SCOPE, Snapshot
from gateway.auth.guard import requires
from gateway.discovery import registry_of
from gateway.openapi import operation

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
