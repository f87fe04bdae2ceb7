"""The auth service's pure rules: no brokers, no database."""

import datetime
import hashlib
import re
import uuid
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import KeySet

from services.auth import domain, key_encryption
from services.auth.schemas import (
    ACCESS_TOKEN_CLAIMS,
    ADMIN_SCOPES,
    CLIENT,
    CUSTOMER_SCOPES,
    JWKS,
    SCOPES,
    SIGNING_KEY_INFO,
    redirect_uri_allowed,
)
from services.chassis.errors import InvalidGrant, ValidationError
from services.chassis.schemas import validate

pytestmark = pytest.mark.unit

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
NOW = datetime.datetime(2024, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
SETTINGS = {
    "issuer": "https://auth.example.test",
    "audience": "agora-api",
    "access_token_ttl": 900,
    "clock_skew": 30,
}
ALL_SCOPES = list(SCOPES)
PASSPHRASE = "unit-test-key-passphrase"


def details_of(fn, *args):
    with pytest.raises(ValidationError) as caught:
        fn(*args)
    return caught.value.details


@pytest.fixture(scope="module")
def key_material():
    return domain.generate_signing_key(2048, PASSPHRASE)


# --- scope strings -------------------------------------------------------------


def test_parse_scope_splits_on_spaces_and_drops_duplicates():
    assert domain.parse_scope("profile  orders:read profile") == ["profile", "orders:read"]
    assert domain.parse_scope("") == []
    assert domain.parse_scope(None) is None


def test_format_scope_uses_the_order_of_SCOPES_and_drops_unknown_names():
    assert domain.format_scope(["users:admin", "nope", "profile", "orders:read"]) == (
        "profile orders:read users:admin"
    )
    assert domain.format_scope([]) == ""
    assert domain.format_scope(None) == ""


# --- granted scope -------------------------------------------------------------


def test_no_requested_scope_grants_everything_the_client_and_roles_allow():
    granted = domain.granted_scopes(None, ALL_SCOPES, ["customer"])
    assert granted == list(CUSTOMER_SCOPES)
    assert domain.granted_scopes(None, ALL_SCOPES, ["admin"]) == list(
        CUSTOMER_SCOPES + ADMIN_SCOPES
    )


def test_granted_scope_is_requested_and_client_and_roles():
    client = ["profile", "orders:read", "catalog:write"]
    requested = "orders:read catalog:write orders:write"
    # orders:write is not the client's, catalog:write not a customer's.
    assert domain.granted_scopes(requested, client, ["customer"]) == ["orders:read"]
    assert domain.granted_scopes(requested, client, ["admin"]) == ["orders:read", "catalog:write"]


def test_unknown_roles_and_unknown_scopes_grant_nothing():
    assert domain.granted_scopes(None, ALL_SCOPES, ["superuser"]) == []
    assert domain.granted_scopes(None, ALL_SCOPES, []) == []
    assert domain.granted_scopes("root everything", ALL_SCOPES, ["admin"]) == []


def test_roles_merge_without_duplicates():
    both = domain.granted_scopes(None, ALL_SCOPES, ["customer", "admin", "customer"])
    assert both == list(CUSTOMER_SCOPES + ADMIN_SCOPES)


def test_client_credentials_ignore_roles():
    client = ["catalog:write", "inventory:write"]
    assert domain.granted_scopes(None, client, None, user_present=False) == client
    assert domain.granted_scopes(
        "inventory:write users:admin", client, None, user_present=False
    ) == ["inventory:write"]


def test_granted_scope_is_in_stable_order_whatever_the_request_order():
    granted = domain.granted_scopes("orders:write profile", ALL_SCOPES, ["customer"])
    assert granted == ["profile", "orders:write"]


def test_the_password_grant_never_carries_an_admin_scope():
    assert domain.grant_client_scopes(ALL_SCOPES, "password") == list(CUSTOMER_SCOPES)
    for grant in ("authorization_code", "refresh_token", "client_credentials"):
        assert domain.grant_client_scopes(ALL_SCOPES, grant) == list(ALL_SCOPES)
    client = domain.grant_client_scopes(ALL_SCOPES, "password")
    assert domain.granted_scopes("profile users:admin", client, ["admin"]) == ["profile"]


# --- PKCE and redirect_uri at redemption ----------------------------------------


def test_s256_challenge_is_the_rfc_7636_transform():
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag"
    assert domain.s256_challenge(verifier) == create_s256_code_challenge(verifier)


def test_code_matches_needs_the_verifier_and_the_same_redirect_uri():
    verifier = "v" * 43
    code = SimpleNamespace(
        code_challenge=domain.s256_challenge(verifier),
        code_challenge_method="S256",
        redirect_uri="https://app.example/cb",
    )
    assert domain.code_matches(code, verifier, "https://app.example/cb")
    assert not domain.code_matches(code, "w" * 43, "https://app.example/cb")
    assert not domain.code_matches(code, verifier, "https://app.example/other")
    assert not domain.code_matches(code, verifier, None)
    no_uri = SimpleNamespace(**{**vars(code), "redirect_uri": None})
    assert domain.code_matches(no_uri, verifier, None)
    plain = SimpleNamespace(**{**vars(code), "code_challenge_method": "plain"})
    assert not domain.code_matches(plain, verifier, "https://app.example/cb")


# --- rotation scope ------------------------------------------------------------


def test_rotation_without_scope_keeps_the_original():
    refresh, access = domain.rotation_scopes(None, "profile orders:read", ALL_SCOPES, ["customer"])
    assert refresh == access == ["profile", "orders:read"]


def test_rotation_may_narrow_the_access_token_but_the_refresh_token_keeps_its_grant():
    refresh, access = domain.rotation_scopes(
        "orders:read", "profile orders:read", ALL_SCOPES, ["customer"]
    )
    assert refresh == ["profile", "orders:read"]
    assert access == ["orders:read"]


def test_rotation_scope_beyond_the_original_grant_is_refused():
    with pytest.raises(InvalidGrant) as caught:
        domain.rotation_scopes("profile users:admin", "profile", ALL_SCOPES, ["admin"])
    assert caught.value.message == "scope exceeds the original grant"


def test_a_demoted_user_loses_scopes_at_rotation_for_good():
    original = "profile catalog:write users:admin"
    refresh, access = domain.rotation_scopes(None, original, ALL_SCOPES, ["customer"])
    assert refresh == access == ["profile"]


def test_a_client_that_lost_a_scope_loses_it_at_rotation():
    refresh, _ = domain.rotation_scopes(None, "profile orders:read", ["profile"], ["customer"])
    assert refresh == ["profile"]


# --- opaque tokens ---------------------------------------------------------------


def test_tokens_are_256_bit_url_safe_and_unique():
    tokens = {domain.new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_token_hash_is_sha256_hex():
    assert domain.token_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(domain.token_hash(domain.new_token())) == 64


def test_refresh_expiry_new_family_and_absolute_lifetime():
    ttl = 3600
    assert domain.refresh_expiry(NOW, ttl) == NOW + datetime.timedelta(seconds=ttl)
    parent_expiry = NOW + datetime.timedelta(seconds=100)
    # A rotation never extends the family's lifetime.
    assert domain.refresh_expiry(NOW, ttl, parent_expiry) == parent_expiry


def test_code_expiry():
    assert domain.code_expiry(NOW, 60) == NOW + datetime.timedelta(seconds=60)


@pytest.mark.parametrize(
    "used, revoked, expires_in, status",
    [
        (False, False, 10, "active"),
        (True, False, 10, "used"),
        (False, False, 0, "expired"),
        (False, False, -10, "expired"),
        (True, False, -10, "used"),
        (True, True, 10, "revoked"),
        (False, True, -10, "revoked"),
    ],
)
def test_refresh_status(used, revoked, expires_in, status):
    token = SimpleNamespace(
        used_at=NOW if used else None,
        revoked_at=NOW if revoked else None,
        expires_at=NOW + datetime.timedelta(seconds=expires_in),
    )
    assert domain.refresh_status(token, NOW) == status


# --- revocation lifetimes ------------------------------------------------------


def test_family_denylist_outlives_the_newest_access_token():
    assert domain.family_denylist_ttl(900, 30) == 930


def test_access_revocation_ttl_covers_expiry_and_skew():
    now = int(NOW.timestamp())
    assert domain.access_revocation_ttl(now + 900, NOW, 30) == 930
    assert domain.access_revocation_ttl(now - 10, NOW, 30) == 20
    assert domain.access_revocation_ttl(now - 30, NOW, 30) == 0
    assert domain.access_revocation_ttl(now - 3600, NOW, 30) == 0


# --- key publication -------------------------------------------------------------


def test_a_current_key_is_published():
    assert domain.is_published(None, NOW, 900, 30)


def test_a_retired_key_stays_published_while_its_tokens_may_be_accepted():
    window = datetime.timedelta(seconds=900 + 30)
    assert domain.is_published(NOW, NOW, 900, 30)
    assert domain.is_published(NOW - window + datetime.timedelta(seconds=1), NOW, 900, 30)
    assert not domain.is_published(NOW - window, NOW, 900, 30)
    assert not domain.is_published(NOW - window - datetime.timedelta(days=1), NOW, 900, 30)


def test_published_since_is_the_same_rule_as_a_bound():
    since = domain.published_since(NOW, 900, 30)
    assert since == NOW - datetime.timedelta(seconds=930)
    for offset in (-1, 0, 1):
        retired_at = since + datetime.timedelta(seconds=offset)
        assert domain.is_published(retired_at, NOW, 900, 30) == (retired_at > since)


def test_signing_key_info(key_material):
    record = SimpleNamespace(kid=key_material.kid, created_at=NOW, retired_at=None)
    info = domain.signing_key_info(record, NOW, key_material.kid, 900, 30)
    validate(SIGNING_KEY_INFO, info)
    assert info == {
        "kid": key_material.kid,
        "created_at": "2024-06-01T12:00:00.000000Z",
        "retired_at": None,
        "published": True,
        "current": True,
    }
    old = SimpleNamespace(kid="old", created_at=NOW, retired_at=NOW - datetime.timedelta(hours=1))
    info = domain.signing_key_info(old, NOW, key_material.kid, 900, 30)
    assert info["published"] is False and info["current"] is False
    assert info["retired_at"] == "2024-06-01T11:00:00.000000Z"


# --- signing keys ----------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint(key_material):
    assert key_material.kid == key_material.key.thumbprint()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key_material.kid)


def test_public_jwk_is_public_and_pinned(key_material):
    jwk = key_material.public_jwk
    validate(JWKS, {"keys": [jwk]})
    assert jwk["kid"] == key_material.kid
    assert jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


def test_private_key_is_stored_encrypted(key_material):
    pem = key_material.private_pem
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem.encode(), password=None)
    with pytest.raises(ValueError):
        domain.load_signing_key(pem, "not-the-passphrase")
    loaded, upgraded = domain.load_signing_key(pem, PASSPHRASE)
    assert loaded.thumbprint() == key_material.kid
    assert upgraded is None  # already stored with the strong KDF


