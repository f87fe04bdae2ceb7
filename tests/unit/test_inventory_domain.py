"""Inventory rules without I/O: allocation, stock changes, syncs, views and contracts."""

import datetime
import types
import uuid

import pytest

from services.chassis.errors import Conflict, ValidationError
from services.chassis.schemas import SKU_MESSAGE, validate
from services.inventory import domain, schemas

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
ORDER_ID = "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b"


def details(schema, payload):
    with pytest.raises(ValidationError) as info:
        validate(schema, payload)
    return info.value.details


def row(sku, warehouse, on_hand, reserved=0):
    return types.SimpleNamespace(sku=sku, warehouse=warehouse, on_hand=on_hand, reserved=reserved)


# --- allocation ----------------------------------------------------------------------


def test_requested_quantities_sums_repeated_skus_in_sku_order():
    items = [
        {"sku": "B-1", "quantity": 2},
        {"sku": "A-1", "quantity": 1},
        {"sku": "B-1", "quantity": 3.0},
    ]
    requested = domain.requested_quantities(items)
    assert requested == {"A-1": 1, "B-1": 5}
    assert list(requested) == ["A-1", "B-1"]
    assert isinstance(requested["B-1"], int)


def test_warehouse_preference_is_default_first_then_by_name():
    assert domain.warehouse_preference(["west", "main", "east"], "main") == [
        "main",
        "east",
        "west",
    ]
    assert domain.warehouse_preference(["west", "east"], "main") == ["east", "west"]


def test_allocate_takes_the_default_warehouse_first():
    available = {("A-1", "east"): 10, ("A-1", "main"): 10}
    allocation = domain.allocate({"A-1": 4}, available, "main")
    assert allocation.ok
    assert allocation.lines == (("A-1", "main", 4),)


def test_allocate_splits_a_line_over_warehouses_in_preference_order():
    available = {("A-1", "west"): 5, ("A-1", "main"): 3, ("A-1", "east"): 2}
    allocation = domain.allocate({"A-1": 7}, available, "main")
    assert allocation.lines == (("A-1", "east", 2), ("A-1", "main", 3), ("A-1", "west", 2))


def test_allocate_skips_empty_warehouses():
    available = {("A-1", "main"): 0, ("A-1", "east"): 4}
    assert domain.allocate({"A-1": 4}, available, "main").lines == (("A-1", "east", 4),)


def test_allocate_is_all_or_nothing_and_lists_every_shortage():
    available = {("A-1", "main"): 10, ("B-1", "main"): 1, ("B-1", "east"): 1}
    allocation = domain.allocate({"A-1": 2, "B-1": 3, "C-1": 1}, available, "main")
    assert not allocation.ok
    assert allocation.lines == ()
    assert allocation.shortages == (
        {"sku": "B-1", "requested": 3, "available": 2},
        {"sku": "C-1", "requested": 1, "available": 0},
    )


def test_allocate_exactly_what_is_available():
    allocation = domain.allocate({"A-1": 3}, {("A-1", "main"): 3}, "main")
    assert allocation.ok and allocation.lines == (("A-1", "main", 3),)


def test_allocate_several_skus_in_lock_order():
    available = {("B-1", "main"): 1, ("A-1", "x"): 1, ("A-1", "main"): 1}
    allocation = domain.allocate({"B-1": 1, "A-1": 2}, available, "main")
    assert allocation.lines == (("A-1", "main", 1), ("A-1", "x", 1), ("B-1", "main", 1))


def test_lock_order_sorts_and_deduplicates_keys():
    keys = [("B", "a"), ("A", "z"), ("A", "b"), ("B", "a")]
    assert domain.lock_order(keys) == [("A", "b"), ("A", "z"), ("B", "a")]


# --- reservations --------------------------------------------------------------------


def test_new_reservation_expires_after_the_ttl():
    values = domain.new_reservation(ORDER_ID, NOW, 900)
    assert values["status"] == domain.ACTIVE
    assert values["order_id"] == uuid.UUID(ORDER_ID)
    assert values["expires_at"] == NOW + datetime.timedelta(seconds=900)
    assert values["created_at"] == values["updated_at"] == NOW
    assert values["id"].version == 4


def test_tombstone_is_released_without_deadline():
    values = domain.tombstone(ORDER_ID, NOW)
    assert values["status"] == domain.RELEASED and values["expires_at"] is None


@pytest.mark.parametrize(
    "status, effect",
    [
        ("active", domain.RESTORE_RESERVED),
        ("committed", domain.RESTOCK),
        ("expired", None),
        ("released", None),
    ],
)
def test_release_effect(status, effect):
    assert domain.release_effect(status) == effect


def test_commit_failure_reasons():
    assert domain.commit_failure_reason(None) == "no reservation for this order"
    assert domain.commit_failure_reason("expired") == "reservation is expired"


