"""Rate limits per route group (flask-limiter, counters in Redis).

Every route belongs to one group, each with its own limit from
``gateway.rate_limits.groups``; a caller has one counter per group, shared by
every route of that group:

- ``read``: GET, HEAD and OPTIONS (``/v1/*``, ``/openapi.json``, ``/docs``...),
- ``write``: any other method,
- ``oauth``: ``/oauth/*`` and ``/.well-known/*``,
- ``token``: ``POST /oauth/token``, under two limits at once: ``token_per_client``
  (keyed by the client id of HTTP Basic auth or the form's ``client_id``) and
  ``token_per_ip`` (keyed by the client's address),
- ``exempt``: ``/healthz`` and ``/readyz`` (probes), never counted.

A view can name its group with ``@group("write")``; otherwise it comes from its
path and method. The caller is ``client:<client_id>:sub:<subject>`` when the
request carries a verified token (``g.principal``), else ``ip:<client address>``
(see :func:`client_ip`).

If Redis is down, each process limits with its own in-memory counters (the same
limits) and goes back to Redis when it answers again; a warning is logged once
per outage. A down Redis costs at most one ``redis.socket_timeout`` on the
request that finds it down, and on the occasional request that checks whether
it is back (flask-limiter retries after 1, 2, 4 ... 32 s, then from 1 s again).
"""

import logging
import math
import sys
import threading
import time
from urllib.parse import unquote_plus

from flask import current_app, g, jsonify, request
from flask_limiter import Limit, Limiter, RateLimitExceeded
from limits import parse_many
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.errors import error_response
from gateway.netaddr import parse_trusted, resolve_client_ip
from services.chassis.config import ConfigError

log = logging.getLogger(__name__)

READ, WRITE, OAUTH, TOKEN, EXEMPT = "read", "write", "oauth", "token", "exempt"
GROUPS = (READ, WRITE, OAUTH, TOKEN, EXEMPT)
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PATH = "/oauth/token"

# gateway.rate_limits.strategy -> the name limits registers the strategy under.
STRATEGIES = {
    "moving-window": "moving-window",
    "fixed-window": "fixed-window",
    "sliding-window": "sliding-window-counter",
}

_ENVIRON_KEY = "agora.rate_limit_group"
_UNSET = object()
_MAX_CLIENT_ID = 200


def group(name):
    """``@group("write")``: put a view in a rate-limit group explicitly.

    Sets ``view._rate_limit_group`` (the OpenAPI builder reads it too). One of
    ``read``, ``write``, ``oauth``, ``token`` or ``exempt``."""
    if name not in GROUPS:
        raise ValueError(f"unknown rate-limit group {name!r}; one of {', '.join(GROUPS)}")

    def decorate(view):
        view._rate_limit_group = name
        return view

    return decorate


def route_group(rule, method):
    """The group a route falls in by its path (the URL rule) and method alone."""
    if rule in EXEMPT_PATHS:
        return EXEMPT
    if rule == TOKEN_PATH and method == "POST":
        return TOKEN
    if rule == "/oauth" or rule.startswith(("/oauth/", "/.well-known/")):
        return OAUTH
    return READ if method in READ_METHODS else WRITE


def view_group(view, rule, method):
    """A view's group: set with :func:`group`, else derived by :func:`route_group`."""
    return getattr(view, "_rate_limit_group", None) or route_group(rule, method)


def current_group():
    """This request's group, or None when it is not limited (exempt, or no route)."""
    cached = request.environ.get(_ENVIRON_KEY, _UNSET)
    if cached is not _UNSET:
        return cached
    found = None
    if request.endpoint and request.url_rule is not None:
        view = current_app.view_functions.get(request.endpoint)
        found = view_group(view, request.url_rule.rule, request.method)
        if found == EXEMPT:
            found = None
    request.environ[_ENVIRON_KEY] = found
    return found


