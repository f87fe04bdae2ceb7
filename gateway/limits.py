"""Rate limits per route group (flask-limiter, counters in Redis).

Every route belongs to one group, each with its own limit from
``gateway.rate_limits.groups``; a caller has one counter per group, shared by
every route of that group:

- ``read``: GET, HEAD and OPTIONS (``/v1/*``, ``/openapi.json``, ``/docs``...),
- ``write``: any other method,
- ``oauth``: ``/oauth/*`` and ``/.well-known/*``,
- ``token``: ``POST /oauth/token``, limited by ``token_per_ip`` (every request,
  keyed by the client's address),
- ``exempt``: ``/healthz`` and ``/readyz`` (probes), never counted.

A view can name its group with ``@group("write")``; otherwise it comes from its
path and method. The caller is ``client:<client_id>:sub:<subject>`` when the
request carries a verified token (``g.principal``), else ``ip:<client address>``
(see :func:`client_ip`; an IPv6 address counts as its /64).

The login routes (``POST /oauth/token`` and the ``POST /oauth/authorize`` form)
are also under two limits that count failed logins only (a request is refused
once its counter is full; a success adds nothing):

- ``login_failures_per_ip``: any failed attempt (wrong password, bad client
  credentials, a refused grant) from one address;
- ``login_failures_per_account``: wrong passwords for one account at one client
  (``client:<client_id>:account:<hash of the email>``), from any address.

There is no counter per client id: a public client like ``agora-web`` is shared
by every user, and one counter for it would let one address lock everyone out.
The views report a failure with :func:`note_login_failure`.

If Redis is down, each process limits with its own in-memory counters (the same
limits) and goes back to Redis when it answers again; a warning is logged once
per outage. A down Redis costs at most one ``redis.socket_timeout`` on the
request that finds it down, and on the occasional request that checks whether
it is back (flask-limiter retries after 1, 2, 4 ... 32 s, then from 1 s again).
"""

import hashlib
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
from gateway.netaddr import limit_subject, parse_trusted, resolve_client_ip
from services.chassis.config import ConfigError

log = logging.getLogger(__name__)

READ, WRITE, OAUTH, TOKEN, EXEMPT = "read", "write", "oauth", "token", "exempt"
GROUPS = (READ, WRITE, OAUTH, TOKEN, EXEMPT)
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
# (URL rule, method) of the routes that check a user's or a client's credentials.
LOGIN_ROUTES = frozenset({(TOKEN_PATH, "POST"), (AUTHORIZE_PATH, "POST")})
LIMIT_NAMES = (
    READ,
    WRITE,
    OAUTH,
    "token_per_ip",
    "login_failures_per_ip",
    "login_failures_per_account",
)

# gateway.rate_limits.strategy -> the name limits registers the strategy under.
STRATEGIES = {
    "moving-window": "moving-window",
    "fixed-window": "fixed-window",
    "sliding-window": "sliding-window-counter",
}

_ENVIRON_KEY = "agora.rate_limit_group"
_FAILURE_KEY = "agora.login_failure"
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
    return ip_key()


def ip_key():
    """``ip:<address>``, or ``ip:<network>/64`` for IPv6 (:func:`limit_subject`)."""
    return f"ip:{limit_subject(client_ip())}"


def is_login_request():
    rule = request.url_rule.rule if request.url_rule is not None else None
    return (rule, request.method) in LOGIN_ROUTES


def _form_value(name):
    if request.mimetype != "application/x-www-form-urlencoded":
        return None
    try:
        value = request.form.get(name)
    except Exception:  # a body over MAX_CONTENT_LENGTH: the view answers 413
        return None
    return value if isinstance(value, str) else None


def login_client_id():
    """The client a login is for, as sent (before it is checked): HTTP Basic auth
    or the form's ``client_id`` at the token endpoint, the query's (or form's)
    ``client_id`` on the authorization form."""
    if request.path == TOKEN_PATH:
        auth = request.authorization
        if auth is not None and auth.type == "basic" and auth.username:
            # RFC 6749 2.3.1: the client id is form-encoded inside Basic auth.
            return unquote_plus(auth.username)
        return _form_value("client_id")
    return request.args.get("client_id") or _form_value("client_id")


def login_account():
    """The account a login names (the password grant's ``username``, the
    authorization form's ``email``), normalized like the users service stores
    emails (stripped, lowercased); None when there is none."""
    if request.path == TOKEN_PATH:
        if _form_value("grant_type") != "password":
            return None
        account = _form_value("username")
    else:
        account = _form_value("email")
    account = account.strip().lower() if account else None
    return account or None


def account_key():
    """``client:<client_id>:account:<hash>`` for a login naming an account, else ""
    (no limit). The email is hashed: Redis keys name no one, and any length of
    input makes a key of one size."""
    if not is_login_request():
        return ""
    account = login_account()
    if account is None:
        return ""
    client_id = (login_client_id() or "")[:_MAX_CLIENT_ID]
    digest = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"client:{client_id}:account:{digest}"


def note_login_failure(account=True):
    """Count this request as a failed login: toward its address's counter and, if
    ``account`` (the password was wrong for a named account), toward the
    account's. Call it from the view that checked the credentials."""
    previous = request.environ.get(_FAILURE_KEY)
    request.environ[_FAILURE_KEY] = "account" if account or previous == "account" else "client"


def _failed(response):
    """A failed login: reported by the view, or refused by the token endpoint
    (RFC 6749 5.2: 400 or 401) for any other reason."""
    if request.environ.get(_FAILURE_KEY):
        return True
    return request.path == TOKEN_PATH and response.status_code in (400, 401)


def _account_failed(_response):
    return request.environ.get(_FAILURE_KEY) == "account"


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
    missing = [name for name in LIMIT_NAMES if name not in groups]
    if missing:
        raise ConfigError(f"gateway.rate_limits.groups.{missing[0]}", "is required")
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
        return groups["token_per_ip" if found == TOKEN else found]

    def primary_key():
        return ip_key() if current_group() == TOKEN else caller_key()

    def primary_scope(_endpoint):
        found = current_group()
        return "token_per_ip" if found == TOKEN else found

    def login_ip_limit():
        return groups["login_failures_per_ip"] if current_group() and is_login_request() else ""

    def login_account_limit():
        # No account named (client_credentials, refresh...): no such limit.
        return groups["login_failures_per_account"] if current_group() and account_key() else ""

    enabled = bool(limits_config["enabled"])
    app.config["RATELIMIT_ENABLED"] = enabled
    limiter = _Limiter(
        caller_key,
        default_limits=[
            # Limits shared by every route of a group: one counter per caller and
            # group, whatever the endpoint. A provider returning "" adds no limit.
            Limit(primary_limit, key_function=primary_key, scope=primary_scope, shared=True),
            # Failed logins only: checked before the view, counted after it
            # (deduct_when), so successes never fill them.
            Limit(
                login_ip_limit,
                key_function=ip_key,
                scope="login_failures_per_ip",
                shared=True,
                deduct_when=_failed,
            ),
            Limit(
                login_account_limit,
                key_function=account_key,
                scope="login_failures_per_account",
                shared=True,
                deduct_when=_account_failed,
            ),
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
