"""The notifications service in a real container: PostgreSQL, RabbitMQ, the real users
service, a real SMTP server (aiosmtpd in a child process) and a real HTTP SMS gateway.

Events are published as orders and billing would publish them; the tests then
watch the mail server, the SMS gateway, the notifications table and the
service's own events.
"""

import copy
import datetime
import re
import uuid

import pytest
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agora.deadletters import dead_letters, replay_dead_letters
from services.chassis.config import deep_merge
from services.chassis.errors import ValidationError
from services.chassis.messaging import event_handler
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.notifications import domain
from services.notifications.models import Notification
from services.notifications.schemas import EVENTS, NOTIFICATION_PAGE
from services.notifications.service import NotificationsService
from services.users.service import UsersService
from tests.support.polling import wait_until
from tests.support.sms import SmsGateway
from tests.support.smtp import SmtpServer, free_port

pytestmark = pytest.mark.integration
# Its services' durable event queues stay out of other modules' way.
OWN_VHOST = True

PASSWORD = "correct-horse-battery"
WAIT = 15  # seconds: the longest one step (an event through the broker) may take
ORDER_SOURCES = {
    "order_confirmed": ("orders", "order_confirmed"),
    "payment_failed": ("orders", "order_payment_failed"),
    "order_cancelled": ("orders", "order_cancelled"),
    "order_rejected": ("orders", "order_rejected"),
    "order_expired": ("orders", "order_expired"),
    "refund_issued": ("billing", "refund_issued"),
    "receipt": ("billing", "receipt_issued"),
}


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(service_engine):
    return service_engine("notifications")


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def users(start_service):
    return start_service(UsersService)


@pytest.fixture
def leftovers_retired(engine):
    """Rows a test leaves queued (its mail server gone) must not be mailed in the next test."""
    yield
    with engine.begin() as conn:
        conn.execute(
            update(Notification)
            .where(Notification.status == "queued")
            .values(status="failed", next_attempt_at=None, last_error="retired by the tests")
        )


@pytest.fixture
def start_notifications(container_factory, service_config, leftovers_retired):
    """``start_notifications(smtp_port, **settings)``: a container with its settings changed."""

    def start(smtp_port, **settings):
        config = copy.deepcopy(service_config("notifications"))
        section = config["AGORA"]["services"]["notifications"]
        overrides = deep_merge({"smtp": {"port": smtp_port, "timeout": 2.0}}, settings)
        config["AGORA"]["services"]["notifications"] = deep_merge(section, overrides)
        container = container_factory(NotificationsService, config)
        container.start()
        return container

    return start


@pytest.fixture
def publish(publish_event):
    """``publish(template, data)``: the event behind ``template``, as its source sends it."""

    def send(template, data, envelope=None):
        return publish_event(*ORDER_SOURCES[template], data, envelope)

    return send


class Listener:
    """Collects what the notifications service emits (through its outbox).

    Its queues outlive a test, so events of earlier tests may arrive too: look
    them up by user with ``Listener.of``.
    """

    name = "notifications_test_listener"
    sent = []
    failed = []

    @staticmethod
    def of(events, user_id):
        return [e for e in events if e["data"]["user_id"] == user_id]

    @event_handler("notifications", "notification_sent")
    def on_sent(self, envelope):
        Listener.sent.append(envelope)

    @event_handler("notifications", "notification_failed")
    def on_failed(self, envelope):
        Listener.failed.append(envelope)


@pytest.fixture
def listener(container_factory, service_config):
    Listener.sent.clear()
    Listener.failed.clear()
    container = container_factory(Listener, service_config(Listener.name))
    container.start()
    return Listener


def register(users, name="Ada", phone=None, verified=True):
    """A user of the real users service, with ``phone`` (or none) on their record.

    ``verified``: their email and phone count as proven (users' trusted
    ``mark_verified``, as the demo seed does), so order events reach them.
    Register before starting the notifications container: the verification
    requests registration emits then find nothing left to prove, and send nothing.
    """
    email = f"n-{uuid.uuid4().hex[:12]}@example.com"
    payload = {"email": email, "password": PASSWORD, "name": name}
    if phone is not None:
        payload["phone"] = phone
    user = call(users, "register", payload)
    return call(users, "mark_verified", user["id"]) if verified else user


