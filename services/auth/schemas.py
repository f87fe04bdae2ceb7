"""Contracts of the auth service: scopes, OAuth2 clients, tokens, keys.

The auth service owns OAuth2 clients, refresh-token families, authorization
codes and RSA signing keys, and signs access tokens. The gateway hosts the
OAuth2 endpoints (authlib) and verifies access tokens locally against the
published keys; it imports this module (plain dicts, no Nameko, no SQLAlchemy)
and nothing else of the service.

RPC surface of ``auth`` (arguments validated against the schemas below; errors
are the chassis' named errors):

``get_client(client_id)`` -> CLIENT; NotFound.
``verify_client_secret(client_id, secret)`` -> bool (constant time, argon2).
``create_client(payload: CLIENT_CREATE)`` -> CLIENT, plus ``client_secret`` once
    when a confidential client was created without one; Conflict if the id exists.
``update_client(client_id, changes: CLIENT_UPDATE)`` -> CLIENT; NotFound.
``issue_token(request: ISSUE_TOKEN_REQUEST)`` -> TOKEN_RESPONSE. The granted
    scope is requested ∩ client scopes ∩ the user's role scopes (all of the
    allowed ones when none is requested); a refresh token is created (a new
    family, or ``family_id``'s) when asked and the client may refresh. The
    caller names the user by id only: the roles come from the users service
    (``users.get_roles``), never from the caller. The password grant carries
    customer scopes only (``PASSWORD_GRANT_SCOPES``), and only while
    ``auth.password_grant`` is on; admin scopes need the authorization code flow.
``rotate_refresh_token(request: ROTATE_REQUEST)`` -> TOKEN_RESPONSE. Atomically
    marks the presented token used and issues the next of its family, within
    the user's roles as the users service tells them now. A token
    already used revokes the whole family (reuse detection); used, revoked,
    expired, unknown or another client's token: InvalidGrant.
``get_refresh_token(token)`` -> REFRESH_TOKEN_INFO (no side effects); NotFound.
``revoke_refresh_token(client_id, token)`` -> bool: revokes the token's family
    if it belongs to ``client_id`` (RFC 7009: unknown tokens are not an error).
``revoke_access_token(jti, expires_at, client_id)`` -> None: the access token is
    refused by the gateway until it expires.
``create_authorization_code(request: CODE_REQUEST)`` -> {"code", "expires_in"}.
``redeem_authorization_code(request: REDEEM_REQUEST)`` -> AUTHORIZATION_CODE:
    checks the PKCE ``code_verifier`` and the ``redirect_uri`` and marks the
    code used, in one step: a wrong verifier or redirect_uri leaves the code
    usable (InvalidGrant, nothing changed). Unknown, expired or another
    client's: InvalidGrant; already used (with the right verifier):
    InvalidGrant and the tokens issued from it are revoked.
``jwks()`` -> {"keys": [public JWK]}: the current key and every retired key that
    may still have signed an unexpired token.
``rotate_signing_key()`` -> {"kid", "created_at", "retired": [kid]}.
``signing_keys()`` -> [SIGNING_KEY_INFO] for operators.

Revocations reach the gateway through Redis, under the shared key prefix:
``revoked_access_key(jti)`` and ``revoked_family_key(family_id)`` exist while a
token they name would still be accepted; the gateway checks both per request.
The auth database records every revocation; the service rebuilds these keys
from it at start and every ``services.auth.denylist_sync_interval`` seconds.
"""

from services.chassis.schemas import SPACE_OR_CONTROL, UUID_PATTERN, obj

# Every scope the platform knows, with what it grants (also the OpenAPI text).
SCOPES = {
    "profile": "Read and change your own user profile",
    "orders:read": "Read your orders",
    "orders:write": "Place and cancel your orders",
    "catalog:write": "Create and change products",
    "inventory:write": "Set stock levels",
    "billing:admin": "Refund payments and handle disputes",
    "users:admin": "Read and manage every user",
    "ops:read": "Read the platform's health and services reports (every service, every instance)",
    "ops:write": "Replay and discard dead letters",
}
CUSTOMER_SCOPES = ("profile", "orders:read", "orders:write")
ADMIN_SCOPES = (
    "catalog:write",
    "inventory:write",
    "billing:admin",
    "users:admin",
    "ops:read",
    "ops:write",
)
# RFC 9700 2.4: the password grant is kept for first-party customer logins only;
# every admin scope needs the authorization code flow with PKCE.
PASSWORD_GRANT_SCOPES = CUSTOMER_SCOPES
ROLE_SCOPES = {
    "customer": CUSTOMER_SCOPES,
    "admin": CUSTOMER_SCOPES + ADMIN_SCOPES,
}

GRANT_TYPES = ("authorization_code", "password", "refresh_token", "client_credentials")
CODE_CHALLENGE_METHODS = ("S256",)
ACCESS_TOKEN_TYPE = "at+jwt"  # JWT "typ" header (RFC 9068)
SIGNING_ALGORITHM = "RS256"

