"""`make bench`: start an isolated platform, load the gateway with wrk, print the figures.

Run it with `make bench` (or `.venv/bin/python -m bench`); RabbitMQ, PostgreSQL and
Redis must be up, as for `make run`. wrk comes from the distribution (installed with
apt-get when missing and possible). The load generator shares the machine's cores
with the platform: compare figures within one run, not across runs.

Each scenario runs with 1 client and with BENCH_CLIENTS (16) concurrent clients
(wrk connections, closed loop: each sends its next request when answered), for
BENCH_SECONDS_ONE_CLIENT (10) and BENCH_SECONDS (20) seconds:

  GET /healthz                 the gateway alone, no RPC: the HTTP ceiling
  GET /v1/products/{id}        anonymous, rotating over 10 products: from the gateway's
                               catalog cache (the catalog's Redis cache before it existed)
  GET /v1/products?limit=20    a cached list page, anonymous
  GET /v1/products/{id} token  the same read with a bearer token (JWT check, revocation
                               check, limiter keyed by client and user)
  GET /v1/users/me             token check, then users reads PostgreSQL
  GET /v1/orders/{id}          the aggregated order view (orders, inventory and billing),
                               rotating over 10 confirmed orders of the token's owner
  POST /v1/orders              16 customers' tokens in turn, a unique Idempotency-Key per
                               request; then every order placed is followed to its end:
                               orders confirmed per second (first placed to last
                               confirmed) and the placed -> confirmed time, p50 and p99
  sustained sagas              POST /v1/orders paced at BENCH_SAGA_RATE (80) per second for
                               BENCH_SAGA_SECONDS (60) over BENCH_SAGA_CLIENTS (32)
                               connections: placed/s, confirmed/s, placed -> confirmed
  at rest                      once every saga has ended and BENCH_REST_SETTLE (10) s more:
                               CPU of every platform process (services, gateway master and
                               workers) over BENCH_REST_SECONDS (30) s as % of one core,
                               and their resident memory
  GET /v1/products/{id} via RPC  the gateway restarted with its catalog cache off: every
                               read is an RPC answered from the catalog's Redis cache
  GET /v1/products/{id} uncached  the catalog restarted with its cache off too: PostgreSQL
                               on every call (last, as these restart processes)

Beside req/s, p50 and p99 (wrk's latency, errors by kind), each run reports the CPU
the platform's own processes spent per good answer ("CPU ms/req", from /proc: not
RabbitMQ's, PostgreSQL's, Redis's nor wrk's), and each saga row the CPU per order
from the first POST to the end of the last saga: figures that other load on the
machine moves far less than the rates.

Rate limits stay on with limits too high to trigger (an overlay, as is the token
lifetime, long enough for the whole run); tracing is on (AGORA_TRACE_SAMPLE_RATE, 1.0).
The table goes to stdout; every figure also goes as JSON to BENCH_JSON (default
.agora/bench/<UTC timestamp>.json). The platform runs on its own vhost, databases,
Redis prefix and SMTP sink, all removed afterwards.

BENCH_INSTANCES="orders=3,inventory=2,billing=2" runs several processes of those
services (services.<name>.instances). BENCH_ONLY picks scenarios by part of their
names (``BENCH_ONLY="orders/{id},POST"``);
BENCH_PROFILE=<folder> also samples every process with py-spy during each run with
more than one client (bench/profile.py: raw stacks and a summary per scenario).

Only what every version of the platform has is used (Platform, the demo seed, the
gateway's routes), so this folder can be copied into an older checkout to measure it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

from agora.cli import SERVICES, seed_demo_data
from agora.infra import delete_vhost, ensure_vhost, preflight
from agora.platform import Platform, free_port, platform_env
from bench import profile, report, rest, sagas, wrk
from services.chassis.config import RATE_LIMIT_GROUPS, ROOT, load_config
from services.chassis.files import write_private
from services.chassis.migrations import drop_database, upgrade
from services.chassis.redis import make_client


def setting(name, default, kind=float):
    return kind(os.environ.get(name, default))


CLIENTS = setting("BENCH_CLIENTS", 16, int)
SECONDS = setting("BENCH_SECONDS", 20)
SECONDS_ONE_CLIENT = setting("BENCH_SECONDS_ONE_CLIENT", SECONDS / 2)
SAGA_RATE = setting("BENCH_SAGA_RATE", 80)
SAGA_SECONDS = setting("BENCH_SAGA_SECONDS", 60)
SAGA_CLIENTS = setting("BENCH_SAGA_CLIENTS", 32, int)
SAGA_WAIT = setting("BENCH_SAGA_WAIT", 300)
REST_SETTLE = setting("BENCH_REST_SETTLE", 10)
REST_SECONDS = setting("BENCH_REST_SECONDS", 30)


def session():
    import requests

    return requests.Session()


def password_token(http, base, client_id, username, password):
    """An access token through the password grant of the public client."""
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
    }
    response = http.post(f"{base}/oauth/token", data=form, timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def customer_tokens(http, base, demo, count):
    """``count`` new customers' access tokens."""
    tokens = []
    for n in range(count):
        email, password = f"bench-{uuid.uuid4().hex[:8]}-{n}@example.com", "bench password 1"
        http.post(f"{base}/v1/users", json={"email": email, "password": password}, timeout=30)
        tokens.append(password_token(http, base, demo["web_client_id"], email, password))
    return tokens