def money(amount):
    return {"amount": amount, "currency": "EUR"}


def line(name="Blue mug", sku="MUG-1", quantity=2, unit=1299):
    return {
        "product_id": str(uuid.uuid4()),
        "sku": sku,
        "name": name,
        "quantity": quantity,
        "unit_price": money(unit),
        "line_total": money(unit * quantity),
    }


def event_data(template, user_id, order_id=None):
    """A contract-shaped payload for the event behind ``template``."""
    order_id = order_id or str(uuid.uuid4())
    common = {"order_id": order_id, "user_id": user_id}
    return {
        "order_confirmed": {
            **common,
            "items": [line(), line("Teapot", "POT-9", 1, 3450)],
            "total": money(6048),
            "payment_id": str(uuid.uuid4()),
        },
        "payment_failed": {**common, "payment_id": None, "reason": "card declined"},
        "order_cancelled": {**common, "reason": "customer", "previous_status": "paid"},
        "order_rejected": {
            **common,
            "reason": "insufficient stock",
            "shortages": [{"sku": "MUG-1", "requested": 5, "available": 2}],
        },
        "order_expired": {**common, "previous_status": "reserved"},
        "refund_issued": {
            "refund_id": str(uuid.uuid4()),
            "payment_id": str(uuid.uuid4()),
            **common,
            "amount": money(2598),
            "reason": "order cancelled",
            "payment_status": "refunded",
        },
        "receipt": {
            "receipt_id": str(uuid.uuid4()),
            "number": "R-2024-000042",
            **common,
            "payment_id": str(uuid.uuid4()),
            "amount": money(6048),
            "issued_at": "2024-05-01T09:30:00.000000Z",
            "items": [line(), line("Teapot", "POT-9", 1, 3450)],
        },
    }[template]


def rows(engine, **where):
    with Session(engine) as session:
        query = select(Notification)
        for column, value in where.items():
            query = query.where(getattr(Notification, column) == value)
        return list(session.scalars(query.order_by(Notification.created_at)))


def one_row(engine, event_id):
    found = rows(engine, event_id=uuid.UUID(event_id))
    return found[0] if len(found) == 1 else None


def page_of(container, user_id, **kwargs):
    page = call(container, "list_notifications", user_id, **kwargs)
    validate(NOTIFICATION_PAGE, page)
    return page


# --- every template ------------------------------------------------------------


def test_every_template_is_mailed_for_its_event(start_notifications, smtp, users, publish):
    user = register(users, name="Ada")
    service = start_notifications(smtp.port)
    order_id = str(uuid.uuid4())
    for template in ORDER_SOURCES:
        publish(template, event_data(template, user["id"], order_id))

    mails = smtp.wait_for(len(ORDER_SOURCES), timeout=20, to=user["email"])
    assert len(mails) == len(ORDER_SOURCES)
    by_subject = {m["Subject"]: m for m in mails}
    ref = order_id[:8].upper()
    expected = {
        f"Your order {ref} is confirmed": ["2 x Blue mug (MUG-1)  EUR 25.98", "Total: EUR 60.48"],
        f"Payment for order {ref} did not go through": ["Reason: card declined"],
        f"Your order {ref} has been cancelled": ["cancelled as you requested"],
        f"We could not accept your order {ref}": ["MUG-1: 5 requested, 2 available"],
        f"Your order {ref} has expired": ["has expired (it was reserved)"],
        f"Refund of EUR 25.98 for order {ref}": ["refunded EUR 25.98"],
        f"Receipt R-2024-000042 for order {ref}": [
            "Receipt number: R-2024-000042",
            "1 x Teapot (POT-9)  EUR 34.50",
            "Total paid: EUR 60.48",
        ],
    }
    assert set(by_subject) == set(expected)
    for subject, phrases in expected.items():
        mail = by_subject[subject]
        body = mail.get_content()
        assert mail["To"] == user["email"] and mail["X-Envelope-To"] == user["email"]
        assert mail["From"] == "Agora <no-reply@agora.local>"
        assert mail.get_content_type() == "text/plain"
        assert body.startswith("Hello Ada,\n") and order_id in body
        for phrase in phrases:
            assert phrase in body, (subject, phrase, body)

    def all_sent():
        items = page_of(service, user["id"], limit=50)["items"]
        return items if [i["status"] for i in items] == ["sent"] * 7 else None

    items = wait_until(all_sent, what="all seven marked sent")
    assert {i["template"] for i in items} == set(ORDER_SOURCES)
    assert {i["event_type"] for i in items} == {f"{s}.{e}" for s, e in ORDER_SOURCES.values()}
    for item in items:
        assert item["channel"] == "email" and item["recipient"] == user["email"]
        assert item["attempts"] == 1 and item["sent_at"].endswith("Z")


