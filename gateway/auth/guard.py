"""The token check for every API route, and scopes per route.

Two request hooks, with the rate limiter's check between them:

1. ``identify`` reads the bearer token (if any) and verifies it locally,
   leaving a ``Principal`` (or the reason it was refused) on ``flask.g``, so
   the limiter can key calls by client and user;
2. ``enforce`` refuses the request: 401 for a missing or bad token where one
   is needed (and for any bad token sent to an API route), 403
   ``insufficient_scope`` for a missing scope.

A route declares what it needs with ``@requires("catalog:write")`` (or
``@requires()`` for any valid token); routes without it are public.
"""

from flask import current_app, g, request

from gateway.auth.principal import Principal
from gateway.auth.tokens import MALFORMED, TokenError
from gateway.errors import ApiError
from gateway.metrics import count_token_rejection

# Reasons the guard itself gives (the verifier's are in gateway.auth.tokens).
MISSING = "missing"
INSUFFICIENT_SCOPE = "insufficient_scope"

REALM = "agora"
PROTECTED_PREFIX = "/v1/"


def requires(*scopes):
    """Mark a view as needing a valid access token carrying every one of ``scopes``."""

    def decorate(view):
        view._required_scopes = tuple(scopes)
        return view

    return decorate


def required_scopes(view):
    return getattr(view, "_required_scopes", None)


def _challenge(error=None, description=None, scope=None):
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


def _bearer_token():
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise TokenError("send the access token as 'Authorization: Bearer <token>'", MALFORMED)
    return value.strip()


def principal_from_claims(claims):
    return Principal(
        subject=claims["sub"],
        client_id=claims["client_id"],
        scopes=frozenset(claims["scope"].split()),
        token_id=claims["jti"],
        expires_at=claims["exp"],
        family_id=claims.get("sid"),
    )


def identify():
    g.principal = None
    g.auth_error = None
    g.auth_error_reason = None
    if not request.path.startswith(PROTECTED_PREFIX):
        return
    try:
        token = _bearer_token()
        if token is not None:
            claims = current_app.extensions["agora.tokens"].verify(token)
            g.principal = principal_from_claims(claims)
    except TokenError as exc:
        g.auth_error = exc.description
        g.auth_error_reason = exc.reason


def enforce():
    if not request.path.startswith(PROTECTED_PREFIX):
        return
    if g.get("auth_error"):
        count_token_rejection(g.get("auth_error_reason") or MALFORMED)
        raise ApiError(
            401,
            "invalid_token",
            g.auth_error,
            headers={"WWW-Authenticate": _challenge("invalid_token", g.auth_error)},
        )
    view = current_app.view_functions.get(request.endpoint)
    scopes = required_scopes(view) if view else None
    if scopes is None:
        return
    demand_scopes(*scopes)


def demand_scopes(*scopes):
    """401 without a token, 403 ``insufficient_scope`` without every one of
    ``scopes``: for a public view whose request asks for more (a staff-only
    query parameter); returns the principal."""
    principal = g.get("principal")
    if principal is None:
        count_token_rejection(MISSING)
        message = "an access token is required"
        raise ApiError(
            401,
            "invalid_token",
            message,
            headers={"WWW-Authenticate": _challenge("invalid_token", message)},
        )
    check_scopes(principal, scopes)
    return principal


def check_scopes(principal, scopes):
    """403 ``insufficient_scope`` unless the principal holds every one of ``scopes``;
    for views whose scope depends on the request (``@requires()`` plus this)."""
    missing = [scope for scope in scopes if scope not in principal.scopes]
    if missing:
        count_token_rejection(INSUFFICIENT_SCOPE)
        needed = " ".join(scopes)
        raise ApiError(
            403,
            "insufficient_scope",
            f"the access token lacks the scope {' '.join(missing)}",
            {"required_scope": needed},
            headers={"WWW-Authenticate": _challenge("insufficient_scope", scope=needed)},
        )


def init_identify(app):
    app.before_request(identify)


def init_enforce(app):
    app.before_request(enforce)