REVOKED_PREFIX = "auth:revoked"


def revoked_access_key(jti):
    return f"{REVOKED_PREFIX}:jti:{jti}"


def revoked_family_key(family_id):
    return f"{REVOKED_PREFIX}:sid:{family_id}"


# RFC 8252 7.3: native apps (``agora login``) listen on an ephemeral loopback
# port; a registered loopback URI without a port admits any port.
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def redirect_uri_allowed(registered, requested):
    """Whether ``requested`` may be used for a client that registered ``registered``:
    one of them exactly, or (RFC 8252 7.3) an ``http://127.0.0.1/path`` or
    ``http://[::1]/path`` registered without a port, requested with any port
    and otherwise identical. Not ``localhost`` (RFC 8252 8.3)."""
    if not isinstance(requested, str):
        return False
    if requested in registered:
        return True
    for host in LOOPBACK_HOSTS:
        prefix = f"http://{host}:"
        if not requested.startswith(prefix):
            continue
        port, slash, rest = requested[len(prefix) :].partition("/")
        if not (slash and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            continue
        if f"http://{host}/{rest}" in registered:
            return True
    return False


def scopes_for_roles(roles):
    granted = []
    for role in roles or ():
        for scope in ROLE_SCOPES.get(role, ()):
            if scope not in granted:
                granted.append(scope)
    return granted


_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
CLIENT_ID = {
    "type": "string",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "x-message": "must be 1-64 letters, digits, '.', '_' or '-'",
}
SCOPE = {"type": "string", "enum": list(SCOPES)}
SCOPE_STRING = {"type": ["string", "null"], "maxLength": 1000}  # space-separated (RFC 6749 3.3)
REDIRECT_URI = {
    "type": "string",
    "maxLength": 2000,
    "pattern": rf"^(https://|http://(localhost|127\.0\.0\.1)(:[0-9]+)?/)[^#{SPACE_OR_CONTROL}]*$",
    "x-message": "must be an https URL, or http on localhost, without a fragment",
}

CLIENT = obj(
    {
        "client_id": CLIENT_ID,
        "name": {"type": "string"},
        "public": {"type": "boolean"},
        "grant_types": {"type": "array", "items": {"enum": list(GRANT_TYPES)}},
        "scopes": {"type": "array", "items": SCOPE},
        "redirect_uris": {"type": "array", "items": {"type": "string"}},
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
    },
    required=(
        "client_id",
        "name",
        "public",
        "grant_types",
        "scopes",
        "redirect_uris",
        "created_at",
        "updated_at",
    ),
)

_CLIENT_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "public": {"type": "boolean"},
    "grant_types": {
        "type": "array",
        "items": {"enum": list(GRANT_TYPES)},
        "minItems": 1,
        "uniqueItems": True,
    },
    "scopes": {"type": "array", "items": SCOPE, "uniqueItems": True},
    "redirect_uris": {"type": "array", "items": REDIRECT_URI, "uniqueItems": True},
    # Confidential clients only; generated (and returned once) when omitted.
    "secret": {"type": "string", "minLength": 16, "maxLength": 200},
}
CLIENT_CREATE = obj(
    {"client_id": CLIENT_ID, **_CLIENT_FIELDS},
    required=("client_id", "name", "public", "grant_types", "scopes"),
)
CLIENT_UPDATE = obj(_CLIENT_FIELDS, minProperties=1)

# The user a grant is for, by id only: roles are the users service's to say.
USER_REF = obj({"id": {"type": "string", "pattern": UUID_PATTERN}}, ("id",))

ISSUE_TOKEN_REQUEST = obj(
    {
        "client_id": CLIENT_ID,
        "grant_type": {"enum": list(GRANT_TYPES)},
        "scope": SCOPE_STRING,
        # null for client_credentials: the subject is then the client itself.
        "user": {**USER_REF, "type": ["object", "null"]},
        "include_refresh_token": {"type": "boolean"},
        # Continue this family (tokens from one authorization code); new otherwise.
        "family_id": {"type": ["string", "null"], "pattern": UUID_PATTERN},
    },
    required=("client_id", "grant_type", "scope", "user", "include_refresh_token"),
)

ROTATE_REQUEST = obj(
    {
        "client_id": CLIENT_ID,
        "refresh_token": {"type": "string", "minLength": 1, "maxLength": 512},
        # Narrower scope (RFC 6749 6); null keeps the original.
        "scope": SCOPE_STRING,
    },
    required=("client_id", "refresh_token", "scope"),
)

TOKEN_RESPONSE = obj(
    {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
        "refresh_token": {"type": "string"},
    },
    required=("access_token", "token_type", "expires_in", "scope"),
)

REFRESH_TOKEN_INFO = obj(
    {
        "client_id": {"type": "string"},
        "user_id": {"type": "string"},
        "scope": {"type": "string"},
        "family_id": {"type": "string"},
        "status": {"enum": ["active", "used", "revoked", "expired"]},
        "issued_at": {"type": "integer"},
        "expires_at": {"type": "integer"},
    },
    required=("client_id", "user_id", "scope", "family_id", "status", "issued_at", "expires_at"),
)

