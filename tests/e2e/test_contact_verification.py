"""Contact verification end to end: the link mailed at registration, the code
texted to a new phone, through the gateway, with the real SMTP and SMS sinks.
Until a contact is proven, nothing but its verification message is sent to it."""

import uuid
from urllib.parse import urlsplit

import pytest

from tests.e2e.commerce import bearer, verification_code, verification_link
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


def notifications(shop, token):
    response = shop.http.get(f"{shop.base}/v1/notifications", headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def open_link(shop, link):
    parts = urlsplit(link)
    return shop.http.get(f"{shop.base}{parts.path}?{parts.query}", timeout=10)


def test_no_order_mail_until_the_emailed_link_is_opened(shop, smtp):
    email, token = shop.customer()
    link = verification_link(smtp, email)
    product = shop.product(stock=5)
    first = shop.place(token, [(product["id"], 1)]).json()
    shop.wait_for(token, first["id"], {"confirmed"})

    def skipped():
        items = [i for i in notifications(shop, token) if i["template"] == "order_confirmed"]
        return items and items[0]["status"] == "skipped" and items

    wait_until(skipped, 20, "the confirmation recorded as skipped")
    assert not [m for m in smtp.messages(to=email) if first["id"] in m.get_content()]

    forged = shop.http.get(
        f"{shop.base}/v1/users/verify-email", params={"token": "A" * 43}, timeout=10
    )
    assert forged.status_code == 400, forged.text
    assert forged.json()["error"]["code"] == "validation_error"
    assert set(forged.json()["error"]["details"]) == {"token"}

    opened = open_link(shop, link)
    assert opened.status_code == 200, opened.text
    assert opened.json() == {"email": email, "email_verified": True}
    again = open_link(shop, link)
    assert again.status_code == 400  # single use
    me = shop.http.get(f"{shop.base}/v1/users/me", headers=bearer(token), timeout=10).json()
    assert me["email_verified"] is True and me["phone_verified"] is False

    second = shop.place(token, [(product["id"], 1)]).json()
    shop.wait_for(token, second["id"], {"confirmed"})
    mails = smtp.wait_for(
        lambda m: second["id"] in m.get_content() and "is confirmed" in m["Subject"], to=email
    )
    assert mails


def test_a_new_link_on_request_voids_the_old_one(shop, smtp):
    email, token = shop.customer()
    old = verification_link(smtp, email)
    resent = shop.http.post(
        f"{shop.base}/v1/users/me/email-verification", headers=bearer(token), timeout=10
    )
    assert resent.status_code == 202, resent.text
    assert resent.json()["email_verified"] is False
    wait_until(lambda: verification_link(smtp, email) != old, 20, "a second link")
    new = verification_link(smtp, email)
    assert open_link(shop, old).status_code == 400
    assert open_link(shop, new).status_code == 200


def test_bad_verification_requests_get_clear_errors(shop):
    _, token = shop.customer()
    url = f"{shop.base}/v1/users/verify-email"
    for params in ({}, {"token": "short"}, {"token": "has spaces in it, and commas!!"}):
        response = shop.http.get(url, params=params, timeout=10)
        assert response.status_code == 400, (params, response.text)
        assert set(response.json()["error"]["details"]) == {"token"}
    phone = f"{shop.base}/v1/users/me/phone-verification"
    assert shop.http.post(phone, json={"code": "123456"}, timeout=10).status_code == 401
    for body in ({"code": "12ab56"}, {"code": 123456}, {}, {"code": "123456", "x": 1}):
        response = shop.http.post(phone, json=body, headers=bearer(token), timeout=10)
        assert response.status_code == 400, (body, response.text)
    # No phone, so no code is pending.
    none = shop.http.post(phone, json={"code": "123456"}, headers=bearer(token), timeout=10)
    assert none.status_code == 400
    assert "pending" in none.json()["error"]["details"]["code"]


def test_a_phone_code_allows_only_a_few_wrong_tries(shop, sms):
    _, token = shop.customer()
    me = f"{shop.base}/v1/users/me"
    number = f"+49152{uuid.uuid4().int % 10**8:08d}"
    assert shop.http.patch(me, json={"phone": number}, headers=bearer(token), timeout=10).ok
    code = verification_code(sms, number)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    url = f"{me}/phone-verification"
    for _ in range(5):
        response = shop.http.post(url, json={"code": wrong}, headers=bearer(token), timeout=10)
        assert response.status_code == 400
    response = shop.http.post(url, json={"code": code}, headers=bearer(token), timeout=10)
    assert response.status_code == 400 and "too many" in response.json()["error"]["details"]["code"]
    # The same number again texts a new code, which works.
    assert shop.http.patch(me, json={"phone": number}, headers=bearer(token), timeout=10).ok
    wait_until(lambda: verification_code(sms, number) != code, 20, "a new code")
    assert shop.verify_phone(sms, token, number)["phone_verified"] is True


def test_the_seeded_demo_users_count_as_verified(platform, rpc, demo):
    """Seeding is a trusted admin path: the demo shows order mail without a round trip,
    also for demo users that existed before (seeding again goes through authenticate)."""
    from agora.seed import seed

    seed(rpc, platform.config)
    for who in ("user", "admin"):
        user = rpc.users.authenticate(demo[f"{who}_email"], demo[f"{who}_password"])
        assert user["email_verified"] is True, who
