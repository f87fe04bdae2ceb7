"""Helpers for the commerce end-to-end tests: customers, products with stock,
orders placed through the gateway, and the databases' own view of the outcome."""

import re
import time
import uuid
from urllib.parse import urlsplit

import requests
from sqlalchemy import create_engine, text

from services.chassis.config import database_url

TERMINAL = {"confirmed", "rejected", "cancelled", "expired"}
VERIFY_SUBJECT = "Confirm your email address for Agora"
_LINK = re.compile(r"https?://\S+/v1/users/verify-email\?token=\S+")
_CODE = re.compile(r"verification code is ([0-9]{6})")


def verification_link(smtp, email, timeout=20.0):
    """The link of the newest verification mail to ``email``, from the real SMTP sink."""
    mails = smtp.wait_for(lambda m: m["Subject"] == VERIFY_SUBJECT, timeout=timeout, to=email)
    return _LINK.search(mails[-1].get_content()).group(0)


def verification_code(sms, phone, timeout=20.0):
    """The code of the newest verification text to ``phone``, from the real SMS sink."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [
            match.group(1)
            for request in list(sms.requests)
            if request["json"]["to"] == phone and (match := _CODE.search(request["json"]["body"]))
        ]
        if codes:
            return codes[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no verification code texted to {phone} within {timeout}s")
        time.sleep(0.05)


def is_verification_text(body):
    return _CODE.search(body) is not None


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class PoliteSession(requests.Session):
    """A client that honours ``503`` + ``Retry-After`` (a service restarting, an
    open circuit) a few times, as a well-behaved API client does. Safe for
    POST /v1/orders too: a retry sends the same Idempotency-Key."""

    def request(self, method, url, *args, **kwargs):
        for _ in range(5):
            response = super().request(method, url, *args, **kwargs)
            if response.status_code != 503 or "Retry-After" not in response.headers:
                return response
            time.sleep(min(float(response.headers["Retry-After"]), 5.0))
        return response


class Shop:
    """One customer and the admin, talking to the running gateway."""

    def __init__(self, base_url, admin_token, client_id):
        self.base = base_url
        self.admin = admin_token
        self.client_id = client_id
        self.http = PoliteSession()

    # --- people ------------------------------------------------------------------

    def customer(self):
        """A new customer: (email, access token)."""
        email = f"buyer-{uuid.uuid4().hex[:10]}@example.com"
        password = "correct horse battery"
        response = self.http.post(
            f"{self.base}/v1/users", json={"email": email, "password": password}, timeout=10
        )
        assert response.status_code == 201, response.text
        token = self.http.post(
            f"{self.base}/oauth/token",
            data={
                "grant_type": "password",
                "client_id": self.client_id,
                "username": email,
                "password": password,
            },
            timeout=10,
        )
        assert token.status_code == 200, token.text
        return email, token.json()["access_token"]

    def verified_customer(self, smtp):
        """A new customer who opened the link mailed to them, so they get order mail."""
        email, token = self.customer()
        self.verify_email(smtp, email)
        return email, token

    def verify_email(self, smtp, email):
        """Open the verification link mailed to ``email``, as its owner would (through
        this gateway: the link names the configured public URL)."""
        link = urlsplit(verification_link(smtp, email))
        response = self.http.get(f"{self.base}{link.path}?{link.query}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def verify_phone(self, sms, token, phone):
        """Enter the code texted to ``phone``; returns the profile."""
        response = self.http.post(
            f"{self.base}/v1/users/me/phone-verification",
            json={"code": verification_code(sms, phone)},
            headers=bearer(token),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    # --- catalog and stock -------------------------------------------------------

    def product(self, stock, price=1000, warehouse="main"):
        """A new product with ``stock`` units in ``warehouse``; returns the product."""
        sku = f"E2E-{uuid.uuid4().hex[:12].upper()}"
        response = self.http.post(
            f"{self.base}/v1/products",
            json={
                "sku": sku,
                "name": f"Thing {sku}",
                "price": {"amount": price, "currency": "EUR"},
            },
            headers=bearer(self.admin),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        if stock is not None:
            self.set_stock(sku, stock, warehouse)
        return response.json()

    def set_stock(self, sku, on_hand, warehouse="main"):
        response = self.http.put(
            f"{self.base}/v1/inventory/{sku}",
            json={"warehouse": warehouse, "on_hand": on_hand},
            headers=bearer(self.admin),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def stock(self, sku):
        response = self.http.get(f"{self.base}/v1/inventory/{sku}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    # --- orders ------------------------------------------------------------------

    def place(self, token, items, card="tok_visa", key=None, session=None):
        """POST /v1/orders; returns the response."""
        body = {
            "items": [{"product_id": p, "quantity": q} for p, q in items],
            "payment": {"token": card},
        }
        headers = {**bearer(token), "Idempotency-Key": key or str(uuid.uuid4())}
        return (session or self.http).post(
            f"{self.base}/v1/orders", json=body, headers=headers, timeout=30
        )

    def order(self, token, order_id):
        response = self.http.get(
            f"{self.base}/v1/orders/{order_id}", headers=bearer(token), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, token, order_id, statuses=TERMINAL, timeout=60.0, check=None):
        """Poll the order until its status is one of ``statuses`` (and ``check(view)``)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.order(token, order_id)
            if view["status"] in statuses and (check is None or check(view)):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} stayed {view['status']}: {view}")
            time.sleep(0.2)

    def cancel(self, token, order_id):
        return self.http.post(
            f"{self.base}/v1/orders/{order_id}/cancel", headers=bearer(token), timeout=10
        )


class Ledgers:
    """Read-only queries on the services' own databases: what really happened."""

    def __init__(self, config):
        self.billing = create_engine(database_url(config, "billing"))
        self.inventory = create_engine(database_url(config, "inventory"))
        self.orders = create_engine(database_url(config, "orders"))

    def payment_token(self, order_id):
        """The payment token orders still stores for the order (None: forgotten)."""
        with self.orders.connect() as conn:
            return conn.execute(
                text("SELECT payment_token FROM orders WHERE id = :id"), {"id": order_id}
            ).scalar_one()

    def charges_per_order(self, order_ids):
        """{order_id: number of charges the simulated processor made for it}."""
        with self.billing.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.order_id::text, count(c.charge_id) FROM payments p "
                    "LEFT JOIN simulated_charges c ON c.idempotency_key = p.id::text "
                    "WHERE p.order_id::text = ANY(:ids) GROUP BY p.order_id"
                ),
                {"ids": list(order_ids)},
            ).all()
        counts = {order_id: 0 for order_id in order_ids}
        counts.update({order_id: count for order_id, count in rows})
        return counts

    def sold(self, sku):
        """Units of ``sku`` in committed reservations (gone from on hand)."""
        with self.inventory.connect() as conn:
            return conn.execute(
                text(
                    "SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l "
                    "JOIN reservations r ON r.id = l.reservation_id "
                    "WHERE r.status = 'committed' AND l.sku = :sku"
                ),
                {"sku": sku},
            ).scalar()

    def dispose(self):
        self.billing.dispose()
        self.inventory.dispose()
        self.orders.dispose()
