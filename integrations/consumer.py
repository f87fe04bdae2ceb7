"""Subscribe to Agora's order and billing events from outside, with plain pika.

No Nameko, nothing from Agora's code: only the published contract
(docs/asyncapi.yaml). The consumer declares its own durable queue, binds it to
the exchanges and routing keys it wants, and prints each event as one JSON
line, or POSTs it to a webhook. A message is acked only once it was printed or
forwarded, so nothing is lost if the consumer stops; delivery is at least
once, so duplicates (same ``event_id``) are dropped here for the process's
lifetime and must be dropped by the receiver in general.

    python integrations/consumer.py                           # print order + billing events
    python integrations/consumer.py --forward https://example.test/hook
    python integrations/consumer.py --bind orders.events:order_confirmed

Options: ``--amqp-uri`` (default ``$AGORA_AMQP_URI`` or the development
broker), ``--queue`` (your queue's name: keep it stable, it holds events while
you are away), ``--bind EXCHANGE:ROUTING_KEY`` (repeatable; ``#`` = all),
``--count N`` (exit after N events).
"""

import argparse
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections import OrderedDict

import pika

DEFAULT_URI = "amqp://guest:guest@127.0.0.1:5672/agora"
DEFAULT_BINDINGS = ("orders.events:#", "billing.events:#")
SEEN_MAX = 100_000

log = logging.getLogger("agora-consumer")


def parse_binding(text):
    exchange, _, routing_key = text.partition(":")
    if not exchange or not routing_key:
        raise argparse.ArgumentTypeError(f"expected EXCHANGE:ROUTING_KEY, got {text!r}")
    return exchange, routing_key


def forward(url, event, timeout=10):
    request = urllib.request.Request(
        url,
        data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json", "X-Agora-Event-Id": event["event_id"]},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not 2xx", response.headers, None)


class Consumer:
    def __init__(self, args):
        self.args = args
        self.seen = OrderedDict()
        self.handled = 0

    def setup(self, channel):
        channel.queue_declare(queue=self.args.queue, durable=True)
        for exchange, routing_key in self.args.bind:
            # The same declaration the services make: a durable topic exchange.
            channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
            channel.queue_bind(queue=self.args.queue, exchange=exchange, routing_key=routing_key)
        channel.basic_qos(prefetch_count=50)

    def on_message(self, channel, method, properties, body):
        try:
            event = json.loads(body)
            event_id = event["event_id"]
        except (ValueError, KeyError, TypeError):
            log.error("dropping a message that is not an event envelope: %r", body[:200])
            channel.basic_ack(method.delivery_tag)
            return
        if event_id in self.seen:
            channel.basic_ack(method.delivery_tag)
            return
        try:
            if self.args.forward:
                forward(self.args.forward, event)
            else:
                print(json.dumps(event, sort_keys=True), flush=True)
        except (OSError, urllib.error.URLError) as exc:
            log.warning("could not forward %s (%s); it will come again", event_id, exc)
            time.sleep(1)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
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
                self.setup(channel)
                channel.basic_consume(queue=self.args.queue, on_message_callback=self.on_message)
                log.info("consuming %s", self.args.queue)
                channel.start_consuming()
                connection.close()
                return 0
            except pika.exceptions.AMQPConnectionError as exc:
                log.warning("broker unavailable (%s); retrying in 2 s", exc)
                time.sleep(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amqp-uri", default=os.environ.get("AGORA_AMQP_URI", DEFAULT_URI))
    parser.add_argument("--queue", default="integrations.orders-billing")
    parser.add_argument("--bind", type=parse_binding, action="append")
    parser.add_argument("--forward", metavar="URL")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args(argv)
    args.bind = args.bind or [parse_binding(b) for b in DEFAULT_BINDINGS]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        return Consumer(args).run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