def client_ip():
    """The client's address: the socket peer, or, when the peer is one of
    ``gateway.trusted_proxies``, the first untrusted hop of ``X-Forwarded-For``
    read from the right (see :func:`gateway.netaddr.resolve_client_ip`)."""
    trusted = current_app.extensions.get("agora.trusted_proxies", ())
    return resolve_client_ip(
        request.remote_addr, request.headers.getlist("X-Forwarded-For"), trusted
    )


def caller_key():
    """``client:<client_id>:sub:<subject>`` for a verified token, else ``ip:<address>``."""
    principal = g.get("principal")
    if principal is not None:
        return f"client:{principal.client_id}:sub:{principal.subject}"
    return f"ip:{client_ip()}"


def token_client_key():
    """``client:<id>`` for ``POST /oauth/token``: the id from HTTP Basic auth or
    the form's ``client_id``, before the credentials are checked (that is what the
    limit protects). Without one, ``ip:<address>``."""
    client_id = None
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        # RFC 6749 2.3.1: the client id is form-encoded inside Basic auth.
        client_id = unquote_plus(auth.username)
    elif request.mimetype == "application/x-www-form-urlencoded":
        try:
            client_id = request.form.get("client_id")
        except Exception:  # a body over MAX_CONTENT_LENGTH: the view answers 413
            client_id = None
    if client_id:
        return f"client:{client_id[:_MAX_CLIENT_ID]}"
    return f"ip:{client_ip()}"


def ip_key():
    return f"ip:{client_ip()}"


class _Limiter(Limiter):
    """flask-limiter with one log line per outage of its storage.

    flask-limiter records an outage by setting ``_storage_dead`` (to True when a
    storage call fails, back to False when ``storage.check()`` answers again);
    making it a property lets us log each change once, whichever thread sees it."""

    _agora_dead = False

    def __init__(self, *args, **kwargs):
        self._agora_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def _storage_dead(self):
        return self._agora_dead

    @_storage_dead.setter
    def _storage_dead(self, dead):
        with self._agora_lock:
            was, self._agora_dead = self._agora_dead, bool(dead)
        if dead and not was:
            # flask-limiter checks whether the storage is back at most every
            # 2**n seconds since its last check; count from now, so the request
            # that found it down does not also wait for an immediate re-check.
            self._Limiter__last_check_backend = time.time()
            error = sys.exc_info()[1]
            cause = f" ({error.__class__.__name__}: {error})" if error is not None else ""
            log.warning(
                "rate limit storage unreachable%s: limiting with this process's "
                "in-memory counters until it answers again",
                cause,
            )
        elif was and not dead:
            log.info("rate limit storage reachable again: counters are shared again")


def _settings(config):
    limits_config = config["gateway"]["rate_limits"]
    groups = dict(limits_config["groups"])
    for name, value in groups.items():
        try:
            parse_many(value)
        except ValueError as exc:
            raise ConfigError(f"gateway.rate_limits.groups.{name}", str(exc)) from None
    try:
        trusted = parse_trusted(config["gateway"].get("trusted_proxies", ()))
    except ValueError as exc:
        raise ConfigError("gateway.trusted_proxies", str(exc)) from None
    return limits_config, groups, trusted


def _storage_options(redis_config):
    timeout = redis_config["socket_timeout"]
    return {
        # Keys are "<redis.key_prefix>ratelimit:LIMITER/<caller>/<group>/<limit>",
        # under the environment's (or test run's) prefix.
        "key_prefix": f"{redis_config['key_prefix']}ratelimit",
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # redis-py's default retries with backoff would stall a request for seconds.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
        "client_name": f"{redis_config['key_prefix']}gateway-ratelimit",
    }


