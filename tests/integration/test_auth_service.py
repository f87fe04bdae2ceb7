"""The auth service in a real container: PostgreSQL, Redis and RabbitMQ."""

import copy
import datetime
import logging
import time
import uuid

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import text

from services.auth import key_encryption
from services.auth.schemas import (
    ACCESS_TOKEN_CLAIMS,
    ADMIN_SCOPES,
    AUTHORIZATION_CODE,
    CLIENT,
    CUSTOMER_SCOPES,
    JWKS,
    REFRESH_TOKEN_INFO,
    SCOPES,
    SIGNING_KEY_INFO,
    TOKEN_RESPONSE,
    revoked_access_key,
    revoked_family_key,
)
from services.auth.service import AuthService
from services.chassis.errors import (
    Conflict,
    InvalidGrant,
    NotFound,
    ValidationError,
)
from services.chassis.messaging import event_handler
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.users.service import UsersService

pytestmark = pytest.mark.integration

VERIFIER = "dBjftJeZ4CVP-mJ92K9qWIHBcXkzDZ1E6UW0KdAxzbw"
# Computed by authlib, not by the code under test.
CHALLENGE = create_s256_code_challenge(VERIFIER)
REDIRECT_URI = "http://localhost:3000/callback"

# The users service of the running test: the auth service asks it for roles.
_USERS = {}


@pytest.fixture(autouse=True)
def users(start_service):
    container = start_service(UsersService)
    _USERS["container"] = container
    yield container
    _USERS.clear()


@pytest.fixture
def auth(start_service, users):
    return start_service(AuthService)


@pytest.fixture
def auth_config(service_config):
    return service_config("auth")


def settings_of(container):
    return container.config["AGORA"]["auth"]


def engine_of(container):
    return next(d for d in container.dependencies if d.attr_name == "db").engine


def sql(container, statement, **params):
    with engine_of(container).begin() as conn:
        return conn.execute(text(statement), params)


def unique_id(tag="client"):
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def new_client(container, **overrides):
    payload = {
        "client_id": unique_id("web"),
        "name": "Web app",
        "public": True,
        "grant_types": ["authorization_code", "password", "refresh_token"],
        "scopes": list(SCOPES),
        "redirect_uris": [REDIRECT_URI],
        **overrides,
    }
    return call(container, "create_client", payload)


def service_client(container, **overrides):
    overrides.setdefault("client_id", unique_id("svc"))
    overrides.setdefault("public", False)
    overrides.setdefault("grant_types", ["client_credentials"])
    overrides.setdefault("scopes", ["catalog:write", "inventory:write"])
    overrides.setdefault("redirect_uris", [])
    return new_client(container, **overrides)


def user_ref(*roles):
    """A registered user with ``roles`` (customer by default), as a grant names
    them: ``{"id"}`` only."""
    users = _USERS["container"]
    email = f"auth-{uuid.uuid4().hex[:12]}@example.com"
    user = call(users, "register", {"email": email, "password": "correct horse battery"})
    if roles and list(roles) != ["customer"]:
        call(users, "set_roles", user["id"], list(roles))
    return {"id": user["id"]}


def set_roles(user, *roles):
    call(_USERS["container"], "set_roles", user["id"], list(roles))


def issue(container, client, user=None, **overrides):
    request = {
        "client_id": client["client_id"],
        "grant_type": "password",
        "scope": None,
        "user": user or user_ref(),
        "include_refresh_token": True,
        **overrides,
    }
    return call(container, "issue_token", request)


def rotate(container, client, refresh_token, scope=None):
    request = {"client_id": client["client_id"], "refresh_token": refresh_token, "scope": scope}
    return call(container, "rotate_refresh_token", request)


def redeem(container, client, code, verifier=VERIFIER, redirect_uri=REDIRECT_URI):
    request = {
        "client_id": client["client_id"],
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
    }
    return call(container, "redeem_authorization_code", request)


def decode(container, token):
    jwks = call(container, "jwks")
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])


def new_code(container, client, user=None, **overrides):
    request = {
        "client_id": client["client_id"],
        "user": user or user_ref(),
        "redirect_uri": REDIRECT_URI,
        "scope": None,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "nonce": None,
        **overrides,
    }
    return call(container, "create_authorization_code", request)


def family_rows(container, family_id):
    return sql(
        container,
        "SELECT revoked_at, revoked_reason, used_at FROM refresh_tokens "
        "WHERE family_id = :family ORDER BY issued_at",
        family=family_id,
    ).all()


class Listener:
    name = "auth_test_listener"
    received = []

    @event_handler("auth", "client_created")
    def on_client_created(self, envelope):
        Listener.received.append(envelope)

    @event_handler("auth", "token_family_revoked")
    def on_family_revoked(self, envelope):
        Listener.received.append(envelope)

    @event_handler("auth", "signing_key_rotated")
    def on_key_rotated(self, envelope):
        Listener.received.append(envelope)


@pytest.fixture
def listener(container_factory, service_config):
    Listener.received = []
    container = container_factory(Listener, service_config(Listener.name))
    container.start()
    return container


def waiting_for(listener, method, **data):
    """Wait until ``method`` has handled an event whose data contains ``data``."""

    def matches(worker_ctx, result, exc_info):
        return data.items() <= worker_ctx.args[0]["data"].items()

    return entrypoint_waiter(listener, method, callback=matches, timeout=10)


def received(event_type, **data):
    return [
        e
        for e in Listener.received
        if e["type"] == f"auth.{event_type}" and data.items() <= e["data"].items()
    ]


