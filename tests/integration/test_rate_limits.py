"""Rate limits per route group, with counters in the real Redis.

Each test builds its own small Flask app (not create_app) and its own Redis key
prefix under this run's, so counters never leak between tests or runs.
"""

import copy
import logging
import socket
import threading
import time
import uuid

import pytest
from flask import Blueprint, Flask, g, jsonify, request

from gateway.auth.principal import Principal
from gateway.errors import register_error_handlers
from gateway.limits import (
    client_ip,
    group,
    init_limits,
    note_login_failure,
    route_group,
    view_group,
)
from services.chassis.config import ConfigError

pytestmark = pytest.mark.integration

SMALL = {
    "read": "5/minute",
    "write": "3/minute",
    "oauth": "4/minute",
    "token_per_ip": "3/minute",
    "login_failures_per_ip": "2/minute",
    "login_failures_per_account": "2/minute",
}

bp = Blueprint("rl_test", __name__)


@bp.get("/v1/things")
def list_things():
    return jsonify({"items": []})


@bp.get("/v1/things/<thing_id>")
def get_thing(thing_id):
    return jsonify({"id": thing_id})


@bp.post("/v1/things")
def create_thing():
    return jsonify({"id": "new"}), 201


@bp.delete("/v1/things/<thing_id>")
def delete_thing(thing_id):
    return "", 204


@bp.get("/v1/reports")
@group("write")
def expensive_report():
    return jsonify({"report": "..."})


@bp.get("/v1/ping")
@group("exempt")
def ping():
    return jsonify({"pong": True})


@bp.get("/v1/boom")
def boom():
    # A 503 keeps its own Retry-After: the limiter must not rewrite it.
    return jsonify({"error": "down"}), 503, {"Retry-After": "1"}


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    return jsonify({"status": "ready"})


@bp.get("/openapi.json")
def openapi():
    return jsonify({"openapi": "3.1.0"})


@bp.post("/oauth/token")
def token():
    if request.form.get("password") == "wrong":
        note_login_failure()
        return jsonify({"error": "invalid_grant"}), 400
    if request.form.get("client_secret") == "wrong":
        return jsonify({"error": "invalid_client"}), 401
    return jsonify({"access_token": "t", "token_type": "Bearer"})


@bp.get("/oauth/authorize")
def authorize():
    return jsonify({"consent": "please"})


@bp.get("/.well-known/openid-configuration")
def discovery():
    return jsonify({"issuer": "http://test"})


@bp.get("/whoami")
def whoami():
    return jsonify({"ip": client_ip()})


def _authenticate():
    """Stands in for the real auth hook: a test header becomes g.principal."""
    subject = request.headers.get("X-Test-Subject")
    if subject:
        g.principal = Principal(
            subject=subject,
            client_id=request.headers.get("X-Test-Client", "agora-web"),
            scopes=frozenset(),
            token_id=uuid.uuid4().hex,
            expires_at=0,
        )


@pytest.fixture
def make_app(config, redis_client):
    """``make_app(groups={...}, trusted=[...], redis_url=..., enabled=...)``: a
    fresh app rate-limited with its own Redis key prefix (removed afterwards)."""
    prefixes = []

    def make(groups=None, *, trusted=(), redis_url=None, enabled=True, strategy=None):
        cfg = copy.deepcopy(config)
        prefix = f"{config['redis']['key_prefix']}rl-{uuid.uuid4().hex[:8]}:"
        prefixes.append(prefix)
        cfg["redis"]["key_prefix"] = prefix
        if redis_url:
            cfg["redis"]["url"] = redis_url
        limits = cfg["gateway"]["rate_limits"]
        limits["groups"].update(SMALL)
        limits["groups"].update(groups or {})
        limits["enabled"] = enabled
        if strategy:
            limits["strategy"] = strategy
        cfg["gateway"]["trusted_proxies"] = list(trusted)

        app = Flask(f"rate-limit-test-{len(prefixes)}")
        app.config["AGORA"] = cfg
        register_error_handlers(app)
        app.before_request(_authenticate)  # before init_limits, like the real auth hook
        app.register_blueprint(bp)
        init_limits(app)
        app.key_prefix = prefix
        return app

    yield make
    for prefix in prefixes:
        keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            redis_client.delete(*keys)


