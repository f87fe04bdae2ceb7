"""Signed opaque keyset cursors: what every list RPC hands out and takes back."""

import base64
import datetime
import hashlib
import uuid

import pytest

from services.catalog import domain as catalog
from services.chassis.cursors import (
    CURSOR_MAX,
    Cursor,
    TimeIdCursor,
    from_micros,
    invalid_cursor,
    micros,
    signing_key,
    split_page,
)
from services.chassis.errors import ValidationError
from services.notifications import domain as notifications
from services.orders import domain as orders

pytestmark = pytest.mark.unit

KEY = b"agora.test.cursor.v1"
CURSOR = Cursor(KEY, "1")
MOMENT = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
ROW_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def raw(cursor):
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def forge(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def signed(text, key=KEY):
    """``text`` with the MAC a cursor of ``key`` would carry: valid but for its content."""
    mac = hashlib.blake2b(text.encode(), key=key, digest_size=8).hexdigest()
    return forge(f"{text}.{mac}")


def refused(decode, *args):
    with pytest.raises(ValidationError) as info:
        decode(*args)
    assert info.value.message == "invalid cursor"
    assert info.value.details == {"cursor": "is invalid"}
    return info.value


# --- Cursor ----------------------------------------------------------------------


@pytest.mark.parametrize("fields", [("0",), ("42", "abc"), ("1714564800123456", str(ROW_ID), "x")])
def test_round_trip(fields):
    cursor = CURSOR.encode(*fields)
    assert isinstance(cursor, str) and "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert CURSOR.decode(cursor, len(fields)) == list(fields)


def test_the_wire_format_is_version_fields_and_mac():
    cursor = CURSOR.encode("7", "a")
    version, seven, a, mac = raw(cursor).split(".")
    assert (version, seven, a) == ("1", "7", "a")
    assert mac == hashlib.blake2b(b"1.7.a", key=KEY, digest_size=8).hexdigest()
    assert cursor == signed("1.7.a")


def test_a_padded_cursor_is_accepted_too():
    cursor = CURSOR.encode("123")
    assert len(cursor) % 4  # the padding was stripped
    assert CURSOR.decode(cursor + "=" * (-len(cursor) % 4), 1) == ["123"]


def test_tampered_fields_are_refused():
    version, seq, mac = raw(CURSOR.encode("10")).split(".")
    refused(CURSOR.decode, forge(f"{version}.11.{mac}"), 1)


def test_a_tampered_mac_is_refused():
    version, seq, mac = raw(CURSOR.encode("10")).split(".")
    other = ("0" if mac[0] != "0" else "1") + mac[1:]
    refused(CURSOR.decode, forge(f"{version}.{seq}.{other}"), 1)
    refused(CURSOR.decode, forge(f"{version}.{seq}."), 1)
    refused(CURSOR.decode, forge(f"{version}.{seq}.{mac.upper()}"), 1)


def test_another_key_is_refused():
    cursor = Cursor(b"agora.other.cursor.v1", "1").encode("10")
    refused(CURSOR.decode, cursor, 1)


def test_a_wrong_version_is_refused():
    refused(CURSOR.decode, Cursor(KEY, "2").encode("10"), 1)
    refused(CURSOR.decode, signed("2.10"), 1)  # even with a MAC of the right key
    refused(Cursor(KEY, "2").decode, CURSOR.encode("10"), 1)


@pytest.mark.parametrize("count", [0, 2, 3])
def test_a_wrong_field_count_is_refused(count):
    refused(CURSOR.decode, CURSOR.encode("10"), count)


def test_a_field_count_the_mac_covers_but_the_reader_does_not_expect_is_refused():
    refused(CURSOR.decode, signed("1.10.extra"), 1)
    refused(CURSOR.decode, signed("1"), 1)


def test_oversize_cursors_are_refused_before_decoding():
    long_field = "9" * 200
    cursor = CURSOR.encode(long_field)
    assert len(cursor) > CURSOR_MAX
    refused(CURSOR.decode, cursor, 1)
    assert Cursor(KEY, "1", max_length=len(cursor)).decode(cursor, 1) == [long_field]
    refused(CURSOR.decode, "A" * (CURSOR_MAX + 1), 1)


@pytest.mark.parametrize("cursor", [None, 12, 1.5, b"MS4w", ["x"], {"c": 1}, True])
def test_non_strings_are_refused(cursor):
    refused(CURSOR.decode, cursor, 1)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "not a cursor!",
        "MS4w+/",  # the standard alphabet, not base64url
        "A",  # no whole byte
        "=",
        "MS4wLjBlOD hl",  # inner space
        forge("1.é.x"),  # not ASCII
        base64.urlsafe_b64encode(b"\xff\xfe.1").decode(),
    ],
)
def test_garbage_is_refused(cursor):
    refused(CURSOR.decode, cursor, 1)


