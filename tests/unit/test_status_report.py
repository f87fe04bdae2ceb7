"""`agora status`'s layout (agora/status.py render), from collected data."""

import pytest

from agora.status import duration, render, table

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def instance(service, process, started_at, last_heartbeat, pid=4242):
    return {
        "instance_id": f"id-{process}",
        "service": service,
        "process": process,
        "version": "1.0.0",
        "host": "node-1",
        "pid": pid,
        "started_at": started_at,
        "metrics_url": f"http://127.0.0.1:{9000 + pid}/metrics",
        "last_heartbeat": last_heartbeat,
    }


def collected(**overrides):
    status = {
        "services": ["catalog", "orders"],
        "instances": [
            instance("catalog", "catalog-1", "2027-01-15T07:54:55Z", "2027-01-15T07:59:58Z", 11),
            instance("catalog", "catalog-2", "2027-01-15T05:00:00Z", "2027-01-15T07:59:59Z", 12),
            instance("gateway", "gateway-w0", "2027-01-15T07:59:00Z", "2027-01-15T07:59:59Z", 13),
        ],
        "registry_error": None,
        "queues": {
            "rpc-catalog": (3, 2),
            "evt-orders-order_created--catalog.on_created": (0, 2),
            "orders.dead-letters": (4, 0),
        },
        "broker_error": None,
        "event_queues": {"catalog": ["evt-orders-order_created--catalog.on_created"], "orders": []},
        "dead_letter_queues": {"orders": "orders.dead-letters"},
        "breakers": {"catalog": "half_open"},
        "gateway": {"url": "http://127.0.0.1:8080/readyz", "ready": True, "detail": "ready"},
        "now": NOW,
    }
    return {**status, **overrides}


def rows(text, title):
    lines = text.splitlines()
    start = lines.index(title) + 2  # past the header
    end = lines.index("", start)
    return [line.split() for line in lines[start:end]]


def test_durations_are_short():
    assert [duration(s) for s in (0, 59, 61, 3599, 3600 * 5 + 120, 86400 * 3 + 3600)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "5h02m",
        "3d01h",
    ]


def test_table_aligns_columns():
    assert table(["A", "BB"], [["xxx", 1]]) == "A    BB\nxxx  1"


def test_every_service_with_its_instances_queue_and_breaker():
    text = render(collected())
    services = rows(text, "Services")
    assert services[0] == [
        "catalog", "catalog-1", "11", "node-1", "5m05s", "2s", "ago",
        "http://127.0.0.1:9011/metrics", "3", "2", "half_open",
    ]  # fmt: skip
    assert services[1][:5] == ["catalog-2", "12", "node-1", "3h00m", "1s"]  # one RPC row only
    assert services[2] == ["orders", "none", "running", "-", "-", "-"]
    assert services[3][:2] == ["gateway", "gateway-w0"]
    [event_queue] = rows(text, "Event queues")
    assert event_queue == ["evt-orders-order_created--catalog.on_created", "0", "2"]
    assert rows(text, "Dead letters") == [["orders", "orders.dead-letters", "4"]]
    assert "Gateway http://127.0.0.1:8080/readyz: ready" in text
    assert text.split("Down:\n")[1] == "  no live instance of: orders\n"


def test_what_cannot_be_reached_is_said():
    text = render(
        collected(
            instances=None,
            registry_error="Redis (the registry) is unreachable: ConnectionError",
            queues=None,
            broker_error="RabbitMQ is unreachable: ConnectionRefusedError",
            breakers={},
            gateway={"url": "http://127.0.0.1:8080/readyz", "ready": False, "detail": "x"},
        )
    )
    assert rows(text, "Services")[0] == ["catalog", "?", "?", "?", "-"]
    assert rows(text, "Dead letters") == [["orders", "orders.dead-letters", "?"]]
    down = text.split("Down:\n")[1].splitlines()
    assert down == [
        "  Redis (the registry) is unreachable: ConnectionError",
        "  RabbitMQ is unreachable: ConnectionRefusedError",
        "  the gateway is x",
    ]
