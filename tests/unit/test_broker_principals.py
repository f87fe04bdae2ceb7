"""The broker permission table stays in step with the code (no broker needed)."""

import re
from pathlib import Path

import pytest

from agora.broker import (
    RPC_CALLS,
    SERVICE_CLASSES,
    all_permissions,
    definitions,
    service_class,
    wiring_of,
)
from services.chassis.config import BROKER_PRINCIPALS, load_config
from services.chassis.service_client import ServiceClient

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CALL = re.compile(r"\.call(?:_async)?\(\s*\"(\w+)\",\s*\"(\w+)\"")
# the order view's (key, service, method) parts and _user_or_404(rpc().call, svc, method)
GATEWAY_PARTS = re.compile(r"\(\s*\"\w+\",\s*\"(\w+)\",\s*\"(\w+)\"\s*\)")
USER_OR_404 = re.compile(r"_user_or_404\(rpc\(\)\.call,\s*\"(\w+)\",\s*\"(\w+)\"")


def gateway_calls():
    calls = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        text = path.read_text()
        for pattern in (GATEWAY_CALL, GATEWAY_PARTS, USER_OR_404):
            calls.update(pattern.findall(text))
    return calls


def test_the_gateway_may_make_every_call_its_code_makes():
    allowed = {(s, m) for s, methods in RPC_CALLS["gateway"].items() for m in methods}
    calls = gateway_calls()
    assert ("auth", "issue_token") in calls and ("inventory", "get_reservation") in calls
    missing = calls - allowed
    assert not missing, f"add to agora/broker.py RPC_CALLS['gateway']: {sorted(missing)}"


@pytest.mark.parametrize("name", list(SERVICE_CLASSES))
def test_a_service_may_make_every_call_its_code_makes(name):
    cls = service_class(name)
    proxies = {
        attribute: value.target_service
        for attribute, value in vars(cls).items()
        if isinstance(value, ServiceClient)
    }
    assert set(proxies.values()) == set(RPC_CALLS.get(name, {})), (
        f"agora/broker.py RPC_CALLS[{name!r}] must list the services it calls: {proxies}"
    )
    source = Path(__import__(cls.__module__, fromlist=["_"]).__file__).read_text()
    for attribute, target in proxies.items():
        for method in re.findall(rf"self\.{attribute}\.(\w+)\(", source):
            assert method in RPC_CALLS[name][target], f"add {target}.{method} to RPC_CALLS"


def test_every_principal_has_permissions_and_only_its_own_topics():
    permissions = all_permissions()
    assert set(permissions) == set(BROKER_PRINCIPALS)
    for name in SERVICE_CLASSES:
        for exchange, (write, _read) in permissions[name].topics.items():
            if exchange.endswith(".events") and exchange != f"{name}.events":
                assert write == "^$", (name, exchange)
    assert "amq.default" not in str(permissions)


def test_the_wiring_is_read_from_the_service_classes():
    orders = wiring_of("orders")
    assert orders.serves_rpc
    assert "payment_requested" in orders.emits
    assert (
        "billing",
        "payment_succeeded",
        "on_payment_succeeded",
        "service_pool",
    ) in orders.handles


def test_definitions_hold_password_hashes_never_passwords():
    config = load_config({"AGORA_ENV": "development"})
    document = definitions(config, "agora", operator="guest")
    assert {u["name"] for u in document["users"]} == {f"agora-{p}" for p in BROKER_PRINCIPALS}
    assert "agora-integration-broker-dev" not in str(document)
    assert {"user": "guest", "vhost": "agora", "configure": ".*", "write": ".*", "read": ".*"} in (
        document["permissions"]
    )


def test_broker_definitions_prints_an_importable_document(capsys, monkeypatch):
    import json

    from agora.cli import main

    monkeypatch.setenv("AGORA_ENV", "development")
    monkeypatch.setenv("AGORA_AMQP_VHOST", "agora")
    monkeypatch.setenv("AGORA_BROKER_USER_PREFIX", "agora-")
    main(["broker-definitions", "--with-operator"])
    document = json.loads(capsys.readouterr().out)
    assert {"vhosts", "users", "permissions", "topic_permissions"} <= set(document)
    operator = [u for u in document["users"] if u["name"] == "guest"]
    assert operator and operator[0]["tags"] == ["administrator"]


def test_the_gateway_binds_only_the_events_its_cache_consumes():
    from agora.broker import GATEWAY_EVENTS, gateway_permissions
    from gateway.catalog_cache import PRODUCT_EVENTS
    from gateway.events import queue_name
    from services.catalog.schemas import EVENTS as CATALOG_EVENTS

    assert GATEWAY_EVENTS == {"catalog": PRODUCT_EVENTS}
    assert set(PRODUCT_EVENTS) <= set(CATALOG_EVENTS)
    permissions = gateway_permissions()
    queue = queue_name("catalog")
    for rights in (permissions.configure, permissions.write, permissions.read):
        assert re.fullmatch(rights, queue)
        assert not re.fullmatch(rights, "gateway.catalog-events-snoop")
    assert re.fullmatch(permissions.read, "catalog.events")
    assert not re.fullmatch(permissions.write, "catalog.events")
    write, read = permissions.topics["catalog.events"]
    assert write == "^$"
    assert {
        key for key in ("product_created", "product_updated", "#") if re.fullmatch(read, key)
    } == {
        "product_created",
        "product_updated",
    }
    assert "orders.events" not in permissions.topics


def test_every_event_handling_service_and_only_those_answer_for_their_dead_letters():
    from services.chassis.schemas import DEAD_LETTER_SERVICES
    from services.chassis.service import DeadLetterAdmin

    handling = {name for name in SERVICE_CLASSES if wiring_of(name).handles}
    assert set(DEAD_LETTER_SERVICES) == handling
    for name in SERVICE_CLASSES:
        assert issubclass(service_class(name), DeadLetterAdmin) == (name in handling), name
        methods = set(RPC_CALLS["gateway"][name])
        assert {"list_dead_letters", "replay_dead_letter"} <= methods or name not in handling
