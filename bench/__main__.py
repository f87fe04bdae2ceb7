"""`make bench`: start an isolated platform, load the gateway, print the figures.

Scenarios, each at 16 concurrent clients (closed loop) for BENCH_SECONDS (10):
  gateway only          GET /healthz (no RPC: the HTTP ceiling)
  RPC path, cached      GET /v1/products/{id}, served from Redis by the catalog
  RPC path, uncached    the same with the catalog cache disabled (every call hits PostgreSQL)
  list page, cached     GET /v1/products?limit=20
  with a token          GET /v1/products/{id} cached, with a bearer token (JWT check, revocation
                        check in Redis, limiter keyed by client and user)
  authenticated         GET /v1/users/me (token check, then users.get_user from PostgreSQL)
  orders                POST /v1/orders for BENCH_ORDER_SECONDS (60), emails to an SMTP sink;
                        then every order placed is followed to its end: orders confirmed
                        per second, the saga's duration

Rate limits stay on, with limits high enough never to trigger.

The platform runs on its own vhost, databases and Redis prefix, removed afterwards.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from agora.cli import SERVICES, seed_demo_data
from agora.infra import delete_vhost, ensure_vhost, preflight
from agora.platform import Platform, free_port, platform_env
from bench.load import run, summary
from services.chassis.config import RATE_LIMIT_GROUPS, load_config
from services.chassis.files import write_private
from services.chassis.migrations import drop_database, upgrade
from services.chassis.redis import make_client


def customers(base, demo, count):
    """``count`` new customers' access tokens."""
    import requests

    tokens = []
    for n in range(count):
        email, password = f"bench-{uuid.uuid4().hex[:8]}-{n}@example.com", "bench password 1"
        requests.post(f"{base}/v1/users", json={"email": email, "password": password}, timeout=10)
        tokens.append(password_token(base, demo["web_client_id"], email, password))
    return tokens


def password_token(base, client_id, username, password):
    """An access token through the password grant of the public client."""
    import requests

    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
    }
    return requests.post(f"{base}/oauth/token", data=form, timeout=10).json()["access_token"]


def integration_token(base, demo, scope):
    """An access token of the confidential integrations client (client_credentials):
    stock levels need no admin user, and admin users have no password grant."""
    import requests

    form = {"grant_type": "client_credentials", "scope": scope}
    auth = (demo["integration_client_id"], demo["integration_secret"])
    response = requests.post(f"{base}/oauth/token", data=form, auth=auth, timeout=10)
    return response.json()["access_token"]


def orders_scenario(config, base, product_id, clients):
    """Orders placed by ``clients`` customers at once for BENCH_ORDER_SECONDS; then
    wait for every saga to end and read the outcome from the orders database."""
    import requests
    from sqlalchemy import create_engine, text

    from services.chassis.config import database_url

    seconds = float(os.environ.get("BENCH_ORDER_SECONDS", "60"))
    demo = config["demo"]
    admin = integration_token(base, demo, "inventory:write")
    sku = requests.get(f"{base}/v1/products/{product_id}", timeout=10).json()["sku"]
    requests.put(
        f"{base}/v1/inventory/{sku}",
        json={"warehouse": "main", "on_hand": 10_000_000},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    ).raise_for_status()
    tokens = customers(base, demo, clients)
    body = {"items": [{"product_id": product_id, "quantity": 1}], "payment": {"token": "tok_visa"}}

    def request_for(i, n):
        headers = {"Authorization": f"Bearer {tokens[n]}", "Idempotency-Key": str(uuid.uuid4())}
        return "POST", f"{base}/v1/orders", {"json": body, "headers": headers}

    result = run(
        "orders: POST /v1/orders",
        None,
        clients,
        seconds,
        warmup=0.0,
        expect=202,
        request_for=request_for,
    )
    engine = create_engine(database_url(config, "orders"))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                open_sagas = conn.execute(
                    text(
                        "SELECT count(*) FROM orders WHERE status IN ('pending','reserved','paid')"
                    )
                ).scalar()
            if not open_sagas:
                break
            time.sleep(1.0)
        with engine.connect() as conn:
            statuses = dict(
                conn.execute(text("SELECT status, count(*) FROM orders GROUP BY 1")).all()
            )
            first, last, p50, p99 = conn.execute(
                text(
                    """
                    WITH done AS (
                        SELECT o.created_at, min(h.at) AS confirmed_at
                        FROM orders o JOIN order_history h
                          ON h.order_id = o.id AND h.status = 'confirmed'
                        GROUP BY o.id, o.created_at)
                    SELECT min(created_at), max(confirmed_at),
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY confirmed_at - created_at),
                           percentile_cont(0.99) WITHIN GROUP (ORDER BY confirmed_at - created_at)
                    FROM done
                    """
                )
            ).one()
    finally:
        engine.dispose()
    confirmed = statuses.get("confirmed", 0)
    span = (last - first).total_seconds() if first and last else float("nan")
    result.name = "orders: POST /v1/orders"
    result.extra = (
        f"    {sum(statuses.values())} orders placed in {seconds:.0f} s: {statuses}\n"
        f"    confirmed {confirmed} in {span:.1f} s from the first order to the last "
        f"confirmation = {confirmed / span:.1f} orders confirmed/s\n"
        f"    saga duration (placed -> confirmed): p50 {p50.total_seconds() * 1000:.0f} ms, "
        f"p99 {p99.total_seconds() * 1000:.0f} ms"
    )
    return result


