"""What the dashboards and alerting rules may query, and what they do query.

``CATALOGUE`` is the one list of the metrics the platform exports (name and
type; docs/observability.md explains each). ``known_series()`` expands it to the
series names Prometheus stores (a histogram's ``_bucket``, ``_sum``, ``_count``)
plus what else an expression may name: the recording rules of
config/prometheus/rules, ``up``, ``ALERTS``, and prometheus_client's default
``process_*`` and ``python_*`` collectors. ``expressions()`` lists every PromQL
expression of every rule and dashboard, and ``metric_names(expr)`` the metric
names one uses; the tests compare them with the catalogue (offline) and with
a live scrape (tests/e2e/test_prometheus.py).
"""

import json
import re
from dataclasses import dataclass

import yaml

from services.chassis.config import ROOT

PROMETHEUS_CONFIG = ROOT / "config" / "prometheus"
RULES = PROMETHEUS_CONFIG / "rules"
RULE_TESTS = PROMETHEUS_CONFIG / "tests"
GRAFANA = ROOT / "config" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

CATALOGUE = {
    # the gateway (each gunicorn worker serves its own /metrics)
    "agora_build_info": GAUGE,
    "agora_gateway_http_requests_total": COUNTER,
    "agora_gateway_http_request_duration_seconds": HISTOGRAM,
    "agora_gateway_rpc_calls_total": COUNTER,
    "agora_gateway_rpc_call_duration_seconds": HISTOGRAM,
    "agora_gateway_breaker_state": GAUGE,
    "agora_gateway_breaker_transitions_total": COUNTER,
    "agora_gateway_rate_limited_total": COUNTER,
    "agora_gateway_token_rejections_total": COUNTER,
    # every service (the chassis)
    "agora_entrypoint_calls_total": COUNTER,
    "agora_entrypoint_duration_seconds": HISTOGRAM,
    "agora_outbox_backlog": GAUGE,
    "agora_outbox_oldest_age_seconds": GAUGE,
    "agora_outbox_publish_duration_seconds": HISTOGRAM,
    "agora_outbox_published_total": COUNTER,
    "agora_inbox_duplicates_total": COUNTER,
    "agora_event_retries_total": COUNTER,
    "agora_dead_letters_total": COUNTER,
    "agora_cache_requests_total": COUNTER,
    "agora_db_pool_connections": GAUGE,
    "agora_rpc_client_calls_total": COUNTER,
    "agora_rpc_client_call_duration_seconds": HISTOGRAM,
    "agora_rpc_client_retries_total": COUNTER,
    "agora_rpc_client_breaker_state": GAUGE,
    "agora_instance_consuming": GAUGE,
    "agora_dependency_up": GAUGE,
    # the domain
    "agora_orders_status_changes_total": COUNTER,
    "agora_saga_duration_seconds": HISTOGRAM,
    "agora_saga_timeouts_total": COUNTER,
    "agora_billing_charges_total": COUNTER,
    "agora_notifications_sent_total": COUNTER,
}

# Series Prometheus itself makes: the scrape's health and the alerts' state.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
# prometheus_client's default collectors, in every process.
DEFAULT_COLLECTOR_PREFIXES = ("process_", "python_")


def series_names(name, kind):
    """The series names a metric is stored under."""
    if kind == HISTOGRAM:
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def catalogue_series():
    return {series for name, kind in CATALOGUE.items() for series in series_names(name, kind)}


def _rule_files():
    return sorted(RULES.glob("*.yml"))


