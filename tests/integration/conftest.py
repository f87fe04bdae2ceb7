from urllib.parse import quote

import pytest


@pytest.fixture(scope="module", autouse=True)
def own_vhost(request, config, rabbit_vhost):
    """A module with ``OWN_VHOST = True`` runs on a RabbitMQ vhost of its own.

    Services' event handler queues are durable: a queue that one module's
    services declared keeps collecting the events later modules publish, and
    the next module to start that service would first work through someone
    else's backlog. Per-module vhosts keep each module's events to itself."""
    if not getattr(request.module, "OWN_VHOST", False):
        yield
        return
    from agora.infra import delete_vhost, ensure_vhost
    from services.chassis.config import amqp_vhost

    original = config["amqp"]["uri"]
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    vhost = f"{amqp_vhost(config)}-{name}"
    config["amqp"]["uri"] = f"{original.rsplit('/', 1)[0]}/{quote(vhost, safe='')}"
    ensure_vhost(config)
    try:
        yield
    finally:
        delete_vhost(config)
        config["amqp"]["uri"] = original


@pytest.fixture(scope="module")
def service_engine(config, databases):
    """``service_engine("billing")``: a connection pool on that service's database
    (migrated by the session's ``databases`` fixture), disposed after the module."""
    from sqlalchemy import create_engine

    from services.chassis.config import database_url

    engines = {}

    def engine(service):
        if service not in engines:
            engines[service] = create_engine(database_url(config, service))
        return engines[service]

    yield engine
    for pool in engines.values():
        pool.dispose()


@pytest.fixture
def publish_event(service_config):
    """``publish_event("orders", "order_created", data)``: an event envelope on the
    broker as that service's relay publishes it (``envelope`` to send one as is,
    a duplicate say); returns the envelope."""
    from nameko.standalone.events import event_dispatcher

    from services.chassis.messaging import event_envelope

    dispatch = event_dispatcher({"AMQP_URI": service_config("tests")["AMQP_URI"]})

    def publish(source, event_type, data=None, envelope=None):
        envelope = envelope or event_envelope(source, event_type, data)
        dispatch(source, event_type, envelope)
        return envelope

    return publish
