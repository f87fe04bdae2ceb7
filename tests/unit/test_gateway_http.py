"""Gateway behaviour that needs no broker: validation happens before any RPC."""

import pytest

from gateway.app import create_app
from services.chassis.config import load_config

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def client():
    config = load_config()
    # Nothing listens on this port: any RPC attempt would fail with 503, so a
    # 400 proves the body was refused before the gateway tried to call out.
    config["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"
    config["gateway"]["rate_limits"]["enabled"] = False  # no Redis here
    return create_app(config).test_client()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert len(response.headers["X-B3-TraceId"]) == 32


def test_incoming_trace_is_continued(client):
    trace = "463ac35c9f6413ad48485a3953bb6124"
    response = client.get("/healthz", headers={"b3": f"{trace}-a2fb4a1d1a96d312-1"})
    assert response.headers["X-B3-TraceId"] == trace


def test_register_body_is_validated_with_field_names(client):
    response = client.post("/v1/users", json={"email": "nope", "password": "x", "role": "admin"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"email", "password", "role"}


def test_wrong_content_type_is_415(client):
    response = client.post("/v1/users", data="email=a")
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


def test_malformed_json_is_400(client):
    response = client.post("/v1/users", data="{", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_oversized_body_is_413(client):
    big = "x" * 70000
    response = client.post("/v1/users", data=big, content_type="application/json")
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_list_query_is_validated(client):
    for query, field in (
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("sort=name", "sort"),
        ("limit=1&limit=2", "limit"),
    ):
        response = client.get(f"/v1/products?{query}")
        assert response.status_code == 400, query
        assert field in response.get_json()["error"]["details"]


def test_malformed_product_id_is_404_without_rpc(client):
    response = client.get("/v1/products/42")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_unreachable_broker_is_503_with_retry_after(client):
    response = client.get("/v1/products/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "service_unavailable"


def test_unknown_route_is_json_404(client):
    # Under the API's prefixes; any other GET path is the storefront's (its page,
    # or 503 web_not_built: tests/integration/test_gateway_web.py).
    for path in ("/v1/nowhere", "/oauth/nowhere", "/.well-known/nowhere"):
        response = client.get(path)
        assert response.status_code == 404
        body = response.get_json()
        assert (body["error"] if path.startswith("/oauth/") else body["error"]["code"]) == (
            "not_found"
        )
    response = client.post("/nowhere")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_nul_characters_are_refused_before_any_rpc(client):
    body = {"email": "a@example.com", "password": "long enough\u0000", "name": "N\u0000"}
    response = client.post("/v1/users", json=body)
    assert response.status_code == 400
    details = response.get_json()["error"]["details"]
    assert details == {
        "password": "must not contain NUL characters",
        "name": "must not contain NUL characters",
    }
    assert client.get("/v1/products?q=%00").status_code == 400


def test_protected_routes_need_a_token_before_any_rpc(client):
    response = client.get("/v1/users/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="agora"')
    assert response.get_json()["error"]["code"] == "invalid_token"
    bad = client.patch("/v1/products/x", json={}, headers={"Authorization": "Bearer abc"})
    assert bad.status_code == 401
    assert "malformed" in bad.get_json()["error"]["message"]


def test_the_password_grant_switched_off_is_an_unsupported_grant_type():
    """Issue 9, item 6: ``auth.password_grant: false`` (the production overlay)."""
    config = load_config()
    config["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"
    config["gateway"]["rate_limits"]["enabled"] = False
    config["auth"]["password_grant"] = False
    config["tracing"]["sample_rate"] = 0.0  # no span sender outliving the test
    client = create_app(config).test_client()
    form = {"grant_type": "password", "client_id": "agora-web", "username": "a", "password": "b"}
    response = client.post("/oauth/token", data=form)
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"
    metadata = client.get("/.well-known/oauth-authorization-server").get_json()
    assert "password" not in metadata["grant_types_supported"]
    assert "authorization_code" in metadata["grant_types_supported"]


def test_production_turns_the_password_grant_off():
    import os

    from services.chassis.config import ROOT

    overlay = (ROOT / "config" / "environments" / "production.yaml").read_text()
    assert "password_grant: false" in overlay
    assert load_config({**os.environ, "AGORA_ENV": "development"})["auth"]["password_grant"]