def test_truncated_and_extended_cursors_are_refused():
    cursor = CURSOR.encode("10")
    refused(CURSOR.decode, cursor[:-2], 1)
    refused(CURSOR.decode, cursor + "A", 1)


def test_each_refusal_is_a_fresh_error():
    first = refused(CURSOR.decode, "", 1)
    second = refused(CURSOR.decode, "", 1)
    assert first is not second
    assert invalid_cursor().details == {"cursor": "is invalid"}


@pytest.mark.parametrize("field", ["a.b", 5, None, b"x", "é"])
def test_encode_refuses_fields_it_could_not_read_back(field):
    with pytest.raises(ValueError):
        CURSOR.encode(field)


@pytest.mark.parametrize("version", ["", "1.0"])
def test_a_version_must_be_one_field(version):
    with pytest.raises(ValueError):
        Cursor(KEY, version)


# --- micros ---------------------------------------------------------------------


def test_micros_round_trip():
    assert micros(MOMENT) == 1714564800123456
    assert from_micros(str(micros(MOMENT))) == MOMENT
    assert from_micros("0") == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def test_naive_times_are_utc():
    assert micros(MOMENT.replace(tzinfo=None)) == micros(MOMENT)
    other = datetime.timezone(datetime.timedelta(hours=2))
    assert micros(MOMENT.astimezone(other)) == micros(MOMENT)


@pytest.mark.parametrize(
    "text", ["", "-1", "1.5", "+1", " 1", "1\n", "١٢", "1" * 21, "9" * 20, None, 5]
)
def test_from_micros_refuses_what_micros_never_writes(text):
    refused(from_micros, text)


# --- TimeIdCursor -----------------------------------------------------------------


@pytest.mark.parametrize("hex_ids", [False, True])
def test_time_id_round_trip(hex_ids):
    cursors = TimeIdCursor(KEY, "1", hex_ids=hex_ids)
    assert cursors.decode(cursors.encode(MOMENT, ROW_ID)) == (MOMENT, ROW_ID)
    assert cursors.decode(cursors.encode(MOMENT, str(ROW_ID).upper())) == (MOMENT, ROW_ID)


def test_time_id_spelling_of_the_id():
    _, _, hyphenated, _ = raw(TimeIdCursor(KEY, "1").encode(MOMENT, ROW_ID)).split(".")
    _, _, hexed, _ = raw(TimeIdCursor(KEY, "1", hex_ids=True).encode(MOMENT, ROW_ID)).split(".")
    assert hyphenated == str(ROW_ID)
    assert hexed == ROW_ID.hex


def test_time_id_of_a_naive_time_is_utc():
    cursors = TimeIdCursor(KEY, "1")
    created_at, _ = cursors.decode(cursors.encode(MOMENT.replace(tzinfo=None), ROW_ID))
    assert created_at == MOMENT and created_at.tzinfo is datetime.UTC


def test_time_id_refuses_an_id_that_is_not_a_uuid():
    with pytest.raises(ValueError):
        TimeIdCursor(KEY, "1").encode(MOMENT, "not-a-uuid")
    refused(TimeIdCursor(KEY, "1").decode, signed("1.5.not-a-uuid"))


@pytest.mark.parametrize(
    "text",
    [
        f"1.-5.{ROW_ID}",  # before the epoch
        f"1.{'9' * 20}.{ROW_ID}",  # past datetime.max
        f"1.{'1' * 21}.{ROW_ID}",
        f"1.5\n.{ROW_ID}",
        f"1.x.{ROW_ID}",
        "1.5",
        f"1.5.{ROW_ID}.extra",
    ],
)
def test_time_id_refuses_signed_but_malformed_content(text):
    refused(TimeIdCursor(KEY, "1").decode, signed(text))