# --- clients -----------------------------------------------------------------------


def test_create_and_get_a_public_client(auth):
    client = new_client(auth, name="Browser")
    validate(CLIENT, client)
    assert client["public"] is True and client["name"] == "Browser"
    assert client["scopes"] == list(SCOPES)
    assert client["redirect_uris"] == [REDIRECT_URI]
    assert client["created_at"] == client["updated_at"] and client["created_at"].endswith("Z")
    assert "client_secret" not in client
    assert call(auth, "get_client", client["client_id"]) == client
    assert call(auth, "verify_client_secret", client["client_id"], "anything at all") is False


def test_a_confidential_client_gets_a_generated_secret_once(auth, listener):
    client_id = unique_id("svc")
    with waiting_for(listener, "on_client_created", client_id=client_id):
        created = service_client(auth, client_id=client_id)
    secret = created.pop("client_secret")
    validate(CLIENT, created)
    assert len(secret) >= 43
    assert call(auth, "get_client", client_id) == created
    assert call(auth, "verify_client_secret", client_id, secret) is True
    assert call(auth, "verify_client_secret", client_id, secret + "x") is False
    (event,) = received("client_created", client_id=client_id)
    assert event["data"] == {
        "client_id": client_id,
        "public": False,
        "grant_types": ["client_credentials"],
        "scopes": ["catalog:write", "inventory:write"],
    }
    stored = sql(
        auth, "SELECT secret_hash FROM oauth_clients WHERE client_id = :c", c=client_id
    ).scalar()
    assert stored.startswith("$argon2id$") and secret not in stored


def test_a_confidential_client_with_its_own_secret(auth):
    created = service_client(auth, secret="a secret of my own choosing")
    assert "client_secret" not in created
    client_id = created["client_id"]
    assert call(auth, "verify_client_secret", client_id, "a secret of my own choosing")


def test_verify_client_secret_for_unknown_clients_and_bad_input(auth):
    created = service_client(auth)
    for client_id, secret in [
        (unique_id("ghost"), "whatever secret"),
        (None, "whatever secret"),
        (created["client_id"], None),
        (created["client_id"], 12345),
        (created["client_id"], "x" * 5000),
    ]:
        assert call(auth, "verify_client_secret", client_id, secret) is False


def test_client_validation_and_conflicts(auth):
    created = new_client(auth)
    with pytest.raises(Conflict) as caught:
        new_client(auth, client_id=created["client_id"])
    assert caught.value.details == {"client_id": "already exists"}
    with pytest.raises(ValidationError) as caught:
        new_client(auth, secret="a secret for a public client")
    assert caught.value.details == {"secret": "not allowed for a public client"}
    with pytest.raises(ValidationError) as caught:
        new_client(auth, grant_types=["client_credentials"])
    assert set(caught.value.details) == {"grant_types"}
    with pytest.raises(ValidationError) as caught:
        new_client(auth, client_id="bad id", scopes=["root"], extra=True)
    assert set(caught.value.details) == {"client_id", "scopes.0", "extra"}
    with pytest.raises(NotFound):
        call(auth, "get_client", unique_id("ghost"))


def test_concurrent_creates_of_one_client_yield_one(auth, auth_config, service_config):
    payload = {
        "client_id": unique_id("race"),
        "name": "Race",
        "public": True,
        "grant_types": ["password"],
        "scopes": ["profile"],
    }
    with ClusterRpcProxy(service_config("tests"), timeout=10) as cluster:
        replies = [cluster.auth.create_client.call_async(payload) for _ in range(5)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["client_id"])
            except Conflict:
                outcomes.append("conflict")
    assert outcomes.count("conflict") == 4


def test_update_client(auth):
    created = service_client(auth, secret="the first secret value")
    client_id = created["client_id"]
    updated = call(
        auth,
        "update_client",
        client_id,
        {"name": "Renamed", "scopes": ["inventory:write"], "secret": "the second secret value"},
    )
    validate(CLIENT, updated)
    assert updated["name"] == "Renamed" and updated["scopes"] == ["inventory:write"]
    assert updated["updated_at"] > created["updated_at"]
    assert call(auth, "get_client", client_id) == updated
    assert call(auth, "verify_client_secret", client_id, "the second secret value")
    assert not call(auth, "verify_client_secret", client_id, "the first secret value")

    # Becoming public drops the secret.
    call(auth, "update_client", client_id, {"public": True, "grant_types": ["password"]})
    assert not call(auth, "verify_client_secret", client_id, "the second secret value")
    with pytest.raises(ValidationError) as caught:
        call(auth, "update_client", client_id, {"public": False})
    assert set(caught.value.details) == {"secret"}
    with pytest.raises(ValidationError):
        call(auth, "update_client", client_id, {})
    with pytest.raises(NotFound):
        call(auth, "update_client", unique_id("ghost"), {"name": "x"})


# --- issue_token -------------------------------------------------------------------------


