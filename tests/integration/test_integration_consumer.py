"""integrations/consumer.py as a real process, as the ``integration`` broker user
on the run's vhost (read from the same settings as the platform): one queue per
consumer name with exactly the bindings asked for, ``--delete``, and a webhook
forwarder that signs, retries 5xx and parks a permanent 4xx."""

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "integrations" / "consumer.py"
SECRET = "test-webhook-secret-0123456789"


def load_consumer_module():
    spec = importlib.util.spec_from_file_location("agora_consumer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


consumer_module = load_consumer_module()


class ConsumerProcess:
    """The consumer as a child process; ``wait_consuming()`` blocks until it has
    set up its queue and bindings (it says so on stderr)."""

    def __init__(self, *args, env=None):
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    def _read_stderr(self):
        for line in self.process.stderr:
            self.log.append(line)
            if line.startswith("consuming "):
                self.ready.set()

    def wait_consuming(self, timeout=30):
        assert self.ready.wait(timeout), "".join(self.log)

    def finish(self, timeout=60):
        try:
            self.process.wait(timeout)
            out = self.process.stdout.read()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
        self.reader.join(5)
        return out

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def operator(config, rabbit_vhost):
    """The operator's connection, for publishing events and inspecting queues."""
    with Connection(config["amqp"]["uri"], transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        for service in ("orders", "billing"):
            Exchange(f"{service}.events", type="topic", durable=True)(channel).declare()
        yield conn


def publish(connection, exchange, event_type, event_id=None):
    envelope = {
        "event_id": event_id or str(uuid.uuid4()),
        "type": f"{exchange.split('.')[0]}.{event_type}",
        "occurred_at": "2026-12-01T00:00:00Z",
        "version": 1,
        "data": {},
    }
    Producer(connection.channel()).publish(
        envelope, exchange=exchange, routing_key=event_type, serializer="json", retry=False
    )
    return envelope


def message_count(connection, name):
    _queue, messages, _consumers = connection.channel().queue_declare(name, passive=True)
    return messages


@pytest.fixture
def name():
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(
        [sys.executable, str(SCRIPT), "--name", name, "--delete"],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_bind_filters_by_routing_key_and_stale_bindings_are_removed(operator, name):
    first = ConsumerProcess("--name", name, "--bind", "orders.events:order_created")
    try:
        first.wait_consuming()
    finally:
        first.kill()
    # The same consumer, asking for another routing key: order_created is gone.
    second = ConsumerProcess(
        "--name", name, "--bind", "orders.events:order_confirmed", "--count", "1"
    )
    try:
        second.wait_consuming()
        publish(operator, "orders.events", "order_created")
        confirmed = publish(operator, "orders.events", "order_confirmed")
        out = second.finish()
    finally:
        second.kill()
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [confirmed["event_id"]]
    assert message_count(operator, f"integration.{name}") == 0
    assert "removed the stale binding orders.events:order_created" in "".join(second.log)


def test_delete_removes_the_consumers_queues(operator, name):
    consumer = ConsumerProcess("--name", name, "--bind", "orders.events:#")
    try:
        consumer.wait_consuming()
    finally:
        consumer.kill()
    assert message_count(operator, f"integration.{name}") == 0
    deleted = subprocess.run(
        [sys.executable, str(SCRIPT), "--name", name, "--delete"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert deleted.returncode == 0, deleted.stderr
    for queue_name in (f"integration.{name}", f"integration.{name}.bindings"):
        with pytest.raises(Exception) as caught:
            message_count(operator, queue_name)
        assert "NOT_FOUND" in str(caught.value) or "404" in str(caught.value)


class Webhook:
    """A real local HTTP server; answers each event id with its scripted statuses."""

    def __init__(self):
        self.script = {}
        self.received = queue.Queue()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event_id = self.headers["X-Agora-Event-Id"]
                statuses = owner.script.get(event_id, [200])
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                owner.received.put((event_id, dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self):
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


def test_the_forwarder_signs_retries_5xx_and_parks_a_permanent_4xx(operator, name, webhook):
    refused_id, flaky_id = str(uuid.uuid4()), str(uuid.uuid4())
    webhook.script[refused_id] = [400]
    webhook.script[flaky_id] = [503, 200]
    env = {**os.environ, "AGORA_WEBHOOK_SECRET": SECRET}
    consumer = ConsumerProcess(
        "--name",
        name,
        "--bind",
        "orders.events:order_confirmed",
        "--forward",
        webhook.url,
        "--count",
        "1",
        env=env,
    )
    try:
        consumer.wait_consuming()
        publish(operator, "orders.events", "order_confirmed", refused_id)
        publish(operator, "orders.events", "order_confirmed", flaky_id)
        consumer.finish()
    finally:
        consumer.kill()
    assert consumer.process.returncode == 0, "".join(consumer.log)
    requests = webhook.requests()
    assert [(r[0], r[3]) for r in requests] == [(refused_id, 400), (flaky_id, 503), (flaky_id, 200)]
    for _event_id, headers, body, _status in requests:
        assert consumer_module.verify_signature(SECRET, headers["Agora-Signature"], body)
        assert not consumer_module.verify_signature(
            "another-secret", headers["Agora-Signature"], body
        )
    # The refused event waits in integration.<name>.failed, not in the queue.
    channel = operator.channel()
    parked = channel.basic_get(f"integration.{name}.failed", no_ack=True)
    assert json.loads(parked.body)["event_id"] == refused_id
    assert parked.headers["x-agora-status"] == 400
    assert message_count(operator, f"integration.{name}") == 0


def test_the_forwarder_takes_only_http_urls_and_needs_a_secret():
    for url in ("file:///etc/passwd", "ftp://example.test/x", "gopher://x", "http://"):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--forward", url],
            capture_output=True,
            text=True,
            env={**os.environ, "AGORA_WEBHOOK_SECRET": SECRET},
            timeout=30,
            check=False,
        )
        assert result.returncode == 2 and "only http(s)" in result.stderr, result.stderr
    unsigned = subprocess.run(
        [sys.executable, str(SCRIPT), "--forward", "https://example.test/hook"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AGORA_WEBHOOK_SECRET"},
        timeout=30,
        check=False,
    )
    assert unsigned.returncode == 2 and "AGORA_WEBHOOK_SECRET" in unsigned.stderr


def test_a_signature_is_bound_to_body_secret_and_time():
    body = b'{"event_id": "x"}'
    header = consumer_module.sign(SECRET, body, timestamp=1_000_000)
    assert consumer_module.verify_signature(SECRET, header, body, now=1_000_010)
    assert not consumer_module.verify_signature(SECRET, header, body + b" ", now=1_000_010)
    assert not consumer_module.verify_signature(SECRET, header, body, now=1_000_000 + 3600)
    assert not consumer_module.verify_signature(SECRET, "t=1,v1=00", body, now=1)
    assert not consumer_module.verify_signature(SECRET, "garbage", body)
