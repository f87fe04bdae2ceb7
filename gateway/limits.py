"""Rate limits per route group (counters in Redis, one round trip per request).

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
it is back (after 1, 2, 4 ... 32 s, then from 1 s again).

Every limit of a request is checked, counted and measured for the headers by
one Lua script (``gateway/lua/rate_limits.lua``): one Redis round trip per
request, plus one more after a failed login (its failure counters). The
counters, keys and strategies are those flask-limiter kept with the limits
library (moving window by default), so the semantics did not change with it.
"""

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote_plus

from flask import current_app, g, jsonify, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import STRATEGIES
from redis.exceptions import RedisError

from gateway.errors import error_response
from gateway.metrics import count_rate_limited
from gateway.netaddr import limit_subject, parse_trusted, resolve_client_ip
from services.chassis.config import ConfigError
from services.chassis.redis import make_client

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

# gateway.rate_limits.strategy -> (the name limits registers the strategy under,
# the name rate_limits.lua knows it by).
STRATEGY_NAMES = {
    "moving-window": ("moving-window", "moving"),
    "fixed-window": ("fixed-window", "fixed"),
    "sliding-window": ("sliding-window-counter", "sliding"),
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


def _settings(config):
    limits_config = config["gateway"]["rate_limits"]
    groups = dict(limits_config["groups"])
    missing = [name for name in LIMIT_NAMES if name not in groups]
    if missing:
        raise ConfigError(f"gateway.rate_limits.groups.{missing[0]}", "is required")
    for name, value in groups.items():
        try:
            groups[name] = parse_many(value)
        except ValueError as exc:
            raise ConfigError(f"gateway.rate_limits.groups.{name}", str(exc)) from None
    try:
        trusted = parse_trusted(config["gateway"].get("trusted_proxies", ()))
    except ValueError as exc:
        raise ConfigError("gateway.trusted_proxies", str(exc)) from None
    return limits_config, groups, trusted


@dataclass(frozen=True)
class _Applied:
    """One limit that applies to this request: its item ("5 per 1 minute"), its
    name (the group's, or the login limit's), the caller it counts, and whether
    it is counted now or only checked (failed logins are counted after the view)."""

    item: RateLimitItem
    name: str
    caller: str
    counted_when: Callable | None = None

    @property
    def key(self):
        # "LIMITER/<caller>/<name>/<amount>/<multiples>/<granularity>", the
        # layout flask-limiter used, so counters survive an upgrade.
        return self.item.key_for(self.caller, self.name)


@dataclass(frozen=True)
class _Window:
    breached: bool
    remaining: int
    reset: float


_SCRIPT = (Path(__file__).parent / "lua" / "rate_limits.lua").read_text()


class _RedisCounters:
    """Counters shared by every gateway process: every limit of a request is
    checked, counted and measured for the headers by one script, so a request
    costs one Redis round trip (EVALSHA; redis-py loads the script on NOSCRIPT)."""

    def __init__(self, redis_config, strategy):
        self.client = make_client(redis_config, decode_responses=False, name="gateway-ratelimit")
        # Keys are "<redis.key_prefix>ratelimit:LIMITER/<caller>/<name>/<limit>",
        # under the environment's (or test run's) prefix.
        self.prefix = f"{redis_config['key_prefix']}ratelimit:"
        self.strategy = STRATEGY_NAMES[strategy][1]
        self.script = self.client.register_script(_SCRIPT)

    def _keys(self, applied):
        key = self.prefix + applied.key
        if self.strategy == "sliding":
            # The limits library's layout: "{key}/-1" (previous) and "{key}" (current).
            current = f"{self.prefix}{{{applied.key}}}"
            return [f"{current}/-1", current]
        return [key, key]

    def evaluate(self, applied, count=True):
        keys, args = [], [repr(time.time())]
        for limit in applied:
            keys += self._keys(limit)
            mode = "hit" if count and limit.counted_when is None else "test"
            args += [self.strategy, limit.item.amount, limit.item.get_expiry(), mode]
        return [
            _Window(bool(breached), int(remaining), float(reset))
            for breached, remaining, reset in self.script(keys=keys, args=args)
        ]

    def check(self):
        try:
            return bool(self.client.ping())
        except RedisError:
            return False


class _MemoryCounters:
    """This process's own counters, for while Redis is down (same limits, same
    strategy, the limits library's in-memory storage)."""

    def __init__(self, strategy):
        self.limiter = STRATEGIES[STRATEGY_NAMES[strategy][0]](MemoryStorage())

    def evaluate(self, applied, count=True):
        windows = []
        for limit in applied:
            identifiers = (limit.caller, limit.name)
            if count and limit.counted_when is None:
                fits = self.limiter.hit(limit.item, *identifiers)
            else:
                fits = self.limiter.test(limit.item, *identifiers)
            reset, remaining = self.limiter.get_window_stats(limit.item, *identifiers)
            windows.append(_Window(not fits, max(0, remaining), reset))
            if not fits:
                break
        return windows


class RateLimiter:
    """Counts in Redis; while Redis is down, in this process's memory (logged
    once per outage), checking every 1, 2, 4 ... 32 s (then from 1 s again)
    whether Redis is back."""

    MAX_BACKOFF_STEP = 5

    def __init__(self, config, enabled):
        limits_config = config["gateway"]["rate_limits"]
        self.enabled = enabled
        self._redis = _RedisCounters(config["redis"], limits_config["strategy"])
        self._memory = _MemoryCounters(limits_config["strategy"])
        self._lock = threading.Lock()
        self._dead = False
        self._last_check = 0.0
        self._checks = 0

    def check(self):
        """Whether the shared counters (Redis) answer."""
        return self._redis.check()

    def evaluate(self, applied, count=True):
        """Check ``applied`` in order, counting those counted before the view
        (all of them with ``count=True``; none with False, which only checks),
        up to the first breached one: the windows of the limits evaluated."""
        if self._redis_usable():
            try:
                return self._redis.evaluate(applied, count)
            except RedisError as exc:
                self._set_dead(True, exc)
        return self._memory.evaluate(applied, count)

    def count(self, applied):
        """Count limits that are counted after the view (a failed login)."""
        return self.evaluate([replace(limit, counted_when=None) for limit in applied])

    def _redis_usable(self):
        if not self._dead:
            return True
        with self._lock:
            if self._checks > self.MAX_BACKOFF_STEP:
                self._checks = 0
            due = time.time() - self._last_check > 2**self._checks
            if due:
                self._last_check = time.time()
                self._checks += 1
        if due and self._redis.check():
            self._set_dead(False)
            return True
        return False

    def _set_dead(self, dead, error=None):
        with self._lock:
            was, self._dead = self._dead, dead
            if dead and not was:
                # Count the first re-check from now: the request that found
                # Redis down must not also wait for an immediate re-check.
                self._last_check = time.time()
            elif was and not dead:
                self._checks = 0
        if dead and not was:
            cause = f" ({error.__class__.__name__}: {error})" if error is not None else ""
            log.warning(
                "rate limit storage unreachable%s: limiting with this process's "
                "in-memory counters until it answers again",
                cause,
            )
        elif was and not dead:
            log.info("rate limit storage reachable again: counters are shared again")


def init_limits(app, config=None):
    """Rate-limit ``app``; returns the RateLimiter (also ``app.extensions["agora.limiter"]``).

    Call once, after every blueprint is registered and after the before_request
    hook that sets ``g.principal`` (hooks run in registration order).
    ``config`` defaults to ``app.config["AGORA"]``."""
    config = config if config is not None else app.config["AGORA"]
    limits_config, groups, trusted = _settings(config)
    app.extensions["agora.trusted_proxies"] = trusted

    for endpoint, view in app.view_functions.items():
        explicit = getattr(view, "_rate_limit_group", None)
        if explicit is not None and explicit not in GROUPS:
            raise ValueError(f"{endpoint}: unknown rate-limit group {explicit!r}")

    enabled = bool(limits_config["enabled"])
    limiter = RateLimiter(config, enabled)
    app.extensions["agora.limiter"] = limiter
    if not enabled:
        return limiter

    def applicable():
        """The limits of this request, shortest window first; evaluation stops at
        the first breached one, so a longer window is not counted after it."""
        found = current_group()
        if found is None:
            return []
        name = "token_per_ip" if found == TOKEN else found
        caller = ip_key() if found == TOKEN else caller_key()
        applied = [_Applied(item, name, caller) for item in groups[name]]
        if is_login_request():
            # Failed logins only: checked before the view, counted after it.
            ip = ip_key()
            applied += [
                _Applied(item, "login_failures_per_ip", ip, _failed)
                for item in groups["login_failures_per_ip"]
            ]
            account = account_key()
            if account:  # no account named (client_credentials, refresh...): no such limit
                applied += [
                    _Applied(item, "login_failures_per_account", account, _account_failed)
                    for item in groups["login_failures_per_account"]
                ]
        return sorted(applied, key=lambda limit: limit.item)

    @app.before_request
    def check_rate_limits():
        applied = applicable()
        if not applied:
            return None
        windows = limiter.evaluate(applied)
        # Evaluation stops at the first breach: the limits after it have no window.
        g.rate_limits = list(zip(applied[: len(windows)], windows, strict=True))
        if windows[-1].breached:
            breached = applied[len(windows) - 1]
            count_rate_limited(breached.name)
            return _rate_limited(breached, windows[-1])
        return None

    @app.after_request
    def rate_limit_headers(response):
        evaluated = g.pop("rate_limits", None)
        if not evaluated:
            return response
        _add_headers(response, evaluated)
        failed = [
            limit
            for limit, _window in evaluated
            if limit.counted_when is not None and limit.counted_when(response)
        ]
        if failed:
            limiter.count(failed)
        return response

    return limiter


def _rate_limited(limit, window):
    limit_text = str(limit.item)
    retry = max(1, math.ceil(window.reset - time.time()))
    message = f"too many requests: the limit is {limit_text}, retry in {retry} s"
    if request.path.startswith("/oauth/"):
        response = jsonify({"error": "rate_limited", "error_description": message})
        response.status_code = 429
        response.headers["Cache-Control"] = "no-store"
    else:
        response = error_response(429, "rate_limited", message, {"limit": limit_text})
    response.headers["Retry-After"] = str(retry)
    return response


def _add_headers(response, evaluated):
    """X-RateLimit-Limit/-Remaining/-Reset of the limit that matters: the one
    breached, else the one with the fewest requests left."""
    limit, window = evaluated[-1]
    if not window.breached:
        limit, window = min(evaluated, key=lambda pair: pair[1].remaining)
    response.headers["X-RateLimit-Limit"] = str(limit.item.amount)
    response.headers["X-RateLimit-Remaining"] = str(max(0, window.remaining))
    response.headers["X-RateLimit-Reset"] = str(math.ceil(window.reset))