def test_issued_access_token_header_and_claims(auth):
    client = new_client(auth)
    user = user_ref("customer")
    before = int(time.time())
    response = issue(auth, client, user, scope="orders:read profile users:admin")
    after = int(time.time())
    validate(TOKEN_RESPONSE, response)
    settings = settings_of(auth)
    assert response["token_type"] == "Bearer"
    assert response["expires_in"] == settings["access_token_ttl"] == 900
    # users:admin is not a customer's: left out.
    assert response["scope"] == "profile orders:read"

    token = decode(auth, response["access_token"])
    current = next(k for k in call(auth, "signing_keys") if k["current"])
    assert token.header == {"alg": "RS256", "kid": current["kid"], "typ": "at+jwt"}
    claims = token.claims
    validate(ACCESS_TOKEN_CLAIMS, claims)
    assert set(claims) == {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "scope",
        "client_id",
        "sid",
    }
    assert claims["iss"] == settings["issuer"]
    assert claims["aud"] == settings["audience"]
    assert claims["sub"] == user["id"]
    assert claims["client_id"] == client["client_id"]
    assert claims["scope"] == "profile orders:read"
    assert before <= claims["iat"] == claims["nbf"] <= after
    assert claims["exp"] == claims["iat"] + 900
    assert uuid.UUID(claims["jti"]).version == 4

    info = call(auth, "get_refresh_token", response["refresh_token"])
    validate(REFRESH_TOKEN_INFO, info)
    assert info["family_id"] == claims["sid"]
    assert info["status"] == "active"
    assert info["user_id"] == user["id"] and info["client_id"] == client["client_id"]
    assert info["scope"] == "profile orders:read"
    assert info["expires_at"] - info["issued_at"] == settings["refresh_token_ttl"]
    stored = sql(
        auth, "SELECT token_hash FROM refresh_tokens WHERE family_id = :f", f=info["family_id"]
    ).scalar()
    assert stored != response["refresh_token"] and len(stored) == 64


def test_no_requested_scope_grants_all_allowed(auth):
    client = new_client(auth, scopes=["profile", "orders:read", "catalog:write"])
    assert issue(auth, client, user_ref("customer"))["scope"] == "profile orders:read"
    admin = issue(auth, client, user_ref("admin"), grant_type="authorization_code")
    assert admin["scope"] == "profile orders:read catalog:write"


def test_client_credentials_token_has_the_client_as_subject(auth):
    client = service_client(auth)
    request = {
        "client_id": client["client_id"],
        "grant_type": "client_credentials",
        "scope": "inventory:write profile",
        "user": None,
        "include_refresh_token": True,
    }
    response = call(auth, "issue_token", request)
    assert "refresh_token" not in response
    assert response["scope"] == "inventory:write"
    claims = decode(auth, response["access_token"]).claims
    validate(ACCESS_TOKEN_CLAIMS, claims)
    assert claims["sub"] == client["client_id"] == claims["client_id"]
    assert "sid" not in claims


def test_no_refresh_token_unless_asked_and_allowed(auth):
    client = new_client(auth)
    response = issue(auth, client, include_refresh_token=False)
    assert "refresh_token" not in response
    assert "sid" in decode(auth, response["access_token"]).claims
    no_refresh = new_client(auth, grant_types=["password"])
    assert "refresh_token" not in issue(auth, no_refresh)


def test_issue_token_refuses_what_the_client_may_not_do(auth):
    client = new_client(auth, grant_types=["password"])
    with pytest.raises(ValidationError) as caught:
        issue(auth, client, grant_type="authorization_code")
    assert set(caught.value.details) == {"grant_type"}
    with pytest.raises(ValidationError) as caught:
        issue(auth, {"client_id": unique_id("ghost")})
    assert caught.value.details == {"client_id": "unknown client"}
    without_user = {
        "client_id": client["client_id"],
        "grant_type": "password",
        "scope": None,
        "user": None,
        "include_refresh_token": False,
    }
    with pytest.raises(ValidationError) as caught:
        call(auth, "issue_token", without_user)
    assert set(caught.value.details) == {"user"}


def test_a_token_may_join_only_its_own_live_family(auth):
    client = new_client(auth)
    user = user_ref()
    first = issue(auth, client, user)
    family_id = call(auth, "get_refresh_token", first["refresh_token"])["family_id"]
    joined = issue(auth, client, user, family_id=family_id)
    assert decode(auth, joined["access_token"]).claims["sid"] == family_id
    assert call(auth, "get_refresh_token", joined["refresh_token"])["family_id"] == family_id

    with pytest.raises(InvalidGrant) as caught:
        issue(auth, client, user_ref(), family_id=family_id)
    assert caught.value.message == "the token family belongs to another grant"

    assert call(auth, "revoke_refresh_token", client["client_id"], first["refresh_token"])
    with pytest.raises(InvalidGrant) as caught:
        issue(auth, client, user, family_id=family_id)
    assert caught.value.message == "the token family was revoked"


def test_a_forged_issue_token_on_the_broker_grants_no_admin_scope(auth, service_config):
    """Issue 9, item 1: anyone on the broker once got admin scopes by naming the
    roles; now the roles come from the users service, whatever the caller says."""
    client = new_client(auth)
    customer = user_ref("customer")
    forged = {
        "client_id": client["client_id"],
        "grant_type": "authorization_code",
        "scope": "profile catalog:write billing:admin users:admin",
        "user": {"id": customer["id"], "roles": ["admin"]},
        "include_refresh_token": True,
    }
    with ClusterRpcProxy(service_config("tests"), timeout=10) as cluster:
        with pytest.raises(ValidationError) as caught:
            cluster.auth.issue_token(forged)
        assert set(caught.value.details) == {"user.roles"}
        # Without the roles, the same request gets what a customer may have.
        response = cluster.auth.issue_token({**forged, "user": {"id": customer["id"]}})
    assert response["scope"] == "profile"
    assert decode(auth, response["access_token"]).claims["scope"] == "profile"