def _keys(redis_client, app):
    return sorted(redis_client.scan_iter(match=f"{app.key_prefix}*", count=1000))


def _statuses(client, n, path="/v1/things", method="get", **kwargs):
    return [getattr(client, method)(path, **kwargs).status_code for _ in range(n)]


# -- which group a route is in ------------------------------------------------


@pytest.mark.parametrize(
    "rule, method, expected",
    [
        ("/v1/products", "GET", "read"),
        ("/v1/products/<product_id>", "HEAD", "read"),
        ("/v1/users", "POST", "write"),
        ("/v1/users/<user_id>", "PATCH", "write"),
        ("/v1/users/<user_id>", "DELETE", "write"),
        ("/openapi.json", "GET", "read"),
        ("/docs", "GET", "read"),
        ("/oauth/token", "POST", "token"),
        ("/oauth/token", "GET", "oauth"),
        ("/oauth/authorize", "GET", "oauth"),
        ("/oauth/authorize", "POST", "oauth"),
        ("/oauth/revoke", "POST", "oauth"),
        ("/oauth/introspect", "POST", "oauth"),
        ("/.well-known/jwks.json", "GET", "oauth"),
        ("/healthz", "GET", "exempt"),
        ("/readyz", "GET", "exempt"),
    ],
)
def test_route_group(rule, method, expected):
    assert route_group(rule, method) == expected


def test_explicit_group_wins_and_names_are_checked():
    assert view_group(expensive_report, "/v1/reports", "GET") == "write"
    assert expensive_report._rate_limit_group == "write"
    assert view_group(list_things, "/v1/things", "GET") == "read"
    with pytest.raises(ValueError, match="bogus"):
        group("bogus")


# -- limits -----------------------------------------------------------------


def test_limit_is_hit_exactly_at_the_configured_count(make_app):
    client = make_app().test_client()
    remaining = []
    for _ in range(5):
        response = client.get("/v1/things")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
        assert "Retry-After" not in response.headers
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]

    response = client.get("/v1/things")
    assert response.status_code == 429
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"limit": "5 per 1 minute"}
    assert "5 per 1 minute" in error["message"]


def test_counter_recovers_after_the_window(make_app):
    client = make_app({"read": "2/second"}).test_client()
    assert _statuses(client, 3) == [200, 200, 429]
    response = client.get("/v1/things")
    assert response.status_code == 429
    time.sleep(int(response.headers["Retry-After"]) + 0.1)
    assert _statuses(client, 3) == [200, 200, 429]


def test_fixed_and_sliding_window_strategies_work_too(make_app):
    for strategy in ("fixed-window", "sliding-window"):
        client = make_app({"read": "2/minute"}, strategy=strategy).test_client()
        assert _statuses(client, 3) == [200, 200, 429]


def test_group_is_shared_across_routes(make_app):
    client = make_app().test_client()
    paths = ["/v1/things", "/v1/things/1", "/openapi.json", "/v1/things/2", "/whoami"]
    assert [client.get(p).status_code for p in paths] == [200] * 5
    assert client.get("/v1/things/3").status_code == 429
    # Writes have their own counter...
    assert client.post("/v1/things").status_code == 201
    assert client.delete("/v1/things/1").status_code == 204
    # ...which an explicitly grouped GET shares.
    assert client.get("/v1/reports").status_code == 200
    assert client.post("/v1/things").status_code == 429
    assert client.get("/v1/reports").status_code == 429


def test_one_key_per_caller_and_group_under_the_run_prefix(make_app, redis_client, config):
    app = make_app()
    client = app.test_client()
    client.get("/v1/things")
    client.get("/v1/things/1")
    client.post("/v1/things")
    client.get("/v1/things", headers={"X-Test-Subject": "u1"})
    keys = _keys(redis_client, app)
    assert app.key_prefix.startswith(config["redis"]["key_prefix"])
    assert keys == [
        f"{app.key_prefix}ratelimit:LIMITER/client:agora-web:sub:u1/read/5/1/minute",
        f"{app.key_prefix}ratelimit:LIMITER/ip:127.0.0.1/read/5/1/minute",
        f"{app.key_prefix}ratelimit:LIMITER/ip:127.0.0.1/write/3/1/minute",
    ]


