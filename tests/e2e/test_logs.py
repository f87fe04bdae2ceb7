"""`make run` (`agora run`) as an operator meets it: a quiet console, each
process's lines in .agora/logs/, and `agora trace` following one order's saga
through every service by the X-B3-TraceId the gateway answered with.

The platform runs on a vhost, broker users, databases, Redis prefix and state
folder of its own, and `agora reset --yes` removes them at the end."""

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import pytest
import requests

from agora.platform import free_port
from services.chassis.config import load_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

SAGA_SERVICES = {"gateway", "orders", "inventory", "billing", "notifications"}


@pytest.fixture(scope="module")
def make_run(tmp_path_factory, smtp):
    """`agora run` in the foreground, as `make run` starts it; yields (env, console path)."""
    state = tmp_path_factory.mktemp("make-run-state")
    port = free_port()
    env = {
        **os.environ,
        "AGORA_AMQP_VHOST": f"{os.environ['AGORA_AMQP_VHOST']}-make-run",
        "AGORA_BROKER_USER_PREFIX": f"{os.environ['AGORA_BROKER_USER_PREFIX']}mr-",
        "AGORA_DB_PREFIX": f"{os.environ['AGORA_DB_PREFIX']}mr_",
        "AGORA_REDIS_PREFIX": f"{os.environ['AGORA_REDIS_PREFIX']}make-run:",
        "AGORA_STATE_DIR": str(state / "agora"),
        "AGORA_GATEWAY_PORT": str(port),
        "AGORA_AUTH_ISSUER": f"http://127.0.0.1:{port}",
        "AGORA_SMTP_PORT": str(smtp.port),
        # The test environment logs at WARNING; an operator's at INFO.
        "AGORA_LOG_LEVEL": "INFO",
    }
    console = state / "console.txt"
    with open(console, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "agora", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: process.poll() is not None or "the platform is up" in console.read_text(),
            timeout=240,
            interval=0.5,
            what="agora run to start the platform",
        )
        assert process.poll() is None, console.read_text()[-3000:]
        yield env, console, f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        subprocess.run(
            [sys.executable, "-m", "agora", "reset", "--yes"],
            env=env,
            capture_output=True,
            timeout=180,
        )


def place_order(base, env):
    token = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "password",
            "client_id": "agora-web",
            "username": "demo@agora.local",
            "password": env.get("AGORA_DEMO_PASSWORD", "agora-demo-password"),
        },
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    product = requests.get(f"{base}/v1/products?limit=1", timeout=10).json()["items"][0]
    response = requests.post(
        f"{base}/v1/orders",
        json={
            "items": [{"product_id": product["id"], "quantity": 1}],
            "payment": {"token": "tok_visa"},
        },
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    order = response.json()
    wait_until(
        lambda: (
            requests.get(f"{base}/v1/orders/{order['id']}", headers=headers, timeout=10)
            .json()
            .get("status")
            == "confirmed"
        ),
        timeout=60,
        what="the order to be confirmed",
    )
    return response.headers["X-B3-TraceId"]


def agora_trace(env, trace_id):
    return subprocess.run(
        [sys.executable, "-m", "agora", "trace", trace_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_orders_saga_is_one_trace_across_every_services_log_file(make_run):
    env, _console, base, _process = make_run
    trace_id = place_order(base, env)

    # The last step (the confirmation's notification) may be a moment behind.
    def saga_lines():
        result = agora_trace(env, trace_id)
        lines = result.stdout.splitlines()
        processes = {line.split()[1] for line in lines[1:-1]}
        return lines if SAGA_SERVICES <= processes else None

    lines = wait_until(saga_lines, timeout=30, what="the saga's lines in every service's log")
    assert lines[0].startswith(f"trace {trace_id}: ")
    assert lines[-1] == f"spans: http://127.0.0.1:9/zipkin/traces/{trace_id}"
    body = lines[1:-1]
    assert any("gateway" in line and "POST /v1/orders 202" in line for line in body)
    assert any("orders" in line and "rpc orders.create_order ok" in line for line in body)
    assert any(
        "event inventory.on_order_created <- orders.order_created ok" in line for line in body
    )
    assert any("event orders.on_reservation_committed" in line for line in body)
    assert body == sorted(body, key=lambda line: line.split()[0])  # time order

    # The files hold the same lines, as JSON, with the trace id.
    logs = os.path.join(env["AGORA_STATE_DIR"], "logs")
    with open(os.path.join(logs, "orders.log")) as fh:
        orders = [json.loads(line) for line in fh if line.startswith("{")]
    created = [e for e in orders if e.get("entrypoint") == "orders.create_order"]
    assert created[-1]["trace_id"] == trace_id
    assert (created[-1]["kind"], created[-1]["outcome"]) == ("rpc", "ok")


def test_the_console_carries_no_noise(make_run):
    env, console, _base, _process = make_run
    text = console.read_text()
    assert "during closing channel" not in text
    assert "Eventlet is deprecated" not in text
    # The dead collector (127.0.0.1:9) is named at most once per process
    # (a service, or one of the gateway's workers), with how to run one.
    warnings = [json.loads(line) for line in text.splitlines() if "zipkin collector" in line]
    assert warnings, "no process said that the collector is unreachable"
    per_process = Counter(w.get("instance", w["service"]) for w in warnings)
    workers = load_config(env)["gateway"]["workers"]
    assert per_process.pop("gateway", 0) <= workers
    assert set(per_process.values()) == {1}
    assert all(
        "docker compose -f compose/docker-compose.yml up -d zipkin" in w["message"]
        for w in warnings
    )


def test_an_unknown_trace_says_so_and_exits_1(make_run):
    env, _console, _base, _process = make_run
    result = agora_trace(env, uuid.uuid4().hex)
    assert result.returncode == 1
    assert "no log line in" in result.stdout