def test_sent_notification_is_announced(start_notifications, smtp, users, publish, listener):
    user = register(users)
    start_notifications(smtp.port)
    envelope = publish("receipt", event_data("receipt", user["id"]))
    smtp.wait_for(1, to=user["email"])
    (event,) = wait_until(lambda: Listener.of(Listener.sent, user["id"]), what="sent event")
    assert event["type"] == "notifications.notification_sent"
    assert event["version"] == EVENTS["notification_sent"]["version"]
    data = event["data"]
    validate(EVENTS["notification_sent"]["payload"], data)
    assert data["user_id"] == user["id"]
    assert data["channel"] == "email" and data["template"] == "receipt"
    assert envelope["event_id"] != event["event_id"]


# --- exactly one notification per event -----------------------------------------


def test_a_duplicated_event_makes_one_notification(
    start_notifications, smtp, users, publish, engine
):
    user = register(users)
    start_notifications(smtp.port)
    data = event_data("order_confirmed", user["id"])
    envelope = publish("order_confirmed", data)
    publish("order_confirmed", data, envelope=envelope)  # redelivered as is
    publish("order_confirmed", data, envelope=envelope)
    # A later event on the same queue: once it is mailed, the duplicates were handled.
    marker = publish("order_confirmed", event_data("order_confirmed", user["id"]))
    wait_until(lambda: (r := one_row(engine, marker["event_id"])) and r.status == "sent")
    # Handled concurrently: the duplicates' row may be sent a moment after the marker's.
    wait_until(lambda: (r := one_row(engine, envelope["event_id"])) and r.status == "sent")

    (row,) = rows(engine, event_id=uuid.UUID(envelope["event_id"]))
    assert row.status == "sent" and row.attempts == 1
    mails = smtp.wait_for(2, to=user["email"])
    assert len(mails) == 2
    ids = [m["X-Agora-Notification-Id"] for m in mails]
    assert str(row.id) in ids and len(set(ids)) == 2


# --- retries -------------------------------------------------------------------


# A retry is run when it is due, not at the sender's next poll (send_interval).
@pytest.mark.parametrize("send_interval", [0.5, 3600.0], ids=["polling", "when-due"])
def test_smtp_down_retries_with_backoff_until_the_server_is_up(
    start_notifications, users, publish, engine, listener, send_interval
):
    server = SmtpServer(port=free_port())  # not started yet
    try:
        user = register(users)
        start_notifications(server.port, max_attempts=20, send_interval=send_interval)
        settings = {"base": 0.2, "cap": 2.0}
        envelope = publish("order_expired", event_data("order_expired", user["id"]))

        def backing_off():
            row = one_row(engine, envelope["event_id"])
            if row is None or row.status != "queued" or row.attempts < 2:
                return None
            delay = datetime.timedelta(seconds=domain.retry_delay(row.attempts, **settings))
            # A recorded failure (not a claim in progress): due after the backoff.
            return row if row.next_attempt_at - row.updated_at == delay else None

        row = wait_until(backing_off, what="two failed tries with backoff")
        assert "cannot connect" in row.last_error and row.sent_at is None
        assert Listener.of(Listener.sent + Listener.failed, user["id"]) == []

        server.start()
        (mail,) = server.wait_for(1, timeout=15, to=user["email"])
        assert "has expired" in mail["Subject"]
        sent = wait_until(
            lambda: (r := one_row(engine, envelope["event_id"])) and r.status == "sent" and r
        )
        assert sent.attempts > row.attempts and sent.sent_at is not None
        assert sent.next_attempt_at is None and sent.last_error is None
        (event,) = wait_until(lambda: Listener.of(Listener.sent, user["id"]), what="sent")
        assert event["data"]["notification_id"] == str(sent.id)
        assert Listener.of(Listener.failed, user["id"]) == []
    finally:
        server.cleanup()


