"""A steady order load through the gateway, and the record of every answer.

Each client thread, in a loop: places an order for a random product (most with
a card that pays, some with one that is declined) under an Idempotency-Key,
reads it back and reads a product. Like a well-behaved API client it retries
the same request (same key) after a 503 or 429 (honouring Retry-After, capped)
and after a connection error (the gateway down), until an answer or its patience
runs out. Every HTTP answer and every connection error is recorded with its time.
"""

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

ACCEPTED = (201, 202)  # POST /v1/orders answers 202: accepted, the saga runs on
RETRYABLE = (429, 503)
CARD_PAYS = "tok_visa"
CARD_DECLINED = "tok_chargeDeclined"


@dataclass
class Answer:
    """One HTTP exchange: ``status`` None for a connection error."""

    at: float  # time.time() when the request was sent
    took: float
    kind: str  # place, read_order, read_product
    status: int | None
    error: str | None = None
    body: str | None = None  # the start of an unexpected answer's body


@dataclass
class PlacedOrder:
    order_id: str
    key: str
    token: str
    product_id: str
    sku: str
    quantity: int
    card: str
    accepted_at: float


@dataclass
class LoadRecord:
    answers: list = field(default_factory=list)
    orders: list = field(default_factory=list)  # PlacedOrder, accepted ones
    intents: int = 0  # orders the clients tried to place (a retry is the same order)
    abandoned: int = 0  # order intents given up after every retry failed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer):
        with self.lock:
            self.answers.append(answer)

    def accepted(self, order):
        with self.lock:
            self.orders.append(order)

    def first_order_accepted_after(self, moment):
        """When the first order sent at or after ``moment`` was accepted (None: none yet)."""
        with self.lock:
            times = [
                a.at + a.took
                for a in self.answers
                if a.kind == "place" and a.status in ACCEPTED and a.at >= moment
            ]
        return min(times) if times else None

    def summary(self):
        with self.lock:
            answers = list(self.answers)
        by_kind = {}
        for answer in answers:
            counts = by_kind.setdefault(answer.kind, Counter())
            counts["connection_error" if answer.status is None else str(answer.status)] += 1
        return {kind: dict(sorted(counts.items())) for kind, counts in sorted(by_kind.items())}


class OrderLoad:
    """``clients`` threads placing orders for ``products`` as ``customers``
    (access tokens) against ``base_url``, until :meth:`stop`."""

    def __init__(self, base_url, customers, products, clients=4, pause=0.3, patience=45.0):
        self.base = base_url.rstrip("/")
        self.customers = customers
        self.products = products
        self.clients = clients
        self.pause = pause
        self.patience = patience
        self.record = LoadRecord()
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), name=f"chaos-client-{n}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(self.patience + 30)

    # --- one client ---------------------------------------------------------------

    def _client(self, n):
        rng = random.Random(n)
        session = requests.Session()
        while not self._stop.is_set():
            token = rng.choice(self.customers)
            product = rng.choice(self.products)
            card = CARD_DECLINED if rng.random() < 0.1 else CARD_PAYS
            order = self._place(session, token, product, card)
            if order is not None:
                self._exchange(
                    session, "read_order", "GET", f"/v1/orders/{order.order_id}", token=token
                )
            self._exchange(session, "read_product", "GET", f"/v1/products/{product['id']}")
            self._stop.wait(self.pause)

    def _place(self, session, token, product, card):
        key = str(uuid.uuid4())
        quantity = 1
        with self.record.lock:
            self.record.intents += 1
        body = {
            "items": [{"product_id": product["id"], "quantity": quantity}],
            "payment": {"token": card},
        }
        deadline = time.monotonic() + self.patience
        while True:
            response = self._exchange(
                session, "place", "POST", "/v1/orders", token=token, json=body, key=key
            )
            if response is not None and response.status_code in ACCEPTED:
                order = PlacedOrder(
                    order_id=response.json()["id"],
                    key=key,
                    token=token,
                    product_id=product["id"],
                    sku=product["sku"],
                    quantity=quantity,
                    card=card,
                    accepted_at=time.time(),
                )
                self.record.accepted(order)
                return order
            if response is not None and response.status_code not in RETRYABLE:
                return None  # a definite refusal: recorded, not retried
            if time.monotonic() > deadline or self._stop.is_set():
                with self.record.lock:
                    self.record.abandoned += 1
                return None
            self._stop.wait(_retry_delay(response))

    def _exchange(self, session, kind, method, path, token=None, json=None, key=None):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["Idempotency-Key"] = key
        sent, started = time.time(), time.monotonic()
        try:
            response = session.request(
                method, self.base + path, json=json, headers=headers, timeout=30
            )
        except requests.RequestException as exc:
            self.record.add(
                Answer(
                    sent,
                    time.monotonic() - started,
                    kind,
                    None,
                    exc.__class__.__name__,
                    body=str(exc)[:300],
                )
            )
            session.close()  # a fresh connection next time
            return None
        expected = response.status_code < 400 or response.status_code in RETRYABLE
        self.record.add(
            Answer(
                sent,
                time.monotonic() - started,
                kind,
                response.status_code,
                body=None if expected else response.text[:300],
            )
        )
        return response


def _retry_delay(response):
    """After a connection error 0.5 s; after a 503/429 its Retry-After, capped at 2 s."""
    if response is None:
        return 0.5
    try:
        return min(max(float(response.headers.get("Retry-After", 1)), 0.2), 2.0)
    except ValueError:
        return 1.0