def test_a_forged_rotation_cannot_name_roles(auth, service_config):
    client = new_client(auth)
    first = issue(auth, client, user_ref("customer"))
    forged = {
        "client_id": client["client_id"],
        "refresh_token": first["refresh_token"],
        "scope": None,
        "roles": ["admin"],
    }
    with ClusterRpcProxy(service_config("tests"), timeout=10) as cluster:
        with pytest.raises(ValidationError) as caught:
            cluster.auth.rotate_refresh_token(forged)
        assert set(caught.value.details) == {"roles"}
    assert call(auth, "get_refresh_token", first["refresh_token"])["status"] == "active"
    assert (
        rotate(auth, client, first["refresh_token"])["scope"] == "profile orders:read orders:write"
    )


def test_roles_changed_in_users_apply_at_the_next_refresh(auth):
    client = new_client(auth)
    admin = user_ref("customer", "admin")
    first = issue(auth, client, admin, grant_type="authorization_code")
    assert "users:admin" in first["scope"].split()
    set_roles(admin, "customer")
    demoted = rotate(auth, client, first["refresh_token"])
    assert demoted["scope"] == "profile orders:read orders:write"
    claims = decode(auth, demoted["access_token"]).claims
    assert claims["scope"] == "profile orders:read orders:write"
    # For good: promoting again does not widen a family beyond what it kept
    # (RFC 6749 6); a new sign-in gets the admin scopes.
    set_roles(admin, "customer", "admin")
    again = rotate(auth, client, demoted["refresh_token"])
    assert again["scope"] == "profile orders:read orders:write"


def test_grants_for_a_user_the_users_service_does_not_know_are_refused(auth):
    client = new_client(auth)
    with pytest.raises(InvalidGrant) as caught:
        issue(auth, client, {"id": str(uuid.uuid4())})
    assert caught.value.message == "the user no longer exists"
    with pytest.raises(InvalidGrant):
        new_code(auth, client, {"id": str(uuid.uuid4())})


def test_the_password_grant_carries_customer_scopes_only(auth):
    """Issue 9, item 6: admin scopes only through the authorization code flow."""
    client = new_client(auth)
    admin = user_ref("customer", "admin")
    everything = " ".join(SCOPES)
    by_password = issue(auth, client, admin, scope=everything)
    assert by_password["scope"] == " ".join(CUSTOMER_SCOPES)
    assert set(by_password["scope"].split()).isdisjoint(ADMIN_SCOPES)
    # Its refresh token cannot be widened afterwards either.
    with pytest.raises(InvalidGrant):
        rotate(auth, client, by_password["refresh_token"], scope="users:admin")
    by_code = issue(auth, client, admin, grant_type="authorization_code", scope=everything)
    assert set(ADMIN_SCOPES) <= set(by_code["scope"].split())


def test_the_password_grant_can_be_switched_off(container_factory, auth_config):
    off = copy.deepcopy(auth_config)
    off["AGORA"]["auth"]["password_grant"] = False
    auth = container_factory(AuthService, off)
    auth.start()
    client = new_client(auth)
    with pytest.raises(ValidationError) as caught:
        issue(auth, client, user_ref("customer"))
    assert caught.value.details == {"grant_type": "password is disabled"}
    assert issue(auth, client, user_ref("customer"), grant_type="authorization_code")["scope"]


# --- refresh rotation --------------------------------------------------------------------


def test_rotation_issues_the_next_token_of_the_family(auth):
    client = new_client(auth)
    user = user_ref()
    first = issue(auth, client, user)
    first_info = call(auth, "get_refresh_token", first["refresh_token"])
    second = rotate(auth, client, first["refresh_token"])
    validate(TOKEN_RESPONSE, second)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"] == " ".join(CUSTOMER_SCOPES)
    claims = decode(auth, second["access_token"]).claims
    assert claims["sub"] == user["id"] and claims["sid"] == first_info["family_id"]

    assert call(auth, "get_refresh_token", first["refresh_token"])["status"] == "used"
    second_info = call(auth, "get_refresh_token", second["refresh_token"])
    assert second_info["status"] == "active"
    assert second_info["family_id"] == first_info["family_id"]
    # The family has an absolute lifetime: rotation does not extend it.
    assert second_info["expires_at"] == first_info["expires_at"]
    parent = sql(
        auth,
        "SELECT parent_id = (SELECT id FROM refresh_tokens WHERE used_at IS NOT NULL "
        "AND family_id = :f) FROM refresh_tokens WHERE used_at IS NULL AND family_id = :f",
        f=first_info["family_id"],
    ).scalar()
    assert parent is True
    third = rotate(auth, client, second["refresh_token"])
    assert call(auth, "get_refresh_token", third["refresh_token"])["status"] == "active"


def test_reuse_of_a_rotated_token_revokes_the_whole_family(auth, listener, redis_client):
    client = new_client(auth)
    first = issue(auth, client)
    family_id = call(auth, "get_refresh_token", first["refresh_token"])["family_id"]
    second = rotate(auth, client, first["refresh_token"])

    with waiting_for(listener, "on_family_revoked", family_id=family_id):
        with pytest.raises(InvalidGrant) as caught:
            rotate(auth, client, first["refresh_token"])
    assert caught.value.message == "refresh token reuse detected; the token family was revoked"

    # Committed even though the call failed: every token of the family is dead.
    rows = family_rows(auth, family_id)
    assert len(rows) == 2
    assert all(r.revoked_at is not None and r.revoked_reason == "reuse_detected" for r in rows)
    with pytest.raises(InvalidGrant) as caught:
        rotate(auth, client, second["refresh_token"])
    assert call(auth, "get_refresh_token", second["refresh_token"])["status"] == "revoked"

    key = redis_client.key(revoked_family_key(family_id))
    assert redis_client.exists(key)
    settings = settings_of(auth)
    assert 0 < redis_client.ttl(key) <= settings["access_token_ttl"] + settings["clock_skew"]

    (event,) = received("token_family_revoked", family_id=family_id)
    user_id = call(auth, "get_refresh_token", second["refresh_token"])["user_id"]
    assert event["data"] == {
        "family_id": family_id,
        "client_id": client["client_id"],
        "user_id": user_id,
        "reason": "reuse_detected",
    }