def test_a_send_that_never_succeeds_ends_failed(
    start_notifications, users, publish, engine, listener
):
    port = free_port()  # nothing listens here
    user = register(users)
    service = start_notifications(port, max_attempts=3)
    envelope = publish("payment_failed", event_data("payment_failed", user["id"]))

    failed = wait_until(
        lambda: (r := one_row(engine, envelope["event_id"])) and r.status == "failed" and r,
        what="the row failed for good",
    )
    assert failed.attempts == 3
    assert failed.next_attempt_at is None and failed.sent_at is None
    assert f"127.0.0.1:{port}" in failed.last_error
    (event,) = wait_until(lambda: Listener.of(Listener.failed, user["id"]), what="failed")
    data = event["data"]
    validate(EVENTS["notification_failed"]["payload"], data)
    assert data["notification_id"] == str(failed.id) and data["template"] == "payment_failed"
    assert "cannot connect" in data["error"]
    (item,) = page_of(service, user["id"])["items"]
    assert item["status"] == "failed" and item["attempts"] == 3 and item["sent_at"] is None
    assert Listener.of(Listener.sent, user["id"]) == []


def test_a_permanent_refusal_fails_at_once_and_login_is_used_when_configured(
    start_notifications, users, publish, engine
):
    with SmtpServer(auth=("mailer", "s3cret")) as server:
        user = register(users)
        first = start_notifications(server.port, max_attempts=5)
        refused = publish("order_expired", event_data("order_expired", user["id"]))
        row = wait_until(
            lambda: (r := one_row(engine, refused["event_id"])) and r.status == "failed" and r
        )
        assert row.attempts == 1 and "530" in row.last_error  # authentication required
        assert server.messages() == []
    # Stopped: its handler and send loop (same queue, same database) could
    # otherwise take the next mail to the server that is now closed.
    first.stop()

    with SmtpServer(auth=("mailer", "s3cret")) as server:
        start_notifications(server.port, smtp={"username": "mailer", "password": "s3cret"})
        envelope = publish("order_expired", event_data("order_expired", user["id"]))
        (mail,) = server.wait_for(1, to=user["email"])
        assert mail["To"] == user["email"]
        wait_until(lambda: (r := one_row(engine, envelope["event_id"])) and r.status == "sent")


def test_a_handler_never_waits_for_the_mail_server(start_notifications, users, publish, engine):
    """Recording does not depend on SMTP: a dead server still gets the row queued."""
    user = register(users)
    start_notifications(free_port(), max_attempts=50)
    envelopes = [publish(template, event_data(template, user["id"])) for template in ORDER_SOURCES]
    for envelope in envelopes:
        row = wait_until(lambda e=envelope: one_row(engine, e["event_id"]))
        assert row.status == "queued" and row.recipient == user["email"]


def test_unknown_user_leaves_a_failed_notification(
    start_notifications, smtp, users, publish, engine, listener
):
    service = start_notifications(smtp.port)
    user_id = str(uuid.uuid4())
    envelope = publish("order_rejected", event_data("order_rejected", user_id))
    row = wait_until(lambda: one_row(engine, envelope["event_id"]))
    assert row.status == "failed" and row.recipient == ""
    assert row.last_error == domain.USER_NOT_FOUND and row.attempts == 0
    (event,) = wait_until(lambda: Listener.of(Listener.failed, user_id), what="failed")
    assert event["data"]["user_id"] == user_id and event["data"]["error"] == "user not found"
    assert page_of(service, user_id)["items"][0]["status"] == "failed"
    assert smtp.messages(lambda m: m["X-Agora-Notification-Id"] == str(row.id)) == []


