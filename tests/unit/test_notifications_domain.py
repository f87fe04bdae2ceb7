"""Notification rules without I/O: rows per event, retries, contacts, cursors, texts."""

import base64
import datetime
import types
import uuid

import pytest

from services.chassis import cursors
from services.chassis.errors import ValidationError
from services.chassis.schemas import validate
from services.notifications import channels, domain, schemas, templates

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
ORDER_ID = "0b5f7c3e-1111-4222-8333-444455556666"
USER_ID = str(uuid.uuid4())


def money(amount, currency="EUR"):
    return {"amount": amount, "currency": currency}


LINE = {
    "product_id": str(uuid.uuid4()),
    "sku": "MUG-1",
    "name": "Blue mug",
    "quantity": 2,
    "unit_price": money(1299),
    "line_total": money(2598),
}

# One event payload per template, shaped as the contract says.
EVENT_DATA = {
    "order_confirmed": {
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "items": [LINE],
        "total": money(2598),
        "payment_id": "pay-42",
    },
    "payment_failed": {
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "payment_id": None,
        "reason": "card declined",
    },
    "order_cancelled": {
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "reason": "customer",
        "previous_status": "reserved",
    },
    "order_rejected": {
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "reason": "out of stock",
        "shortages": [{"sku": "MUG-1", "requested": 3, "available": 1}],
    },
    "order_expired": {"order_id": ORDER_ID, "user_id": USER_ID, "previous_status": "reserved"},
    "refund_issued": {
        "refund_id": "ref-7",
        "payment_id": "pay-42",
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "amount": money(1299),
        "reason": "order cancelled",
        "payment_status": "partially_refunded",
    },
    "receipt": {
        "receipt_id": str(uuid.uuid4()),
        "number": "R-2024-000123",
        "order_id": ORDER_ID,
        "payment_id": "pay-42",
        "user_id": USER_ID,
        "amount": money(2598),
        "issued_at": "2024-05-01T12:34:56.000000Z",
        "items": [LINE],
    },
}


def envelope(template="order_confirmed", **data):
    return {
        "event_id": str(uuid.uuid4()),
        "type": "orders.order_confirmed",
        "occurred_at": "2024-05-01T12:00:00.000000Z",
        "version": 1,
        "data": {**EVENT_DATA[template], **data},
    }


# --- money and texts ---------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (money(2598), "EUR 25.98"),
        (money(5), "EUR 0.05"),
        (money(0), "EUR 0.00"),
        (money(123456789), "EUR 1,234,567.89"),
        (money(1500, "JPY"), "JPY 1,500"),
        (money(1234, "KWD"), "KWD 1.234"),
        (money(-250), "EUR -2.50"),
    ],
)
def test_format_money_uses_minor_units_of_the_currency(value, text):
    assert templates.format_money(value) == text


def test_every_event_template_has_texts():
    assert set(templates.TEXTS) == set(domain.TEMPLATES)
    assert set(domain.TEMPLATES) == {
        "order_confirmed",
        "payment_failed",
        "order_cancelled",
        "order_rejected",
        "order_expired",
        "refund_issued",
        "receipt",
        "email_verification",
        "phone_verification",
    }


@pytest.mark.parametrize("template", sorted(EVENT_DATA))
def test_every_template_renders_the_order_and_a_greeting(template):
    rendered = templates.render(template, EVENT_DATA[template], "Ada")
    assert rendered.subject and "\n" not in rendered.subject
    assert "0B5F7C3E" in rendered.subject
    assert rendered.body.startswith("Hello Ada,\n")
    assert ORDER_ID in rendered.body
    assert "$" not in rendered.body + rendered.subject + rendered.sms
    assert rendered.sms.startswith("Agora: ") and len(rendered.sms) <= templates.SMS_MAX


def test_order_confirmed_lists_items_and_total():
    rendered = templates.render("order_confirmed", EVENT_DATA["order_confirmed"])
    assert rendered.body.startswith("Hello,\n")
    assert "2 x Blue mug (MUG-1)  EUR 25.98" in rendered.body
    assert "Total: EUR 25.98" in rendered.body
    assert "pay-42" in rendered.body
    assert rendered.subject == "Your order 0B5F7C3E is confirmed"


