"""Prometheus metrics: one registry and one ``/metrics`` endpoint per process.

Every process (a service instance, a gateway worker) serves the default
``prometheus_client`` registry on ``metrics.host:metrics.port`` (port 0: any free
port). ``serve(settings)`` is idempotent: the first call starts the endpoint,
later calls return its URL. ``exposed_url()`` is that URL, or None when metrics
are off or not started yet; the registry (discovery) publishes it.
"""

import logging
import threading

from prometheus_client import start_http_server

log = logging.getLogger(__name__)

_lock = threading.Lock()
_url = None


def serve(settings):
    """Start this process's /metrics endpoint (once); returns its URL or None.

    ``settings`` is the ``metrics`` section of the config."""
    global _url
    if not settings.get("enabled", True):
        return None
    with _lock:
        if _url is None:
            server, _thread = start_http_server(settings["port"], addr=settings["host"])
            host, port = server.server_address[:2]
            _url = f"http://{host}:{port}/metrics"
            log.debug("metrics at %s", _url)
        return _url


def exposed_url():
    """This process's metrics URL, or None."""
    return _url