def test_private_key_uses_pbes2_with_scrypt(key_material):
    # BestAvailableEncryption writes PBKDF2-HMAC-SHA256 at 2,048 rounds.
    found = key_encryption.key_derivation(key_material.private_pem)
    assert found == key_encryption.KeyDerivation("scrypt", key_encryption.SCRYPT_N)
    assert key_encryption.SCRYPT_N >= 2**15
    assert not key_encryption.is_weak(key_material.private_pem)


def test_a_key_stored_with_the_old_kdf_loads_and_comes_back_re_encrypted(key_material):
    private = serialization.load_pem_private_key(
        key_material.private_pem.encode(), password=PASSPHRASE.encode()
    )
    old_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode("ascii")
    assert key_encryption.key_derivation(old_pem).name == "pbkdf2"
    assert key_encryption.is_weak(old_pem)

    loaded, upgraded = domain.load_signing_key(old_pem, PASSPHRASE)

    assert loaded.thumbprint() == key_material.kid
    assert key_encryption.key_derivation(upgraded).name == "scrypt"
    again, none = domain.load_signing_key(upgraded, PASSPHRASE)
    assert again.thumbprint() == key_material.kid and none is None


# --- access token claims -----------------------------------------------------------


def test_claims_for_a_user():
    user_id, family_id, jti = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    claims = domain.access_token_claims(
        SETTINGS, "agora-web", user_id, "profile", family_id, NOW, jti=jti
    )
    validate(ACCESS_TOKEN_CLAIMS, claims)
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": SETTINGS["issuer"],
        "sub": str(user_id),
        "aud": "agora-api",
        "exp": iat + 900,
        "iat": iat,
        "nbf": iat,
        "jti": str(jti),
        "scope": "profile",
        "client_id": "agora-web",
        "sid": str(family_id),
    }


