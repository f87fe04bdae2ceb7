"""Liveness and readiness."""

from flask import Blueprint, current_app, jsonify

from gateway.openapi import operation

bp = Blueprint("health", __name__)

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
    },
    "required": ["status", "checks"],
}


@bp.get("/healthz")
@operation("Liveness: the process is up", tags=("health",), responses={200: HEALTH})
def healthz():
    """The process is alive and serving; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(
    "Readiness: RabbitMQ, Redis and every service answer",
    tags=("health",),
    responses={
        200: READINESS,
        503: {"schema": READINESS, "description": "Not ready: checks says what is down"},
    },
    rpc=False,
)
def readyz():
    """Ready when RabbitMQ and Redis answer and every service's health() says ok."""
    config = current_app.config["AGORA"]
    timeout = config["gateway"]["readiness_timeout"]
    checks = {}

    try:
        current_app.extensions["agora.redis"].ping()
        checks["redis"] = {"status": "ok"}
    except Exception as exc:
        checks["redis"] = {"status": "unreachable", "error": exc.__class__.__name__}

    services = current_app.extensions["agora.services"]
    try:
        reports = current_app.extensions["agora.rpc"].probe(services, timeout)
        checks["rabbitmq"] = {"status": "ok"}
    except Exception as exc:
        checks["rabbitmq"] = {"status": "unreachable", "error": exc.__class__.__name__}
        reports = {s: {"status": "unknown", "error": "rabbitmq unreachable"} for s in services}
    checks["services"] = reports

    ready = (
        checks["redis"]["status"] == "ok"
        and checks["rabbitmq"]["status"] == "ok"
        and all(r.get("status") == "ok" for r in reports.values())
    )
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return jsonify(body), (200 if ready else 503)
