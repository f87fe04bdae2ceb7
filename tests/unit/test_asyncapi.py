"""docs/asyncapi.yaml: generated from the services' EVENTS, and complete."""

import ast
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from agora import asyncapi
from services.chassis.config import ROOT
from services.chassis.messaging import event_envelope

pytestmark = pytest.mark.unit


def test_the_committed_document_is_up_to_date():
    assert asyncapi.load() == asyncapi.build(), "run `agora asyncapi` to regenerate it"


def test_every_message_payload_is_a_valid_schema():
    for key, schema in asyncapi.message_schemas(asyncapi.load()).items():
        Draft202012Validator.check_schema(schema)
        assert schema["properties"]["type"]["const"] == key


def test_every_channel_names_its_exchange_and_routing_key():
    document = asyncapi.load()
    for key, channel in document["channels"].items():
        service, name = key.split(".")
        assert channel["address"] == name
        assert channel["bindings"]["amqp"]["exchange"]["name"] == f"{service}.events"
        assert f"{key}.publish" in document["operations"]


def dispatched_names(service):
    """Every literal event name passed to self.dispatch(...) in the service's code."""
    names = set()
    for path in Path(ROOT / "services" / service).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "dispatch"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("service", asyncapi.EVENT_SERVICES)
def test_every_event_a_service_dispatches_is_in_its_contract(service):
    names = dispatched_names(service)
    assert names, f"{service} dispatches no events?"
    assert names <= set(asyncapi.service_events(service)), names - set(
        asyncapi.service_events(service)
    )


def test_an_envelope_validates_and_a_wrong_one_does_not():
    schemas = asyncapi.message_schemas(asyncapi.load())
    schema = schemas["catalog.product_updated"]
    product = {
        "id": "0b7c8a3e-9d0e-4f7a-8a7d-3e2f1c0b9a8d",
        "sku": "AGR-MUG-001",
        "name": "Mug",
        "description": "",
        "price": {"amount": 1250, "currency": "EUR"},
        "active": True,
        "created_at": "2026-11-21T10:00:00.000000Z",
        "updated_at": "2026-11-21T10:00:00.000000Z",
        "images": [],
    }
    good = event_envelope("catalog", "product_updated", {"product": product})
    assert not list(Draft202012Validator(schema).iter_errors(good))
    wrong_type = {**good, "type": "catalog.product_created"}
    assert list(Draft202012Validator(schema).iter_errors(wrong_type))
    missing = {**good, "data": {}}
    assert list(Draft202012Validator(schema).iter_errors(missing))