def test_concurrent_rotations_of_one_token_let_exactly_one_through(
    auth, auth_config, service_config
):
    client = new_client(auth)
    first = issue(auth, client)
    family_id = call(auth, "get_refresh_token", first["refresh_token"])["family_id"]
    request = {
        "client_id": client["client_id"],
        "refresh_token": first["refresh_token"],
        "scope": None,
    }
    with ClusterRpcProxy(service_config("tests"), timeout=20) as cluster:
        replies = [cluster.auth.rotate_refresh_token.call_async(request) for _ in range(10)]
        successes, refusals = [], []
        for reply in replies:
            try:
                successes.append(reply.result())
            except InvalidGrant as exc:
                refusals.append(exc.message)
    assert len(successes) == 1 and len(refusals) == 9
    # One token was issued; every later presentation counted as reuse, so the
    # family (including the winner's new token) ends revoked.
    rows = family_rows(auth, family_id)
    assert len(rows) == 2
    assert all(r.revoked_at is not None for r in rows)
    assert set(refusals) <= {
        "refresh token reuse detected; the token family was revoked",
        "refresh token revoked",
    }


def test_rotation_scope_rules(auth):
    client = new_client(auth)
    admin = user_ref("customer", "admin")
    first = issue(
        auth,
        client,
        admin,
        grant_type="authorization_code",
        scope="profile orders:read catalog:write",
    )
    with pytest.raises(InvalidGrant) as caught:
        rotate(auth, client, first["refresh_token"], scope="profile users:admin")
    assert caught.value.message == "scope exceeds the original grant"
    # The refusal did not consume the token.
    assert call(auth, "get_refresh_token", first["refresh_token"])["status"] == "active"

    narrowed = rotate(auth, client, first["refresh_token"], scope="orders:read")
    assert narrowed["scope"] == "orders:read"
    assert decode(auth, narrowed["access_token"]).claims["scope"] == "orders:read"
    # The refresh token keeps the original grant ...
    kept = call(auth, "get_refresh_token", narrowed["refresh_token"])["scope"]
    assert kept == "profile orders:read catalog:write"
    # ... less what a demoted user may no longer have (the users service says so).
    set_roles(admin, "customer")
    demoted = rotate(auth, client, narrowed["refresh_token"])
    assert demoted["scope"] == "profile orders:read"
    assert call(auth, "get_refresh_token", demoted["refresh_token"])["scope"] == demoted["scope"]


def test_rotation_refusals(auth):
    client = new_client(auth)
    other = new_client(auth)
    first = issue(auth, client)
    with pytest.raises(InvalidGrant) as caught:
        rotate(auth, other, first["refresh_token"])
    assert caught.value.message == "refresh token was issued to another client"
    assert call(auth, "get_refresh_token", first["refresh_token"])["status"] == "active"
    with pytest.raises(InvalidGrant) as caught:
        rotate(auth, client, "no-such-token")
    assert caught.value.message == "unknown refresh token"
    no_refresh = new_client(auth, grant_types=["password"])
    with pytest.raises(InvalidGrant):
        rotate(auth, no_refresh, first["refresh_token"])
    with pytest.raises(ValidationError) as caught:
        call(auth, "rotate_refresh_token", {"client_id": client["client_id"]})
    assert set(caught.value.details) == {"refresh_token", "scope"}
    with pytest.raises(NotFound):
        call(auth, "get_refresh_token", "no-such-token")

    call(auth, "revoke_refresh_token", client["client_id"], first["refresh_token"])
    with pytest.raises(InvalidGrant) as caught:
        rotate(auth, client, first["refresh_token"])
    assert caught.value.message == "refresh token revoked"


# --- revocation --------------------------------------------------------------------------


def test_revoke_refresh_token(auth, listener, redis_client):
    client = new_client(auth)
    other = new_client(auth)
    first = issue(auth, client)
    second = rotate(auth, client, first["refresh_token"])
    family_id = call(auth, "get_refresh_token", second["refresh_token"])["family_id"]

    assert call(auth, "revoke_refresh_token", other["client_id"], second["refresh_token"]) is False
    assert call(auth, "get_refresh_token", second["refresh_token"])["status"] == "active"
    assert call(auth, "revoke_refresh_token", client["client_id"], "unknown-token") is False

    with waiting_for(listener, "on_family_revoked", family_id=family_id):
        assert call(auth, "revoke_refresh_token", client["client_id"], second["refresh_token"])
    assert all(r.revoked_reason == "revoked_by_client" for r in family_rows(auth, family_id))
    assert redis_client.exists(redis_client.key(revoked_family_key(family_id)))
    assert received("token_family_revoked", family_id=family_id)[0]["data"]["reason"] == (
        "revoked_by_client"
    )
    # Revoking again is still a success (RFC 7009) and changes nothing.
    assert call(auth, "revoke_refresh_token", client["client_id"], second["refresh_token"])


