"""config/prometheus and the dashboards, checked by Prometheus's own tools: the
config and rules load, every rule unit test passes, every dashboard expression
parses; and `agora prometheus` serves them, discovering targets from the
targets folder. Installs Debian's prometheus package where it is missing."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from agora import observability
from agora.platform import free_port
from agora.prometheus import CONFIG, ensure_prometheus, prepare
from tests.support.polling import wait_until
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def promtool():
    binary = ensure_prometheus().promtool

    def run(*args):
        result = subprocess.run(
            [binary, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
        )
        return result.returncode, result.stdout + result.stderr

    return run


def test_the_config_loads_with_its_rules(promtool, tmp_path):
    config = prepare(tmp_path)
    code, output = promtool("check", "config", config)
    assert code == 0, output
    assert f"SUCCESS: {len(list(CONFIG.glob('rules/*.yml')))} rule files found" in output


def test_every_rule_file_is_valid(promtool):
    code, output = promtool("check", "rules", *sorted(observability.RULES.glob("*.yml")))
    assert code == 0, output


@pytest.mark.parametrize(
    "test_file", sorted(p.name for p in observability.RULE_TESTS.glob("*.yml"))
)
def test_the_rule_unit_tests_pass(promtool, test_file):
    code, output = promtool("test", "rules", observability.RULE_TESTS / test_file)
    assert code == 0, output
    assert "SUCCESS" in output


def test_every_dashboard_expression_parses(promtool, tmp_path):
    """Each one (Grafana's variables replaced) as a recording rule: promtool parses it."""
    expressions = observability.dashboard_expressions()
    rules = [
        {"record": f"dashboard:expression_{index}", "expr": expression.concrete}
        for index, expression in enumerate(expressions)
    ]
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    code, output = promtool("check", "rules", path)
    where = {f"expression_{i}": e.where for i, e in enumerate(expressions)}
    assert code == 0, (output, where)
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_agora_prometheus_discovers_targets_and_evaluates_the_rules(tmp_path):
    """`agora prometheus` on a state dir whose targets file lists one endpoint:
    the target is scraped with its service and process labels, a metric's own
    service label wins over the target's (honor_labels), and every rule is loaded."""
    ensure_prometheus()
    registry = CollectorRegistry()
    breaker = Gauge("agora_gateway_breaker_state", "state", ["service"], registry=registry)
    breaker.labels(service="catalog").set(2)
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        endpoint = f"127.0.0.1:{server.server_address[1]}"
        targets = tmp_path / "prometheus" / "targets"
        targets.mkdir(parents=True)
        (targets / "agora.json").write_text(
            json.dumps(
                [{"targets": [endpoint], "labels": {"service": "gateway", "process": "gateway-w0"}}]
            )
        )
        port = free_port()
        env = {
            **os.environ,
            "AGORA_STATE_DIR": str(tmp_path),
            "AGORA_PROMETHEUS_PORT": str(port),
        }
        prometheus = PrometheusServer(
            [sys.executable, "-m", "agora", "prometheus"],
            f"http://127.0.0.1:{port}",
            tmp_path / "prometheus.log",
            env=env,
        ).start()
        try:
            up = wait_until(
                lambda: prometheus.query('up{job="agora"} == 1'), 30, "the target scraped"
            )
            assert [labels["process"] for labels, _ in up] == ["gateway-w0"]
            assert up[0][0]["service"] == "gateway" and up[0][0]["instance"] == endpoint
            [(labels, value)] = prometheus.query("agora_gateway_breaker_state")
            assert (labels["service"], labels["process"], value) == ("catalog", "gateway-w0", 2)
            expected = {r["alert"] for r in observability.alerting_rules()}
            expected |= set(observability.recording_rules())
            assert prometheus.rule_names() == expected
            assert (tmp_path / "prometheus" / "data").is_dir()
        finally:
            prometheus.stop()
    finally:
        server.shutdown()