def test_claims_for_a_client_acting_for_itself():
    claims = domain.access_token_claims(
        SETTINGS, "agora-integration", None, "catalog:write", None, NOW
    )
    validate(ACCESS_TOKEN_CLAIMS, claims)
    assert claims["sub"] == "agora-integration"
    assert "sid" not in claims
    assert uuid.UUID(claims["jti"]).version == 4


def test_every_token_has_its_own_jti():
    jtis = {
        domain.access_token_claims(SETTINGS, "c", None, "", None, NOW)["jti"] for _ in range(50)
    }
    assert len(jtis) == 50


def test_signed_access_token_verifies_against_the_published_key(key_material):
    claims = domain.access_token_claims(
        SETTINGS, "agora-web", uuid.uuid4(), "profile", uuid.uuid4(), NOW
    )
    token = domain.sign_access_token(key_material.key, key_material.kid, claims)
    decoded = jwt.decode(
        token, KeySet.import_key_set({"keys": [key_material.public_jwk]}), algorithms=["RS256"]
    )
    assert decoded.header == {"alg": "RS256", "kid": key_material.kid, "typ": "at+jwt"}
    assert decoded.claims == claims


def test_token_response():
    assert domain.token_response("a", 900, "profile") == {
        "access_token": "a",
        "token_type": "Bearer",
        "expires_in": 900,
        "scope": "profile",
    }
    assert domain.token_response("a", 900, "", "r")["refresh_token"] == "r"