def start_smtp_sink():
    """An SMTP server that accepts and drops every email (aiosmtpd), so the
    notifications service works as it would against a real mail server."""
    port = free_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return sink, port


def main():
    sink, smtp_port = start_smtp_sink()
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    clients = int(os.environ.get("BENCH_CLIENTS", "16"))
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
        }
    )
    overlay = os.path.join(env["AGORA_STATE_DIR"], "bench.yaml")
    write_private(
        overlay,
        "gateway:\n  rate_limits:\n    groups:\n"
        + "".join(f"      {group}: 100000000/minute\n" for group in RATE_LIMIT_GROUPS),
    )
    env["AGORA_CONFIG"] = overlay
    os.environ.update(env)
    config = load_config()
    problems = preflight(config)
    if problems:
        sys.exit("\n".join(str(p) for p in problems))
    ensure_vhost(config)
    for service in SERVICES:
        upgrade(config, service)
    platform = Platform(config, env)
    results = []
    try:
        platform.start_all()
        seed_demo_data(config)  # start_all() waited for health
        base = platform.base_url
        import requests

        ids = [p["id"] for p in requests.get(f"{base}/v1/products?limit=10").json()["items"]]
        results.append(
            run("gateway only: GET /healthz", lambda i: f"{base}/healthz", clients, seconds)
        )
        results.append(
            run(
                "RPC path, cached: GET /v1/products/{id}",
                lambda i: f"{base}/v1/products/{ids[i % len(ids)]}",
                clients,
                seconds,
            )
        )
        results.append(
            run(
                "list page, cached: GET /v1/products",
                lambda i: f"{base}/v1/products?limit=20",
                clients,
                seconds,
            )
        )
        demo = config["demo"]
        token = password_token(
            base, demo["web_client_id"], demo["user_email"], demo["user_password"]
        )
        bearer = {"Authorization": f"Bearer {token}"}
        results.append(
            run(
                "with a token, cached: GET /v1/products/{id}",
                lambda i: f"{base}/v1/products/{ids[i % len(ids)]}",
                clients,
                seconds,
                headers=bearer,
            )
        )
        results.append(
            run(
                "authenticated: GET /v1/users/me",
                lambda i: f"{base}/v1/users/me",
                clients,
                seconds,
                headers=bearer,
            )
        )
        results.append(orders_scenario(config, base, ids[0], clients))
        platform.stop("catalog")
        platform.env = {**env, "AGORA_CATALOG_CACHE_ENABLED": "false"}
        platform.start("catalog")
        platform.wait_ready(timeout=60)
        results.append(
            run(
                "RPC path, uncached: GET /v1/products/{id}",
                lambda i: f"{base}/v1/products/{ids[i % len(ids)]}",
                clients,
                seconds,
            )
        )
    finally:
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
    print(
        f"\n{clients} concurrent clients, {seconds:.0f} s each, on {os.cpu_count()} cores "
        "(load generator on the same machine)"
    )
    print(summary(results))


if __name__ == "__main__":
    main()
