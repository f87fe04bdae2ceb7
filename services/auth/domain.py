"""The rules of the auth service, free of Nameko and of database sessions.

Scopes (what a grant may carry), opaque tokens and codes (random, stored only
as their SHA-256), the lifetimes of tokens and of published signing keys, the
claims of an access token and its signature, client secrets (argon2id), and
the shapes every RPC returns.
"""

import base64
import datetime
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.auth import key_encryption
from services.auth.schemas import (
    ACCESS_TOKEN_TYPE,
    CLIENT_CREATE,
    CLIENT_ID,
    CLIENT_UPDATE,
    CODE_REQUEST,
    ISSUE_TOKEN_REQUEST,
    PASSWORD_GRANT_SCOPES,
    REDEEM_REQUEST,
    ROTATE_REQUEST,
    SCOPES,
    SIGNING_ALGORITHM,
    redirect_uri_allowed,
    scopes_for_roles,
)
from services.chassis.errors import InvalidGrant, ValidationError
from services.chassis.hashing import SecretHasher
from services.chassis.schemas import obj, validate
from services.chassis.values import isoformat_utc

TOKEN_BYTES = 32  # 256 bits: a fast hash is enough to store them
MAX_SECRET_LENGTH = CLIENT_CREATE["properties"]["secret"]["maxLength"]

_OPAQUE = {"type": "string", "minLength": 1, "maxLength": 512}
REVOKE_REFRESH_REQUEST = obj({"client_id": CLIENT_ID, "token": _OPAQUE}, ("client_id", "token"))
REVOKE_ACCESS_REQUEST = obj(
    {
        "jti": {"type": "string", "minLength": 1, "maxLength": 200},
        "expires_at": {"type": "integer"},
        "client_id": CLIENT_ID,
    },
    ("jti", "expires_at", "client_id"),
)

# revoked_reason of refresh tokens, and "reason" of token_family_revoked.
REUSE_DETECTED = "reuse_detected"
REVOKED_BY_CLIENT = "revoked_by_client"


# --- scopes --------------------------------------------------------------------


def parse_scope(scope):
    """The scope names of a space-separated scope string (None: None), duplicates dropped."""
    if scope is None:
        return None
    names = []
    for name in scope.split():
        if name not in names:
            names.append(name)
    return names


def ordered_scopes(names):
    """Known scope names in the stable order of ``SCOPES``; unknown names are dropped."""
    wanted = set(names or ())
    return [name for name in SCOPES if name in wanted]


def format_scope(names):
    """The scope string of ``names``: space-separated, in the order of ``SCOPES``."""
    return " ".join(ordered_scopes(names))


def allowed_scopes(client_scopes, roles, user_present):
    """What a grant may carry: the client's scopes, and for a user also the roles' scopes."""
    allowed = ordered_scopes(client_scopes)
    if user_present:
        role_scopes = set(scopes_for_roles(roles))
        allowed = [name for name in allowed if name in role_scopes]
    return allowed


def grant_client_scopes(client_scopes, grant_type):
    """The client's scopes as far as ``grant_type`` may carry them: the password
    grant never carries more than ``PASSWORD_GRANT_SCOPES`` (admin scopes need
    the authorization code flow with PKCE)."""
    if grant_type == "password":
        return [name for name in client_scopes or () if name in PASSWORD_GRANT_SCOPES]
    return list(client_scopes or ())


def granted_scopes(requested, client_scopes, roles=None, user_present=True):
    """requested ∩ client scopes ∩ role scopes (no roles for client_credentials).

    ``requested`` is a scope string or None; None grants everything allowed.
    Names that are not allowed (or unknown) are left out, not refused
    (RFC 6749 3.3 lets the server issue a narrower scope).
    """
    allowed = allowed_scopes(client_scopes, roles, user_present)
    names = parse_scope(requested)
    if names is None:
        return allowed
    return [name for name in allowed if name in names]


def rotation_scopes(requested, original, client_scopes, roles):
    """``(refresh_scopes, access_scopes)`` for a refresh-token rotation.

    The requested scope (None: the original) must be within the original grant
    (RFC 6749 6), else ``InvalidGrant``. The next refresh token keeps the
    original scope less what the client or the user's current roles no longer
    allow (a demoted user loses scopes at refresh, for good); the access token
    gets the requested part of that.
    """
    original_names = parse_scope(original) or []
    names = parse_scope(requested)
    if names is not None and not set(names) <= set(original_names):
        raise InvalidGrant("scope exceeds the original grant")
    refresh = [
        name
        for name in allowed_scopes(client_scopes, roles, user_present=True)
        if name in original_names
    ]
    access = refresh if names is None else [name for name in refresh if name in names]
    return refresh, access


