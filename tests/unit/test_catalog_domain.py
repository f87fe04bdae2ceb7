"""Catalog rules without I/O: money, cursors, contracts."""

import base64
import datetime
import types
import uuid

import pytest

from services.catalog import domain, schemas
from services.chassis import cursors
from services.chassis.errors import ValidationError
from services.chassis.schemas import validate

pytestmark = pytest.mark.unit


def valid_create(**overrides):
    payload = {"sku": "ABC-123", "name": "Mug", "price": {"amount": 1299, "currency": "EUR"}}
    payload.update(overrides)
    return payload


def details(schema, payload):
    with pytest.raises(ValidationError) as info:
        validate(schema, payload)
    return info.value.details


# --- money -------------------------------------------------------------------


def test_money_round_trips_through_dict():
    money = domain.Money.from_dict({"amount": 0, "currency": "USD"})
    assert money.to_dict() == {"amount": 0, "currency": "USD"}


@pytest.mark.parametrize(
    "amount, currency",
    [
        (-1, "EUR"),
        (10**9 + 1, "EUR"),
        (1.5, "EUR"),
        (True, "EUR"),
        ("10", "EUR"),
        (1, "eur"),
        (1, "EURO"),
        (1, "E1R"),
        (1, None),
    ],
)
def test_money_rejects_bad_amounts_and_currencies(amount, currency):
    with pytest.raises(ValueError):
        domain.Money(amount, currency)


def test_money_accepts_the_bounds():
    assert domain.Money(0, "EUR").amount == 0
    assert domain.Money(domain.MAX_AMOUNT, "JPY").amount == 10**9


@pytest.mark.parametrize(
    "price, field",
    [
        ({"amount": -1, "currency": "EUR"}, "price.amount"),
        ({"amount": 10**9 + 1, "currency": "EUR"}, "price.amount"),
        ({"amount": 1.5, "currency": "EUR"}, "price.amount"),
        ({"amount": True, "currency": "EUR"}, "price.amount"),
        ({"amount": 1, "currency": "eur"}, "price.currency"),
        ({"amount": 1}, "price.currency"),
        ({"amount": 1, "currency": "EUR", "tax": 1}, "price.tax"),
    ],
)
def test_price_schema_names_the_broken_field(price, field):
    assert field in details(schemas.PRODUCT_CREATE, valid_create(price=price))


# --- contracts ---------------------------------------------------------------


def test_create_schema_accepts_a_minimal_product():
    assert validate(schemas.PRODUCT_CREATE, valid_create()) == valid_create()


def test_create_schema_errors_name_every_field():
    problems = details(
        schemas.PRODUCT_CREATE,
        {"sku": "abc", "name": "", "price": {"amount": 1, "currency": "EUR"}, "colour": "red"},
    )
    assert set(problems) == {"sku", "name", "colour"}
    assert "upper case" in problems["sku"]
    assert problems["colour"] == "is not an allowed field"


def test_create_schema_requires_sku_name_and_price():
    assert set(details(schemas.PRODUCT_CREATE, {})) == {"sku", "name", "price"}


@pytest.mark.parametrize("sku", ["A", "-AB", "AB_1", "ab-1", "A" * 65, "AB 1"])
def test_bad_skus_are_rejected(sku):
    assert "sku" in details(schemas.PRODUCT_CREATE, valid_create(sku=sku))


@pytest.mark.parametrize("sku", ["AB", "0-X", "A" * 64, "SKU-2024-BLUE"])
def test_good_skus_are_accepted(sku):
    validate(schemas.PRODUCT_CREATE, valid_create(sku=sku))


def test_update_schema_rejects_sku_and_empty_changes():
    assert details(schemas.PRODUCT_UPDATE, {"sku": "NEW-1"}) == {"sku": "is not an allowed field"}
    assert details(schemas.PRODUCT_UPDATE, {}) == {"body": "must not be empty"}
    assert validate(schemas.PRODUCT_UPDATE, {"active": False}) == {"active": False}


def test_list_query_schema_bounds():
    validate(schemas.LIST_QUERY, {"limit": 1, "cursor": "x", "q": "mug"})
    validate(schemas.LIST_QUERY, {})
    assert "limit" in details(schemas.LIST_QUERY, {"limit": 0})
    assert "limit" in details(schemas.LIST_QUERY, {"limit": 101})
    assert "limit" in details(schemas.LIST_QUERY, {"limit": "10"})
    assert "q" in details(schemas.LIST_QUERY, {"q": "x" * 101})


def test_product_view_matches_the_contract():
    moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    row = types.SimpleNamespace(
        id=uuid.uuid4(),
        sku="AB-1",
        name="Mug",
        description="",
        price_amount=5,
        price_currency="EUR",
        active=True,
        created_at=moment,
        updated_at=moment,
        images=[
            types.SimpleNamespace(
                image_id="ab" * 16,
                width=1200,
                height=800,
                list_key=f"images/{'1' * 64}.webp",
                detail_key=f"images/{'2' * 64}.webp",
            )
        ],
    )
    view = domain.product_view(row, "http://shop.example/media")
    validate(schemas.PRODUCT, view)
    assert view["created_at"] == "2024-05-01T12:00:00.000000Z"
    assert view["price"] == {"amount": 5, "currency": "EUR"}
    assert view["images"] == [
        {
            "id": "ab" * 16,
            "width": 1200,
            "height": 800,
            "urls": {
                "list": f"http://shop.example/media/images/{'1' * 64}.webp",
                "detail": f"http://shop.example/media/images/{'2' * 64}.webp",
            },
        }
    ]