def test_users_unreachable_the_event_is_retried_then_dead_lettered(
    container_factory, service_config, start_service, smtp, publish, engine, config
):
    users = start_service(UsersService)
    user = register(users)
    users.stop()  # its queue stays: calls wait there unanswered
    settings = copy.deepcopy(service_config("notifications"))
    settings["AGORA"]["services"]["notifications"]["smtp"]["port"] = smtp.port
    # Giving up on the silent users service after half a second.
    settings["AGORA"]["rpc_clients"]["users"] = {"timeout": 0.5}
    # Dead-lettered after max_attempts, with no grace for the outage.
    settings["AGORA"]["events"]["outage_retry_window"] = 0
    container_factory(NotificationsService, settings).start()
    envelope = publish("order_confirmed", event_data("order_confirmed", user["id"]))

    def dead():
        letters = dead_letters(config, "notifications")
        return [d for d in letters if d["event_id"] == envelope["event_id"]]

    (letter,) = wait_until(dead, what="the event dead-lettered")
    assert letter["attempts"] == config["events"]["max_attempts"]
    # ServiceTimeout, or ServiceUnavailable once the circuit to users opened.
    assert re.search(r"(ServiceTimeout|ServiceUnavailable): the users service", letter["error"])
    assert one_row(engine, envelope["event_id"]) is None  # every try rolled back

    start_service(UsersService)
    assert replay_dead_letters(config, "notifications", envelope["event_id"]) == 1
    (mail,) = smtp.wait_for(1, to=user["email"])
    assert "is confirmed" in mail["Subject"]
    wait_until(lambda: (r := one_row(engine, envelope["event_id"])) and r.status == "sent")


# --- SMS -----------------------------------------------------------------------


CODE = re.compile(r"verification code is ([0-9]{6})")


def wait_for_code(sms_gateway, phone):
    """The code of the newest verification text to ``phone``."""

    def codes():
        return [
            match.group(1)
            for r in list(sms_gateway.requests)
            if r["json"]["to"] == phone and (match := CODE.search(r["json"]["body"]))
        ]

    return wait_until(codes, what=f"a verification code to {phone}")[-1]


@pytest.fixture
def sms_gateway():
    gateway = SmsGateway()
    yield gateway
    gateway.close()


def test_sms_goes_to_the_http_gateway_when_the_user_has_a_phone(
    start_notifications, smtp, sms_gateway, users, publish, engine
):
    user = register(users, phone="+4915112345678")
    no_phone = register(users)
    service = start_notifications(
        smtp.port,
        sms={"provider": "http", "url": sms_gateway.url, "token": "sms-token", "timeout": 2.0},
    )
    envelope = publish("order_confirmed", event_data("order_confirmed", user["id"]))
    publish("order_confirmed", event_data("order_confirmed", no_phone["id"]))

    wait_until(lambda: sms_gateway.requests, what="an SMS POST")
    (request,) = sms_gateway.requests
    assert request["path"] == "/sms"
    assert request["headers"]["Authorization"] == "Bearer sms-token"
    assert request["json"]["to"] == "+4915112345678"
    assert request["json"]["body"].startswith("Agora: order ")
    assert "EUR 60.48" in request["json"]["body"]
    smtp.wait_for(1, to=user["email"])
    smtp.wait_for(1, to=no_phone["email"])

    def both_sent():
        found = rows(engine, event_id=uuid.UUID(envelope["event_id"]))
        return found if len(found) == 2 and {r.status for r in found} == {"sent"} else None

    found = wait_until(both_sent, what="email and SMS sent")
    assert {r.channel for r in found} == {"email", "sms"}
    sms_item = next(i for i in page_of(service, user["id"])["items"] if i["channel"] == "sms")
    assert sms_item["recipient"] == "+4915112345678" and sms_item["subject"] is None
    assert [i["channel"] for i in page_of(service, no_phone["id"])["items"]] == ["email"]


