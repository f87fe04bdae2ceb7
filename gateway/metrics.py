"""The gateway's Prometheus metrics (``docs/metrics.md``), served per gunicorn worker.

Each worker is a process of its own with its own registry, so each serves its
own ``/metrics`` (``services.chassis.metrics.serve``): with ``metrics.port`` 0
on any free port, with a fixed port P on P + the worker's index
(``gateway.workers``), so the workers of one gateway never try the same port.

Requests are counted by a WSGI middleware around the whole Flask app, so every
answer counts: views, error handlers (4xx/5xx), the rate limiter's 429s, the
404s of paths no route matches (route ``unmatched``). Label children are made
once per label set and kept (a dict lookup per request).
"""

import time

import pybreaker
from prometheus_client import Counter, Gauge, Histogram

from services.chassis import metrics as chassis_metrics

REQUESTS = Counter(
    "agora_gateway_http_requests_total",
    "HTTP requests answered, by Flask URL rule (unmatched: no rule), method and status code.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "agora_gateway_http_request_duration_seconds",
    "Time to produce the response (until the WSGI app returns its body).",
    ["route", "method"],
)
RPC_CALLS = Counter(
    "agora_gateway_rpc_calls_total",
    "RPC calls to the services by outcome: ok, error (the service answered with an "
    "error), timeout, unavailable (no instance, broker or connection), breaker_open.",
    ["service", "method", "outcome"],
)
RPC_DURATION = Histogram(
    "agora_gateway_rpc_call_duration_seconds",
    "RPC call time, from the request's publish to its answer (or failure).",
    ["service", "method"],
)
BREAKER_STATE = Gauge(
    "agora_gateway_breaker_state",
    "The circuit breaker of each service in this worker: 0 closed, 1 half-open, 2 open.",
    ["service"],
)
BREAKER_TRANSITIONS = Counter(
    "agora_gateway_breaker_transitions_total",
    "Breaker state changes, by the new state: closed, half_open, open.",
    ["service", "state"],
)
RATE_LIMITED = Counter(
    "agora_gateway_rate_limited_total",
    "Requests refused with 429, by the rate-limit group whose limit was reached.",
    ["group"],
)
TOKEN_REJECTIONS = Counter(
    "agora_gateway_token_rejections_total",
    "Requests refused for their access token (401/403), by reason.",
    ["reason"],
)

UNMATCHED = "unmatched"
# Methods a client may send are unbounded: anything else is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


class RequestMetrics:
    """WSGI middleware: ``app.wsgi_app = RequestMetrics(app.wsgi_app)``."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self._counts = {}
        self._durations = {}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        answered = []  # (status code, route)

        def recording_start_response(line, headers, exc_info=None):
            # Flask answers inside the request context: the matched rule is known here.
            answered.append((line[:3], route_of(environ)))
            return start_response(line, headers, exc_info)

        try:
            return self.wsgi_app(environ, recording_start_response)
        finally:
            status, route = answered[-1] if answered else ("500", UNMATCHED)
            self.record(environ.get("REQUEST_METHOD", ""), route, status, started)

    def record(self, method, route, status, started):
        elapsed = time.perf_counter() - started
        if method not in METHODS:
            method = OTHER_METHOD
        key = (route, method, status)
        counter = self._counts.get(key)
        if counter is None:
            counter = self._counts[key] = REQUESTS.labels(route, method, status)
        counter.inc()
        duration = self._durations.get(key[:2])
        if duration is None:
            duration = self._durations[key[:2]] = REQUEST_DURATION.labels(route, method)
        duration.observe(elapsed)


def route_of(environ):
    """The Flask URL rule the request matched, or ``unmatched``.

    Werkzeug's Request keeps itself in the environ (Flask matched its rule on
    pushing the request context, and forgets it when the context is popped)."""
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    return rule.rule if rule is not None else UNMATCHED


def init_metrics(app, config, worker_index=None):
    """Serve this worker's /metrics, set ``agora_build_info`` and count requests.

    Nothing is served or counted per request with ``metrics.enabled`` false."""
    from services.chassis.service import VERSION

    if not chassis_metrics.enabled(config):
        return None
    url = chassis_metrics.serve(config["metrics"], port_offset=worker_index or 0)
    chassis_metrics.BUILD_INFO.labels("gateway", VERSION).set(1)
    app.wsgi_app = RequestMetrics(app.wsgi_app)
    return url


# --- RPC calls -----------------------------------------------------------------------

OK, ERROR, TIMEOUT, UNAVAILABLE, BREAKER_OPEN = (
    "ok",
    "error",
    "timeout",
    "unavailable",
    "breaker_open",
)
OUTCOMES = (OK, ERROR, TIMEOUT, UNAVAILABLE, BREAKER_OPEN)


class RpcCallSeries:
    """The children of one (service, method): made on its first call, then kept."""

    __slots__ = ("calls", "duration")

    def __init__(self, service, method):
        self.calls = {outcome: RPC_CALLS.labels(service, method, outcome) for outcome in OUTCOMES}
        self.duration = RPC_DURATION.labels(service, method)

    def record(self, outcome, started):
        self.duration.observe(time.perf_counter() - started)
        self.calls[outcome].inc()


# --- breakers ------------------------------------------------------------------------

BREAKER_STATES = {
    pybreaker.STATE_CLOSED: (0, "closed"),
    pybreaker.STATE_HALF_OPEN: (1, "half_open"),
    pybreaker.STATE_OPEN: (2, "open"),
}


class BreakerMetrics(pybreaker.CircuitBreakerListener):
    """Keeps ``agora_gateway_breaker_state`` and counts transitions of one breaker."""

    def __init__(self, service):
        self.state = BREAKER_STATE.labels(service)
        self.transitions = {
            name: BREAKER_TRANSITIONS.labels(service, name) for _, name in BREAKER_STATES.values()
        }
        self.state.set(0)

    def state_change(self, cb, old_state, new_state):
        if new_state is None or new_state.name not in BREAKER_STATES:
            return
        value, name = BREAKER_STATES[new_state.name]
        self.state.set(value)
        self.transitions[name].inc()


# --- refusals ------------------------------------------------------------------------

_rate_limited = chassis_metrics.children(RATE_LIMITED)
_token_rejections = chassis_metrics.children(TOKEN_REJECTIONS)


def count_rate_limited(group):
    _rate_limited(group).inc()


def count_token_rejection(reason):
    _token_rejections(reason).inc()