CODE_REQUEST = obj(
    {
        "client_id": CLIENT_ID,
        "user": USER_REF,
        "redirect_uri": {"type": ["string", "null"], "maxLength": 2000},
        "scope": SCOPE_STRING,
        "code_challenge": {
            "type": "string",
            "pattern": "^[A-Za-z0-9._~-]{43,128}$",
            "x-message": "must be 43-128 unreserved characters (RFC 7636)",
        },
        "code_challenge_method": {"enum": list(CODE_CHALLENGE_METHODS)},
        "nonce": {"type": ["string", "null"], "maxLength": 255},
    },
    required=(
        "client_id",
        "user",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ),
)

CODE_VERIFIER = {
    "type": "string",
    "pattern": "^[A-Za-z0-9._~-]{43,128}$",
    "x-message": "must be 43-128 unreserved characters (RFC 7636)",
}

# What the token endpoint received for an authorization code (RFC 6749 4.1.3).
REDEEM_REQUEST = obj(
    {
        "client_id": CLIENT_ID,
        "code": {"type": "string", "minLength": 1, "maxLength": 512},
        "code_verifier": CODE_VERIFIER,
        # Must equal the authorization request's (null: it named none).
        "redirect_uri": {"type": ["string", "null"], "maxLength": 2000},
    },
    required=("client_id", "code", "code_verifier", "redirect_uri"),
)

AUTHORIZATION_CODE = obj(
    {
        "client_id": {"type": "string"},
        "user_id": {"type": "string"},
        "redirect_uri": {"type": ["string", "null"]},
        "scope": {"type": "string"},
        "code_challenge": {"type": "string"},
        "code_challenge_method": {"type": "string"},
        "nonce": {"type": ["string", "null"]},
        "family_id": {"type": "string"},
        "auth_time": {"type": "integer"},
    },
    required=(
        "client_id",
        "user_id",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "family_id",
        "auth_time",
    ),
)

JWK = {
    "type": "object",
    "properties": {
        "kty": {"const": "RSA"},
        "kid": {"type": "string"},
        "use": {"const": "sig"},
        "alg": {"const": SIGNING_ALGORITHM},
        "n": {"type": "string"},
        "e": {"type": "string"},
    },
    "required": ["kty", "kid", "use", "alg", "n", "e"],
    "additionalProperties": False,
}
JWKS = obj({"keys": {"type": "array", "items": JWK}}, required=("keys",))

SIGNING_KEY_INFO = obj(
    {
        "kid": {"type": "string"},
        "created_at": _TIMESTAMP,
        "retired_at": {"type": ["string", "null"]},
        "published": {"type": "boolean"},
        "current": {"type": "boolean"},
    },
    required=("kid", "created_at", "retired_at", "published", "current"),
)

# The access token's claims (JWT payload), as the gateway expects them.
ACCESS_TOKEN_CLAIMS = {
    "type": "object",
    "properties": {
        "iss": {"type": "string"},
        "sub": {"type": "string"},
        "aud": {"type": "string"},
        "exp": {"type": "integer"},
        "iat": {"type": "integer"},
        "nbf": {"type": "integer"},
        "jti": {"type": "string"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        # The refresh-token family the token came from (absent for client_credentials).
        "sid": {"type": "string"},
    },
    "required": ["iss", "sub", "aud", "exp", "iat", "jti", "scope", "client_id"],
}

_EVENT_ID = {"type": "string", "pattern": UUID_PATTERN}

# Events this service emits (its part of docs/asyncapi.yaml).
# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"get_client", "get_refresh_token", "health", "jwks", "signing_keys"})

EVENTS = {
    "client_created": {
        "version": 1,
        "summary": "An OAuth2 client was registered",
        "payload": obj(
            {
                "client_id": CLIENT_ID,
                "public": {"type": "boolean"},
                "grant_types": {"type": "array", "items": {"enum": list(GRANT_TYPES)}},
                "scopes": {"type": "array", "items": SCOPE},
            },
            ("client_id", "public", "grant_types", "scopes"),
        ),
    },
    "signing_key_rotated": {
        "version": 1,
        "summary": "A new token-signing key signs from now on; the previous ones retired",
        "payload": obj(
            {
                "kid": {"type": "string", "minLength": 1},
                "retired": {"type": "array", "items": {"type": "string"}},
            },
            ("kid", "retired"),
        ),
    },
    "token_family_revoked": {
        "version": 1,
        "summary": "Every refresh and access token of one sign-in was revoked",
        "payload": obj(
            {
                "family_id": _EVENT_ID,
                "client_id": CLIENT_ID,
                "user_id": {"type": "string"},
                "reason": {"type": "string"},
            },
            ("family_id", "client_id", "user_id", "reason"),
        ),
    },
}
