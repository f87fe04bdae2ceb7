"""Access tokens for a gateway app built in the test process, signed by the
tests' own key (tests/unit/test_token_verifier.py): the auth service is not
running there."""

from gateway.auth.tokens import KeyCache, TokenVerifier
from tests.unit.test_token_verifier import KEY, claims, public_jwks, sign


def trust_test_key(app):
    """Make ``app`` (gateway.app.create_app) verify tokens signed by the test key."""
    keys = KeyCache(lambda: public_jwks(KEY), ttl=300, min_refresh_interval=5)
    app.extensions["agora.tokens"] = TokenVerifier(
        keys, app.config["AGORA"]["auth"], revocations=app.extensions["agora.redis"]
    )


def bearer(app, scope, **overrides):
    """An Authorization header for ``app`` carrying ``scope`` (and any other claims)."""
    auth = app.config["AGORA"]["auth"]
    token = sign(claims(iss=auth["issuer"], aud=auth["audience"], scope=scope, **overrides))
    return {"Authorization": f"Bearer {token}"}