def test_revoke_access_token_writes_the_key_for_its_remaining_life(auth, redis_client):
    settings = settings_of(auth)
    jti = str(uuid.uuid4())
    expires_at = int(time.time()) + 600
    assert call(auth, "revoke_access_token", jti, expires_at, "agora-web") is None
    key = redis_client.key(revoked_access_key(jti))
    assert redis_client.get(key) == "agora-web"
    assert 600 <= redis_client.ttl(key) <= 600 + settings["clock_skew"]

    # Within the skew after expiry it is still accepted: still revoked.
    late = str(uuid.uuid4())
    call(auth, "revoke_access_token", late, int(time.time()) - 10, "agora-web")
    assert 0 < redis_client.ttl(redis_client.key(revoked_access_key(late))) <= 20
    # Past it, nothing to revoke.
    gone = str(uuid.uuid4())
    call(auth, "revoke_access_token", gone, int(time.time()) - 3600, "agora-web")
    assert not redis_client.exists(redis_client.key(revoked_access_key(gone)))
    with pytest.raises(ValidationError) as caught:
        call(auth, "revoke_access_token", "", "soon", "bad id")
    assert set(caught.value.details) == {"jti", "expires_at", "client_id"}


def test_a_redis_outage_does_not_undo_a_revocation(
    container_factory, auth_config, service_config, caplog
):
    broken = copy.deepcopy(auth_config)
    # Nothing listens on port 1.
    broken["AGORA"]["redis"]["url"] = "redis://127.0.0.1:1/0"
    auth = container_factory(AuthService, broken)
    auth.start()
    client = new_client(auth)
    first = issue(auth, client)
    family_id = call(auth, "get_refresh_token", first["refresh_token"])["family_id"]
    with caplog.at_level(logging.WARNING, logger="services.auth.service"):
        revoked = call(auth, "revoke_refresh_token", client["client_id"], first["refresh_token"])
    assert revoked is True
    assert all(r.revoked_at is not None for r in family_rows(auth, family_id))
    assert any(
        r.levelno == logging.WARNING and "Redis is unreachable" in r.getMessage()
        for r in caplog.records
    )
    # An access-token revocation is recorded in the database too: it stands, and
    # the denylist sync writes it to Redis when Redis answers again.
    jti = f"jti-{uuid.uuid4()}"
    assert call(auth, "revoke_access_token", jti, int(time.time()) + 60, "agora-web") is None
    recorded = sql(auth, "SELECT client_id FROM revoked_access_tokens WHERE jti = :j", j=jti)
    assert recorded.scalar() == "agora-web"


# --- authorization codes -------------------------------------------------------------------


def test_authorization_code_is_redeemed_once(auth, listener, redis_client):
    client = new_client(auth)
    user = user_ref("customer")
    created = new_code(auth, client, user, scope="profile users:admin", nonce="n-0S6_WzA2Mj")
    assert created["expires_in"] == settings_of(auth)["authorization_code_ttl"]
    code = created["code"]

    redeemed = redeem(auth, client, code)
    validate(AUTHORIZATION_CODE, redeemed)
    assert redeemed["client_id"] == client["client_id"] and redeemed["user_id"] == user["id"]
    assert redeemed["redirect_uri"] == REDIRECT_URI
    assert redeemed["scope"] == "profile"
    assert redeemed["code_challenge"] == CHALLENGE
    assert redeemed["code_challenge_method"] == "S256"
    assert redeemed["nonce"] == "n-0S6_WzA2Mj"
    assert abs(redeemed["auth_time"] - time.time()) < 60
    family_id = redeemed["family_id"]

    tokens = issue(
        auth,
        client,
        user,
        grant_type="authorization_code",
        scope=redeemed["scope"],
        family_id=family_id,
    )
    assert decode(auth, tokens["access_token"]).claims["sid"] == family_id

    with waiting_for(listener, "on_family_revoked", family_id=family_id):
        with pytest.raises(InvalidGrant) as caught:
            redeem(auth, client, code)
    assert caught.value.message == "authorization code already used; its tokens were revoked"
    assert call(auth, "get_refresh_token", tokens["refresh_token"])["status"] == "revoked"
    assert redis_client.exists(redis_client.key(revoked_family_key(family_id)))
    # No token can join the family afterwards.
    with pytest.raises(InvalidGrant):
        issue(auth, client, user, grant_type="authorization_code", family_id=family_id)


def test_a_wrong_verifier_or_redirect_uri_leaves_the_code_usable(auth, listener):
    """Issue 9, item 9: a stolen code cannot be burnt without its PKCE verifier."""
    client = new_client(auth)
    code = new_code(auth, client)["code"]
    wrong_verifier = "x" * 43
    with pytest.raises(InvalidGrant) as caught:
        redeem(auth, client, code, verifier=wrong_verifier)
    assert caught.value.message == "code_verifier or redirect_uri does not match the authorization"
    for redirect_uri in (None, "http://localhost:3000/other"):
        with pytest.raises(InvalidGrant):
            redeem(auth, client, code, redirect_uri=redirect_uri)
    row = sql(
        auth,
        "SELECT used_at, revoked_at FROM authorization_codes WHERE client_id = :c",
        c=client["client_id"],
    ).one()
    assert row.used_at is None and row.revoked_at is None
    redeemed = redeem(auth, client, code)
    family_id = redeemed["family_id"]
    # Once used, a wrong verifier is still only a mismatch: it revokes nothing.
    with pytest.raises(InvalidGrant) as caught:
        redeem(auth, client, code, verifier=wrong_verifier)
    assert "does not match" in caught.value.message
    revoked = sql(
        auth, "SELECT revoked_at FROM authorization_codes WHERE family_id = :f", f=family_id
    ).scalar()
    assert revoked is None
    # The right verifier a second time is reuse: refused, and the family revoked.
    with waiting_for(listener, "on_family_revoked", family_id=family_id):
        with pytest.raises(InvalidGrant) as caught:
            redeem(auth, client, code)
    assert caught.value.message == "authorization code already used; its tokens were revoked"


