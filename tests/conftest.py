# Nameko services under test need green sockets and a green psycopg2, exactly
# as `nameko run` gives them: patch before anything else is imported.
import eventlet

eventlet.monkey_patch()  # noqa: E402

import atexit  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

# One isolated world per test run: its own vhost, databases and Redis prefix.
RUN_ID = os.environ.get("AGORA_TEST_RUN_ID") or uuid.uuid4().hex[:8]
TEST_ENV = {
    "AGORA_ENV": "test",
    "AGORA_AMQP_VHOST": f"agora-test-{RUN_ID}",
    "AGORA_DB_PREFIX": f"agora_t{RUN_ID}_",
    "AGORA_REDIS_PREFIX": f"agora:t{RUN_ID}:",
    # RabbitMQ users are cluster-wide: this run's principals are its own.
    "AGORA_BROKER_USER_PREFIX": f"agora-t{RUN_ID}-",
    # Nothing listens here unless a test starts a collector.
    "AGORA_ZIPKIN_URL": "http://127.0.0.1:9/api/v2/spans",
    "AGORA_LOG_LEVEL": "WARNING",
    # Rendered service configs of this run, removed when it ends.
    "AGORA_STATE_DIR": tempfile.mkdtemp(prefix=f"agora-test-{RUN_ID}-"),
}
atexit.register(shutil.rmtree, TEST_ENV["AGORA_STATE_DIR"], ignore_errors=True)
os.environ.update(TEST_ENV)

from agora.cli import SERVICES as _PLATFORM_SERVICES  # noqa: E402

SERVICES = tuple(_PLATFORM_SERVICES)  # every service's database, migrated for the run


_watchdog = None


def pytest_configure(config):
    global _watchdog
    from tests.support.hangs import install

    _watchdog = install(config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _watchdog is not None:
        _watchdog.begin(item.nodeid)
    try:
        return (yield)
    finally:
        if _watchdog is not None:
            _watchdog.end()


@pytest.fixture(scope="session")
def config():
    from services.chassis.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def rabbit_vhost(config):
    """A RabbitMQ vhost for this run, with the run's own broker user per
    principal (each service started by ``start_service`` connects as its own,
    with its least privileges); all deleted afterwards."""
    from agora.infra import delete_principals, delete_vhost, ensure_vhost

    ensure_vhost(config)
    yield config["amqp"]["uri"]
    delete_vhost(config)
    delete_principals(config)


@pytest.fixture(scope="session")
def databases(config):
    """Every service's database, created and migrated for this run, dropped afterwards."""
    from services.chassis.migrations import drop_database, upgrade

    for service in SERVICES:
        upgrade(config, service)
    yield
    for service in SERVICES:
        drop_database(config, service)


@pytest.fixture(scope="session")
def redis_client(config):
    """Redis, with every key under this run's prefix deleted afterwards."""
    from services.chassis.redis import make_client

    client = make_client(config["redis"])
    yield client
    client.delete_namespace()
    client.close()


@pytest.fixture
def service_config(config, rabbit_vhost, databases, redis_client):
    """Build the Nameko config for one service: ``service_config("users")``."""
    from services.chassis.config import nameko_config

    def build(service):
        return nameko_config(config, service)

    return build


@pytest.fixture(scope="session")
def zipkin():
    """A test Zipkin collector (``.url``, ``.trace(trace_id, count)``)."""
    from tests.support.zipkin import ZipkinCollector

    collector = ZipkinCollector().start()
    yield collector
    collector.stop()


@pytest.fixture
def start_service(container_factory, service_config):
    """``start_service(UsersService)``: a started container on this run's brokers."""

    def start(service_cls):
        container = container_factory(service_cls, service_config(service_cls.name))
        container.start()
        return container

    return start