# --- opaque tokens and codes ---------------------------------------------------


def new_token():
    """A refresh token, an authorization code or a client secret: 256 random bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token):
    """What is stored of a token: SHA-256, hex (tokens are random, no salt or stretching)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def refresh_expiry(now, refresh_token_ttl, parent_expires_at=None):
    """When a refresh token expires.

    A family has an absolute lifetime: ``refresh_token_ttl`` from its first
    token; a rotated token inherits its parent's expiry and never extends it.
    """
    expires_at = now + datetime.timedelta(seconds=refresh_token_ttl)
    return expires_at if parent_expires_at is None else min(expires_at, parent_expires_at)


def code_expiry(now, authorization_code_ttl):
    return now + datetime.timedelta(seconds=authorization_code_ttl)


def refresh_status(token, now):
    """``revoked``, ``used``, ``expired`` or ``active`` (in that precedence)."""
    if token.revoked_at is not None:
        return "revoked"
    if token.used_at is not None:
        return "used"
    if token.expires_at <= now:
        return "expired"
    return "active"


# --- revocations in Redis ------------------------------------------------------


def family_denylist_ttl(access_token_ttl, clock_skew):
    """How long a revoked family must stay denied: its newest access token's life."""
    return access_token_ttl + clock_skew


def denied_since(now, access_token_ttl, clock_skew):
    """Families revoked after this moment may still have accepted access tokens."""
    return now - datetime.timedelta(seconds=family_denylist_ttl(access_token_ttl, clock_skew))


def family_denial_ttl(revoked_at, now, access_token_ttl, clock_skew):
    """Seconds a family revoked at ``revoked_at`` must stay denied from ``now`` (>= 1
    while any of its access tokens may still be accepted, else 0)."""
    left = epoch(revoked_at) + family_denylist_ttl(access_token_ttl, clock_skew) - epoch(now)
    return max(0, int(left) + 1) if left > 0 else 0


def accepted_until(now, clock_skew):
    """Tokens that expired before this moment are refused anyway (``exp`` + skew)."""
    return now - datetime.timedelta(seconds=clock_skew)


def access_revocation_ttl(expires_at, now, clock_skew):
    """Seconds the revoked-``jti`` key must live (``exp`` is accepted up to the skew
    after it); 0 when the token can no longer be accepted anyway."""
    return max(0, int(expires_at) + clock_skew - epoch(now))


# --- signing keys --------------------------------------------------------------


@dataclass(frozen=True)
class KeyMaterial:
    kid: str
    private_pem: str  # PKCS#8, encrypted (PBES2, scrypt: key_encryption)
    public_jwk: dict
    key: RSAKey  # the decrypted private key, ready to sign


def _passphrase(passphrase):
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase


def public_jwk(key, kid):
    """The published form: RSA public numbers only, ``use`` and ``alg`` pinned."""
    public = key.as_dict(private=False)
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": SIGNING_ALGORITHM,
        "n": public["n"],
        "e": public["e"],
    }


