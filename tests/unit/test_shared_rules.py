"""One home per shared rule, and the places that used drifted copies now agree.

- the Idempotency-Key pattern (orders and billing): chassis.schemas
- the SKU pattern (catalog, inventory, its table check and migration): chassis.schemas
- "a JSON integer may arrive as 1.0" (money, order quantities, stock): chassis.values.whole
- list-query parsing (products, orders, notifications): gateway.api.query_args
"""

import importlib.util

import pytest

from services.billing import schemas as billing_schemas
from services.catalog import schemas as catalog_schemas
from services.chassis import values
from services.chassis.config import ROOT
from services.chassis.errors import ValidationError
from services.chassis.schemas import (
    IDEMPOTENCY_KEY_MESSAGE,
    IDEMPOTENCY_KEY_PATTERN,
    SKU_MESSAGE,
    SKU_PATTERN,
    pattern_matches,
    validate,
)
from services.chassis.values import Money, whole
from services.inventory import domain as inventory_domain
from services.inventory import models as inventory_models
from services.inventory import schemas as inventory_schemas
from services.orders import domain as orders_domain
from services.orders import schemas as orders_schemas

pytestmark = pytest.mark.unit

KEY_SCHEMAS = (orders_schemas.IDEMPOTENCY_KEY, billing_schemas.IDEMPOTENCY_KEY)
SKU_SCHEMAS = (catalog_schemas.SKU, inventory_schemas.SKU)


# --- the Idempotency-Key pattern -------------------------------------------------


@pytest.mark.parametrize("key", ["k", "order-2024-05-01 #1", "~" * 255, " "])
def test_idempotency_key_accepts_1_to_255_printable_ascii(key):
    assert pattern_matches(IDEMPOTENCY_KEY_PATTERN, key)


@pytest.mark.parametrize("key", ["", "key\n", "key\r\n", "\nkey", "k" * 256, "clé", "tab\tkey"])
def test_idempotency_key_refuses_the_rest(key):
    assert not pattern_matches(IDEMPOTENCY_KEY_PATTERN, key)


@pytest.mark.parametrize("schema", KEY_SCHEMAS, ids=["orders", "billing"])
def test_orders_and_billing_use_the_one_key_rule(schema):
    assert schema["pattern"] == IDEMPOTENCY_KEY_PATTERN
    assert schema["x-message"] == IDEMPOTENCY_KEY_MESSAGE
    assert validate(schema, "key") == "key"
    # Billing used "$", which Python's re also matched before a final newline.
    with pytest.raises(ValidationError) as refused:
        validate(schema, "key\n")
    assert refused.value.details == {"body": IDEMPOTENCY_KEY_MESSAGE}


# --- the SKU pattern -----------------------------------------------------------------


@pytest.mark.parametrize("sku", ["AB", "SKU-1", "A" * 64, "0-0"])
def test_sku_rule_accepts(sku):
    assert pattern_matches(SKU_PATTERN, sku)


@pytest.mark.parametrize("sku", ["A", "-AB", "sku-1", "A" * 65, "SKU-1\n", "SKU 1", ""])
def test_sku_rule_refuses(sku):
    assert not pattern_matches(SKU_PATTERN, sku)


@pytest.mark.parametrize("schema", SKU_SCHEMAS, ids=["catalog", "inventory"])
def test_catalog_and_inventory_use_the_one_sku_rule(schema):
    assert schema["pattern"] == SKU_PATTERN
    assert schema["x-message"] == SKU_MESSAGE
    with pytest.raises(ValidationError) as refused:
        validate(schema, "sku-1")
    assert refused.value.details == {"body": SKU_MESSAGE}


def test_the_inventory_table_check_and_its_migration_use_the_sku_rule():
    table = inventory_models.StockLevel.__table__
    checks = {c.name: str(c.sqltext) for c in table.constraints if hasattr(c, "sqltext")}
    assert checks["ck_stock_levels_sku"] == f"sku ~ '{SKU_PATTERN}'"
    path = ROOT / "services/inventory/migrations/versions/0001_create_inventory_tables.py"
    spec = importlib.util.spec_from_file_location("inventory_0001", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.SKU_PATTERN is SKU_PATTERN


# --- a JSON integer that arrives as 1.0 ---------------------------------------------


def test_whole_keeps_integral_floats_as_ints_and_nothing_else():
    assert whole(3.0) == 3 and type(whole(3.0)) is int
    assert whole(1e3) == 1000 and type(whole(1e3)) is int
    assert whole(2.5) == 2.5
    assert whole(7) == 7
    assert whole("x") == "x"
    assert whole(True) is True


def test_money_order_quantities_and_stock_read_integers_the_same_way():
    assert Money.from_dict({"amount": 1500.0, "currency": "EUR"}) == Money(1500, "EUR")
    assert inventory_domain.whole is values.whole
    item = {"product_id": "00000000-0000-4000-8000-000000000000", "quantity": 2.0}
    canonical = orders_domain.canonical_request({"items": [item], "payment": {"token": "t"}})
    assert type(canonical["items"][0]["quantity"]) is int
    assert orders_domain.request_hash(
        {"items": [item], "payment": {"token": "t"}}
    ) == orders_domain.request_hash({"items": [{**item, "quantity": 2}], "payment": {"token": "t"}})
