"""The Prometheus rules and Grafana dashboards, checked offline: every expression
names only catalogued metrics, every alert is tested and documented, the
dashboards use the provisioned data source. (promtool's own checks:
tests/integration/test_prometheus_config.py; a live scrape: tests/e2e.)"""

import re

import pytest
import yaml

from agora import observability
from agora.cli import SERVICES
from agora.observability import metric_names
from services.chassis.config import ROOT

pytestmark = pytest.mark.unit

DOCS = ROOT / "docs" / "observability.md"


def test_metric_names_are_the_selected_series_not_functions_keywords_or_labels():
    expr = (
        'sum by (route, le) (rate(a_bucket{route=~"$route", status!="200"}[$__rate_interval]))'
        " / ignoring (x) group_left (y) b offset 5m"
        " and on () histogram_quantile(0.99, c) > bool 2e3"
        ' or label_replace(d, "to", "$1", "from", "(.*)") unless topk(3, e) @ start()'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "e"}


def test_metric_names_reads_a_name_matcher_and_skips_strings_and_durations():
    assert metric_names('{__name__="f", job="agora"}') == {"f"}
    assert metric_names('count(g{label="h i j"}[1h30m:5m]) * 60') == {"g"}
    assert metric_names("vector(0) + time()") == set()


def test_label_values_queries_yield_their_series_selector():
    selector = observability.label_values_selector
    assert selector('label_values(up{job="agora", service="$service"}, process)') == (
        'up{job="agora", service="$service"}'
    )
    assert selector("label_values(service)") is None
    with pytest.raises(ValueError):
        selector("query_result(up)")


def test_every_rule_and_dashboard_expression_selects_only_catalogued_metrics():
    known = observability.known_series()
    unknown = {}
    for expression in observability.expressions():
        names = metric_names(expression.promql)
        assert names, f"{expression.where} selects no metric: {expression.promql}"
        strangers = {name for name in names if not observability.is_known(name, known)}
        if strangers:
            unknown[expression.where] = sorted(strangers)
    assert not unknown


def test_every_catalogued_metric_is_on_a_dashboard():
    used = {
        name
        for expression in observability.dashboard_expressions()
        for name in metric_names(expression.promql)
    }
    for name, kind in observability.CATALOGUE.items():
        assert used & observability.series_names(name, kind), f"{name} is on no dashboard"


def test_the_dashboards_query_the_provisioned_data_source():
    provisioned = yaml.safe_load(
        (observability.GRAFANA / "provisioning" / "datasources" / "agora.yml").read_text()
    )
    [source] = provisioned["datasources"]
    uids = set()
    for name, board in observability.dashboards().items():
        assert board["uid"] not in uids, name
        uids.add(board["uid"])
        ids = [panel["id"] for panel in observability.panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in observability.panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == source["uid"], (name, panel["title"])
            assert panel["targets"] and panel.get("description"), (name, panel["title"])


def test_the_dashboard_provider_loads_the_dashboards_folder():
    provider = yaml.safe_load(
        (observability.GRAFANA / "provisioning" / "dashboards" / "agora.yml").read_text()
    )
    [agora] = provider["providers"]
    assert agora["type"] == "file" and agora["options"]["path"] == "${AGORA_GRAFANA_DASHBOARDS}"
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounted = {
        volume.split(":")[1]
        for volume in grafana["volumes"]
        if volume.startswith("../config/grafana/dashboards:")
    }
    assert mounted == {grafana["environment"]["AGORA_GRAFANA_DASHBOARDS"]}


def test_the_service_dashboard_is_templated_on_service():
    board = observability.dashboards()["agora-service.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert "service" in variables
    for panel in observability.panels(board):
        for target in panel.get("targets", []):
            assert 'service="$service"' in target["expr"], panel["title"]


def _rule_tests():
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted(observability.RULE_TESTS.glob("*.yml"))
    }


def test_every_alert_is_tested_firing_and_not_firing():
    firing, quiet = set(), set()
    for document in _rule_tests().values():
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in observability.alerting_rules()}
    assert alerts - firing == set(), "never seen firing"
    assert alerts - quiet == set(), "never seen quiet"


def test_every_rule_file_is_under_test():
    tested = {
        rule_file.split("/")[-1]
        for document in _rule_tests().values()
        for rule_file in document["rule_files"]
    }
    assert tested == {path.name for path in observability.RULES.glob("*.yml")}


def test_service_absent_watches_every_service_and_the_gateway():
    [rule] = [r for r in observability.alerting_rules() if r["alert"] == "ServiceAbsent"]
    assert set(re.findall(r'service="(\w+)"', rule["expr"])) == {*SERVICES, "gateway"}


def _anchors(markdown):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, re.M)
    }


def test_every_alert_has_severity_summary_and_a_runbook_section():
    anchors = _anchors(DOCS.read_text())
    for rule in observability.alerting_rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/observability.md" and anchor in anchors, rule["alert"]


def test_the_docs_name_every_panel_and_the_metrics_it_uses():
    docs = DOCS.read_text()
    for name, board in observability.dashboards().items():
        heading = re.search(rf"^### .*`{re.escape(name)}`.*$", docs, re.M)
        assert heading, f"docs/observability.md has no section on {name}"
        text = re.split(r"\n#{1,3} ", docs[heading.end() :], maxsplit=1)[0]
        for panel in observability.panels(board):
            if panel["type"] == "row":
                continue
            assert panel["title"] in text, (name, panel["title"])
            for target in panel["targets"]:
                for metric in metric_names(target["expr"]):
                    assert metric in text, (name, panel["title"], metric)


def test_the_docs_describe_every_catalogued_metric():
    docs = DOCS.read_text()
    for name in observability.CATALOGUE:
        assert f"| `{name}` |" in docs, name