def test_refund_and_receipt_show_amount_and_number():
    refund = templates.render("refund_issued", EVENT_DATA["refund_issued"])
    assert refund.subject == "Refund of EUR 12.99 for order 0B5F7C3E"
    assert "refunded EUR 12.99" in refund.body and "ref-7" in refund.body
    receipt = templates.render("receipt", EVENT_DATA["receipt"])
    assert receipt.subject == "Receipt R-2024-000123 for order 0B5F7C3E"
    assert "Receipt number: R-2024-000123" in receipt.body
    assert "Issued: 2024-05-01 12:34 UTC" in receipt.body
    assert "Total paid: EUR 25.98" in receipt.body
    assert "2 x Blue mug" in receipt.body


def test_rejection_lists_shortages_and_failure_gives_the_reason():
    rejected = templates.render("order_rejected", EVENT_DATA["order_rejected"])
    assert "MUG-1: 3 requested, 1 available" in rejected.body
    assert "Reason: out of stock" in rejected.body
    failed = templates.render("payment_failed", EVENT_DATA["payment_failed"])
    assert "Reason: card declined" in failed.body
    assert "(card declined)" in failed.sms


@pytest.mark.parametrize(
    "reason, phrase",
    [
        ("customer", "cancelled as you requested."),
        ("payment_failed", "cancelled because the payment did not go through."),
        ("commit_failed", "cancelled because the items could no longer be set aside"),
        ("something_new", "cancelled (something_new)."),
    ],
)
def test_cancellation_explains_the_reason(reason, phrase):
    data = {**EVENT_DATA["order_cancelled"], "reason": reason}
    assert phrase in templates.render("order_cancelled", data).body


def test_event_values_cannot_break_out_of_their_line():
    data = {
        **EVENT_DATA["order_confirmed"],
        "order_id": "abc\r\nBcc: evil@example.com",
        "items": [{**LINE, "name": "Mug\n\nTotal: EUR 0.00 $total"}],
    }
    rendered = templates.render("order_confirmed", data, "Ada\nBcc: x@example.com")
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert "\nBcc:" not in rendered.body
    assert "Mug Total: EUR 0.00 $total" in rendered.body  # data is never expanded
    assert rendered.body.startswith("Hello Ada Bcc: x@example.com,")


def test_long_sms_is_cut():
    data = {**EVENT_DATA["payment_failed"], "reason": "x" * 1000}
    sms = templates.render("payment_failed", data).sms
    assert len(sms) == templates.SMS_MAX and sms.endswith("…")


# --- contacts ----------------------------------------------------------------


def test_contact_from_user_takes_email_phone_and_name():
    contact = domain.contact_from_user(
        {"id": USER_ID, "email": " ada@example.com ", "name": "Ada", "phone": "+49151"}
    )
    assert contact == domain.Contact("ada@example.com", "+49151", "Ada")
    bare = domain.contact_from_user({"id": USER_ID, "email": "b@example.com", "name": None})
    assert bare.phone is None and bare.name is None
    assert domain.contact_from_user({"email": "c@example.com", "phone": "  "}).phone is None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_contact_cache_expires_entries():
    clock = Clock()
    cache = domain.ContactCache(ttl=60, clock=clock)
    contact = domain.Contact("a@example.com")
    assert cache.get("u1") is None
    cache.put("u1", contact)
    clock.now += 59.9
    assert cache.get("u1") is contact
    clock.now += 0.1
    assert cache.get("u1") is None and len(cache) == 0


def test_contact_cache_is_bounded_and_drops_the_oldest():
    clock = Clock()
    cache = domain.ContactCache(ttl=60, max_entries=2, clock=clock)
    for name in ("a", "b", "c"):
        cache.put(name, domain.Contact(f"{name}@example.com"))
        clock.now += 1
    assert len(cache) == 2
    assert cache.get("a") is None and cache.get("c").email == "c@example.com"