def test_principals_have_separate_counters(make_app):
    client = make_app({"read": "2/minute"}).test_client()
    alice = {"X-Test-Subject": "alice"}
    bob = {"X-Test-Subject": "bob"}
    assert _statuses(client, 3, headers=alice) == [200, 200, 429]
    assert _statuses(client, 2, headers=bob) == [200, 200]
    # The same user through another client is another caller.
    other_client = {"X-Test-Subject": "alice", "X-Test-Client": "agora-integration"}
    assert _statuses(client, 1, headers=other_client) == [200]
    # An anonymous caller from the same address is keyed by IP, untouched so far.
    assert _statuses(client, 3) == [200, 200, 429]


def test_callers_behind_a_trusted_proxy_are_told_apart(make_app):
    client = make_app({"read": "2/minute"}, trusted=["10.0.0.0/8"]).test_client()
    via_lb = {"REMOTE_ADDR": "10.0.0.5"}

    def get(xff):
        return client.get("/v1/things", headers={"X-Forwarded-For": xff}, environ_base=via_lb)

    assert [get("203.0.113.1").status_code for _ in range(3)] == [200, 200, 429]
    assert [get("203.0.113.2").status_code for _ in range(2)] == [200, 200]
    # The client cannot reset its counter by prepending an address of its choice.
    assert get("1.2.3.4, 203.0.113.1").status_code == 429
    assert get("203.0.113.1, 10.9.9.9").status_code == 429
    response = client.get(
        "/whoami", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7"}, environ_base=via_lb
    )
    assert response.get_json() == {"ip": "203.0.113.7"}


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(make_app):
    client = make_app({"read": "3/minute"}, trusted=["10.0.0.0/8"]).test_client()
    direct = {"REMOTE_ADDR": "198.51.100.7"}
    response = client.get(
        "/whoami", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base=direct
    )
    assert response.get_json() == {"ip": "198.51.100.7"}
    # Each spoofed address still counts against the peer's one counter.
    statuses = [
        client.get(
            "/v1/things", headers={"X-Forwarded-For": f"203.0.113.{i}"}, environ_base=direct
        ).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_token_endpoint_has_no_counter_per_client(make_app, redis_client):
    # One public client id from many addresses, far beyond any per-address limit
    # in total: nothing shared by every user of the client can fill up.
    app = make_app(trusted=["10.0.0.1"])
    client = app.test_client()

    def post(ip, **kwargs):
        return client.post(
            "/oauth/token",
            headers={"X-Forwarded-For": ip, **kwargs.pop("headers", {})},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
            **kwargs,
        )

    basic = {"Authorization": "Basic YWdvcmEtaW50ZWdyYXRpb246c2VjcmV0"}  # agora-integration
    for i in range(6):
        assert post(f"203.0.113.{i}", data={"client_id": "agora-web"}).status_code == 200
        assert post(f"203.0.113.{i}", headers=basic, data={"grant_type": "x"}).status_code == 200
    scopes = {key.split("/")[2] for key in _keys(redis_client, app)}
    assert scopes == {"token_per_ip"}


def _login(client, ip, username, password, client_id="agora-web"):
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
    }
    return client.post(
        "/oauth/token",
        data=form,
        headers={"X-Forwarded-For": ip},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )


def test_failed_logins_are_limited_per_address(make_app):
    # login_failures_per_ip 2/minute: the third attempt after two failures is
    # refused, whatever it is; other addresses are not affected.
    client = make_app(trusted=["10.0.0.1"]).test_client()
    assert _login(client, "203.0.113.1", "a@example.test", "wrong").status_code == 400
    assert _login(client, "203.0.113.1", "b@example.test", "wrong").status_code == 400
    response = _login(client, "203.0.113.1", "c@example.test", "right")
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert "2 per 1 minute" in response.get_json()["error_description"]
    assert int(response.headers["Retry-After"]) >= 1
    assert _login(client, "203.0.113.2", "c@example.test", "right").status_code == 200


