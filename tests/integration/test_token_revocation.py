"""Revoked access tokens and families, as the gateway sees them in real Redis, and
the denylist kept in step with the auth database (the record of revocations)."""

import copy
import time
import uuid

import pytest
from sqlalchemy import text

from gateway.app import create_app
from gateway.auth.tokens import KeyCache, TokenVerifier
from services.auth.schemas import (
    ADMIN_SCOPES,
    REVOKED_PREFIX,
    revoked_access_key,
    revoked_family_key,
)
from services.auth.service import AuthService
from services.chassis.errors import InvalidGrant
from services.chassis.messaging import event_envelope
from services.chassis.redis import make_client
from services.chassis.testing import call_entrypoint as call
from tests.integration.test_auth_service import (  # `users` (autouse): auth asks it for roles
    issue,
    new_client,
    rotate,
    users,  # noqa: F401
)
from tests.support.polling import wait_until
from tests.unit.test_token_verifier import KEY, SETTINGS, claims, public_jwks, refused, sign

pytestmark = pytest.mark.integration


def verifier_with(redis):
    keys = KeyCache(lambda: public_jwks(KEY), ttl=300, min_refresh_interval=5)
    return TokenVerifier(keys, SETTINGS, revocations=redis)


def test_a_revoked_family_or_token_is_refused(redis_client):
    verifier = verifier_with(redis_client)
    first, second, third = claims(), claims(), claims()
    redis_client.set(redis_client.key(revoked_family_key(first["sid"])), "1", ex=60)
    redis_client.set(redis_client.key(revoked_access_key(second["jti"])), "1", ex=60)
    refused(verifier, sign(first), "revoked")
    refused(verifier, sign(second), "revoked")
    assert verifier.verify(sign(third)) == third


def test_redis_down_fails_open_and_logs_once(config, caplog):
    settings = copy.deepcopy(config["redis"])
    settings["url"] = "redis://127.0.0.1:1/0"
    down = make_client(settings, name="test-down")
    verifier = verifier_with(down)
    payload = claims()
    with caplog.at_level("WARNING", logger="gateway.auth.tokens"):
        for _ in range(3):
            assert verifier.verify(sign(payload)) == payload
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1
    down.close()


def test_redis_down_refuses_admin_tokens_and_accepts_customer_tokens(config):
    # Nothing listens on port 1: the denylist cannot be read.
    settings = copy.deepcopy(config["redis"])
    settings["url"] = "redis://127.0.0.1:1/0"
    down = make_client(settings, name="test-down")
    verifier = verifier_with(down)
    customer = claims(scope="profile orders:read orders:write")
    assert verifier.verify(sign(customer)) == customer
    for admin_scope in ADMIN_SCOPES:
        refused(verifier, sign(claims(scope=f"profile {admin_scope}")), "admin scopes")
    down.close()


def test_redis_answering_again_accepts_admin_tokens(redis_client):
    admin = claims(scope="profile users:admin")
    assert verifier_with(redis_client).verify(sign(admin)) == admin


# --- the denylist follows the auth database -----------------------------------------


@pytest.fixture
def auth(start_service):
    return start_service(AuthService)


def gateway_verifier(container, redis_client):
    """The gateway's check, against this auth service's keys and this run's Redis."""
    keys = KeyCache(lambda: call(container, "jwks"), ttl=300, min_refresh_interval=0.1)
    return TokenVerifier(keys, container.config["AGORA"]["auth"], revocations=redis_client)


def flush_denylist(redis_client):
    """Delete every denylist key of this run (and only this run's prefix)."""
    keys = list(redis_client.scan_iter(match=redis_client.key(f"{REVOKED_PREFIX}:*")))
    assert all(key.startswith(redis_client.key("")) for key in keys)
    if keys:
        redis_client.delete(*keys)
    return keys


def revoked_family(container):
    """An access token whose family was revoked for refresh-token reuse, and its family id."""
    client = new_client(container)
    first = issue(container, client)
    rotate(container, client, first["refresh_token"])
    with pytest.raises(InvalidGrant, match="reuse"):
        rotate(container, client, first["refresh_token"])
    return first["access_token"]


