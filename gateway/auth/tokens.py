"""Local verification of access tokens: JWT RS256 against the published keys.

No RPC per request: the auth service's public keys are fetched once, cached
for ``auth.jwks_cache_ttl`` seconds and refetched early only when a token
names a ``kid`` the cache does not know (at most once per
``auth.jwks_min_refresh_interval``, so random kids cannot flood the auth
service). Revocations arrive through Redis (one EXISTS per request); if Redis
is down the check fails open for customer tokens, since access tokens are
short-lived, and closed for tokens carrying an admin scope (``ADMIN_SCOPES``):
a stolen admin token whose family was revoked must not work again because
Redis is unreachable.
"""

import base64
import json
import logging
import threading
import time

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from services.auth.schemas import (
    ACCESS_TOKEN_TYPE,
    ADMIN_SCOPES,
    SIGNING_ALGORITHM,
    revoked_access_key,
    revoked_family_key,
)

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192
_ADMIN = frozenset(ADMIN_SCOPES)


# Why a token was refused: agora_gateway_token_rejections_total's reason (bounded).
MALFORMED = "malformed"
WRONG_ALGORITHM = "wrong_algorithm"
WRONG_TYPE = "wrong_type"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
WRONG_AUDIENCE = "wrong_audience"
WRONG_ISSUER = "wrong_issuer"
INVALID_CLAIMS = "invalid_claims"
REVOKED = "revoked"
REVOCATION_UNCHECKED = "revocation_unchecked"


class TokenError(Exception):
    """The token is not acceptable; ``description`` says why (safe to show),
    ``reason`` is one of the bounded names above (for metrics)."""

    def __init__(self, description, reason=INVALID_CLAIMS):
        super().__init__(description)
        self.description = description
        self.reason = reason


class KeyCache:
    """The published signing keys by kid, refreshed from ``fetch()``."""

    def __init__(self, fetch, ttl, min_refresh_interval, clock=time.monotonic):
        self._fetch = fetch
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys = {}
        self._jwks = None
        self._fetched_at = None
        self._forced_at = None
        self._failed_at = None

    def _fresh(self, now):
        return self._fetched_at is not None and now - self._fetched_at < self._ttl

    def _refresh(self, force=False):
        if not force and self._fresh(self._clock()):
            return  # the common case, without taking the lock
        with self._lock:
            now = self._clock()
            if force:
                # An unknown kid: refetch at once, but at most once per interval.
                if self._forced_at is not None and now - self._forced_at < self._min_interval:
                    return
                self._forced_at = now
            else:
                if self._fresh(now):
                    return  # another thread refreshed while this one waited
                if self._failed_at is not None and now - self._failed_at < self._min_interval:
                    return  # the last attempt failed just now; serve what we have
            try:
                jwks = self._fetch()
            except Exception:
                self._failed_at = now
                if self._jwks is None:
                    raise
                # Keep serving the keys we have: rotation is rare, an outage is not.
                log.warning("could not refresh the signing keys; using the cached ones")
                return
            self._keys = {jwk["kid"]: RSAKey.import_key(jwk) for jwk in jwks["keys"]}
            self._jwks = jwks
            self._fetched_at = now
            self._failed_at = None

    def jwks(self):
        self._refresh()
        return self._jwks

    def get(self, kid):
        self._refresh()
        key = self._keys.get(kid)
        if key is None:
            self._refresh(force=True)
            key = self._keys.get(kid)
        return key


def _segment(value):
    padded = value + "=" * (-len(value) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def unverified_header(token):
    """The JOSE header of a compact JWS, or TokenError."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise TokenError("the token is malformed", MALFORMED)
    try:
        header = _segment(token.split(".", 1)[0])
    except (ValueError, UnicodeError):
        raise TokenError("the token is malformed", MALFORMED) from None
    if not isinstance(header, dict):
        raise TokenError("the token is malformed", MALFORMED)
    return header


class TokenVerifier:
    def __init__(self, keys, settings, revocations=None, clock=time.time):
        self.keys = keys
        self.issuer = settings["issuer"]
        self.audience = settings["audience"]
        self.leeway = settings["clock_skew"]
        self.revocations = revocations
        self._clock = clock
        self._redis_failing = False
        # Built once: the same checks for every token of every request.
        self._registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            jti={"essential": True},
            iat={"essential": True},
            exp={"essential": True},
        )

    def claims(self, token):
        """The verified claims of ``token``; TokenError when it is not acceptable."""
        header = unverified_header(token)
        # The algorithm is pinned: "none", HS256 (e.g. keyed with the public
        # key) or anything else never reaches signature verification.
        if header.get("alg") != SIGNING_ALGORITHM:
            raise TokenError("the token's algorithm is not accepted", WRONG_ALGORITHM)
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise TokenError("the token is not an access token", WRONG_TYPE)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token names no signing key", UNKNOWN_KEY)
        key = self.keys.get(kid)
        if key is None:
            raise TokenError("the token's signing key is unknown", UNKNOWN_KEY)
        try:
            decoded = jwt.decode(token, key, algorithms=[SIGNING_ALGORITHM])
        except (JoseError, ValueError):
            raise TokenError("the token's signature is invalid", BAD_SIGNATURE) from None
        claims = decoded.claims
        try:
            self._registry.validate(claims)
        except JoseError as exc:
            raise TokenError(*_claim_problem(exc)) from None
        for name in ("scope", "client_id"):
            if not isinstance(claims.get(name), str):
                raise TokenError(f"the token has no valid {name} claim", INVALID_CLAIMS)
        return claims

    def verify(self, token):
        claims = self.claims(token)
        if self.is_revoked(claims):
            raise TokenError("the token has been revoked", REVOKED)
        return claims

    def is_revoked(self, claims):
        if self.revocations is None:
            return False
        keys = [self.revocations.key(revoked_access_key(claims["jti"]))]
        if claims.get("sid"):
            keys.append(self.revocations.key(revoked_family_key(claims["sid"])))
        try:
            revoked = self.revocations.exists(*keys) > 0
        except Exception as exc:
            if not self._redis_failing:
                log.warning(
                    "revocation check skipped, Redis unreachable (%s): failing open "
                    "for customer tokens, refusing tokens with admin scopes",
                    exc.__class__.__name__,
                )
            self._redis_failing = True
            if _ADMIN & set(claims["scope"].split()):
                raise TokenError(
                    "revocations cannot be checked right now; tokens with admin scopes "
                    "are refused until they can, retry later",
                    REVOCATION_UNCHECKED,
                ) from None
            return False
        if self._redis_failing:
            log.warning("revocation check restored, Redis reachable again")
            self._redis_failing = False
        return revoked


def _claim_problem(exc):
    """(description, reason) of a claim that failed validation."""
    name = exc.__class__.__name__
    if name == "ExpiredTokenError":
        return "the token has expired", EXPIRED
    claim = getattr(exc, "claim", None)
    if claim == "aud":
        return "the token is not meant for this API", WRONG_AUDIENCE
    if claim == "iss":
        return "the token was not issued by this server", WRONG_ISSUER
    if claim:
        return f"the token's {claim} claim is invalid", INVALID_CLAIMS
    return "the token's claims are invalid", INVALID_CLAIMS
