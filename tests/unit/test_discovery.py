"""The registry's pure parts: records, Prometheus file-SD targets, and how an
instance's announcer behaves when the registry fails (a stand-in Registry)."""

import json
import logging
import os
import stat

import pytest
import redis

from services.chassis.discovery import (
    RECORD_FIELDS,
    VERSION,
    Announcer,
    Registry,
    advertised_url,
    file_sd_targets,
    instance_record,
    write_file_sd,
)

pytestmark = pytest.mark.unit


def record(service, process, metrics_url, instance_id="i"):
    return {
        "instance_id": instance_id,
        "service": service,
        "process": process,
        "metrics_url": metrics_url,
    }


def test_a_new_record_names_this_process():
    made = instance_record("orders", "orders-2", "http://127.0.0.1:9100/metrics")
    assert set(made) == set(RECORD_FIELDS)
    assert made["pid"] == os.getpid()
    assert made["version"] == VERSION
    assert made["process"] == "orders-2" and made["service"] == "orders"
    assert made["started_at"].endswith("Z")
    assert instance_record("orders", "orders", None)["instance_id"] != made["instance_id"]


def test_file_sd_has_one_group_per_instance_that_serves_metrics():
    instances = [
        record("orders", "orders-2", "http://127.0.0.1:40002/metrics"),
        record("gateway", "gateway-w0", "http://127.0.0.1:40100/metrics"),
        record("orders", "orders-1", "http://127.0.0.1:40001/metrics"),
        record("users", "users", None),
    ]
    assert file_sd_targets(instances) == [
        {"targets": ["127.0.0.1:40100"], "labels": {"service": "gateway", "process": "gateway-w0"}},
        {"targets": ["127.0.0.1:40001"], "labels": {"service": "orders", "process": "orders-1"}},
        {"targets": ["127.0.0.1:40002"], "labels": {"service": "orders", "process": "orders-2"}},
    ]


def test_file_sd_labels_carry_no_instance_id():
    [group] = file_sd_targets([record("users", "users", "http://h:1/metrics", "abc-123")])
    assert "abc-123" not in json.dumps(group)


def test_write_file_sd_replaces_the_file_whole(tmp_path):
    path = tmp_path / "prometheus" / "targets" / "agora.json"
    write_file_sd([record("users", "users", "http://127.0.0.1:1/metrics")], path)
    write_file_sd([record("orders", "orders", "http://127.0.0.1:2/metrics")], path)
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:2"], "labels": {"service": "orders", "process": "orders"}}
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["agora.json"]  # no temporary left


class _Keys:
    key_prefix = "p:"

    def key(self, *parts):
        return self.key_prefix + ":".join(parts)


def test_a_record_without_every_field_is_refused_before_redis_is_asked():
    registry = Registry(_Keys(), ttl=10)
    with pytest.raises(ValueError, match="host, pid"):
        registry.register(record("users", "users", None) | {"version": "1", "started_at": "x"})


class FlakyRegistry:
    """Stands in for Registry: fails while ``down``; forgets instances on ``flush``."""

    ttl = 10

    def __init__(self):
        self.down = False
        self.known = set()
        self.registrations = 0

    def _check(self):
        if self.down:
            raise redis.ConnectionError("down")

    def register(self, rec):
        self._check()
        self.known.add(rec["instance_id"])
        self.registrations += 1

    def heartbeat(self, instance_id):
        self._check()
        return instance_id in self.known

    def deregister(self, instance_id):
        self._check()
        self.known.discard(instance_id)


def test_an_outage_is_logged_once_and_the_instance_registers_again(caplog):
    registry = FlakyRegistry()
    announcer = Announcer(registry, instance_record("users", "users", None), interval=1)
    assert announcer.beat() and registry.registrations == 1
    assert announcer.beat() and registry.registrations == 1  # a heartbeat only
    registry.down = True
    with caplog.at_level(logging.INFO, logger="services.chassis.discovery"):
        assert not any(announcer.beat() for _ in range(5))
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "heartbeats resume" in warnings[0].getMessage()
        registry.down = False
        registry.known.clear()  # the record expired meanwhile
        assert announcer.beat()
    assert announcer.instance_id in registry.known and registry.registrations == 2
    assert sum("registered again" in r.getMessage() for r in caplog.records) == 1


def test_stop_deregisters_and_a_redis_failure_there_does_not_raise(caplog):
    registry = FlakyRegistry()
    announcer = Announcer(registry, instance_record("users", "users", None), interval=1)
    announcer.beat()
    announcer.stop()
    assert registry.known == set()
    other = Announcer(registry, instance_record("users", "users", None), interval=1)
    other.beat()
    registry.down = True
    other.stop()  # logged: it expires within ttl
    assert "expires from the registry" in caplog.text


@pytest.mark.parametrize(
    ("url", "advertised"),
    [
        ("http://127.0.0.1:9100/metrics", "http://127.0.0.1:9100/metrics"),
        ("http://0.0.0.0:9100/metrics", "http://catalog-7f3a:9100/metrics"),
        ("http://[::]:9100/metrics", "http://catalog-7f3a:9100/metrics"),
        (None, None),
    ],
)
def test_a_server_bound_to_every_interface_is_advertised_by_host_name(url, advertised):
    assert advertised_url(url, host="catalog-7f3a") == advertised