def test_reservation_view_sorts_lines():
    reservation = types.SimpleNamespace(
        id=uuid.uuid4(), order_id=uuid.UUID(ORDER_ID), status="active", expires_at=NOW
    )
    lines = [row("B-1", "main", 0), row("A-1", "x", 0), row("A-1", "main", 0)]
    for line, quantity in zip(lines, (3, 2, 1), strict=True):
        line.quantity = quantity
    view = domain.reservation_view(reservation, lines)
    validate(schemas.RESERVATION, view)
    assert view["expires_at"] == "2024-05-01T12:00:00.000000Z"
    assert view["lines"] == [
        {"sku": "A-1", "warehouse": "main", "quantity": 1},
        {"sku": "A-1", "warehouse": "x", "quantity": 2},
        {"sku": "B-1", "warehouse": "main", "quantity": 3},
    ]


def test_tombstone_view_has_no_deadline_and_no_lines():
    reservation = types.SimpleNamespace(**domain.tombstone(ORDER_ID, NOW))
    view = domain.reservation_view(reservation, [])
    validate(schemas.RESERVATION, view)
    assert view["status"] == "released" and view["expires_at"] is None and view["lines"] == []


# --- stock changes -------------------------------------------------------------------


def test_set_on_hand_refuses_below_reserved():
    assert domain.set_on_hand(5, 5, "A-1", "main") == 5
    with pytest.raises(Conflict) as info:
        domain.set_on_hand(4, 5, "A-1", "main")
    assert info.value.details == {"on_hand": "must be >= 5 (reserved) for A-1 in main"}


def test_adjusted_on_hand():
    assert domain.adjusted_on_hand(10, 3, -7) == 3
    assert domain.adjusted_on_hand(0, 0, 5) == 5


@pytest.mark.parametrize(
    "on_hand, reserved, delta, error, field",
    [
        (3, 0, -4, Conflict, "must be >= -3"),
        (10, 4, -7, Conflict, "must be >= -6 (4 reserved)"),
        (domain.MAX_ON_HAND, 0, 1, Conflict, f"must be <= {domain.MAX_ON_HAND}"),
        (5, 0, 0, ValidationError, "must not be 0"),
    ],
)
def test_adjusted_on_hand_refusals(on_hand, reserved, delta, error, field):
    with pytest.raises(error) as info:
        domain.adjusted_on_hand(on_hand, reserved, delta)
    assert info.value.details == {"delta": field}


def test_sync_levels_refuses_a_repeated_sku():
    levels = [
        {"sku": "A-1", "on_hand": 1},
        {"sku": "B-1", "on_hand": 2},
        {"sku": "A-1", "on_hand": 3},
    ]
    with pytest.raises(ValidationError) as info:
        domain.sync_levels(levels)
    assert info.value.details == {"levels.2.sku": "appears more than once"}


def test_sync_body_hash_ignores_the_order_of_levels_only():
    levels = [{"sku": "B-1", "on_hand": 2}, {"sku": "A-1", "on_hand": 1.0}]
    same = domain.sync_body_hash("main", list(reversed(levels)))
    assert domain.sync_body_hash("main", levels) == same
    assert domain.sync_body_hash("east", levels) != same
    assert domain.sync_body_hash("main", [{"sku": "B-1", "on_hand": 3}, levels[1]]) != same
    assert len(same) == 64


def test_sync_shortfalls_name_the_lines():
    levels = [
        {"sku": "A-1", "on_hand": 1},
        {"sku": "B-1", "on_hand": 5},
        {"sku": "C-1", "on_hand": 0},
    ]
    shortfalls = domain.sync_shortfalls(levels, {"A-1": 2, "B-1": 5, "C-1": 0})
    assert shortfalls == {"levels.0.on_hand": "must be >= 2 (reserved)"}


def test_whole_keeps_integral_floats_whole():
    assert domain.whole(3.0) == 3 and isinstance(domain.whole(3.0), int)
    assert domain.whole(2.5) == 2.5
    assert domain.whole("x") == "x"


# --- views and events ----------------------------------------------------------------


def test_stock_view_totals_and_warehouse_order():
    view = domain.stock_view("A-1", [row("A-1", "west", 5, 1), row("A-1", "east", 3, 3)])
    validate(schemas.STOCK, view)
    assert view == {
        "sku": "A-1",
        "warehouses": [
            {"warehouse": "east", "on_hand": 3, "reserved": 3, "available": 0},
            {"warehouse": "west", "on_hand": 5, "reserved": 1, "available": 4},
        ],
        "total": {"on_hand": 8, "reserved": 4, "available": 4},
    }


def event_payload(name, payload):
    return validate(schemas.EVENTS[name]["payload"], payload)


def test_emitted_payloads_match_their_contracts():
    reservation_id = uuid.uuid4()
    reserved = domain.stock_reserved(ORDER_ID, reservation_id, NOW, (("A-1", "main", 2),))
    assert event_payload("stock_reserved", reserved)["lines"] == [
        {"sku": "A-1", "warehouse": "main", "quantity": 2}
    ]
    changed = domain.stock_changed(row("A-1", "main", 5, 2), domain.SYNC)
    assert event_payload("stock_changed", changed)["available"] == 3
    shortages = domain.allocate({"A-1": 3}, {}, "main").shortages
    event_payload("reservation_rejected", {"order_id": ORDER_ID, "shortages": list(shortages)})
    for reason in domain.RELEASE_REASONS.values():
        for rid in (None, str(reservation_id)):
            event_payload(
                "reservation_released",
                {"order_id": ORDER_ID, "reservation_id": rid, "reason": reason},
            )
    event_payload(
        "reservation_commit_failed",
        {"order_id": ORDER_ID, "reason": domain.commit_failure_reason(None)},
    )
    for name in ("reservation_committed", "reservation_expired"):
        event_payload(name, {"order_id": ORDER_ID, "reservation_id": str(reservation_id)})


