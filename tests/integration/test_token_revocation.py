"""Revoked access tokens and families, as the gateway sees them in real Redis."""

import copy

from gateway.auth.tokens import KeyCache, TokenVerifier
from services.auth.schemas import revoked_access_key, revoked_family_key
from services.chassis.redis import make_client
from tests.unit.test_token_verifier import KEY, SETTINGS, claims, public_jwks, refused, sign


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