def test_contact_cache_forgets_one_user_on_request():
    cache = domain.ContactCache(ttl=60, clock=Clock())
    cache.put("u1", domain.Contact("a@example.com"))
    cache.put("u2", domain.Contact("b@example.com"))
    cache.forget("u1")
    cache.forget("never-cached")
    assert cache.get("u1") is None and cache.get("u2").email == "b@example.com"


def test_contact_cache_with_zero_ttl_stores_nothing():
    cache = domain.ContactCache(ttl=0)
    cache.put("u", domain.Contact("a@example.com"))
    assert cache.get("u") is None


# --- rows per event ----------------------------------------------------------


def rows_for(contact, sms_enabled=False, event=None):
    event = event or envelope()
    rendered = templates.render("order_confirmed", event["data"])
    return event, domain.notification_rows(
        event, "order_confirmed", rendered, contact, sms_enabled, NOW
    )


def verified(email="ada@example.com", phone=None):
    return domain.Contact(email, phone=phone, email_verified=True, phone_verified=True)


def test_an_event_makes_one_queued_email_due_now():
    event, (row,) = rows_for(verified(phone="+49151"))
    assert row["channel"] == "email" and row["status"] == "queued"
    assert row["recipient"] == "ada@example.com"
    assert row["event_id"] == uuid.UUID(event["event_id"])
    assert row["user_id"] == uuid.UUID(USER_ID)
    assert row["event_type"] == "orders.order_confirmed"
    assert row["next_attempt_at"] == NOW and row["attempts"] == 0
    assert row["subject"].startswith("Your order")


def test_sms_only_with_a_phone_and_a_provider():
    with_phone = verified(phone="+49151")
    _, rows = rows_for(with_phone, sms_enabled=True)
    assert [r["channel"] for r in rows] == ["email", "sms"]
    sms = rows[1]
    assert sms["recipient"] == "+49151" and sms["subject"] is None
    assert sms["body"].startswith("Agora: order")
    assert rows[0]["id"] != sms["id"]
    _, rows = rows_for(verified(), sms_enabled=True)
    assert [r["channel"] for r in rows] == ["email"]


def test_an_unverified_contact_gets_skipped_rows_not_queued_ones():
    contact = domain.Contact("ada@example.com", phone="+49151")
    _, rows = rows_for(contact, sms_enabled=True)
    assert [(r["channel"], r["status"]) for r in rows] == [("email", "skipped"), ("sms", "skipped")]
    assert all(r["last_error"] == domain.UNVERIFIED for r in rows)
    assert all(r["next_attempt_at"] is None for r in rows)
    # Email proven, phone not: only the email is queued.
    half = domain.Contact("ada@example.com", phone="+49151", email_verified=True)
    _, rows = rows_for(half, sms_enabled=True)
    assert [(r["channel"], r["status"]) for r in rows] == [("email", "queued"), ("sms", "skipped")]


def test_a_rejected_order_sends_no_sms():
    event = envelope("order_rejected")
    rendered = templates.render("order_rejected", event["data"])
    rows = domain.notification_rows(
        event, "order_rejected", rendered, verified(phone="+49151"), True, NOW
    )
    assert [(r["channel"], r["status"]) for r in rows] == [("email", "queued")]


def test_contact_from_user_reads_the_verified_flags():
    user = {"email": "a@example.com", "phone": "+49151", "email_verified": True}
    contact = domain.contact_from_user(user)
    assert contact.email_verified is True and contact.phone_verified is False
    # Only a real true counts.
    assert (
        domain.contact_from_user({"email": "a@x.io", "email_verified": "yes"}).email_verified
        is False
    )


def verification_event(name="email_verification_requested"):
    return {
        "event_id": str(uuid.uuid4()),
        "type": f"users.{name}",
        "occurred_at": "2024-05-01T12:00:00.000000Z",
        "version": 1,
        "data": {"user_id": USER_ID},
    }


