"""Acting on the real RabbitMQ from a test, as an operator would."""

import json

from agora.infra import _rabbitmqctl


def close_connection(connection_name, reason="closed by a test"):
    """Close, broker-side, the connection whose client named itself
    ``connection_name`` (AMQP client property); False if there is none."""
    listing = _rabbitmqctl("list_connections", "--no-table-headers", "pid", "client_properties")
    wanted = '{"connection_name",' + json.dumps(connection_name) + "}"
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        if wanted in properties:
            _rabbitmqctl("close_connection", pid, reason)
            return True
    return False