def test_new_image_takes_the_detail_size_and_both_keys():
    product_id = uuid.uuid4()
    image = {
        "id": "cd" * 16,
        "renditions": {
            "list": {"key": f"images/{'3' * 64}.webp", "width": 480, "height": 320},
            "detail": {"key": f"images/{'4' * 64}.webp", "width": 1200, "height": 800},
        },
    }
    validate(schemas.IMAGE_ADD, image)
    assert domain.new_image(product_id, image, 3) == {
        "product_id": product_id,
        "image_id": "cd" * 16,
        "position": 3,
        "width": 1200,
        "height": 800,
        "list_key": f"images/{'3' * 64}.webp",
        "detail_key": f"images/{'4' * 64}.webp",
    }
    assert "renditions.list.key" in details(
        schemas.IMAGE_ADD,
        {
            **image,
            "renditions": {
                **image["renditions"],
                "list": {**image["renditions"]["list"], "key": "../x.webp"},
            },
        },
    )


def test_new_product_applies_defaults_and_changes_bump_updated_at():
    values = domain.new_product(valid_create())
    assert values["description"] == "" and values["active"] is True
    assert values["created_at"] == values["updated_at"]
    changes = domain.product_changes({"price": {"amount": 1, "currency": "USD"}})
    assert changes["price_amount"] == 1 and changes["price_currency"] == "USD"
    assert changes["updated_at"] >= values["updated_at"]
    assert "name" not in changes


def test_parse_product_id():
    value = uuid.uuid4()
    assert domain.parse_product_id(str(value).upper()) == str(value)
    assert domain.parse_product_id("nope") is None
    assert domain.parse_product_id(42) is None


def test_like_pattern_escapes_wildcards():
    assert domain.like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


# --- cursors -----------------------------------------------------------------


KEY = cursors.signing_key("unit-test-catalog-cursor-key")
LISTING = domain.ListingCursors(KEY)


@pytest.mark.parametrize("seq", [0, 1, 42, 2**62])
@pytest.mark.parametrize("canonical", [True, False])
def test_cursor_round_trip(seq, canonical):
    cursor = LISTING.encode(seq, canonical)
    assert isinstance(cursor, str) and "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert LISTING.decode(cursor) == (seq, canonical)


def _reencode(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _tampered():
    cursor = LISTING.encode(10)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    version, seq, chain, mac = raw.split(".")
    return [
        _reencode(f"{version}.11.{chain}.{mac}"),  # another position, old MAC
        _reencode(f"{version}.{seq}.c.{mac}"),  # made canonical, old MAC
        _reencode(f"1.{seq}.{chain}.{mac}"),  # unknown version
        _reencode(f"{version}.-1.{chain}.{mac}"),
        _reencode(f"{version}.{seq}.{chain}"),  # MAC removed
        cursor[:-2],  # truncated
        cursor + "A",
        "not a cursor!",
        "",
        "====",
        "A" * 300,
    ]


@pytest.mark.parametrize("cursor", _tampered() + [None, 12])
def test_tampered_or_garbage_cursors_are_rejected(cursor):
    with pytest.raises(ValidationError) as info:
        LISTING.decode(cursor)
    assert info.value.details == {"cursor": "is invalid"}


def test_a_cursor_signed_with_another_key_is_refused():
    # The key is a secret from config: the development default, or the old public
    # constant, signs nothing this catalog accepts.
    for other in ("agora-development-catalog-cursor-key", "another-deployment-key!"):
        forged = domain.ListingCursors(cursors.signing_key(other)).encode(10, canonical=True)
        with pytest.raises(ValidationError) as info:
            LISTING.decode(forged)
        assert info.value.details == {"cursor": "is invalid"}
    old_constant = cursors.Cursor(b"agora.catalog.cursor.v1", "2").encode("10", "c")
    with pytest.raises(ValidationError):
        LISTING.decode(old_constant)


def test_page_sets_next_cursor_only_when_more_rows_exist():
    rows = [types.SimpleNamespace(seq=s) for s in (3, 5, 9)]
    items, next_cursor = LISTING.page(rows, 2, lambda r: r.seq, canonical=True)
    assert [r.seq for r in items] == [3, 5]
    assert LISTING.decode(next_cursor) == (5, True)
    items, next_cursor = LISTING.page(rows, 3, lambda r: r.seq)
    assert len(items) == 3 and next_cursor is None


@pytest.mark.parametrize(
    "limit, q, chained, cached",
    [
        (domain.LIMIT_DEFAULT, None, True, True),
        (domain.LIMIT_DEFAULT, None, False, False),  # a cursor from another listing
        (domain.LIMIT_DEFAULT, "mug", True, False),
        (domain.LIMIT_DEFAULT - 1, None, True, False),
        (1, None, True, False),
    ],
)
def test_only_canonical_pages_are_cached(limit, q, chained, cached):
    assert domain.is_canonical_page(limit, q, chained) is cached