def test_a_verification_is_queued_even_to_an_unverified_contact():
    issued = {
        "channel": "email",
        "recipient": "ada@example.com",
        "name": "Ada",
        "secret": "tok",
        "expires_at": "2024-05-02T12:00:00.000000Z",
    }
    data = {"link": "http://gw/v1/users/verify-email?token=tok", "expires_at": issued["expires_at"]}
    rendered = templates.render("email_verification", data, "Ada")
    assert "http://gw/v1/users/verify-email?token=tok" in rendered.body
    assert "2024-05-02 12:00 UTC" in rendered.body and rendered.body.startswith("Hello Ada,")
    row = domain.verification_row(
        verification_event(), "email_verification", issued, rendered, False, NOW
    )
    assert row["channel"] == "email" and row["status"] == "queued"
    assert row["recipient"] == "ada@example.com" and row["next_attempt_at"] == NOW
    assert row["event_type"] == "users.email_verification_requested"


def test_a_phone_code_goes_by_sms_and_fails_without_a_provider():
    issued = {
        "channel": "phone",
        "recipient": "+49151",
        "name": None,
        "secret": "012345",
        "expires_at": "2024-05-01T12:10:00.000000Z",
    }
    rendered = templates.render("phone_verification", {"code": "012345", **issued})
    assert "012345" in rendered.sms and len(rendered.sms) <= templates.SMS_MAX
    event = verification_event("phone_verification_requested")
    row = domain.verification_row(event, "phone_verification", issued, rendered, True, NOW)
    assert row["channel"] == "sms" and row["status"] == "queued" and row["subject"] is None
    assert row["body"] == rendered.sms
    off = domain.verification_row(event, "phone_verification", issued, rendered, False, NOW)
    assert off["status"] == "failed" and "no SMS provider" in off["last_error"]


def queued_row(channel="email", recipient="ada@example.com", status="queued"):
    return {"channel": channel, "recipient": recipient, "status": status}


def test_the_cap_suppresses_what_is_beyond_it_per_recipient():
    rows = [queued_row() for _ in range(3)] + [queued_row("sms", "+49151")]
    recent = {("email", "ada@example.com"): 1}
    domain.apply_cap(rows, recent, cap=2)
    assert [r["status"] for r in rows] == ["queued", "suppressed", "suppressed", "queued"]
    assert rows[1]["last_error"] == domain.OVER_CAP and rows[1]["next_attempt_at"] is None
    assert recent == {("email", "ada@example.com"): 2, ("sms", "+49151"): 1}


def test_the_cap_counts_a_recipient_however_spelled_and_ignores_non_messages():
    rows = [queued_row(recipient="Ada@Example.com "), queued_row(status="skipped")]
    recent = {("email", "ada@example.com"): 4}
    domain.apply_cap(rows, recent, cap=5)
    assert [r["status"] for r in rows] == ["queued", "skipped"]
    assert recent[("email", "ada@example.com")] == 5
    again = [queued_row()]
    domain.apply_cap(again, recent, cap=5)
    assert again[0]["status"] == "suppressed"


def test_unknown_user_leaves_a_failed_row():
    _, (row,) = rows_for(None, sms_enabled=True)
    assert row["status"] == "failed" and row["recipient"] == ""
    assert row["last_error"] == domain.USER_NOT_FOUND
    assert row["next_attempt_at"] is None


@pytest.mark.parametrize(
    "event, fields",
    [
        ({"event_id": "nope", "data": {"user_id": USER_ID}}, {"event_id"}),
        ({"event_id": str(uuid.uuid4()), "data": {"user_id": 5}}, {"data.user_id"}),
        ({"event_id": None, "data": None}, {"event_id", "data.user_id"}),
    ],
)
def test_malformed_events_are_refused(event, fields):
    with pytest.raises(ValidationError) as info:
        domain.event_ids(event)
    assert set(info.value.details) == fields


def test_every_handled_event_has_a_template():
    assert domain.TEMPLATE_FOR_EVENT[("orders", "order_payment_failed")] == "payment_failed"
    assert domain.TEMPLATE_FOR_EVENT[("billing", "receipt_issued")] == "receipt"
    assert len(domain.TEMPLATE_FOR_EVENT) == 7