def generate_signing_key(key_size, passphrase):
    """A new RSA key; ``kid`` is its RFC 7638 JWK thumbprint. CPU-heavy: offload it."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    pem = key_encryption.encrypt_private_key(private, _passphrase(passphrase))
    key = RSAKey.import_key(private)
    kid = key.thumbprint()
    return KeyMaterial(kid=kid, private_pem=pem, public_jwk=public_jwk(key, kid), key=key)


def load_signing_key(private_pem, passphrase):
    """The stored (encrypted) PEM as ``(joserfc key, PEM to store or None)``.

    Keys stored before scrypt (PBKDF2 at 2,048 rounds) still load; for them the
    second item is the same key encrypted again with scrypt, to replace the
    stored one. Costs one or two key derivations: offload it."""
    secret = _passphrase(passphrase)
    private = serialization.load_pem_private_key(private_pem.encode("ascii"), password=secret)
    upgraded = None
    if key_encryption.is_weak(private_pem):
        upgraded = key_encryption.encrypt_private_key(private, secret)
    return RSAKey.import_key(private), upgraded


def is_published(retired_at, now, access_token_ttl, clock_skew):
    """A key is in the JWKS while it is current, and after retirement for as long
    as a token it signed may still be accepted: ``retired_at + ttl + skew > now``."""
    if retired_at is None:
        return True
    return retired_at + datetime.timedelta(seconds=access_token_ttl + clock_skew) > now


def published_since(now, access_token_ttl, clock_skew):
    """Keys retired after this moment are still published (``is_published``, as a bound)."""
    return now - datetime.timedelta(seconds=access_token_ttl + clock_skew)


def signing_key_info(key, now, current_kid, access_token_ttl, clock_skew):
    return {
        "kid": key.kid,
        "created_at": isoformat_utc(key.created_at),
        "retired_at": isoformat_utc(key.retired_at) if key.retired_at else None,
        "published": is_published(key.retired_at, now, access_token_ttl, clock_skew),
        "current": key.kid == current_kid,
    }


# --- access tokens -------------------------------------------------------------


def epoch(moment):
    return int(moment.timestamp())


def from_epoch(seconds):
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)


def access_token_claims(settings, client_id, user_id, scope, family_id, now, jti=None):
    """The JWT payload (RFC 9068). ``settings`` is ``config["auth"]``.

    ``sub`` is the user, or the client itself when there is no user
    (client_credentials); ``sid`` names the token family and is present only
    for a user's token.
    """
    issued = epoch(now)
    claims = {
        "iss": settings["issuer"],
        "sub": str(user_id) if user_id is not None else client_id,
        "aud": settings["audience"],
        "exp": issued + settings["access_token_ttl"],
        "iat": issued,
        "nbf": issued,
        "jti": str(jti or uuid.uuid4()),
        "scope": scope,
        "client_id": client_id,
    }
    if user_id is not None and family_id is not None:
        claims["sid"] = str(family_id)
    return claims


def access_token_header(kid):
    return {"alg": SIGNING_ALGORITHM, "kid": kid, "typ": ACCESS_TOKEN_TYPE}


def sign_access_token(key, kid, claims):
    return jwt.encode(access_token_header(kid), claims, key, algorithms=[SIGNING_ALGORITHM])


def token_response(access_token, expires_in, scope, refresh_token=None):
    response = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    if refresh_token is not None:
        response["refresh_token"] = refresh_token
    return response


# --- requests ------------------------------------------------------------------


def issue_request(request):
    """Check an ``issue_token`` request: the schema, and a user exactly when the
    grant has one (client_credentials acts for the client itself)."""
    validate(ISSUE_TOKEN_REQUEST, request, "invalid token request")
    grant = request["grant_type"]
    if grant == "client_credentials":
        if request["user"] is not None:
            raise ValidationError(
                "client_credentials has no user", {"user": "must be null for client_credentials"}
            )
        if request.get("family_id") is not None:
            raise ValidationError(
                "client_credentials has no token family",
                {"family_id": "must be null for client_credentials"},
            )
    elif request["user"] is None:
        raise ValidationError("a user is required", {"user": f"is required for {grant}"})
    return request


def check_grant(client, grant_type, field="grant_type"):
    """The stored client (None if unknown) may use ``grant_type``, or ValidationError
    naming ``field`` (the request's field that asked for the grant)."""
    if client is None:
        raise ValidationError("unknown client", {"client_id": "unknown client"})
    if grant_type not in client.grant_types:
        raise ValidationError(
            "grant not allowed for this client",
            {field: f"{grant_type} is not allowed for this client"},
        )


def rotate_request(request):
    return validate(ROTATE_REQUEST, request, "invalid refresh request")


def code_request(request):
    return validate(CODE_REQUEST, request, "invalid authorization request")


def code_redirect_uri(client, redirect_uri):
    """Check the redirect URI of an authorization request against the client's.

    It may be omitted only when the client registered exactly one (RFC 6749
    3.1.2.3); a registered loopback URI admits any port (RFC 8252 7.3). It is
    stored as given, for the exact comparison at redemption.
    """
    registered = list(client.redirect_uris or [])
    if redirect_uri is None:
        if len(registered) != 1:
            raise ValidationError(
                "redirect_uri required", {"redirect_uri": "is required for this client"}
            )
    elif not redirect_uri_allowed(registered, redirect_uri):
        raise ValidationError(
            "redirect_uri not registered", {"redirect_uri": "is not registered for this client"}
        )
    return redirect_uri


def redeem_request(request):
    return validate(REDEEM_REQUEST, request, "invalid code redemption")


def s256_challenge(code_verifier):
    """RFC 7636 4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def code_matches(code, code_verifier, redirect_uri):
    """Whether the redemption proves what the authorization request set: the PKCE
    verifier of its challenge (constant time), and the same redirect_uri (RFC
    6749 4.1.3: required and identical when the request named one)."""
    if code.code_challenge_method != "S256":
        return False
    proof = hmac.compare_digest(s256_challenge(code_verifier), code.code_challenge)
    return proof and (code.redirect_uri is None or redirect_uri == code.redirect_uri)


def revoke_refresh_request(client_id, token):
    validate(REVOKE_REFRESH_REQUEST, {"client_id": client_id, "token": token}, "invalid revocation")


def revoke_access_request(jti, expires_at, client_id):
    validate(
        REVOKE_ACCESS_REQUEST,
        {"jti": jti, "expires_at": expires_at, "client_id": client_id},
        "invalid revocation",
    )


# --- clients -------------------------------------------------------------------


def _public_client_secret_error():
    return ValidationError(
        "public clients have no secret", {"secret": "not allowed for a public client"}
    )


def _public_client_credentials_error():
    return ValidationError(
        "public clients cannot use client_credentials",
        {"grant_types": "client_credentials needs a confidential client"},
    )


def new_client(payload):
    """Check a ``create_client`` payload; return ``(fields, secret, generated)``.

    A public client has no secret (sending one is an error) and may not use
    client_credentials; a confidential client without one gets a generated
    secret, returned once.
    """
    validate(CLIENT_CREATE, payload, "invalid client")
    public = payload["public"]
    secret = payload.get("secret")
    if public and secret is not None:
        raise _public_client_secret_error()
    if public and "client_credentials" in payload["grant_types"]:
        raise _public_client_credentials_error()
    generated = not public and secret is None
    if generated:
        secret = new_token()
    fields = {
        "client_id": payload["client_id"],
        "name": payload["name"],
        "public": public,
        "grant_types": [g for g in payload["grant_types"]],
        "scopes": ordered_scopes(payload["scopes"]),
        "redirect_uris": list(payload.get("redirect_uris") or []),
    }
    return fields, secret, generated


def client_changes(client, changes):
    """Check an ``update_client`` payload against the stored client.

    Returns ``(fields, secret)``: the columns to set, and a new secret to hash
    (or None). Turning a client public drops its secret; turning it
    confidential needs one.
    """
    validate(CLIENT_UPDATE, changes, "invalid client changes")
    public = changes.get("public", client.public)
    secret = changes.get("secret")
    grant_types = changes.get("grant_types", client.grant_types)
    if public and secret is not None:
        raise _public_client_secret_error()
    if public and "client_credentials" in grant_types:
        raise _public_client_credentials_error()
    if not public and client.public and secret is None:
        raise ValidationError(
            "a confidential client needs a secret",
            {"secret": "is required to make a public client confidential"},
        )
    fields = {k: v for k, v in changes.items() if k != "secret"}
    if "scopes" in fields:
        fields["scopes"] = ordered_scopes(fields["scopes"])
    if public:
        fields["secret_hash"] = None
    return fields, secret


def serialize_client(client):
    """The client as every RPC returns it; the secret hash never leaves the service."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.public,
        "grant_types": list(client.grant_types or []),
        "scopes": ordered_scopes(client.scopes),
        "redirect_uris": list(client.redirect_uris or []),
        "created_at": isoformat_utc(client.created_at),
        "updated_at": isoformat_utc(client.updated_at),
    }


def refresh_token_info(token, now):
    return {
        "client_id": token.client_id,
        "user_id": str(token.user_id),
        "scope": token.scope,
        "family_id": str(token.family_id),
        "status": refresh_status(token, now),
        "issued_at": epoch(token.issued_at),
        "expires_at": epoch(token.expires_at),
    }


def authorization_code_info(code):
    return {
        "client_id": code.client_id,
        "user_id": str(code.user_id),
        "redirect_uri": code.redirect_uri,
        "scope": code.scope,
        "code_challenge": code.code_challenge,
        "code_challenge_method": code.code_challenge_method,
        "nonce": code.nonce,
        "family_id": str(code.family_id),
        "auth_time": epoch(code.created_at),
    }


# --- client secrets ------------------------------------------------------------


class ClientSecrets(SecretHasher):
    """argon2id for client secrets (``services.auth.client_secret_hash`` cost)."""

    max_length = MAX_SECRET_LENGTH