def test_client_authentication_failures_count_toward_the_address_only(make_app):
    client = make_app(trusted=["10.0.0.1"]).test_client()
    form = {"grant_type": "client_credentials", "client_id": "svc", "client_secret": "wrong"}

    def post(ip):
        return client.post(
            "/oauth/token",
            data=form,
            headers={"X-Forwarded-For": ip},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )

    assert [post("203.0.113.1").status_code for _ in range(3)] == [401, 401, 429]
    assert post("203.0.113.2").status_code == 401


def test_failed_logins_are_limited_per_account_and_client(make_app, redis_client):
    # login_failures_per_account 2/minute, whatever the address; another client's
    # login for the same account, and successes, are counted apart.
    app = make_app({"login_failures_per_ip": "10/minute"}, trusted=["10.0.0.1"])
    client = app.test_client()
    for _ in range(3):
        assert _login(client, "203.0.113.9", "dan@example.test", "right").status_code == 200
    assert _login(client, "203.0.113.1", "dan@example.test", "wrong").status_code == 400
    assert _login(client, "203.0.113.2", "Dan@Example.test ", "wrong").status_code == 400
    assert _login(client, "203.0.113.3", "dan@example.test", "wrong").status_code == 429
    assert _login(client, "203.0.113.3", "dan@example.test", "right").status_code == 429
    assert _login(client, "203.0.113.3", "eve@example.test", "right").status_code == 200
    other = _login(client, "203.0.113.4", "dan@example.test", "right", client_id="mobile")
    assert other.status_code == 200
    # The account is a hash in the key: Redis holds no email addresses.
    keys = [k for k in _keys(redis_client, app) if "login_failures_per_account" in k]
    assert keys and not any("example.test" in k for k in keys)
    assert all(":account:" in k for k in keys)


def test_ipv6_callers_are_counted_by_their_64(make_app):
    client = make_app({"read": "2/minute"}, trusted=["10.0.0.1"]).test_client()

    def get(xff):
        return client.get(
            "/v1/things",
            headers={"X-Forwarded-For": xff},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        ).status_code

    assert [get("2001:db8:1:2::1"), get("2001:db8:1:2::2")] == [200, 200]
    # A fresh address in the same /64 is the same caller...
    assert get("2001:db8:1:2:abcd::99") == 429
    # ...another /64 is another.
    assert get("2001:db8:1:3::1") == 200