# --- retries -----------------------------------------------------------------


def test_retry_delay_doubles_from_base_up_to_the_cap():
    delays = [domain.retry_delay(n, base=2.0, cap=600.0) for n in range(1, 12)]
    assert delays[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert delays[-1] == 600.0
    assert domain.retry_delay(10_000, base=2.0, cap=600.0) == 600.0
    with pytest.raises(ValueError):
        domain.retry_delay(0, 1.0, 1.0)


def test_after_send_success_marks_sent():
    outcome = domain.after_send(1, None, NOW, max_attempts=3, base=1.0, cap=10.0)
    assert outcome == domain.Outcome("sent", None, None, NOW)


def test_after_send_failure_requeues_with_backoff():
    outcome = domain.after_send(2, "refused", NOW, max_attempts=3, base=1.0, cap=10.0)
    assert outcome.status == "queued" and outcome.last_error == "refused"
    assert outcome.next_attempt_at == NOW + datetime.timedelta(seconds=2)
    assert outcome.sent_at is None


def test_after_send_gives_up_after_max_attempts_or_a_permanent_error():
    last = domain.after_send(3, "refused", NOW, max_attempts=3, base=1.0, cap=10.0)
    assert (last.status, last.next_attempt_at, last.last_error) == ("failed", None, "refused")
    permanent = domain.after_send(
        1, "550 no such user", NOW, max_attempts=3, base=1.0, cap=10.0, permanent=True
    )
    assert permanent.status == "failed"


def test_errors_are_one_short_line():
    assert domain.short_error("a\n  b\tc") == "a b c"
    assert len(domain.short_error("x" * 2000)) == domain.ERROR_MAX
    assert domain.short_error("") == "error"


def test_claim_margin_covers_a_whole_smtp_conversation():
    assert domain.claim_margin(10.0, 5.0) == 45.0
    assert domain.claim_margin(1.0, 5.0) > 4 * 5.0


# --- cursors, pages and views ------------------------------------------------

LISTING = domain.listing_cursors(cursors.signing_key("unit-test-notifications-cursor-key"))


def test_cursor_round_trips():
    row_id = uuid.uuid4()
    moment = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    assert LISTING.decode(LISTING.encode(moment, row_id)) == (moment, row_id)


def _forge(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        None,
        5,
        "%%%",
        "x" * 300,
        _forge("1.123.abc"),
        _forge(f"1.123.{uuid.uuid4().hex}.0000000000000000"),
        _forge(f"2.123.{uuid.uuid4().hex}.0000000000000000"),
    ],
)
def test_bad_cursors_are_validation_errors(cursor):
    with pytest.raises(ValidationError) as info:
        LISTING.decode(cursor)
    assert info.value.details == {"cursor": "is invalid"}


def test_an_edited_cursor_is_refused():
    cursor = LISTING.encode(NOW, uuid.uuid4())
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    parts = text.split(".")
    parts[1] = str(int(parts[1]) + 1)
    with pytest.raises(ValidationError):
        LISTING.decode(_forge(".".join(parts)))


def row(**values):
    base = {
        "id": uuid.uuid4(),
        "channel": "email",
        "template": "receipt",
        "recipient": "ada@example.com",
        "subject": "Receipt",
        "status": "sent",
        "attempts": 1,
        "created_at": NOW,
        "sent_at": NOW,
        "event_type": "billing.receipt_issued",
    }
    return types.SimpleNamespace(**{**base, **values})


def test_page_sets_the_cursor_only_when_more_rows_exist():
    rows = [row(created_at=NOW - datetime.timedelta(seconds=i)) for i in range(3)]
    items, cursor = LISTING.page(rows, 2)
    assert items == rows[:2]
    assert LISTING.decode(cursor) == (rows[1].created_at, rows[1].id)
    assert LISTING.page(rows[:2], 2) == (rows[:2], None)


