"""Login throttling over real sockets: the gateway app served on 127.0.0.1, the real
users and auth services, counters in the real Redis, and clients bound to other
loopback addresses (127.0.0.2, 127.0.0.3...), so the gateway tells them apart by
their socket peer exactly as it would tell apart hosts on the internet.

Failed logins are limited per address and per (client, account); successes count
toward neither, and there is no counter per client id that one address could fill
for everyone."""

import copy
import http.client
import json
import threading
import uuid
from urllib.parse import urlencode, urlparse

import pytest
from werkzeug.serving import make_server

from gateway.app import create_app
from services.auth.service import AuthService
from services.chassis.testing import call_entrypoint as call
from services.users.service import UsersService

pytestmark = pytest.mark.integration

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT_URI = "http://localhost:3000/callback"
PASSWORD = "correct horse battery staple"
PER_IP = 3
PER_ACCOUNT = 4


@pytest.fixture
def services(start_service):
    return start_service(UsersService), start_service(AuthService)


@pytest.fixture
def web_client(services):
    """A public first-party client, like agora-web, under a name of this test's."""
    _users, auth = services
    client_id = f"web-{uuid.uuid4().hex[:10]}"
    call(
        auth,
        "create_client",
        {
            "client_id": client_id,
            "name": "Web app",
            "public": True,
            "grant_types": ["authorization_code", "password", "refresh_token"],
            "scopes": ["profile", "orders:read", "orders:write"],
            "redirect_uris": [REDIRECT_URI],
        },
    )
    return client_id


@pytest.fixture
def register(services):
    users, _auth = services

    def register(tag):
        email = f"{tag}-{uuid.uuid4().hex[:8]}@example.test"
        call(users, "register", {"email": email, "password": PASSWORD, "name": tag})
        return email

    return register


@pytest.fixture
def gateway(config, services, redis_client):
    """The real app on 127.0.0.1 with small login limits and no trusted proxy;
    yields its port."""
    cfg = copy.deepcopy(config)
    prefix = f"{config['redis']['key_prefix']}login-{uuid.uuid4().hex[:8]}:"
    cfg["redis"]["key_prefix"] = prefix
    cfg["gateway"]["trusted_proxies"] = []
    cfg["gateway"]["rate_limits"]["groups"].update(
        {
            "token_per_ip": "1000/minute",
            "oauth": "1000/minute",
            "login_failures_per_ip": f"{PER_IP}/minute",
            "login_failures_per_account": f"{PER_ACCOUNT}/minute",
        }
    )
    server = make_server("127.0.0.1", 0, create_app(cfg), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join(5)
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def post(port, source, path, form):
    """POST a form to the gateway from ``source`` (a loopback address): (status,
    headers, body as JSON or text)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        body = urlencode(form)
        connection.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        response = connection.getresponse()
        raw = response.read().decode("utf-8")
        headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()
    if headers.get("content-type", "").startswith("application/json"):
        return response.status, headers, json.loads(raw)
    return response.status, headers, raw


def login(port, source, client_id, email, password=PASSWORD):
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": email,
        "password": password,
        "scope": "profile",
    }
    return post(port, source, "/oauth/token", form)


def assert_throttled(answer):
    status, headers, body = answer
    assert status == 429, answer
    assert body["error"] == "rate_limited" and body["error_description"]
    assert int(headers["retry-after"]) >= 1


def test_the_guessing_address_is_throttled_while_others_log_in(gateway, web_client, register):
    alice = register("alice")
    # One address guesses passwords, across accounts (so no account limit is near).
    for attempt in range(PER_IP):
        status, _headers, body = login(
            gateway, "127.0.0.2", web_client, f"victim{attempt}@example.test", "guess"
        )
        assert status == 400 and body["error"] == "invalid_grant"
    assert_throttled(login(gateway, "127.0.0.2", web_client, "victim9@example.test", "guess"))
    # Refused before the password is checked: right ones too, from that address.
    assert_throttled(login(gateway, "127.0.0.2", web_client, alice))

    # Meanwhile another user, through the same public client, from elsewhere.
    status, _headers, body = login(gateway, "127.0.0.3", web_client, alice)
    assert status == 200, body
    assert body["access_token"] and body["token_type"] == "Bearer"


def test_an_account_s_failures_are_capped_across_addresses(gateway, web_client, register):
    bob, carol = register("bob"), register("carol")
    # Fewer failures per address than the address limit, but together the
    # account's limit: guessing from many addresses gains nothing.
    sources = ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]
    assert len(sources) == PER_ACCOUNT
    for source in sources:
        assert login(gateway, source, web_client, bob, "guess")[0] == 400
    assert_throttled(login(gateway, "127.0.0.4", web_client, bob, "guess"))
    # The same account written differently is the same account.
    assert_throttled(login(gateway, "127.0.0.4", web_client, f"  {bob.upper()} ", "guess"))

    # Other accounts, from the same addresses, are not affected.
    assert login(gateway, "127.0.0.4", web_client, carol)[0] == 200
    assert login(gateway, "127.0.0.2", web_client, carol)[0] == 200


def test_successes_do_not_count_toward_the_account(gateway, web_client, register):
    dave = register("dave")
    # More successes than either failure limit, from one address.
    for _ in range(PER_ACCOUNT + PER_IP):
        assert login(gateway, "127.0.0.2", web_client, dave)[0] == 200
    # Failures are still counted from zero: the limit is reached at its count.
    for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"):
        assert login(gateway, source, web_client, dave, "typo")[0] == 400
    assert_throttled(login(gateway, "127.0.0.4", web_client, dave, "typo"))


def authorize_form(client_id, email, password):
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "profile",
        "state": "s1",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "decision": "approve",
        "email": email,
        "password": password,
    }


def test_the_authorization_form_is_throttled_the_same_way(gateway, web_client, register):
    erin, frank = register("erin"), register("frank")
    for attempt in range(PER_IP):
        form = authorize_form(web_client, f"victim{attempt}@example.test", "guess")
        status, _headers, page = post(gateway, "127.0.0.2", "/oauth/authorize", form)
        assert status == 200 and "Wrong email or password" in page
    form = authorize_form(web_client, erin, PASSWORD)
    assert_throttled(post(gateway, "127.0.0.2", "/oauth/authorize", form))

    # Another address logs in through the form meanwhile.
    status, headers, _page = post(gateway, "127.0.0.3", "/oauth/authorize", form)
    assert status == 302
    assert "code=" in urlparse(headers["location"]).query

    # An account's failures through the form are capped across addresses too.
    for source in ("127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4"):
        form = authorize_form(web_client, frank, "guess")
        assert post(gateway, source, "/oauth/authorize", form)[0] == 200
    form = authorize_form(web_client, frank, "guess")
    assert_throttled(post(gateway, "127.0.0.5", "/oauth/authorize", form))
