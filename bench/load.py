"""A small closed-loop HTTP load generator: N clients, each one request at a time."""

import threading
import time
from dataclasses import dataclass

import requests


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list
    error_kinds: dict
    extra: str = ""

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q):
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))
        return ordered[index] * 1000

    def line(self):
        worst = max(self.error_kinds.items(), key=lambda kv: kv[1], default=None)
        return (
            (
                f"{self.name:<44} {self.rps:8.1f} req/s   p50 {self.percentile(50):6.1f} ms   "
                f"p99 {self.percentile(99):6.1f} ms   errors {self.errors}"
            )
            + (f"\n    most common error ({worst[1]}x): {worst[0]}" if worst else "")
            + (f"\n{self.extra}" if self.extra else "")
        )


def run(
    name,
    url_for,
    clients=16,
    duration=10.0,
    warmup=1.0,
    headers=None,
    expect=200,
    request_for=None,
):
    """Hit ``url_for(i)`` from ``clients`` threads for ``duration`` seconds after a warm-up.

    ``request_for(i, n)`` (client ``n``'s ``i``-th request) may return
    ``(method, url, kwargs)`` instead, for requests other than a plain GET."""
    stop_at = time.monotonic() + warmup + duration
    measure_from = time.monotonic() + warmup
    lock = threading.Lock()
    latencies, counts, errors = [], {"ok": 0, "errors": 0}, {}

    def client(n):
        session = requests.Session()
        i = n
        while True:
            started = time.monotonic()
            if started >= stop_at:
                return
            try:
                if request_for is None:
                    response = session.get(url_for(i), headers=headers, timeout=10)
                else:
                    method, url, kwargs = request_for(i, n)
                    response = session.request(method, url, timeout=10, **kwargs)
                ok = response.status_code == expect
                problem = None if ok else f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                ok, problem = False, exc.__class__.__name__
            elapsed = time.monotonic() - started
            i += clients
            if started < measure_from:
                continue
            with lock:
                if ok:
                    counts["ok"] += 1
                    latencies.append(elapsed)
                else:
                    counts["errors"] += 1
                    errors.setdefault(problem, 0)
                    errors[problem] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(name, counts["ok"], counts["errors"], duration, latencies, errors)


def summary(results):
    return "\n".join(result.line() for result in results)