def init_limits(app, config=None):
    """Rate-limit ``app``; returns the Limiter (also ``app.extensions["agora.limiter"]``).

    Call once, after every blueprint is registered and after the before_request
    hook that sets ``g.principal`` (flask-limiter checks in its own before_request
    hook, which runs in registration order). ``config`` defaults to
    ``app.config["AGORA"]``."""
    config = config if config is not None else app.config["AGORA"]
    limits_config, groups, trusted = _settings(config)
    app.extensions["agora.trusted_proxies"] = trusted

    for endpoint, view in app.view_functions.items():
        explicit = getattr(view, "_rate_limit_group", None)
        if explicit is not None and explicit not in GROUPS:
            raise ValueError(f"{endpoint}: unknown rate-limit group {explicit!r}")

    def primary_limit():
        found = current_group()
        if found is None:
            return ""
        return groups["token_per_client" if found == TOKEN else found]

    def primary_key():
        return token_client_key() if current_group() == TOKEN else caller_key()

    def primary_scope(_endpoint):
        found = current_group()
        return "token_per_client" if found == TOKEN else found

    def token_ip_limit():
        return groups["token_per_ip"] if current_group() == TOKEN else ""

    enabled = bool(limits_config["enabled"])
    app.config["RATELIMIT_ENABLED"] = enabled
    limiter = _Limiter(
        caller_key,
        default_limits=[
            # Limits shared by every route of a group: one counter per caller and
            # group, whatever the endpoint. A provider returning "" adds no limit.
            Limit(primary_limit, key_function=primary_key, scope=primary_scope, shared=True),
            Limit(token_ip_limit, key_function=ip_key, scope="token_per_ip", shared=True),
        ],
        strategy=STRATEGIES[limits_config["strategy"]],
        storage_uri=config["redis"]["url"],
        storage_options=_storage_options(config["redis"]),
        # The X-RateLimit-* and Retry-After headers are written below: flask-limiter's
        # own put Retry-After on every response (and raise a 503's to the window
        # reset) and round it down to 0 near the end of a window.
        headers_enabled=False,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        enabled=enabled,
    )
    app.extensions["agora.limiter"] = limiter
    if not enabled:
        limiter.init_app(app)  # registers nothing when disabled
        return limiter

    # Exempt routes never reach the limiter, nor Redis, even while it is down.
    limiter.request_filter(lambda: current_group() is None)
    limiter.init_app(app)
    # Its per-breach INFO line would be one log line per 429 under a flood, and
    # the outage/recovery lines are ours (above); keep its errors.
    logging.getLogger("flask-limiter").setLevel(logging.ERROR)

    app.register_error_handler(RateLimitExceeded, _rate_limited)

    @app.after_request
    def rate_limit_headers(response):
        return _add_headers(limiter, response)

    return limiter


def _retry_after(request_limit):
    """Whole seconds until the breached limit lets one more request through (>= 1)."""
    return max(1, math.ceil(request_limit.window[0] - time.time()))


def _rate_limited(exc):
    limiter = current_app.extensions["agora.limiter"]
    limit_text = str(exc.limit.limit)
    current = limiter.current_limit
    try:
        retry = _retry_after(current) if current is not None and current.breached else None
    except Exception:  # the storage went away after the check
        retry = None
    if retry is None:
        retry = exc.limit.limit.get_expiry()
    message = f"too many requests: the limit is {limit_text}, retry in {retry} s"
    if request.path.startswith("/oauth/"):
        response = jsonify({"error": "rate_limited", "error_description": message})
        response.status_code = 429
        response.headers["Cache-Control"] = "no-store"
    else:
        response = error_response(429, "rate_limited", message, {"limit": limit_text})
    response.headers["Retry-After"] = str(retry)
    return response


def _add_headers(limiter, response):
    """X-RateLimit-Limit/-Remaining/-Reset of the limit that matters: the one
    breached, else the one with the fewest requests left."""
    try:
        current = limiter.current_limit
        if current is None:
            return response
        shown = current
        if not current.breached and len(limiter.current_limits) > 1:
            shown = min(limiter.current_limits, key=lambda lim: lim.remaining)
        reset, remaining = shown.window
        response.headers["X-RateLimit-Limit"] = str(shown.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(max(0, remaining))
        response.headers["X-RateLimit-Reset"] = str(math.ceil(reset))
    except Exception as exc:  # the storage went away between the check and now
        log.debug("rate limit headers skipped: %s", exc.__class__.__name__)
    return response