def test_view_matches_the_contract():
    view = domain.notification_view(row())
    validate(schemas.NOTIFICATION, view)
    assert view["created_at"] == "2024-05-01T12:00:00.000000Z"
    queued = domain.notification_view(row(channel="sms", subject=None, sent_at=None))
    validate(schemas.NOTIFICATION, queued)
    assert queued["sent_at"] is None and queued["subject"] is None


def test_parse_user_id():
    assert domain.parse_user_id(USER_ID.upper()) == uuid.UUID(USER_ID)
    with pytest.raises(ValidationError) as info:
        domain.parse_user_id("nope")
    assert info.value.details == {"user_id": "must be a UUID"}


# --- contracts ---------------------------------------------------------------


def test_event_contracts():
    assert set(schemas.EVENTS) == {"notification_sent", "notification_failed"}
    for spec in schemas.EVENTS.values():
        assert spec["version"] == 1 and spec["summary"]
    ids = {"notification_id": str(uuid.uuid4()), "user_id": USER_ID}
    sent = {**ids, "channel": "email", "template": "receipt"}
    validate(schemas.EVENTS["notification_sent"]["payload"], sent)
    validate(schemas.EVENTS["notification_failed"]["payload"], {**sent, "error": "boom"})
    with pytest.raises(ValidationError):
        validate(schemas.EVENTS["notification_sent"]["payload"], {**sent, "channel": "fax"})


@pytest.mark.parametrize(
    "query, field",
    [
        ({}, "user_id"),
        ({"user_id": USER_ID, "limit": 0}, "limit"),
        ({"user_id": USER_ID, "limit": 101}, "limit"),
        ({"user_id": USER_ID, "limit": "5"}, "limit"),
        ({"user_id": USER_ID, "cursor": ""}, "cursor"),
        ({"user_id": USER_ID, "extra": 1}, "extra"),
    ],
)
def test_list_query_contract(query, field):
    with pytest.raises(ValidationError) as info:
        validate(schemas.LIST_QUERY, query)
    assert field in info.value.details


# --- channels without a network ------------------------------------------------


def test_email_message_is_plain_text_with_headers():
    channel = channels.EmailChannel("smtp.invalid", 25, "Agora <no-reply@agora.local>")
    msg = channel.message("ada@example.com", "Hi", "Body ü\n", {"X-Agora-Notification-Id": "n1"})
    assert msg["From"] == "Agora <no-reply@agora.local>" and msg["To"] == "ada@example.com"
    assert msg["Subject"] == "Hi" and msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith("@agora.local>")
    assert msg["X-Agora-Notification-Id"] == "n1"
    assert msg.get_content_type() == "text/plain" and msg.get_content() == "Body ü\n"


def test_email_channel_checks_its_settings_and_recipients():
    with pytest.raises(ValueError):
        channels.EmailChannel("h", 25, "Agora <no-reply@agora.local>", security="ssl")
    with pytest.raises(ValueError):
        channels.EmailChannel("h", 25, "")
    channel = channels.EmailChannel("smtp.invalid", 25, "no-reply@agora.local")
    for bad in ("", "no-at-sign", "a@b\nBcc: c@d.e"):
        with pytest.raises(channels.SendError) as info:
            channel.send(bad, "s", "b")
        assert info.value.permanent


def test_sms_providers_by_setting():
    assert isinstance(channels.sms_provider({"provider": "none"}), channels.NoSms)
    assert not channels.sms_provider({"provider": "none"}).enabled
    log_sms = channels.sms_provider({"provider": "log"})
    assert isinstance(log_sms, channels.LogSms) and log_sms.enabled
    log_sms.send("+4915112345678", "hello")
    http = channels.sms_provider(
        {"provider": "http", "url": "http://sms.invalid/send", "token": "t", "timeout": 1.0}
    )
    assert isinstance(http, channels.HttpSms) and http.token == "t" and http.timeout == 1.0
    with pytest.raises(ValueError):
        channels.sms_provider({"provider": "http", "url": ""})
    with pytest.raises(ValueError):
        channels.sms_provider({"provider": "pigeon"})
    with pytest.raises(channels.SendError):
        channels.NoSms().send("+49", "x")
    assert channels.mask_phone("+4915112345678") == "...5678"