def stock_up(http, base, demo, product_id):
    """Stock that no run can exhaust, set through the integrations client
    (client_credentials: stock levels need no admin user)."""
    form = {"grant_type": "client_credentials", "scope": "inventory:write"}
    auth = (demo["integration_client_id"], demo["integration_secret"])
    token = http.post(f"{base}/oauth/token", data=form, auth=auth, timeout=30).json()
    sku = http.get(f"{base}/v1/products/{product_id}", timeout=30).json()["sku"]
    http.put(
        f"{base}/v1/inventory/{sku}",
        json={"warehouse": "main", "on_hand": 10_000_000},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    ).raise_for_status()


def order_body(product_id):
    return {
        "items": [{"product_id": product_id, "quantity": 1}],
        "payment": {"token": "tok_visa"},
    }


def place_orders(http, base, token, product_id, count):
    """``count`` orders of the token's owner; their ids."""
    ids = []
    for _ in range(count):
        response = http.post(
            f"{base}/v1/orders",
            json=order_body(product_id),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


def start_smtp_sink():
    """An SMTP server that accepts and drops every email (aiosmtpd), so the
    notifications service works as it would against a real mail server."""
    port = free_port()
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    sink = subprocess.Popen(
        [*argv, "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return sink, port


def isolated_env(smtp_port):
    run_id = uuid.uuid4().hex[:6]
    env = platform_env(
        {
            "AGORA_AMQP_VHOST": f"agora-bench-{run_id}",
            "AGORA_DB_PREFIX": f"agora_bench{run_id}_",
            "AGORA_REDIS_PREFIX": f"agora:bench{run_id}:",
            "AGORA_GATEWAY_PORT": str(free_port()),
            "AGORA_LOG_LEVEL": "WARNING",
            "AGORA_STATE_DIR": tempfile.mkdtemp(prefix="agora-bench-"),
            "AGORA_TRACE_SAMPLE_RATE": os.environ.get("AGORA_TRACE_SAMPLE_RATE", "1.0"),
            "AGORA_SMTP_PORT": str(smtp_port),
            # Every order mails its customer: the per-recipient hourly cap would
            # suppress (and log) nearly all of them, which a real shop does not see.
            "AGORA_NOTIFY_MAX_PER_RECIPIENT": "100000000",
        }
    )
    overlay = os.path.join(env["AGORA_STATE_DIR"], "bench.yaml")
    write_private(
        overlay,
        "auth:\n  access_token_ttl: 14400\n"
        "gateway:\n  rate_limits:\n    groups:\n"
        + "".join(f"      {group}: 100000000/minute\n" for group in RATE_LIMIT_GROUPS)
        + instances_overlay(),
    )
    env["AGORA_CONFIG"] = overlay
    return env


def instances_overlay():
    """BENCH_INSTANCES="orders=3,inventory=2" as config lines (processes per service)."""
    pairs = [part.split("=") for part in os.environ.get("BENCH_INSTANCES", "").split(",") if part]
    if not pairs:
        return ""
    return "services:\n" + "".join(
        f"  {name.strip()}:\n    instances: {int(n)}\n" for name, n in pairs
    )


class Bench:
    """The scenarios against one running platform; results kept in order."""

    def __init__(self, platform):
        self.platform = platform
        self.base = platform.base_url
        self.results = []
        self.sagas = []
        self.rest = None

    def run(self, scenario, paths, clients, seconds, **options):
        """One wrk run, with the CPU the platform's processes spent over it; returns
        the result and a function giving their CPU seconds since the run started."""
        named = rest.processes(self.platform.children)
        spies = profile.start(named, scenario, clients, seconds)
        before = rest.cpu_times(named)
        result = wrk.run(scenario, self.base, paths, clients, seconds, **options)
        after = rest.cpu_times(named)
        result.platform_cpu_s = rest.cpu_spent(before, after)
        result.cpu_by_process_s = rest.cpu_spent_by_name(named, before, after)
        profile.finish(spies)
        self.results.append(result)
        print(report.table([result]).splitlines()[-1], flush=True)
        return result, lambda: rest.cpu_spent(before, rest.cpu_times(named))

    def load(self, scenario, paths, **options):
        """``scenario`` at 1 client, then at CLIENTS clients."""
        for clients, seconds in ((1, SECONDS_ONE_CLIENT), (CLIENTS, SECONDS)):
            self.run(scenario, paths, clients, seconds, **options)

    def orders_load(self, engine, product_id, tokens):
        for clients, seconds in ((1, SECONDS_ONE_CLIENT), (CLIENTS, SECONDS)):
            self.place(
                engine,
                "POST /v1/orders",
                f"POST /v1/orders, {clients} client(s)",
                clients,
                seconds,
                product_id,
                tokens,
            )

    def sustained(self, engine, product_id, tokens):
        self.place(
            engine,
            f"POST /v1/orders at {SAGA_RATE:g}/s",
            f"sustained at {SAGA_RATE:g}/s",
            SAGA_CLIENTS,
            SAGA_SECONDS,
            product_id,
            tokens,
            rate=SAGA_RATE,
        )

    def place(self, engine, scenario, sagas_name, clients, seconds, product_id, tokens, **options):
        """POST /v1/orders under wrk, then every order placed followed to its end."""
        since = sagas.db_now(engine)
        result, cpu_since_start = self.run(
            scenario,
            ["/v1/orders"],
            clients,
            seconds,
            method="POST",
            body=order_body(product_id),
            tokens=tokens,
            idempotency=True,
            **options,
        )
        until = sagas.db_now(engine)
        drained = sagas.wait_for_open_sagas(engine, since, until, SAGA_WAIT)
        figures = sagas.figures(engine, since, until, result.seconds)
        figures.update(
            scenario=sagas_name,
            drained=drained,
            # Placing and every saga step, to the end of the last saga.
            cpu_ms_per_order=1000 * cpu_since_start() / figures["placed"]
            if figures["placed"]
            else None,
        )
        self.sagas.append(figures)
        print(report.sagas_table([figures]).splitlines()[-1], flush=True)


def scenarios(bench, config, engine):
    demo = config["demo"]
    base = bench.base
    http = session()
    products = http.get(f"{base}/v1/products?limit=10", timeout=30).json()["items"]
    ids = [p["id"] for p in products]
    product_paths = [f"/v1/products/{product_id}" for product_id in ids]
    stock_up(http, base, demo, ids[0])
    token = password_token(
        http, base, demo["web_client_id"], demo["user_email"], demo["user_password"]
    )
    since = sagas.db_now(engine)
    order_ids = place_orders(http, base, token, ids[0], 10)
    sagas.wait_for_open_sagas(engine, since, sagas.db_now(engine), SAGA_WAIT)
    customers = customer_tokens(http, base, demo, CLIENTS)

    if wanted("GET /healthz"):
        bench.load("GET /healthz", ["/healthz"])
    if wanted("GET /v1/products/{id} cached"):
        bench.load("GET /v1/products/{id} cached", product_paths)
    if wanted("GET /v1/products?limit=20 cached"):
        bench.load("GET /v1/products?limit=20 cached", ["/v1/products?limit=20"])
    if wanted("GET /v1/products/{id} token"):
        bench.load("GET /v1/products/{id} token", product_paths, tokens=[token])
    if wanted("GET /v1/users/me"):
        bench.load("GET /v1/users/me", ["/v1/users/me"], tokens=[token])
    if wanted("GET /v1/orders/{id} token"):
        order_paths = [f"/v1/orders/{i}" for i in order_ids]
        bench.load("GET /v1/orders/{id} token", order_paths, tokens=[token])
    if wanted("POST /v1/orders"):
        bench.orders_load(engine, ids[0], customers)
    if wanted("sustained"):
        bench.sustained(engine, ids[0], customers)

    # Requests wrk left in flight at its end may still have placed orders: at rest
    # means after every saga of the run.
    sagas.wait_for_open_sagas(engine, since, sagas.db_now(engine), SAGA_WAIT)
    if wanted("at rest"):
        time.sleep(REST_SETTLE)
        bench.rest = rest.sample(rest.processes(bench.platform.children), REST_SECONDS)
        print(report.rest_table(bench.rest), flush=True)

    # The gateway's own catalog cache (where there is one) answers the cached reads
    # above without an RPC; with it off the same read shows the RPC path.
    if wanted("GET /v1/products/{id} via RPC"):
        restart(bench, ["gateway"], AGORA_GATEWAY_CATALOG_CACHE="false")
        bench.load("GET /v1/products/{id} via RPC", product_paths)
    if wanted("GET /v1/products/{id} uncached"):
        restart(bench, ["catalog"], AGORA_CATALOG_CACHE_ENABLED="false")
        bench.load("GET /v1/products/{id} uncached", product_paths)


def wanted(scenario):
    """BENCH_ONLY (comma-separated parts of scenario names) picks scenarios; all by default."""
    only = [part.strip() for part in os.environ.get("BENCH_ONLY", "").split(",") if part.strip()]
    return not only or any(part in scenario for part in only)


def restart(bench, names, **env):
    """Stop ``names``, start them again with ``env`` added, wait until ready."""
    for name in names:
        bench.platform.stop(name)
    bench.platform.env = {**bench.platform.env, **env}
    for name in names:
        bench.platform.start(name)
    bench.platform.wait_ready(timeout=60)


def main():
    try:
        wrk.ensure_wrk()
    except wrk.WrkMissing as exc:
        sys.exit(str(exc))
    from sqlalchemy import create_engine

    from services.chassis.config import database_url

    sink, smtp_port = start_smtp_sink()
    env = isolated_env(smtp_port)
    os.environ.update(env)
    config = load_config()
    problems = preflight(config)
    if problems:
        sink.terminate()
        sys.exit("\n".join(str(p) for p in problems))
    ensure_vhost(config)
    for service in SERVICES:
        upgrade(config, service)
    platform = Platform(config, env)
    bench = Bench(platform)
    engine = create_engine(database_url(config, "orders"))
    started = datetime.now(UTC)
    try:
        platform.start_all()
        seed_demo_data(config)  # start_all() waited for health
        scenarios(bench, config, engine)
    finally:
        engine.dispose()
        platform.stop_all()
        delete_vhost(config)
        for service in SERVICES:
            drop_database(config, service)
        shutil.rmtree(env["AGORA_STATE_DIR"], ignore_errors=True)
        redis = make_client(config["redis"])
        redis.delete_namespace()
        redis.close()
        sink.terminate()
        sink.wait(5)
        finish(bench, started)


def finish(bench, started):
    """Print the tables and write the JSON, with whatever was measured."""
    machine = (
        f"{os.cpu_count()} cores, load generator (wrk) on the same machine; "
        f"{CLIENTS} clients for {SECONDS:g} s, 1 client for {SECONDS_ONE_CLIENT:g} s"
    )
    print(f"\n{machine}\n")
    print(report.table(bench.results))
    split = report.cpu_split_table(bench.results)
    if split:
        print("\nwhere the CPU went (16 clients; brokers, databases and wrk not counted)\n")
        print(split)
    if bench.sagas:
        print()
        print(report.sagas_table(bench.sagas))
    if bench.rest:
        print()
        print(report.rest_table(bench.rest))
    path = os.environ.get("BENCH_JSON") or str(
        ROOT / ".agora" / "bench" / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    )
    document = report.document(bench.results, bench.sagas, bench.rest, machine, started)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(document, fh, indent=2)
    print(f"\nbench: results written to {path}")


if __name__ == "__main__":
    main()
