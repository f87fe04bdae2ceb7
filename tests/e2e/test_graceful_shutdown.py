"""SIGTERM under load: a service (orders, catalog) or the gateway is stopped the
way an orchestrator stops it, then started again, while customers keep reading
and placing orders through the gateway.

Nothing accepted is lost (every order answered 202 reaches a terminal state),
no answer is a 5xx other than 503, and every stopped process exits 0. While the
gateway itself is down a connection is refused: that is no HTTP answer, and is
counted apart."""

import threading
import time
from collections import Counter

import pytest
import requests

from tests.e2e.commerce import TERMINAL, bearer
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

PLACERS = 2
READERS = 2


class Load:
    """Customers placing orders and reading, each on a keep-alive session of its
    own, until ``stop()``; every answer is counted by status."""

    def __init__(self, shop, product, customers):
        self.shop = shop
        self.product = product
        self.customers = customers
        self.statuses = Counter()
        self.failures = []  # (method, path, status, body) of every 5xx
        self.refused = 0  # no HTTP answer: connection refused or reset
        self.accepted = []  # (order_id, token) of every order answered 202
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = []

    def start(self):
        for n in range(PLACERS):
            self._spawn(self._place, self.customers[n % len(self.customers)][1])
        for n in range(READERS):
            self._spawn(self._read, self.customers[n % len(self.customers)][1])
        return self

    def stop(self):
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)

    def accepted_count(self):
        with self._lock:
            return len(self.accepted)

    def answered(self, status):
        with self._lock:
            return self.statuses[status]

    def _spawn(self, target, token):
        thread = threading.Thread(target=target, args=(token,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _record(self, method, path, response):
        with self._lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.failures.append((method, path, response.status_code, response.text[:300]))

    def _refused(self):
        with self._lock:
            self.refused += 1
        time.sleep(0.05)  # the gateway is restarting: do not spin

    def _place(self, token):
        with requests.Session() as http:
            while not self._stopping.is_set():
                try:
                    response = self.shop.place(token, [(self.product["id"], 1)], session=http)
                except requests.ConnectionError:
                    self._refused()
                    continue
                self._record("POST", "/v1/orders", response)
                if response.status_code == 202:
                    with self._lock:
                        self.accepted.append((response.json()["id"], token))

    def _read(self, token):
        base = self.shop.base
        with requests.Session() as http:
            while not self._stopping.is_set():
                with self._lock:
                    mine = [order for order, owner in self.accepted if owner == token]
                paths = [f"/v1/products/{self.product['id']}"]
                if mine:
                    paths.append(f"/v1/orders/{mine[-1]}")
                for path in paths:
                    try:
                        response = http.get(base + path, headers=bearer(token), timeout=30)
                    except requests.ConnectionError:
                        self._refused()
                        continue
                    self._record("GET", path, response)


@pytest.mark.parametrize("victim", ["orders", "catalog", "gateway"])
def test_sigterm_under_load_loses_no_accepted_request(shop, platform, victim):
    product = shop.product(stock=100_000, price=300)
    customers = [shop.customer() for _ in range(max(PLACERS, READERS))]
    load = Load(shop, product, customers).start()
    try:
        wait_until(lambda: load.accepted_count() >= 5, timeout=60, what="orders placed")

        exit_codes = platform.stop(victim)  # SIGTERM, as an orchestrator does

        before = load.accepted_count()
        platform.start(victim)
        platform.wait_ready()
        ok_before = load.answered(202)
        wait_until(
            lambda: load.answered(202) >= ok_before + 5 and load.accepted_count() > before,
            timeout=60,
            what=f"orders accepted again after {victim} restarted",
        )
    finally:
        load.stop()

    assert exit_codes and set(exit_codes.values()) == {0}, exit_codes
    server_errors = {s: n for s, n in load.statuses.items() if s >= 500 and s != 503}
    assert not server_errors, (server_errors, load.failures[:10])
    if victim != "gateway":
        assert load.refused == 0  # the gateway stayed up: every request had an answer

    # Every order the gateway accepted reaches a terminal state.
    for order_id, token in load.accepted:
        view = shop.wait_for(token, order_id, TERMINAL, timeout=120)
        assert view["status"] == "confirmed", view