def recording_rules():
    """Recording rule name -> its expression, from every rule file."""
    return {
        rule["record"]: rule["expr"]
        for path in _rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def alerting_rules():
    """Every alerting rule (its dict as written), from every rule file."""
    return [
        rule
        for path in _rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def known_series():
    """Every name an expression may use (the default collectors aside: is_known)."""
    return catalogue_series() | set(recording_rules()) | PROMETHEUS_SERIES


def is_known(name, known=None):
    known = known_series() if known is None else known
    return name in known or name.startswith(DEFAULT_COLLECTOR_PREFIXES)


@dataclass(frozen=True)
class Expression:
    where: str  # "rules/slo.yml: GatewayErrorBudgetBurnFast", "agora-saga.json: <panel>"
    promql: str  # as written (a dashboard's may hold Grafana variables)

    @property
    def concrete(self):
        return concrete(self.promql)


def rule_expressions():
    return [
        Expression(f"rules/{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"])
        for path in _rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def dashboards():
    """File name -> dashboard JSON."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard):
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


_LABEL_VALUES = re.compile(r"^\s*label_values\((.*)\)\s*$", re.S)


def _variable_query(variable):
    query = variable.get("query")
    return query.get("query") if isinstance(query, dict) else query


def label_values_selector(query):
    """The series expression of a Grafana ``label_values(expr, label)`` query, or
    None for ``label_values(label)``."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    inner, depth, split = match.group(1), 0, None
    for index, char in enumerate(inner):
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif char == "," and depth == 0:
            split = index
    return inner[:split].strip() if split is not None else None


def dashboard_expressions():
    found = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append(Expression(f"{name}: {panel['title']}", target["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                selector = label_values_selector(_variable_query(variable))
                if selector:
                    found.append(Expression(f"{name}: ${variable['name']}", selector))
        for annotation in board.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                where = f"{name}: annotation {annotation['name']}"
                found.append(Expression(where, annotation["expr"]))
    return found


def expressions():
    """Every PromQL expression of the rules and the dashboards."""
    return rule_expressions() + dashboard_expressions()


# --- PromQL, as far as naming metrics goes -----------------------------------------

# Grafana's variables, replaced by something PromQL accepts in their place.
_GRAFANA_DURATIONS = re.compile(r"\$\{?__(rate_interval|interval|range)\b\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def concrete(expr):
    """``expr`` with Grafana's variables replaced: durations by 5m, the others (all
    inside label matchers' strings here) by a plain word."""
    expr = _GRAFANA_DURATIONS.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub("grafana_variable", expr)


_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:(?:ms|[smhdwy])[0-9]*)*)
    | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<punct>[(){}\[\],@]|[-+*/%^]|[=!]~|[=!<>]=?)
    """,
    re.X,
)
# Keywords that take a parenthesised list of label names.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregations may put their ``by (...)`` before their argument: ``sum by (x) (y)``.
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_KEYWORDS = (
    _LABEL_LISTS | _AGGREGATIONS | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
)
_CLOSING = {"(": ")", "{": "}", "[": "]"}


class PromQLSyntaxError(ValueError):
    pass


def _tokens(expr):
    position, tokens = 0, []
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if not match:
            raise PromQLSyntaxError(f"unexpected {expr[position : position + 20]!r} in {expr!r}")
        if match.lastgroup not in ("space", "comment"):
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


def _skip_group(tokens, index):
    """The index after the bracket group opening at ``index``."""
    opening = tokens[index][1]
    depth = 0
    for position in range(index, len(tokens)):
        value = tokens[position][1]
        if value == opening:
            depth += 1
        elif value == _CLOSING[opening]:
            depth -= 1
            if depth == 0:
                return position + 1
    raise PromQLSyntaxError(f"unclosed {opening!r}")


def metric_names(expr):
    """The metric names ``expr`` selects (Grafana variables allowed): every name that
    is not a function, an aggregation, a keyword or a label; ``{__name__="x"}`` too."""
    tokens = _tokens(concrete(expr))
    names, index = set(), 0
    while index < len(tokens):
        kind, value = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else None
        if value == "{":
            end = _skip_group(tokens, index)
            inside = tokens[index + 1 : end - 1]
            for position, (_kind, label) in enumerate(inside[:-2]):
                if label == "__name__" and inside[position + 1][1] == "=":
                    names.add(inside[position + 2][1][1:-1])
            index = end
        elif value == "[":
            index = _skip_group(tokens, index)
        elif kind == "name" and value in _LABEL_LISTS and following == "(":
            index = _skip_group(tokens, index + 1)
        elif kind == "name" and (value in _KEYWORDS or following == "("):
            index += 1  # a keyword, or a function or aggregation's name
        elif kind == "name":
            names.add(value)
            index += 1
        else:
            index += 1
    return names