def test_redemption_requests_are_validated(auth):
    client = new_client(auth)
    code = new_code(auth, client)["code"]
    with pytest.raises(ValidationError) as caught:
        redeem(auth, client, code, verifier="short")
    assert set(caught.value.details) == {"code_verifier"}
    with pytest.raises(ValidationError) as caught:
        call(auth, "redeem_authorization_code", {"client_id": client["client_id"], "code": code})
    assert set(caught.value.details) == {"code_verifier", "redirect_uri"}
    assert redeem(auth, client, code)["client_id"] == client["client_id"]


def test_concurrent_redemptions_let_exactly_one_through(auth, service_config):
    client = new_client(auth)
    code = new_code(auth, client)["code"]
    with ClusterRpcProxy(service_config("tests"), timeout=20) as cluster:
        request = {
            "client_id": client["client_id"],
            "code": code,
            "code_verifier": VERIFIER,
            "redirect_uri": REDIRECT_URI,
        }
        replies = [cluster.auth.redeem_authorization_code.call_async(request) for _ in range(10)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["family_id"])
            except InvalidGrant:
                outcomes.append("refused")
    assert outcomes.count("refused") == 9


def test_code_refusals(auth):
    client = new_client(auth)
    other = new_client(auth)
    code = new_code(auth, client)["code"]
    with pytest.raises(InvalidGrant) as caught:
        redeem(auth, other, code)
    assert caught.value.message == "authorization code was issued to another client"
    with pytest.raises(InvalidGrant) as caught:
        redeem(auth, client, "no-such-code")
    assert caught.value.message == "unknown authorization code"
    # Another client's attempt did not consume it.
    assert redeem(auth, client, code)

    with pytest.raises(ValidationError) as caught:
        new_code(auth, client, redirect_uri="https://evil.example/cb")
    assert caught.value.details == {"redirect_uri": "is not registered for this client"}
    with pytest.raises(ValidationError) as caught:
        new_code(auth, new_client(auth, grant_types=["password"]))
    assert caught.value.details == {
        "client_id": "authorization_code is not allowed for this client"
    }
    with pytest.raises(ValidationError) as caught:
        new_code(auth, client, code_challenge="short", code_challenge_method="plain")
    assert set(caught.value.details) == {"code_challenge", "code_challenge_method"}
    single = new_client(auth)
    assert new_code(auth, single, redirect_uri=None)["code"]


def test_expired_codes_and_refresh_tokens_are_refused(container_factory, auth_config):
    short = copy.deepcopy(auth_config)
    short["AGORA"]["auth"]["authorization_code_ttl"] = 1
    short["AGORA"]["auth"]["refresh_token_ttl"] = 1
    auth = container_factory(AuthService, short)
    auth.start()
    client = new_client(auth)
    code = new_code(auth, client)["code"]
    tokens = issue(auth, client)
    # Sleep exactly until both have expired (the RPCs give whole seconds only).
    latest = sql(
        auth,
        "SELECT extract(epoch FROM greatest((SELECT max(expires_at) FROM refresh_tokens "
        "WHERE client_id = :c), (SELECT max(expires_at) FROM authorization_codes "
        "WHERE client_id = :c)))",
        c=client["client_id"],
    ).scalar()
    time.sleep(max(0.0, float(latest) - time.time()) + 0.05)

    with pytest.raises(InvalidGrant) as caught:
        redeem(auth, client, code)
    assert caught.value.message == "authorization code expired"
    with pytest.raises(InvalidGrant) as caught:
        rotate(auth, client, tokens["refresh_token"])
    assert caught.value.message == "refresh token expired"
    assert call(auth, "get_refresh_token", tokens["refresh_token"])["status"] == "expired"


# --- signing keys ----------------------------------------------------------------------------


def test_key_rotation_keeps_the_old_key_published_for_its_window(auth, listener):
    client = new_client(auth)
    before = issue(auth, client)
    old_kid = decode(auth, before["access_token"]).header["kid"]

    with entrypoint_waiter(listener, "on_key_rotated", timeout=10):
        rotated = call(auth, "rotate_signing_key")
    new_kid = rotated["kid"]
    assert new_kid != old_kid and old_kid in rotated["retired"]
    assert rotated["created_at"].endswith("Z")
    event = received("signing_key_rotated", kid=new_kid)[0]
    assert event["data"] == {"kid": new_kid, "retired": rotated["retired"]}

    after = issue(auth, client)
    assert decode(auth, after["access_token"]).header["kid"] == new_kid
    jwks = call(auth, "jwks")
    validate(JWKS, jwks)
    kids = [k["kid"] for k in jwks["keys"]]
    assert kids[0] == new_kid and old_kid in kids
    # A token signed before the rotation still verifies.
    assert decode(auth, before["access_token"]).claims["jti"]

    keys = {k["kid"]: k for k in call(auth, "signing_keys")}
    for info in keys.values():
        validate(SIGNING_KEY_INFO, info)
    assert keys[new_kid]["current"] and keys[new_kid]["retired_at"] is None
    assert not keys[old_kid]["current"] and keys[old_kid]["published"]
    assert [k for k in keys.values() if k["current"]] == [keys[new_kid]]

    # Once every token the old key signed has expired (ttl + skew), it drops out.
    settings = settings_of(auth)
    window = settings["access_token_ttl"] + settings["clock_skew"]
    sql(
        auth,
        "UPDATE signing_keys SET retired_at = now() - make_interval(secs => :s) WHERE kid = :k",
        s=window + 1,
        k=old_kid,
    )
    assert old_kid not in [k["kid"] for k in call(auth, "jwks")["keys"]]
    assert not {k["kid"]: k for k in call(auth, "signing_keys")}[old_kid]["published"]
    with pytest.raises(InvalidKeyIdError):
        decode(auth, before["access_token"])


