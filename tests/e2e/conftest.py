import os
from contextlib import contextmanager

import pytest

from agora.infra import delete_vhost, ensure_vhost
from agora.platform import Platform, free_port, platform_env
from services.chassis.config import load_config
from tests.support.api_client import ApiClient

SAGA_TIMEOUT = 30


@pytest.fixture(scope="session")
def smtp():
    """A real SMTP server (aiosmtpd) the notifications service sends to."""
    from tests.support.smtp import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture(scope="session")
def sms():
    """A real HTTP SMS gateway the notifications service posts text messages to."""
    from tests.support.sms import SmsGateway

    gateway = SmsGateway()
    yield gateway
    gateway.close()


@contextmanager
def running_platform(zipkin, smtp, sms, name="e2e", overlay=None):
    """Every service and the gunicorn gateway as real processes, stopped and
    their vhost and databases removed on exit; ``overlay``: a config file
    merged last (AGORA_CONFIG), e.g. more instances of some services.

    On a vhost, databases and Redis prefix of their own (``name``): these
    processes live until the session ends, and the integration tests' in-process
    services must never share RPC or event queues with them, nor outbox tables
    (a relay publishes every unsent row of its database, whoever wrote it), nor
    the rows their sweeps and senders pick up."""
    from services.chassis.migrations import drop_database, upgrade
    from tests.conftest import SERVICES

    env = platform_env(
        {
            "AGORA_GATEWAY_PORT": str(free_port()),
            "AGORA_ZIPKIN_URL": zipkin.url,
            "AGORA_AMQP_VHOST": f"{os.environ['AGORA_AMQP_VHOST']}-{name}",
            "AGORA_DB_PREFIX": f"{os.environ['AGORA_DB_PREFIX']}{name.replace('-', '_')}_",
            # Under the run's prefix, so the run's clean-up removes these keys too.
            "AGORA_REDIS_PREFIX": f"{os.environ['AGORA_REDIS_PREFIX']}{name}:",
            "AGORA_SMTP_PORT": str(smtp.port),
            # Customers who give a phone number get text messages too.
            "AGORA_SMS_PROVIDER": "http",
            "AGORA_SMS_URL": sms.url,
            # Short enough for the stuck-saga test, long enough for a busy CI machine.
            "AGORA_SAGA_TIMEOUT": str(SAGA_TIMEOUT),
        }
    )
    if overlay is not None:
        env["AGORA_CONFIG"] = str(overlay)
    config = load_config({**os.environ, **env})
    ensure_vhost(config)
    for service in SERVICES:
        upgrade(config, service)
    running = Platform(config, env)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()
        delete_vhost(config)
        for service in SERVICES:
            drop_database(config, service)


@pytest.fixture(scope="session")
def platform(rabbit_vhost, redis_client, zipkin, smtp, sms):
    with running_platform(zipkin, smtp, sms) as running:
        yield running


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
    return seed_demo(platform, rpc)


def seed_demo(platform, rpc):
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


def code_flow_login(base_url, client_id, email, password, scope):
    """Tokens through ``agora login``'s flow (code + PKCE, loopback redirect), with
    a test browser that logs in on the gateway's page and follows the redirect."""
    from agora.login import login
    from tests.support.browser import FormBrowser

    return login(
        base_url,
        client_id,
        scope,
        timeout=30,
        show=lambda url: None,
        browse=FormBrowser(email, password),
    )


@pytest.fixture(scope="session")
def admin_token(platform, demo):
    return admin_access_token(platform, demo)


def admin_access_token(platform, demo):
    """An access token of the demo admin, holding every scope: admin scopes come
    only through the authorization code flow with PKCE."""
    from services.auth.schemas import SCOPES

    token = code_flow_login(
        platform.base_url,
        demo["web_client_id"],
        demo["admin_email"],
        demo["admin_password"],
        " ".join(SCOPES),
    )
    return token["access_token"]


@pytest.fixture(scope="session")
def user_token(platform, demo):
    """An access token of the demo customer."""
    token = password_grant(
        platform.base_url, demo["web_client_id"], demo["user_email"], demo["user_password"]
    )
    return token["access_token"]


TAP_QUEUE = "e2e-event-tap"


@pytest.fixture(scope="session", autouse=True)
def event_tap(platform):
    """A durable queue bound to every service's events exchange for the whole
    session: test_zz_event_contract checks everything the platform emitted."""
    from kombu import Connection, Exchange, Queue

    from agora.asyncapi import EVENT_SERVICES

    with Connection(platform.config["amqp"]["uri"]) as connection:
        channel = connection.channel()
        queue = Queue(TAP_QUEUE, durable=True)(channel)
        queue.declare()
        for service in EVENT_SERVICES:
            exchange = Exchange(f"{service}.events", type="topic", durable=True)(channel)
            exchange.declare()
            queue.bind_to(exchange=f"{service}.events", routing_key="#")
        channel.close()
    yield TAP_QUEUE


@pytest.fixture(scope="session")
def shop(platform, demo, admin_token):
    """Customers, products with stock and orders through the gateway (commerce.Shop)."""
    from tests.e2e.commerce import Shop

    return Shop(platform.base_url, admin_token, demo["web_client_id"])


@pytest.fixture(scope="session")
def ledgers(platform):
    """The billing and inventory databases' own record (commerce.Ledgers)."""
    from tests.e2e.commerce import Ledgers

    ledgers = Ledgers(platform.config)
    yield ledgers
    ledgers.dispose()
