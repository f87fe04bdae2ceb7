"""Subscribe to Agora's events from outside, with plain pika.

No Nameko: only the published contract (docs/asyncapi.yaml) and the broker
user for outside integrations (``agora-integration``), which may declare and
bind queues named ``integration.*`` and read the public ``<service>.events``
exchanges, and nothing else. Each consumer has a name and one durable queue,
``integration.<name>``, bound to exactly the ``--bind`` routing keys of its
latest run. It prints each event as one JSON line, or POSTs it to a webhook. A
message is acked only once it was printed or forwarded, so nothing is lost if
the consumer stops; delivery is at least once, so duplicates (same
``event_id``) are dropped here for the process's lifetime and must be dropped
by the receiver in general.

    python integrations/consumer.py                           # order + billing events
    python integrations/consumer.py --name crm --bind orders.events:order_confirmed
    AGORA_WEBHOOK_SECRET=... python integrations/consumer.py --name crm \\
        --forward https://crm.example/hooks/agora
    python integrations/consumer.py --name crm --delete       # remove its queues

Options: ``--name`` (stable: the queue holds events while you are away),
``--bind EXCHANGE:ROUTING_KEY`` (repeatable; ``#`` = all), ``--count N`` (exit
after N events), ``--amqp-uri`` (default ``$AGORA_INTEGRATION_AMQP_URI``, or,
run from an Agora checkout, the platform's own settings: its host and vhost,
the ``integration`` broker user and ``AGORA_INTEGRATION_BROKER_PASSWORD``).

Bindings: the broker cannot list a queue's bindings to a client, so the
consumer keeps its own record, the last message of ``integration.<name>.bindings``
(a one-message queue); a run binds what it is asked for and unbinds what the
record holds beyond that. Bindings made by hand are not known to it.

Webhooks: each POST carries ``Agora-Signature: t=<unix time>,v1=<hex>``, the
HMAC-SHA256 of ``"<t>." + body`` with the secret in ``$AGORA_WEBHOOK_SECRET``
(``verify_signature`` below is the receiver's check; refuse old ``t`` values).
Only http and https URLs are accepted, and redirects are not followed. A 2xx
acks the event; a 5xx, 408, 429 or a connection error retries it with backoff;
any other answer is permanent: the event is parked in
``integration.<name>.failed`` (with the status in its headers) instead of
being retried for ever.
"""

import argparse
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlsplit

import pika
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker

DEFAULT_BINDINGS = ("orders.events:#", "billing.events:#")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SEEN_MAX = 100_000
SIGNATURE_HEADER = "Agora-Signature"
SIGNATURE_TOLERANCE = 300
RETRYABLE_STATUS = frozenset({408, 425, 429})
MAX_BACKOFF = 30.0

log = logging.getLogger("agora-consumer")


class PermanentFailure(Exception):
    """The webhook refused the event for good (a 4xx): retrying will not help."""

    def __init__(self, status, reason):
        super().__init__(f"{status} {reason}")
        self.status = status


def parse_binding(text):
    exchange, _, routing_key = text.partition(":")
    if not exchange or not routing_key:
        raise argparse.ArgumentTypeError(f"expected EXCHANGE:ROUTING_KEY, got {text!r}")
    return exchange, routing_key


def parse_name(text):
    if not NAME.match(text):
        raise argparse.ArgumentTypeError("a name is lower-case letters, digits and '-'")
    return text


def parse_webhook_url(text):
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"only http(s) URLs can receive events, not {text!r}")
    return text


def sign(secret, body, timestamp=None):
    """The ``Agora-Signature`` header value for ``body`` (bytes)."""
    timestamp = int(time.time() if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret, header, body, tolerance=SIGNATURE_TOLERANCE, now=None):
    """The receiver's check: True if ``header`` signs ``body`` and is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError, AttributeError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    return hmac.compare_digest(expected, given)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx is then an answer like any other non-2xx


_opener = urllib.request.build_opener(_NoRedirects)


def forward(url, event_id, body, secret, timeout=10):
    """POST one event; raises PermanentFailure, or OSError for a retryable failure."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Agora-Event-Id": event_id,
            SIGNATURE_HEADER: sign(secret, body),
        },
        method="POST",
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, reason = response.status, response.reason
    except urllib.error.HTTPError as exc:
        status, reason = exc.code, exc.reason
    if 200 <= status < 300:
        return
    if status >= 500 or status in RETRYABLE_STATUS:
        raise OSError(f"webhook answered {status} {reason}")
    raise PermanentFailure(status, reason)


