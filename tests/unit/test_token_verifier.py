"""Access-token verification at the gateway: every forged or stale token is refused."""

import base64
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.auth.tokens import KeyCache, TokenError, TokenVerifier

pytestmark = pytest.mark.unit

ISSUER = "http://127.0.0.1:8080"
AUDIENCE = "agora-api"
SETTINGS = {"issuer": ISSUER, "audience": AUDIENCE, "clock_skew": 30}

KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "key-2"})


def public_jwks(*keys):
    return {
        "keys": [
            {**key.as_dict(private=False), "kid": key.kid, "use": "sig", "alg": "RS256"}
            for key in keys
        ]
    }


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides):
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "sub": str(uuid.uuid4()),
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": str(uuid.uuid4()),
        "scope": "profile orders:read",
        "client_id": "agora-web",
        "sid": str(uuid.uuid4()),
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sign(payload, key=KEY, kid=None, typ="at+jwt"):
    header = {"alg": "RS256", "kid": kid or key.kid, "typ": typ}
    return jwt.encode(header, payload, key)


class FetchCounter:
    def __init__(self, jwks):
        self.jwks = jwks
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.jwks


@pytest.fixture
def fetch():
    return FetchCounter(public_jwks(KEY))


@pytest.fixture
def verifier(fetch):
    keys = KeyCache(fetch, ttl=300, min_refresh_interval=5)
    return TokenVerifier(keys, SETTINGS)


def refused(verifier, token, reason):
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    assert reason in caught.value.description
    return caught.value


def test_a_well_formed_token_is_accepted(verifier):
    payload = claims()
    assert verifier.verify(sign(payload)) == payload


def test_alg_none_is_refused(verifier):
    token = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': 'key-1'})}.{b64(claims())}."
    refused(verifier, token, "algorithm")


def test_hs256_signed_with_the_public_key_is_refused(verifier):
    # The classic confusion attack: the public key (known to all) as an HMAC secret.
    public_pem = KEY.as_pem(private=False)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'key-1'})}.{b64(claims())}"
    mac = hmac.HMAC(public_pem, hashes.SHA256())
    mac.update(signing_input.encode())
    refused(verifier, f"{signing_input}.{b64(mac.finalize())}", "algorithm")


def test_wrong_audience_is_refused(verifier):
    refused(verifier, sign(claims(aud="another-api")), "not meant for this API")


def test_wrong_issuer_is_refused(verifier):
    refused(verifier, sign(claims(iss="https://evil.example")), "not issued by this server")


def test_expired_is_refused_beyond_the_clock_skew(verifier):
    now = int(time.time())
    refused(verifier, sign(claims(iat=now - 1000, nbf=now - 1000, exp=now - 31)), "expired")
    # Within the allowed skew it still passes.
    assert verifier.verify(sign(claims(iat=now - 1000, nbf=now - 1000, exp=now - 5)))


def test_not_yet_valid_is_refused(verifier):
    later = int(time.time()) + 600
    refused(verifier, sign(claims(iat=later, nbf=later, exp=later + 900)), "claim is invalid")


def test_tampered_payload_is_refused(verifier):
    header, _, signature = sign(claims()).split(".")
    forged = claims(scope="profile users:admin catalog:write")
    refused(verifier, f"{header}.{b64(forged)}.{signature}", "signature")


def test_signed_by_a_foreign_key_under_a_known_kid_is_refused(verifier):
    refused(verifier, sign(claims(), key=OTHER_KEY, kid="key-1"), "signature")


def test_unknown_kid_is_refused_after_one_refetch(fetch):
    clock = [1000.0]
    keys = KeyCache(fetch, ttl=300, min_refresh_interval=5, clock=lambda: clock[0])
    verifier = TokenVerifier(keys, SETTINGS)
    assert verifier.verify(sign(claims()))
    assert fetch.calls == 1
    token = sign(claims(), key=OTHER_KEY)
    refused(verifier, token, "unknown")
    assert fetch.calls == 2  # one refetch for the unknown kid, at once
    # A flood of unknown kids does not turn into a flood of fetches.
    for _ in range(20):
        clock[0] += 0.1
        refused(verifier, token, "unknown")
    assert fetch.calls == 2
    clock[0] += 5
    refused(verifier, token, "unknown")
    assert fetch.calls == 3


def test_a_rotated_key_is_picked_up_on_first_sight(fetch):
    clock = [1000.0]
    keys = KeyCache(fetch, ttl=300, min_refresh_interval=5, clock=lambda: clock[0])
    verifier = TokenVerifier(keys, SETTINGS)
    assert verifier.verify(sign(claims()))
    fetch.jwks = public_jwks(KEY, OTHER_KEY)
    assert verifier.verify(sign(claims(), key=OTHER_KEY))
    assert fetch.calls == 2


def test_a_jwks_outage_keeps_the_cached_keys(fetch):
    clock = [1000.0]
    keys = KeyCache(fetch, ttl=300, min_refresh_interval=5, clock=lambda: clock[0])
    verifier = TokenVerifier(keys, SETTINGS)
    assert verifier.verify(sign(claims()))

    def down():
        raise ConnectionError("auth is down")

    keys._fetch = down
    clock[0] += 301  # the cache is stale now
    assert verifier.verify(sign(claims()))


def test_wrong_type_missing_claims_and_garbage_are_refused(verifier):
    refused(verifier, sign(claims(), typ="JWT"), "not an access token")
    refused(verifier, sign(claims(jti=None)), "jti")
    refused(verifier, sign(claims(sub=None)), "sub")
    refused(verifier, sign(claims(exp=None)), "exp")
    refused(verifier, sign(claims(scope=None)), "scope")
    refused(verifier, sign(claims(client_id=None)), "client_id")
    refused(verifier, sign(claims(exp="tomorrow")), "exp")
    refused(verifier, "not-a-token", "malformed")
    refused(verifier, "a.b.c", "malformed")
    refused(verifier, "x" * 9000, "malformed")
    no_kid = f"{b64({'alg': 'RS256', 'typ': 'at+jwt'})}.{b64(claims())}.sig"
    refused(verifier, no_kid, "no signing key")


def test_jwks_document_has_public_parts_only(fetch):
    keys = KeyCache(fetch, ttl=300, min_refresh_interval=5)
    (jwk,) = keys.jwks()["keys"]
    assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
    assert jwk["kid"] == "key-1"


def test_pem_helper_is_really_public():
    # Guard for the HS256 test above: it must use the public key only.
    pem = KEY.as_pem(private=False)
    assert b"PUBLIC KEY" in pem
    serialization.load_pem_public_key(pem)