def test_every_event_has_version_summary_and_payload():
    assert set(schemas.EVENTS) == {
        "stock_reserved",
        "reservation_rejected",
        "reservation_committed",
        "reservation_commit_failed",
        "reservation_released",
        "reservation_expired",
        "stock_changed",
    }
    for spec in schemas.EVENTS.values():
        assert spec["version"] == 1 and spec["summary"] and spec["payload"]["type"] == "object"


# --- RPC and event-input contracts ---------------------------------------------------


@pytest.mark.parametrize("sku", ["A1", "ABC-123", "9" * 64])
def test_sku_pattern_accepts(sku):
    validate(schemas.SKU_ARGS, {"sku": sku})


@pytest.mark.parametrize("sku", ["a1", "A", "-A1", "A_1", "9" * 65, 7, None])
def test_sku_pattern_refuses(sku):
    assert "sku" in details(schemas.SKU_ARGS, {"sku": sku})


def test_sku_message_says_upper_case():
    assert details(schemas.SKU_ARGS, {"sku": "abc"}) == {"sku": SKU_MESSAGE}


@pytest.mark.parametrize("warehouse", ["main", "a", "eu-west-1", "0" + "a" * 31])
def test_warehouse_pattern_accepts(warehouse):
    validate(schemas.STOCK_SET, {"warehouse": warehouse, "on_hand": 0})


@pytest.mark.parametrize("warehouse", ["", "Main", "-east", "a_b", "a" * 33, "a b"])
def test_warehouse_pattern_refuses(warehouse):
    assert details(schemas.STOCK_SET, {"warehouse": warehouse, "on_hand": 0}) == {
        "warehouse": domain.WAREHOUSE_MESSAGE
    }


def test_stock_set_body_fields():
    assert details(schemas.STOCK_SET, {"on_hand": -1, "extra": 1}) == {
        "warehouse": "is required",
        "on_hand": "must be >= 0",
        "extra": "is not an allowed field",
    }
    assert details(schemas.STOCK_SET, {"warehouse": "main", "on_hand": True}) == {
        "on_hand": "must be of type integer"
    }


def test_set_args_add_the_sku_to_the_body():
    validate(schemas.STOCK_SET_ARGS, {"sku": "A-1", "warehouse": "main", "on_hand": 3})
    assert details(schemas.STOCK_SET_ARGS, {"warehouse": "main", "on_hand": 3}) == {
        "sku": "is required"
    }


def test_adjust_body_needs_a_reason():
    assert details(schemas.STOCK_ADJUST, {"warehouse": "main", "delta": 1, "reason": ""}) == {
        "reason": "must be at least 1 characters"
    }
    validate(schemas.STOCK_ADJUST, {"warehouse": "main", "delta": -3, "reason": "damaged"})


def test_sync_body():
    body = {
        "sync_id": "count-2024-05-01",
        "warehouse": "main",
        "levels": [{"sku": "A-1", "on_hand": 0}],
    }
    validate(schemas.WAREHOUSE_SYNC, body)
    assert details(schemas.WAREHOUSE_SYNC, {**body, "levels": []}) == {
        "levels": "[] should be non-empty"
    }
    assert details(schemas.WAREHOUSE_SYNC, {**body, "sync_id": "has space"}) == {
        "sync_id": domain.SYNC_ID_MESSAGE
    }
    bad_level = {**body, "levels": [{"sku": "A-1"}]}
    assert details(schemas.WAREHOUSE_SYNC, bad_level) == {"levels.0.on_hand": "is required"}


def test_order_args_need_a_canonical_uuid():
    validate(schemas.ORDER_ARGS, {"order_id": ORDER_ID})
    for bad in (ORDER_ID.upper(), "nope", None):
        assert "order_id" in details(schemas.ORDER_ARGS, {"order_id": bad})


def test_order_created_data_is_checked_loosely():
    line = {
        "product_id": str(uuid.uuid4()),
        "sku": "A-1",
        "name": "Mug",
        "quantity": 2,
        "unit_price": {"amount": 100, "currency": "EUR"},
        "line_total": {"amount": 200, "currency": "EUR"},
    }
    data = {"order_id": ORDER_ID, "user_id": str(uuid.uuid4()), "items": [line], "total": {}}
    validate(schemas.ORDER_CREATED_DATA, data)
    assert "items.0.quantity" in details(
        schemas.ORDER_CREATED_DATA, {**data, "items": [{**line, "quantity": 0}]}
    )
    assert "items" in details(schemas.ORDER_CREATED_DATA, {**data, "items": []})
