"""`make bench`: start an isolated platform, load the gateway, print the figures.

Scenarios, each at 16 concurrent clients (closed loop) for BENCH_SECONDS (10):
  gateway only          GET /healthz (no RPC: the HTTP ceiling)
  RPC path, cached      GET /v1/products/{id}, served from Redis by the catalog
  RPC path, uncached    the same with the catalog cache disabled (every call hits PostgreSQL)
  list page, cached     GET /v1/products?limit=20
  with a token          GET /v1/products/{id} cached, with a bearer token (JWT check, revocation
                        check in Redis, limiter keyed by client and user)
  authenticated         GET /v1/users/me (token check, then users.get_user from PostgreSQL)

Rate limits stay on, with limits high enough never to trigger.

The platform runs on its own vhost, databases and Redis prefix, removed afterwards.
"""

import os
import shutil
import sys
import tempfile
import uuid

from agora.cli import SERVICES, seed_demo_data
from agora.infra import delete_vhost, ensure_vhost, preflight
from agora.platform import Platform, free_port, platform_env
from bench.load import run, summary
from services.chassis.config import load_config
from services.chassis.migrations import drop_database, upgrade
from services.chassis.redis import make_client


def main():
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
        }
    )
    overlay = os.path.join(env["AGORA_STATE_DIR"], "bench.yaml")
    with open(overlay, "w") as fh:
        groups = ("read", "write", "oauth", "token_per_client", "token_per_ip")
        fh.write("gateway:\n  rate_limits:\n    groups:\n")
        fh.writelines(f"      {group}: 100000000/minute\n" for group in groups)
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
        token = requests.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "password",
                "client_id": demo["web_client_id"],
                "username": demo["user_email"],
                "password": demo["user_password"],
            },
            timeout=10,
        ).json()["access_token"]
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
        platform.stop("catalog")
        platform.env = {**env, "AGORA_CATALOG_CACHE_ENABLED": "false"}
        platform.start("catalog")
        platform.wait_ready(200, timeout=60)
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
    print(
        f"\n{clients} concurrent clients, {seconds:.0f} s each, on {os.cpu_count()} cores "
        "(load generator on the same machine)"
    )
    print(summary(results))


if __name__ == "__main__":
    main()