def test_a_flushed_denylist_is_rebuilt_from_the_database(auth, redis_client):
    verifier = gateway_verifier(auth, redis_client)
    token = revoked_family(auth)
    refused(verifier, token, "revoked")

    flush_denylist(redis_client)
    sid = verifier.claims(token)["sid"]
    # What a Redis restart did before: the revocation was gone for good.
    assert not redis_client.exists(redis_client.key(revoked_family_key(sid)))

    assert call(auth, "sync_denylist") >= 1
    refused(verifier, token, "revoked")
    ttl = redis_client.ttl(redis_client.key(revoked_family_key(sid)))
    settings = auth.config["AGORA"]["auth"]
    assert 0 < ttl <= settings["access_token_ttl"] + settings["clock_skew"] + 1


def test_a_starting_auth_service_rebuilds_the_denylist(
    auth, container_factory, service_config, redis_client
):
    verifier = gateway_verifier(auth, redis_client)
    token = revoked_family(auth)
    sid = verifier.claims(token)["sid"]
    flush_denylist(redis_client)

    # Another instance starting (a restart, a new replica) syncs at once.
    second = container_factory(AuthService, service_config("auth"))
    second.start()
    wait_until(
        lambda: redis_client.exists(redis_client.key(revoked_family_key(sid))),
        what="the revoked family back in the denylist",
    )
    refused(verifier, token, "revoked")


def test_the_revocation_event_writes_the_denylist(auth, redis_client):
    # The outbox's token_family_revoked reaches the service's own handler, which
    # (unlike the best-effort write after the commit) fails and is retried while
    # Redis is down.
    verifier = gateway_verifier(auth, redis_client)
    token = revoked_family(auth)
    sid = verifier.claims(token)["sid"]
    flush_denylist(redis_client)
    event = event_envelope(
        "auth",
        "token_family_revoked",
        {"family_id": sid, "client_id": "web", "user_id": str(uuid.uuid4()), "reason": "x"},
    )
    call(auth, "deny_revoked_family", event)
    # Nameko's entrypoint hook returns when the *first* worker of this method
    # ends: that may be the delivery of the family's own event (published by the
    # outbox since revoked_family()), with the hook's worker still to run.
    key = redis_client.key(revoked_family_key(sid))
    wait_until(lambda: redis_client.exists(key), timeout=10, what="the denylist entry")
    refused(verifier, token, "revoked")


def test_the_gateway_refuses_admin_tokens_while_redis_is_down(config, rabbit_vhost):
    # The real app with its Redis on a closed port; tokens signed by a test key
    # the app's key cache serves, for the app's own issuer and audience.
    cfg = copy.deepcopy(config)
    cfg["redis"]["url"] = "redis://127.0.0.1:1/0"
    app = create_app(cfg)
    verifier = app.extensions["agora.tokens"]
    verifier.keys = KeyCache(lambda: public_jwks(KEY), ttl=300, min_refresh_interval=5)
    client = app.test_client()
    audience = {"iss": cfg["auth"]["issuer"], "aud": cfg["auth"]["audience"]}

    admin = sign(claims(scope="profile users:admin", **audience))
    response = client.get(f"/v1/users/{uuid.uuid4()}", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "invalid_token" and "admin scopes" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")

    # A customer token passes the check (fail open, as before): whatever the
    # route answers next (no users service runs here), it is not a token refusal.
    customer = sign(claims(scope="profile", **audience))
    response = client.get("/v1/users/me", headers={"Authorization": f"Bearer {customer}"})
    assert response.status_code != 401
    assert response.get_json()["error"]["code"] != "invalid_token"


def test_a_flushed_access_token_revocation_is_rebuilt_from_the_database(auth, redis_client):
    verifier = gateway_verifier(auth, redis_client)
    token = issue(auth, new_client(auth))["access_token"]
    payload = verifier.claims(token)
    call(auth, "revoke_access_token", payload["jti"], payload["exp"], payload["client_id"])
    refused(verifier, token, "revoked")

    flush_denylist(redis_client)
    assert not redis_client.exists(redis_client.key(revoked_access_key(payload["jti"])))

    assert call(auth, "sync_denylist") >= 1
    refused(verifier, token, "revoked")


def test_the_sync_forgets_access_revocations_past_their_token_s_life(auth, service_engine):
    jti = f"old-{uuid.uuid4()}"
    call(auth, "revoke_access_token", jti, int(time.time()) + 600, "web")
    with service_engine("auth").begin() as conn:
        conn.execute(
            text(
                "UPDATE revoked_access_tokens SET expires_at = now() - interval '1 hour' "
                "WHERE jti = :j"
            ),
            {"j": jti},
        )
    call(auth, "sync_denylist")
    with service_engine("auth").begin() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM revoked_access_tokens WHERE jti = :j"), {"j": jti}
        )
        assert left.scalar() == 0