def test_token_endpoint_is_limited_per_ip(make_app):
    # token_per_ip 3/minute: one address trying many client ids is stopped.
    client = make_app().test_client()
    statuses = [
        client.post("/oauth/token", data={"client_id": f"guess-{i}"}).status_code for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    response = client.post("/oauth/token", data={"client_id": "guess-9"})
    assert response.status_code == 429
    assert "3 per 1 minute" in response.get_json()["error_description"]
    assert response.headers["X-RateLimit-Limit"] == "3"


def test_token_endpoint_headers_show_the_tighter_limit(make_app):
    client = make_app({"login_failures_per_ip": "10/minute", "token_per_ip": "3/minute"})
    client = client.test_client()
    response = client.post("/oauth/token", data={"client_id": "agora-web"})
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "2"


def test_token_without_client_id_is_keyed_by_ip(make_app, redis_client):
    app = make_app()
    client = app.test_client()
    assert client.post("/oauth/token", data={"grant_type": "password"}).status_code == 200
    assert client.post("/oauth/token", json={"client_id": "ignored"}).status_code == 200
    assert client.post("/oauth/token").status_code == 200
    assert client.post("/oauth/token").status_code == 429  # token_per_ip
    scopes = {key.split("/")[2] for key in _keys(redis_client, app)}
    assert scopes == {"token_per_ip"}
    assert all("/ip:127.0.0.1/" in key for key in _keys(redis_client, app))


def test_oauth_group_is_shared_and_uses_the_oauth_error_form(make_app):
    client = make_app().test_client()
    paths = ["/oauth/authorize", "/.well-known/openid-configuration"] * 2
    assert [client.get(p).status_code for p in paths] == [200] * 4
    response = client.get("/oauth/authorize")
    assert response.status_code == 429
    assert response.get_json() == {
        "error": "rate_limited",
        "error_description": response.get_json()["error_description"],
    }
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limited"
    # The token endpoint has its own limits.
    assert client.post("/oauth/token", data={"client_id": "c"}).status_code == 200


def test_probes_and_exempt_views_are_never_limited(make_app, redis_client):
    app = make_app({"read": "1/minute"})
    client = app.test_client()
    for path in ("/healthz", "/readyz", "/v1/ping"):
        for _ in range(5):
            response = client.get(path)
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response.headers
    assert _keys(redis_client, app) == []
    # Unknown paths are answered (404) without counting.
    assert client.get("/nowhere").status_code == 404
    assert _keys(redis_client, app) == []


def test_other_retry_after_headers_are_left_alone(make_app):
    client = make_app().test_client()
    response = client.get("/v1/boom")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "4"


def test_disabled_limits_nothing(make_app, redis_client):
    app = make_app({"read": "1/minute"}, enabled=False)
    client = app.test_client()
    for _ in range(5):
        response = client.get("/v1/things")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
    assert app.extensions["agora.limiter"].enabled is False
    assert _keys(redis_client, app) == []


def test_limiter_is_exposed(make_app):
    app = make_app()
    limiter = app.extensions["agora.limiter"]
    assert limiter.enabled
    assert limiter.check()


def _limiter_commands(redis_client, app, requests):
    """The Redis commands the app's limiter sent while ``requests()`` ran, read
    with MONITOR and kept to the limiter's own connections (by client name);
    commands run inside a script are not counted."""
    name = f"{app.key_prefix}gateway-ratelimit"
    addresses = {
        client["addr"] for client in redis_client.client_list() if client.get("name") == name
    }
    assert addresses, "the limiter has no connection yet"
    sentinel = f"end-of-test-{uuid.uuid4().hex}"
    seen = []
    with redis_client.monitor() as monitor:
        requests()
        redis_client.echo(sentinel)
        while True:
            command = monitor.next_command()
            if sentinel in command["command"]:
                break
            if command["client_address"] != "lua":
                address = f"{command['client_address']}:{command['client_port']}"
                if address in addresses:
                    seen.append(command["command"].split(" ", 1)[0].upper())
    return seen


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window"])
def test_one_redis_round_trip_per_request(make_app, redis_client, strategy):
    app = make_app({"read": "3/minute"}, strategy=strategy)
    client = app.test_client()
    assert client.get("/v1/things").status_code == 200  # connects, loads the script

    def requests():
        assert _statuses(client, 4) == [200, 200, 429, 429]

    assert _limiter_commands(redis_client, app, requests) == ["EVALSHA"] * 4


def test_a_login_checks_every_limit_in_one_round_trip(make_app, redis_client):
    # token_per_ip is counted, both failed-login limits checked: one script call;
    # a failed login is counted after the view, in one more.
    app = make_app({"token_per_ip": "10/minute"}, trusted=["10.0.0.1"])
    client = app.test_client()
    assert _login(client, "203.0.113.1", "a@example.test", "right").status_code == 200

    def success():
        assert _login(client, "203.0.113.1", "a@example.test", "right").status_code == 200

    def failure():
        assert _login(client, "203.0.113.1", "a@example.test", "wrong").status_code == 400

    assert _limiter_commands(redis_client, app, success) == ["EVALSHA"]
    assert _limiter_commands(redis_client, app, failure) == ["EVALSHA", "EVALSHA"]


def test_bad_settings_stop_the_start(make_app):
    with pytest.raises(ConfigError, match="gateway.trusted_proxies"):
        make_app(trusted=["10.0.0.0/8", "the-load-balancer"])
    with pytest.raises(ConfigError, match="gateway.rate_limits.groups.read"):
        make_app({"read": "5/fortnight"})


# -- Redis down ---------------------------------------------------------------


def test_redis_down_fails_open_to_per_process_limits(make_app, caplog):
    caplog.set_level(logging.INFO, logger="gateway.limits")
    client = make_app({"read": "3/minute"}, redis_url="redis://127.0.0.1:1/0").test_client()
    started = time.monotonic()
    first = client.get("/v1/things")
    first_took = time.monotonic() - started
    print(f"first request with Redis down took {first_took:.3f} s")
    assert first.status_code == 200
    assert first_took < 10  # a refused connection, not retries with backoff
    assert first.headers["X-RateLimit-Remaining"] == "2"
    # Still limited, by this process's own counters.
    assert _statuses(client, 3) == [200, 200, 429]
    assert _statuses(client, 5, path="/healthz") == [200] * 5
    warnings = [r for r in caplog.records if r.name == "gateway.limits"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert "unreachable" in warnings[0].getMessage()
    assert "ConnectionError" in warnings[0].getMessage()


def test_unresponsive_redis_costs_at_most_a_socket_timeout(make_app, config):
    # Accepts connections (the kernel's backlog does) but never answers.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(1)
    try:
        port = blackhole.getsockname()[1]
        client = make_app(redis_url=f"redis://127.0.0.1:{port}/0").test_client()
        took = []
        for _ in range(3):
            started = time.monotonic()
            assert client.get("/v1/things").status_code == 200
            took.append(time.monotonic() - started)
        print(
            f"socket_timeout {config['redis']['socket_timeout']} s, "
            f"requests took {', '.join(f'{t:.3f}' for t in took)} s"
        )
        timeout = config["redis"]["socket_timeout"]
        # The first request pays the socket timeout (once, not per retry); the
        # next ones never wait on Redis, which would cost a socket timeout each.
        assert took[0] < 20 * timeout
        assert max(took[1:]) < timeout
    finally:
        blackhole.close()


class _Proxy:
    """A TCP forwarder to Redis that can be switched off and on, on one port."""

    def __init__(self, target=("127.0.0.1", 6379)):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets = []
        self._pumps = []
        self._running = False
        self._thread = None

    def start(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def stop(self):
        self._running = False
        self._thread.join(2)
        self._listener.close()
        # Wake every pump with EOF and wait for it before closing: under
        # eventlet a pump still waiting on a closed descriptor would collide
        # with the next socket that reuses the number ("second simultaneous read").
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for pump in self._pumps:
            pump.join(2)
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self._pumps.clear()

    def _accept(self):
        while self._running:
            try:
                downstream, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            self._sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                pump = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                self._pumps.append(pump)
                pump.start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except (OSError, EOFError):  # eventlet raises EOFError on a socket closed by stop()
            pass


def test_limits_go_back_to_redis_when_it_returns(make_app, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="gateway.limits")
    proxy = _Proxy()
    proxy.start()
    try:
        app = make_app({"read": "100/minute"}, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        client = app.test_client()
        assert _statuses(client, 2) == [200, 200]
        (key,) = _keys(redis_client, app)
        assert redis_client.llen(key) == 2  # moving window: one entry per request

        proxy.stop()
        assert _statuses(client, 5) == [200] * 5
        assert redis_client.llen(key) == 2  # counted in memory meanwhile
        messages = [r.getMessage() for r in caplog.records if r.name == "gateway.limits"]
        assert len(messages) == 1 and "unreachable" in messages[0]

        proxy.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and redis_client.llen(key) == 2:
            assert client.get("/v1/things").status_code == 200
            time.sleep(0.2)
        assert redis_client.llen(key) > 2, "never went back to Redis"
        print(f"back on Redis {15 - (deadline - time.monotonic()):.1f} s after it returned")
        messages = [r.getMessage() for r in caplog.records if r.name == "gateway.limits"]
        assert len(messages) == 2 and "reachable again" in messages[1]
    finally:
        proxy.stop()


def test_redis_down_still_limits_failed_logins_in_memory(make_app):
    client = make_app(redis_url="redis://127.0.0.1:1/0", trusted=["10.0.0.1"]).test_client()
    assert _login(client, "203.0.113.1", "a@example.test", "wrong").status_code == 400
    assert _login(client, "203.0.113.1", "a@example.test", "wrong").status_code == 400
    assert _login(client, "203.0.113.1", "a@example.test", "right").status_code == 429
    assert _login(client, "203.0.113.2", "b@example.test", "right").status_code == 200