# --- requests ------------------------------------------------------------------------


def issue(**overrides):
    request = {
        "client_id": "agora-web",
        "grant_type": "password",
        "scope": None,
        "user": {"id": str(uuid.uuid4())},
        "include_refresh_token": True,
    }
    request.update(overrides)
    return request


def test_issue_request_checks_user_against_grant():
    assert domain.issue_request(issue())
    assert domain.issue_request(issue(grant_type="client_credentials", user=None))
    assert details_of(domain.issue_request, issue(user=None)) == {
        "user": "is required for password"
    }
    assert set(details_of(domain.issue_request, issue(grant_type="client_credentials"))) == {"user"}
    family = issue(grant_type="client_credentials", user=None, family_id=str(uuid.uuid4()))
    assert set(details_of(domain.issue_request, family)) == {"family_id"}
    assert set(details_of(domain.issue_request, issue(extra=1, family_id="x"))) == {
        "extra",
        "family_id",
    }


def test_check_grant():
    client = SimpleNamespace(grant_types=["password"])
    domain.check_grant(client, "password")
    assert details_of(domain.check_grant, client, "refresh_token") == {
        "grant_type": "refresh_token is not allowed for this client"
    }
    assert details_of(domain.check_grant, None, "password") == {"client_id": "unknown client"}


def test_code_redirect_uri():
    one = SimpleNamespace(redirect_uris=["https://app.example/cb"])
    two = SimpleNamespace(redirect_uris=["https://app.example/cb", "https://app.example/b"])
    assert domain.code_redirect_uri(one, None) is None
    assert domain.code_redirect_uri(two, "https://app.example/b") == "https://app.example/b"
    assert set(details_of(domain.code_redirect_uri, two, None)) == {"redirect_uri"}
    assert set(details_of(domain.code_redirect_uri, one, "https://evil.example/cb")) == {
        "redirect_uri"
    }


def test_a_registered_loopback_redirect_admits_any_port():
    registered = ["http://127.0.0.1/callback", "http://[::1]/cb", "https://app.example/cb"]
    allowed = redirect_uri_allowed
    assert allowed(registered, "http://127.0.0.1/callback")
    assert allowed(registered, "http://127.0.0.1:53682/callback")
    assert allowed(registered, "http://[::1]:8000/cb")
    assert allowed(registered, "https://app.example/cb")
    for refused in (
        "http://127.0.0.1:53682/other",
        "http://127.0.0.1:53682/callback?x=1",
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:99999/callback",
        "http://127.0.0.1:x/callback",
        "http://127.0.0.1:53682",
        "http://localhost:53682/callback",
        "https://127.0.0.1:53682/callback",
        "http://127.0.0.1.evil.example:80/callback",
        "https://app.example:444/cb",
        None,
    ):
        assert not allowed(registered, refused), refused
    # Only a URI registered without a port is a loopback pattern.
    assert not allowed(["http://127.0.0.1:8080/cb"], "http://127.0.0.1:9090/cb")
    client = SimpleNamespace(redirect_uris=registered)
    uri = "http://127.0.0.1:53682/callback"
    assert domain.code_redirect_uri(client, uri) == uri