def test_time_id_refuses_tampering():
    cursors = TimeIdCursor(KEY, "1")
    version, moment, row_id, mac = raw(cursors.encode(MOMENT, ROW_ID)).split(".")
    refused(cursors.decode, forge(f"{version}.{int(moment) + 1}.{row_id}.{mac}"))
    refused(cursors.decode, forge(f"{version}.{moment}.{uuid.uuid4()}.{mac}"))
    refused(TimeIdCursor(KEY, "2").decode, cursors.encode(MOMENT, ROW_ID))
    refused(cursors.decode, None)
    refused(cursors.decode, "x" * (CURSOR_MAX + 1))


# --- the services' cursors --------------------------------------------------------


# Issued with the public constant keys the services used before their keys came
# from config (issue 9, item 12): refused now, as anything not signed with the
# deployment's own secret is. (Until then this test asserted they stayed valid.)
OLD_PUBLIC_CURSORS = [
    ("catalog", "MS4wLjBlODhlYjM5YzIzMmNhMDc"),
    (
        "orders",
        "MS4xNzE0NTY0ODAwMTIzNDU2LjEyMzQ1Njc4LTEyMzQtNTY3OC0xMjM0LTU2NzgxMjM0NTY3OC4y"
        "MzlkMDBhZTA3Yjg3YzYy",
    ),
    (
        "notifications",
        "MS4xNzE0NTY0ODAwMTIzNDU2LjEyMzQ1Njc4MTIzNDU2NzgxMjM0NTY3ODEyMzQ1Njc4LmEwNzZk"
        "NGNmNTI0OWJlZWY",
    ),
]


def listing(service, secret="a-deployment-secret-cursor-key"):
    domain = {"catalog": catalog, "orders": orders, "notifications": notifications}[service]
    make = domain.ListingCursors if service == "catalog" else domain.listing_cursors
    return make(signing_key(secret))


@pytest.mark.parametrize("service, cursor", OLD_PUBLIC_CURSORS)
def test_cursors_signed_with_the_old_public_keys_are_refused(service, cursor):
    refused(listing(service).decode, cursor)


def test_a_service_reads_only_cursors_signed_with_its_configured_key():
    ours, theirs = listing("orders"), listing("orders", "another-deployment-secret")
    cursor = ours.encode(MOMENT, ROW_ID)
    assert ours.decode(cursor) == (MOMENT, ROW_ID)
    refused(theirs.decode, cursor)
    page = listing("catalog").encode(42, canonical=True)
    assert listing("catalog").decode(page) == (42, True)
    refused(listing("catalog", "another-deployment-secret").decode, page)


def test_each_service_signs_with_its_own_key():
    from services.chassis.config import load_config

    services = load_config({"AGORA_ENV": "development"})["services"]
    keys = {name: services[name]["cursor_key"] for name in ("catalog", "orders", "notifications")}
    assert len(set(keys.values())) == 3
    moment_id = (MOMENT, ROW_ID)
    orders_listing = listing("orders", keys["orders"])
    notifications_listing = listing("notifications", keys["notifications"])
    refused(notifications_listing.decode, orders_listing.encode(*moment_id))
    refused(orders_listing.decode, notifications_listing.encode(*moment_id))
    for domain in (catalog, orders, notifications):
        assert domain.CURSOR_MAX == CURSOR_MAX


def test_the_signing_key_fits_blake2b_whatever_the_configured_length():
    for secret in ("x" * 16, "y" * 500):
        assert len(signing_key(secret)) == 32
    assert signing_key("one-secret-value") != signing_key("two-secret-value")


def test_split_page_gives_a_cursor_only_when_a_row_is_left_over():
    rows = list(range(5))
    assert split_page(rows, 4, lambda last: f"after-{last}") == ([0, 1, 2, 3], "after-3")
    assert split_page(rows, 5, lambda last: f"after-{last}") == (rows, None)
    assert split_page([], 5, lambda last: f"after-{last}") == ([], None)
