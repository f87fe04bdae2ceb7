import os

import pytest

from agora.platform import Platform, free_port, platform_env
from services.chassis.config import load_config
from tests.support.api_client import ApiClient


@pytest.fixture(scope="session")
def platform(rabbit_vhost, databases, redis_client, zipkin):
    """Every service and the gunicorn gateway as real processes, for the session."""
    env = platform_env({"AGORA_GATEWAY_PORT": str(free_port()), "AGORA_ZIPKIN_URL": zipkin.url})
    config = load_config({**os.environ, **env})
    running = Platform(config, env)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def api(platform):
    return ApiClient(platform.base_url)


@pytest.fixture(scope="session")
def rpc(platform):
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.chassis.config import nameko_config

    with ClusterRpcProxy(nameko_config(platform.config, "tests"), timeout=10) as proxy:
        yield proxy