# --- clients -------------------------------------------------------------------------


def client_payload(**overrides):
    payload = {
        "client_id": "partner-1",
        "name": "Partner",
        "public": False,
        "grant_types": ["client_credentials"],
        "scopes": ["inventory:write", "catalog:write"],
    }
    payload.update(overrides)
    return payload


def test_confidential_client_without_secret_gets_one_generated():
    fields, secret, generated = domain.new_client(client_payload())
    assert generated and len(secret) >= 43
    assert fields["scopes"] == ["catalog:write", "inventory:write"]
    assert fields["redirect_uris"] == []
    fields, secret, generated = domain.new_client(client_payload(secret="s" * 20))
    assert not generated and secret == "s" * 20


def test_public_clients_have_no_secret_and_no_client_credentials():
    public = client_payload(public=True, grant_types=["authorization_code"])
    fields, secret, generated = domain.new_client(public)
    assert secret is None and not generated and fields["public"] is True
    assert details_of(domain.new_client, {**public, "secret": "s" * 20}) == {
        "secret": "not allowed for a public client"
    }
    assert set(details_of(domain.new_client, client_payload(public=True))) == {"grant_types"}


def test_new_client_validates_the_contract():
    bad = client_payload(client_id="has space", scopes=["root"], redirect_uris=["http://x.io/"])
    assert set(details_of(domain.new_client, bad)) == {"client_id", "scopes.0", "redirect_uris.0"}


def stored_client(**overrides):
    values = {
        "client_id": "partner-1",
        "name": "Partner",
        "public": False,
        "secret_hash": "$argon2id$...",
        "grant_types": ["client_credentials"],
        "scopes": ["inventory:write", "catalog:write"],
        "redirect_uris": [],
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_client_changes():
    fields, secret = domain.client_changes(stored_client(), {"name": "New", "secret": "t" * 16})
    assert fields == {"name": "New"} and secret == "t" * 16
    public = {"public": True, "grant_types": ["authorization_code"]}
    fields, secret = domain.client_changes(stored_client(), public)
    assert fields["secret_hash"] is None and secret is None
    assert set(details_of(domain.client_changes, stored_client(), {"public": True})) == {
        "grant_types"
    }
    was_public = stored_client(public=True, secret_hash=None, grant_types=["password"])
    assert set(details_of(domain.client_changes, was_public, {"public": False})) == {"secret"}
    assert set(details_of(domain.client_changes, was_public, {"secret": "t" * 16})) == {"secret"}
    assert details_of(domain.client_changes, stored_client(), {}) == {"body": "must not be empty"}


def test_serialize_client_hides_the_secret():
    view = domain.serialize_client(stored_client())
    validate(CLIENT, view)
    assert "secret_hash" not in view and "secret" not in view
    assert view["scopes"] == ["catalog:write", "inventory:write"]


# --- client secrets --------------------------------------------------------------------


def test_client_secrets_hash_and_verify():
    secrets = domain.ClientSecrets(**CHEAP)
    stored = secrets.hash("a client secret value")
    assert stored.startswith("$argon2id$")
    assert secrets.verify(stored, "a client secret value")
    assert not secrets.verify(stored, "another secret value")
    assert not secrets.verify(stored, None)
    assert not secrets.verify(stored, "x" * 1000)
    assert not secrets.verify(None, "a client secret value")
    assert not secrets.verify("not a hash", "a client secret value")
    assert secrets.verify_dummy("anything") is False


def test_client_secrets_offload_and_rehash():
    calls = []

    def offload(fn, *args):
        calls.append(fn.__name__)
        return fn(*args)

    secrets = domain.ClientSecrets.from_config(CHEAP, offload=offload)
    stored = secrets.hash("a client secret value")
    secrets.verify(stored, "a client secret value")
    secrets.verify_dummy("a client secret value")
    assert calls == ["hash", "hash", "verify", "verify"]
    stronger = domain.ClientSecrets(time_cost=2, memory_cost=8, parallelism=1)
    assert stronger.needs_rehash(stored) and not secrets.needs_rehash(stored)