def test_a_phone_number_given_later_is_used_at_once(
    start_notifications, smtp, sms_gateway, users, publish, engine
):
    """The contact cache keeps a user for a minute; users' ``profile_updated``
    (a broadcast to every notifications instance) makes it forget them at once."""
    user = register(users)
    service = start_notifications(smtp.port, sms={"provider": "http", "url": sms_gateway.url})
    first = publish("order_confirmed", event_data("order_confirmed", user["id"]))
    smtp.wait_for(1, to=user["email"])
    assert [r.channel for r in rows(engine, event_id=uuid.UUID(first["event_id"]))] == ["email"]

    with entrypoint_waiter(service, "on_profile_updated", timeout=WAIT):
        call(users, "update_profile", user["id"], {"phone": "+4915122223333"})
    # A new number gets its verification code first, and nothing else until proven.
    code = wait_for_code(sms_gateway, "+4915122223333")
    with entrypoint_waiter(service, "on_profile_updated", timeout=WAIT):
        call(users, "verify_phone", user["id"], code)
    publish("receipt", event_data("receipt", user["id"]))
    wait_until(lambda: len(sms_gateway.requests) == 2, what="the receipt by SMS")
    assert [r["json"]["to"] for r in sms_gateway.requests] == ["+4915122223333"] * 2
    assert sms_gateway.requests[1]["json"]["body"].startswith("Agora: receipt ")


def test_a_failing_sms_gateway_is_retried(
    start_notifications, smtp, sms_gateway, users, publish, engine
):
    sms_gateway.status = 503
    user = register(users, phone="+4915100000000")
    start_notifications(smtp.port, sms={"provider": "http", "url": sms_gateway.url, "timeout": 2.0})
    envelope = publish("receipt", event_data("receipt", user["id"]))

    def sms_row(status, attempts):
        found = [
            r for r in rows(engine, event_id=uuid.UUID(envelope["event_id"])) if r.channel == "sms"
        ]
        return found and found[0].status == status and found[0].attempts >= attempts and found[0]

    failing = wait_until(lambda: sms_row("queued", 2), what="SMS retried")
    assert failing.last_error == "SMS gateway answered HTTP 503"
    assert "Authorization" not in sms_gateway.requests[0]["headers"]  # no token set
    sms_gateway.status = 200
    sent = wait_until(lambda: sms_row("sent", 1), what="SMS sent once the gateway is up")
    assert sent.attempts > failing.attempts - 1
    smtp.wait_for(1, to=user["email"])


def test_no_sms_without_a_provider_even_with_a_phone(
    start_notifications, smtp, users, publish, engine
):
    user = register(users, phone="+4915112345678")
    start_notifications(smtp.port, sms={"provider": "none"})
    envelope = publish("order_cancelled", event_data("order_cancelled", user["id"]))
    smtp.wait_for(1, to=user["email"])
    found = wait_until(lambda: rows(engine, event_id=uuid.UUID(envelope["event_id"])))
    assert [r.channel for r in found] == ["email"]


# --- list_notifications --------------------------------------------------------


