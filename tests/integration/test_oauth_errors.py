"""Honest errors at the OAuth2 endpoints (RFC 6749 4 and 5.2): the real gateway app
over the real users and auth services.

A JSON body is told that the endpoint takes form encoding, and each client
authentication failure gets its own error and description rather than "The
client cannot authenticate with methods: [...]"."""

import base64
import copy
import uuid

import pytest

from gateway.app import create_app
from services.auth.service import AuthService
from services.chassis.testing import call_entrypoint as call
from services.users.service import UsersService

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
GENERIC = "cannot authenticate with methods"


@pytest.fixture
def services(start_service):
    return start_service(UsersService), start_service(AuthService)


@pytest.fixture
def clients(services):
    """``(public client id, (confidential client id, its secret))``."""
    _users, auth = services
    tag = uuid.uuid4().hex[:10]
    public = call(
        auth,
        "create_client",
        {
            "client_id": f"web-{tag}",
            "name": "Web app",
            "public": True,
            "grant_types": ["password", "refresh_token"],
            "scopes": ["profile"],
            "redirect_uris": [],
        },
    )
    confidential = call(
        auth,
        "create_client",
        {
            "client_id": f"svc-{tag}",
            "name": "Integration",
            "public": False,
            "grant_types": ["client_credentials", "password"],
            "scopes": ["catalog:write", "profile"],
            "redirect_uris": [],
        },
    )
    return public["client_id"], (confidential["client_id"], confidential["client_secret"])


@pytest.fixture
def user(services):
    users, _auth = services
    email = f"oauth-{uuid.uuid4().hex[:8]}@example.test"
    call(users, "register", {"email": email, "password": PASSWORD, "name": "O"})
    return email


@pytest.fixture
def gateway(config, services, redis_client):
    cfg = copy.deepcopy(config)
    prefix = f"{config['redis']['key_prefix']}oauth-errors-{uuid.uuid4().hex[:8]}:"
    cfg["redis"]["key_prefix"] = prefix
    yield create_app(cfg).test_client()
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def basic(client_id, secret):
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def oauth_error(response, status, error):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error, body
    assert GENERIC not in body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    return body["error_description"]


def test_a_json_body_is_told_to_use_form_encoding(gateway, clients, user):
    public, _ = clients
    payload = {
        "grant_type": "password",
        "client_id": public,
        "username": user,
        "password": PASSWORD,
    }
    description = oauth_error(gateway.post("/oauth/token", json=payload), 400, "invalid_request")
    assert "application/x-www-form-urlencoded" in description
    assert "application/json" in description
    # The same request, form-encoded, works.
    assert gateway.post("/oauth/token", data=payload).status_code == 200
    for path in ("/oauth/revoke", "/oauth/introspect"):
        description = oauth_error(gateway.post(path, json={"token": "x"}), 400, "invalid_request")
        assert "application/x-www-form-urlencoded" in description


def test_missing_client_identification(gateway, user):
    form = {"grant_type": "password", "username": user, "password": PASSWORD}
    response = gateway.post("/oauth/token", data=form)
    description = oauth_error(response, 401, "invalid_client")
    assert "no client authentication" in description
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_unknown_client(gateway, user):
    form = {"grant_type": "password", "client_id": "no-such-client", "username": user}
    description = oauth_error(
        gateway.post("/oauth/token", data={**form, "password": PASSWORD}), 401, "invalid_client"
    )
    assert "unknown client" in description and "no-such-client" in description
    response = gateway.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("no-such-client", "s3cret"),
    )
    assert "unknown client" in oauth_error(response, 401, "invalid_client")


def test_wrong_secret(gateway, clients):
    _, (client_id, _secret) = clients
    form = {"grant_type": "client_credentials"}
    response = gateway.post("/oauth/token", data=form, headers=basic(client_id, "wrong-secret"))
    description = oauth_error(response, 401, "invalid_client")
    assert "secret is wrong" in description
    # RFC 6749 5.2: the client tried the Authorization header, so 401 with a challenge.
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    posted = {**form, "client_id": client_id, "client_secret": "wrong-secret"}
    assert "secret is wrong" in oauth_error(
        gateway.post("/oauth/token", data=posted), 401, "invalid_client"
    )


def test_a_confidential_client_without_its_secret(gateway, clients, user):
    _, (client_id, _secret) = clients
    form = {"grant_type": "password", "client_id": client_id, "username": user}
    description = oauth_error(
        gateway.post("/oauth/token", data={**form, "password": PASSWORD}), 401, "invalid_client"
    )
    assert "confidential" in description and "client_secret" in description


def test_a_public_client_asking_for_client_credentials(gateway, clients):
    public, _ = clients
    form = {"grant_type": "client_credentials", "client_id": public}
    description = oauth_error(gateway.post("/oauth/token", data=form), 400, "unauthorized_client")
    assert "public client" in description and "client_credentials" in description


def test_a_public_client_sending_a_secret(gateway, clients, user):
    public, _ = clients
    form = {
        "grant_type": "password",
        "client_id": public,
        "client_secret": "made-up",
        "username": user,
        "password": PASSWORD,
    }
    description = oauth_error(gateway.post("/oauth/token", data=form), 401, "invalid_client")
    assert "public" in description and "no secret" in description


def test_a_public_client_at_the_introspection_endpoint(gateway, clients):
    public, _ = clients
    form = {"token": "anything", "client_id": public}
    description = oauth_error(gateway.post("/oauth/introspect", data=form), 401, "invalid_client")
    assert "confidential clients only" in description


def test_good_clients_still_authenticate(gateway, clients, user):
    public, (client_id, secret) = clients
    form = {"grant_type": "client_credentials"}
    assert gateway.post(
        "/oauth/token", data=form, headers=basic(client_id, secret)
    ).status_code == (200)
    posted = {**form, "client_id": client_id, "client_secret": secret}
    assert gateway.post("/oauth/token", data=posted).status_code == 200
    login = {"grant_type": "password", "client_id": public, "username": user, "password": PASSWORD}
    assert gateway.post("/oauth/token", data=login).status_code == 200
