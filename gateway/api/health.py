"""Liveness, readiness and the platform health report.

- ``/healthz`` (liveness): the process serves.
- ``/readyz`` (readiness, the Kubernetes probe): this gateway can reach
  RabbitMQ and Redis. It calls no service, so a service that is down does not
  pull every gateway out of the load balancer, and it answers from a snapshot
  at most ``gateway.readiness_cache_ttl`` seconds old, so a flood of probes
  costs at most one broker and one Redis round trip per second per process.
- ``GET /v1/ops/health`` (scope ``ops:read``, held by admins): every service's
  ``health()`` report, computed at most once per ``gateway.health_report_ttl``
  seconds per process however many callers ask, and rate limited as any read.
"""

import threading
import time

from flask import Blueprint, current_app, jsonify

from gateway.auth.guard import requires
from gateway.openapi import operation

bp = Blueprint("health", __name__)

OPS_SCOPE = "ops:read"

_CHECK = {
    "type": "object",
    "properties": {"status": {"enum": ["ok", "unreachable"]}, "error": {"type": "string"}},
    "required": ["status"],
}
HEALTH = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
READINESS = {
    "type": "object",
    "properties": {
        "status": {"enum": ["ready", "not_ready"]},
        "checks": {
            "type": "object",
            "properties": {"redis": _CHECK, "rabbitmq": _CHECK},
            "required": ["redis", "rabbitmq"],
        },
    },
    "required": ["status", "checks"],
}
HEALTH_REPORT = {
    "type": "object",
    "properties": {
        # ok: RabbitMQ, Redis and every service's health() say ok.
        "status": {"enum": ["ok", "degraded"]},
        "checks": {
            "type": "object",
            "properties": {
                "redis": _CHECK,
                "rabbitmq": _CHECK,
                # Each service's health() report, or why it could not be had.
                "services": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"status": {"type": "string"}},
                        "required": ["status"],
                    },
                },
            },
            "required": ["redis", "rabbitmq", "services"],
        },
        "checked_at": {"type": "number", "description": "Unix time the report was made"},
    },
    "required": ["status", "checks", "checked_at"],
}


class Snapshot:
    """The result of ``compute()``, made again at most once per ``ttl`` seconds.

    Callers that arrive while it is being made wait for that one result rather
    than each making their own (a burst of N requests costs one computation)."""

    def __init__(self, compute, ttl):
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._made = None  # (monotonic time, result)

    def _fresh(self):
        made = self._made
        if made is not None and time.monotonic() - made[0] < self._ttl:
            return made
        return None

    def get(self):
        made = self._fresh()
        if made is None:
            with self._lock:
                made = self._fresh()
                if made is None:
                    made = (time.monotonic(), self._compute())
                    self._made = made
        return made[1]


def _redis_check():
    try:
        current_app.extensions["agora.redis"].ping()
        return {"status": "ok"}
    except Exception as exc:
        return {"status": "unreachable", "error": exc.__class__.__name__}


def _readiness(app):
    with app.app_context():
        checks = {"redis": _redis_check()}
        try:
            app.extensions["agora.rpc"].ping_broker()
            checks["rabbitmq"] = {"status": "ok"}
        except Exception as exc:
            checks["rabbitmq"] = {"status": "unreachable", "error": exc.__class__.__name__}
    ready = all(check["status"] == "ok" for check in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}


def _report(app):
    with app.app_context():
        timeout = app.config["AGORA"]["gateway"]["readiness_timeout"]
        services = app.extensions["agora.services"]
        checks = {"redis": _redis_check()}
        try:
            reports = app.extensions["agora.rpc"].probe(services, timeout)
            checks["rabbitmq"] = {"status": "ok"}
        except Exception as exc:
            checks["rabbitmq"] = {"status": "unreachable", "error": exc.__class__.__name__}
            reports = {s: {"status": "unknown", "error": "rabbitmq unreachable"} for s in services}
        checks["services"] = reports
    ok = (
        checks["redis"]["status"] == "ok"
        and checks["rabbitmq"]["status"] == "ok"
        and all(r.get("status") == "ok" for r in reports.values())
    )
    return {"status": "ok" if ok else "degraded", "checks": checks, "checked_at": time.time()}


def init_health(app):
    """One readiness snapshot and one health-report snapshot per gateway process."""
    gateway = app.config["AGORA"]["gateway"]
    app.extensions["agora.readiness"] = Snapshot(
        lambda: _readiness(app), gateway["readiness_cache_ttl"]
    )
    app.extensions["agora.health_report"] = Snapshot(
        lambda: _report(app), gateway["health_report_ttl"]
    )
    app.register_blueprint(bp)


@bp.get("/healthz")
@operation("Liveness: the process is up", tags=("health",), responses={200: HEALTH})
def healthz():
    """The process is alive and serving; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(
    "Readiness: this gateway reaches RabbitMQ and Redis",
    tags=("health",),
    responses={
        200: READINESS,
        503: {"schema": READINESS, "description": "Not ready: checks says what is down"},
    },
    rpc=False,
)
def readyz():
    """Ready when this gateway reaches RabbitMQ and Redis (a snapshot at most
    ``gateway.readiness_cache_ttl`` seconds old). No service is called: the
    services' own state is ``GET /v1/ops/health``."""
    body = current_app.extensions["agora.readiness"].get()
    return jsonify(body), (200 if body["status"] == "ready" else 503)


@bp.get("/v1/ops/health")
@operation(
    "Health report: RabbitMQ, Redis and every service's health()",
    tags=("health",),
    responses={200: HEALTH_REPORT},
    rpc=False,
)
@requires(OPS_SCOPE)
def health_report():
    """Every service's ``health()`` (name, version, database and Redis state),
    made at most once per ``gateway.health_report_ttl`` seconds per gateway
    process however many callers ask. ``status`` is ``degraded`` when anything
    is down; the answer is 200 either way (the report itself succeeded)."""
    return jsonify(current_app.extensions["agora.health_report"].get())
