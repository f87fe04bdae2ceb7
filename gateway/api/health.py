"""Liveness and readiness."""

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is alive and serving; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
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
