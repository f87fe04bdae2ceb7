import os

import pytest

from agora.infra import delete_vhost, ensure_vhost
from agora.platform import Platform, free_port, platform_env
from services.chassis.config import load_config
from tests.support.api_client import ApiClient


@pytest.fixture(scope="session")
def platform(rabbit_vhost, databases, redis_client, zipkin):
    """Every service and the gunicorn gateway as real processes, for the session.

    On a vhost of its own: the integration tests' in-process services must
    never share RPC queues with these processes."""
    env = platform_env(
        {
            "AGORA_GATEWAY_PORT": str(free_port()),
            "AGORA_ZIPKIN_URL": zipkin.url,
            "AGORA_AMQP_VHOST": os.environ["AGORA_AMQP_VHOST"] + "-e2e",
        }
    )
    config = load_config({**os.environ, **env})
    ensure_vhost(config)
    running = Platform(config, env)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()
        delete_vhost(config)


@pytest.fixture
def api(platform):
    return ApiClient(platform.base_url)


@pytest.fixture(scope="session")
def rpc(platform):
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.chassis.config import nameko_config

    with ClusterRpcProxy(nameko_config(platform.config, "tests"), timeout=10) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def demo(platform, rpc):
    """The demo users and OAuth2 clients, seeded once; their settings from config."""
    from agora.seed import seed

    seed(rpc, platform.config)
    return platform.config["demo"]


def password_grant(base_url, client_id, username, password, scope=None):
    """Tokens for a user through the public client (RFC 6749 4.3)."""
    import requests

    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
    }
    if scope:
        form["scope"] = scope
    response = requests.post(f"{base_url}/oauth/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="session")
def admin_token(platform, demo):
    """An access token of the demo admin, holding every scope."""
    token = password_grant(
        platform.base_url, demo["web_client_id"], demo["admin_email"], demo["admin_password"]
    )
    return token["access_token"]


@pytest.fixture(scope="session")
def user_token(platform, demo):
    """An access token of the demo customer."""
    token = password_grant(
        platform.base_url, demo["web_client_id"], demo["user_email"], demo["user_password"]
    )
    return token["access_token"]
