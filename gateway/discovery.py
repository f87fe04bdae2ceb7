"""The gateway's workers in the registry (services/chassis/discovery.py).

Each gunicorn worker registers as service ``gateway``, process ``gateway-w<i>``
(gateway/workers.py), with the URL of its own /metrics endpoint, and
heartbeats from a daemon thread until it exits.
"""

import logging

from gateway.workers import worker_index
from services.chassis import metrics
from services.chassis.discovery import Announcer, Registry, instance_record

log = logging.getLogger(__name__)


def registry_of(app):
    """The registry, on the gateway's own Redis client."""
    registry = app.extensions.get("agora.registry")
    if registry is None:
        ttl = app.config["AGORA"]["discovery"]["ttl"]
        registry = Registry(app.extensions["agora.redis"], ttl)
        app.extensions["agora.registry"] = registry
    return registry


def announce(app, process):
    """Register this process as ``process`` and keep it registered; returns
    the Announcer (``stop()`` deregisters)."""
    config = app.config["AGORA"]
    try:
        # The endpoint create_app started (gateway/metrics.py), on this worker's port.
        metrics_url = metrics.serve(config["metrics"], port_offset=worker_index() or 0)
    except OSError as exc:  # its port taken by another process
        log.error("%s cannot serve /metrics on %s: %s", process, config["metrics"], exc)
        metrics_url = None
    record = instance_record("gateway", process, metrics_url)
    announcer = Announcer(registry_of(app), record, config["discovery"]["heartbeat_interval"])
    announcer.start_thread()
    return announcer