class Consumer:
    def __init__(self, args):
        self.args = args
        self.queue = f"integration.{args.name}"
        self.exchange = f"integration.{args.name}"  # its own: records and parked events
        self.record_queue = f"{self.queue}.bindings"
        self.failed_queue = f"{self.queue}.failed"
        self.seen = OrderedDict()
        self.handled = 0
        self.failures = 0

    # --- queues and bindings ---------------------------------------------------------------

    def declare(self, channel):
        channel.queue_declare(self.queue, durable=True)
        channel.exchange_declare(self.exchange, "direct", durable=True)
        channel.queue_declare(self.record_queue, durable=True, arguments={"x-max-length": 1})
        channel.queue_bind(self.record_queue, self.exchange, "bindings")
        channel.queue_declare(self.failed_queue, durable=True)
        channel.queue_bind(self.failed_queue, self.exchange, "failed")

    def recorded_bindings(self, channel):
        method, _properties, body = channel.basic_get(self.record_queue, auto_ack=False)
        if method is None:
            return set(), None
        try:
            return {tuple(b) for b in json.loads(body)}, method.delivery_tag
        except (ValueError, TypeError):
            return set(), method.delivery_tag

    def record(self, channel, bindings):
        channel.basic_publish(
            self.exchange,
            "bindings",
            json.dumps(sorted(bindings)).encode(),
            pika.BasicProperties(delivery_mode=2, content_type="application/json"),
        )

    def setup(self, channel):
        """One queue with exactly the bindings asked for: the recorded ones no
        longer asked for are removed. The record first grows to cover what is
        about to be bound, so a crash midway never leaves a binding unrecorded."""
        channel.confirm_delivery()
        self.declare(channel)
        wanted = set(self.args.bind)
        recorded, tag = self.recorded_bindings(channel)
        if not wanted <= recorded:
            self.record(channel, recorded | wanted)
        for exchange, routing_key in sorted(wanted):
            channel.queue_bind(self.queue, exchange, routing_key)
        for exchange, routing_key in sorted(recorded - wanted):
            channel.queue_unbind(self.queue, exchange, routing_key)
            log.info("removed the stale binding %s:%s", exchange, routing_key)
        self.record(channel, wanted)
        if tag is not None:
            channel.basic_ack(tag)
        channel.basic_qos(prefetch_count=50)

    def delete(self, channel):
        for queue in (self.queue, self.record_queue, self.failed_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(self.exchange)

    # --- messages --------------------------------------------------------------------------

    def park(self, channel, method, properties, body, reason, status=None):
        headers = dict(properties.headers or {})
        headers["x-agora-failure"] = str(reason)[:500]
        if status is not None:
            headers["x-agora-status"] = status
        channel.basic_publish(
            self.exchange,
            "failed",
            body,
            pika.BasicProperties(
                delivery_mode=2, content_type=properties.content_type, headers=headers
            ),
        )
        channel.basic_ack(method.delivery_tag)

    def on_message(self, channel, method, properties, body):
        try:
            event = json.loads(body)
            event_id = event["event_id"]
            if not isinstance(event_id, str):
                raise TypeError("event_id")
        except (ValueError, KeyError, TypeError):
            log.error("parking a message that is not an event envelope: %r", body[:200])
            self.park(channel, method, properties, body, "not an event envelope")
            return
        if event_id in self.seen:
            channel.basic_ack(method.delivery_tag)
            return
        try:
            if self.args.forward:
                forward(self.args.forward, event_id, body, self.args.secret)
            else:
                print(json.dumps(event, sort_keys=True), flush=True)
        except PermanentFailure as exc:
            log.error("the webhook refused %s (%s); parked in %s", event_id, exc, self.failed_queue)
            self.park(channel, method, properties, body, exc, exc.status)
            return
        except OSError as exc:  # URLError, timeouts, refused connections, 5xx
            self.failures += 1
            delay = min(MAX_BACKOFF, 0.5 * 2 ** min(self.failures - 1, 8))
            log.warning("could not forward %s (%s); again in %.1f s", event_id, exc, delay)
            channel.connection.sleep(delay)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        self.failures = 0
        channel.basic_ack(method.delivery_tag)
        self.seen[event_id] = True
        if len(self.seen) > SEEN_MAX:
            self.seen.popitem(last=False)
        self.handled += 1
        if self.args.count and self.handled >= self.args.count:
            channel.stop_consuming()

    def run(self):
        parameters = pika.URLParameters(self.args.amqp_uri)
        parameters.heartbeat = 30
        while True:
            try:
                connection = pika.BlockingConnection(parameters)
                channel = connection.channel()
                if self.args.delete:
                    self.delete(channel)
                    connection.close()
                    log.info("deleted %s and its records", self.queue)
                    return 0
                self.setup(channel)
                channel.basic_consume(queue=self.queue, on_message_callback=self.on_message)
                log.info("consuming %s", self.queue)
                channel.start_consuming()
                connection.close()
                return 0
            except ChannelClosedByBroker as exc:
                # Refused or missing: retrying will not change the answer.
                log.error("the broker refused: %s %s", exc.reply_code, exc.reply_text)
                return 2
            except AMQPConnectionError as exc:
                log.warning("broker unavailable (%s); retrying in 2 s", exc)
                time.sleep(2)


def platform_amqp_uri():
    """The integration user's URI from the platform's settings, when run from an
    Agora checkout (the same config tree and environment as the platform)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "services" / "chassis" / "config.py").exists():
        return None
    sys.path.insert(0, str(root))
    try:
        from services.chassis.config import amqp_uri, load_config
    except ImportError:
        return None
    finally:
        sys.path.remove(str(root))
    return amqp_uri(load_config(), "integration")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amqp-uri", default=os.environ.get("AGORA_INTEGRATION_AMQP_URI"))
    parser.add_argument("--name", type=parse_name, default="orders-billing")
    parser.add_argument("--bind", type=parse_binding, action="append")
    parser.add_argument("--forward", metavar="URL", type=parse_webhook_url)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--delete", action="store_true", help="remove this consumer's queues")
    args = parser.parse_args(argv)
    args.bind = args.bind or [parse_binding(b) for b in DEFAULT_BINDINGS]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    args.secret = os.environ.get("AGORA_WEBHOOK_SECRET", "")
    if args.forward and len(args.secret) < 16:
        parser.error("--forward signs every request: set AGORA_WEBHOOK_SECRET (16+ characters)")
    if not args.amqp_uri:
        try:
            args.amqp_uri = platform_amqp_uri()
        except Exception as exc:  # a config error is the message
            parser.error(f"cannot read the platform's settings: {exc}")
        if not args.amqp_uri:
            parser.error("set --amqp-uri or AGORA_INTEGRATION_AMQP_URI")
    try:
        return Consumer(args).run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