def test_list_notifications_pages_newest_first_per_user(
    start_notifications, smtp, users, publish, engine
):
    ada, bob = register(users, "Ada"), register(users, "Bob")
    service = start_notifications(smtp.port)
    published = []
    for template in ("order_confirmed", "receipt", "refund_issued", "order_cancelled", "receipt"):
        envelope = publish(template, event_data(template, ada["id"]))
        # One at a time, so creation order is publication order.
        wait_until(lambda e=envelope: one_row(engine, e["event_id"]))
        published.append(envelope)
    for template in ("order_expired", "payment_failed"):
        publish(template, event_data(template, bob["id"]))
    wait_until(lambda: len(page_of(service, bob["id"])["items"]) == 2)

    seen, cursor, pages = [], None, 0
    while True:
        page = page_of(service, ada["id"], limit=2, cursor=cursor)
        pages += 1
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 5
    stored = {str(r.event_id): str(r.id) for r in rows(engine, user_id=uuid.UUID(ada["id"]))}
    assert [i["id"] for i in seen] == [stored[e["event_id"]] for e in reversed(published)]
    created = [i["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)
    assert all(i["recipient"] == ada["email"] for i in seen)

    bob_items = page_of(service, bob["id"])["items"]
    assert {i["template"] for i in bob_items} == {"order_expired", "payment_failed"}
    assert all(i["recipient"] == bob["email"] for i in bob_items)
    assert page_of(service, str(uuid.uuid4())) == {"items": [], "next_cursor": None}
    assert page_of(service, ada["id"].upper(), limit=100)["items"] == seen


@pytest.mark.parametrize(
    "args, kwargs, field",
    [
        (("not-a-uuid",), {}, "user_id"),
        ((None,), {}, "user_id"),
        ((5,), {}, "user_id"),
        ((str(uuid.uuid4()),), {"limit": 0}, "limit"),
        ((str(uuid.uuid4()),), {"limit": 101}, "limit"),
        ((str(uuid.uuid4()),), {"limit": "ten"}, "limit"),
        ((str(uuid.uuid4()),), {"cursor": "garbage"}, "cursor"),
        ((str(uuid.uuid4()),), {"cursor": 7}, "cursor"),
    ],
)
def test_list_notifications_rejects_bad_arguments(start_notifications, smtp, args, kwargs, field):
    service = start_notifications(smtp.port)
    with pytest.raises(ValidationError) as info:
        call(service, "list_notifications", *args, **kwargs)
    assert field in info.value.details


# --- verified contacts only, the per-recipient cap, no SMS for a rejection ------------


LINK = re.compile(r"(http://\S+/v1/users/verify-email\?token=(\S+))")


def is_verification(mail):
    return mail["Subject"] == "Confirm your email address for Agora"


def test_an_unverified_email_gets_its_link_and_nothing_else_until_it_is_opened(
    start_notifications, smtp, users, publish, engine, listener
):
    service = start_notifications(smtp.port)
    user = register(users, verified=False)
    (mail,) = smtp.wait_for(is_verification, to=user["email"])
    body = mail.get_content()
    link, token = LINK.search(body).groups()
    assert link.startswith("http://127.0.0.1:8080/v1/users/verify-email?token=")
    assert body.startswith("Hello Ada,\n")

    # An order event meanwhile: recorded as skipped, never mailed, never retried.
    skipped = publish("order_confirmed", event_data("order_confirmed", user["id"]))
    row = wait_until(lambda: one_row(engine, skipped["event_id"]), what="the skipped row")
    assert row.status == "skipped" and row.last_error == "unverified"
    assert row.attempts == 0 and row.next_attempt_at is None
    # The verification row is sent, and its secret is not kept in the database.
    sent = wait_until(
        lambda: [r for r in rows(engine, user_id=uuid.UUID(user["id"])) if r.status == "sent"],
        what="the verification marked sent",
    )
    assert [r.template for r in sent] == ["email_verification"]
    assert token not in sent[0].body

    with entrypoint_waiter(service, "on_profile_updated", timeout=WAIT):
        assert call(users, "verify_email", token)["email_verified"] is True
    confirmed = publish("receipt", event_data("receipt", user["id"]))
    smtp.wait_for(2, to=user["email"])
    subjects = [m["Subject"] for m in smtp.messages(to=user["email"])]
    assert subjects[0] == "Confirm your email address for Agora"
    assert subjects[1].startswith("Receipt ") and len(subjects) == 2
    wait_until(lambda: (r := one_row(engine, confirmed["event_id"])) and r.status == "sent")
    assert one_row(engine, skipped["event_id"]).status == "skipped"
    statuses = {i["template"]: i["status"] for i in page_of(service, user["id"])["items"]}
    assert statuses == {
        "email_verification": "sent",
        "order_confirmed": "skipped",
        "receipt": "sent",
    }
    # Skipped is not a failure: nobody is told a notification failed.
    assert Listener.of(Listener.failed, user["id"]) == []


def test_a_phone_gets_its_code_and_no_order_texts_until_the_code_is_entered(
    start_notifications, smtp, sms_gateway, users, publish, engine
):
    service = start_notifications(smtp.port, sms={"provider": "http", "url": sms_gateway.url})
    phone = "+4915155550000"
    user = register(users, phone=phone, verified=False)
    code = wait_for_code(sms_gateway, phone)
    smtp.wait_for(is_verification, to=user["email"])  # the email's own link, separately
    with entrypoint_waiter(service, "on_profile_updated", timeout=WAIT):
        call(users, "mark_verified", user["id"])  # email only matters less here: both proven
    # mark_verified proved the phone too; make it unproven again with a new number.
    other = "+4915155550001"
    with entrypoint_waiter(service, "on_profile_updated", timeout=WAIT):
        call(users, "update_profile", user["id"], {"phone": other})
    new_code = wait_for_code(sms_gateway, other)
    with pytest.raises(ValidationError):
        call(users, "verify_phone", user["id"], code)  # the old number's code is void

    skipped = publish("order_confirmed", event_data("order_confirmed", user["id"]))
    found = wait_until(
        lambda: len(r := rows(engine, event_id=uuid.UUID(skipped["event_id"]))) == 2 and r
    )
    by_channel = {r.channel: r for r in found}
    assert by_channel["email"].status in ("queued", "sent")
    assert by_channel["sms"].status == "skipped" and by_channel["sms"].recipient == other

    with entrypoint_waiter(service, "on_profile_updated", timeout=WAIT):
        assert call(users, "verify_phone", user["id"], new_code)["phone_verified"] is True
    publish("receipt", event_data("receipt", user["id"]))
    wait_until(
        lambda: [r for r in sms_gateway.requests if r["json"]["body"].startswith("Agora: receipt")],
        what="the receipt by SMS",
    )
    texts = [(r["json"]["to"], r["json"]["body"][:20]) for r in sms_gateway.requests]
    assert [to for to, _ in texts] == [phone, other, other]
    assert not any("is confirmed" in body for _, body in texts)

    def codes_sent():
        found = rows(engine, user_id=uuid.UUID(user["id"]), template="phone_verification")
        return len(found) == 2 and all(r.status == "sent" for r in found) and found

    # Once sent, a code is not kept in the notifications database either.
    for row in wait_until(codes_sent, what="both codes marked sent"):
        assert row.body == domain.SCRUBBED_BODY


def test_a_rejected_order_sends_no_sms(
    start_notifications, smtp, sms_gateway, users, publish, engine
):
    user = register(users, phone="+4915166660000")
    start_notifications(smtp.port, sms={"provider": "http", "url": sms_gateway.url})
    rejected = publish("order_rejected", event_data("order_rejected", user["id"]))
    marker = publish("order_expired", event_data("order_expired", user["id"]))
    wait_until(lambda: sms_gateway.requests, what="the marker's SMS")
    smtp.wait_for(2, to=user["email"])
    (request,) = sms_gateway.requests
    assert "has expired" in request["json"]["body"]
    assert [r.channel for r in rows(engine, event_id=uuid.UUID(rejected["event_id"]))] == ["email"]
    assert len(rows(engine, event_id=uuid.UUID(marker["event_id"]))) == 2


def test_messages_to_one_recipient_are_capped_per_hour(
    start_notifications, smtp, users, publish, engine, listener
):
    user = register(users)
    service = start_notifications(smtp.port, max_per_recipient_per_hour=3)
    envelopes = [publish("receipt", event_data("receipt", user["id"])) for _ in range(5)]

    def recorded():
        found = [one_row(engine, e["event_id"]) for e in envelopes]
        return all(found) and found

    found = wait_until(recorded, what="five rows recorded")
    assert sorted(r.status for r in found).count("suppressed") == 2
    suppressed = [r for r in found if r.status == "suppressed"]
    assert all(r.last_error == domain.OVER_CAP and r.attempts == 0 for r in suppressed)
    mails = smtp.wait_for(3, to=user["email"])
    wait_until(
        lambda: [one_row(engine, e["event_id"]).status for e in envelopes].count("sent") == 3,
        what="three sent",
    )
    assert len(smtp.messages(to=user["email"])) == 3 == len(mails)
    listed = page_of(service, user["id"])["items"]
    assert sorted(i["status"] for i in listed) == ["sent"] * 3 + ["suppressed"] * 2
    # Suppressed is no failure: nothing to retry, nobody told it failed.
    assert Listener.of(Listener.failed, user["id"]) == []
    # Another recipient has their own share.
    other = register(users)
    publish("receipt", event_data("receipt", other["id"]))
    smtp.wait_for(1, to=other["email"])