def test_a_retired_key_is_published_exactly_for_its_window(auth):
    call(auth, "rotate_signing_key")
    old_kid = call(auth, "rotate_signing_key")["retired"][0]
    settings = settings_of(auth)
    window = settings["access_token_ttl"] + settings["clock_skew"]
    sql(
        auth,
        "UPDATE signing_keys SET retired_at = now() - make_interval(secs => :s) WHERE kid = :k",
        s=window - 5,
        k=old_kid,
    )
    assert old_kid in [k["kid"] for k in call(auth, "jwks")["keys"]]


def test_the_private_key_is_stored_encrypted(auth):
    call(auth, "jwks")
    pem, jwk = sql(auth, "SELECT private_pem, public_jwk FROM signing_keys LIMIT 1").one()
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
    assert key_encryption.key_derivation(pem).name == "scrypt"


def test_a_key_stored_with_the_old_kdf_is_re_encrypted_when_first_used(
    container_factory, auth_config
):
    # A key written before scrypt (BestAvailableEncryption: PBKDF2 at 2,048 rounds),
    # as an older release left it; a fresh process (empty key cache) signs with it.
    first = container_factory(AuthService, auth_config)
    first.start()
    call(first, "jwks")
    kid, pem = sql(
        first, "SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL"
    ).one()
    passphrase = auth_config["AGORA"]["services"]["auth"]["key_passphrase"].encode()
    private = serialization.load_pem_private_key(pem.encode(), password=passphrase)
    old_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    ).decode("ascii")
    sql(first, "UPDATE signing_keys SET private_pem = :p WHERE kid = :k", p=old_pem, k=kid)
    first.stop()

    second = container_factory(AuthService, auth_config)
    second.start()
    token = issue(second, new_client(second))["access_token"]

    assert decode(second, token).header["kid"] == kid
    stored = sql(second, "SELECT private_pem FROM signing_keys WHERE kid = :k", k=kid).scalar()
    assert key_encryption.key_derivation(stored).name == "scrypt"


def test_two_services_racing_for_the_first_key_create_one(
    container_factory, auth_config, service_config
):
    # Two containers (separate key caches, like two processes) on one queue, and
    # an empty key table: every call races to create the first key.
    first = container_factory(AuthService, auth_config)
    second = container_factory(AuthService, auth_config)
    first.start()
    second.start()
    sql(first, "DELETE FROM signing_keys")
    with ClusterRpcProxy(service_config("tests"), timeout=30) as cluster:
        replies = [cluster.auth.jwks.call_async() for _ in range(10)]
        results = [reply.result() for reply in replies]
    assert sql(first, "SELECT count(*) FROM signing_keys").scalar() == 1
    kids = {key["kid"] for result in results for key in result["keys"]}
    assert len(kids) == 1
    # Both containers sign with it.
    client = new_client(first)
    (kid,) = kids
    assert decode(first, issue(first, client)["access_token"]).header["kid"] == kid
    assert decode(second, issue(second, client)["access_token"]).header["kid"] == kid


def test_concurrent_rotations_leave_one_current_key(auth, auth_config, service_config):
    with ClusterRpcProxy(service_config("tests"), timeout=30) as cluster:
        replies = [cluster.auth.rotate_signing_key.call_async() for _ in range(3)]
        kids = [reply.result()["kid"] for reply in replies]
    current = [k for k in call(auth, "signing_keys") if k["current"]]
    assert len(current) == 1 and current[0]["kid"] in kids
    live = sql(auth, "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL").scalar()
    assert live == 1


# --- over real RPC ---------------------------------------------------------------------------


def test_errors_cross_rpc_as_their_own_class(auth, auth_config, service_config):
    client = new_client(auth)
    with ClusterRpcProxy(service_config("tests"), timeout=10) as cluster:
        with pytest.raises(InvalidGrant) as caught:
            cluster.auth.redeem_authorization_code(
                {
                    "client_id": client["client_id"],
                    "code": "no-such-code",
                    "code_verifier": VERIFIER,
                    "redirect_uri": None,
                }
            )
        assert caught.value.status == 400 and caught.value.code == "invalid_grant"
        assert caught.value.message == "unknown authorization code"
        health = cluster.auth.health()
        assert health["checks"]["db"] == "ok" and health["checks"]["cache"] == "ok"


def test_timestamps_are_utc(auth):
    client = new_client(auth)
    created = datetime.datetime.fromisoformat(client["created_at"].replace("Z", "+00:00"))
    assert abs((datetime.datetime.now(datetime.UTC) - created).total_seconds()) < 60
