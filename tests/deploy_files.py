"""The operators' kits under deploy/, read for the tests: the PromQL of the Grafana
dashboard and the alert rules, and the metric names it queries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "careers-edge.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
# Our metrics and prometheus-client's process metrics; `up` and the like are Prometheus's.
METRIC = re.compile(r"\b((?:edge|process)_[a-z0-9_]+)\b")
# Grafana's variables, as Prometheus would see them once Grafana filled them in.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m",
                "$job": "careers-edge", "$instance": ".*"}


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard, variables filled in."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            yield panel["title"], expr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def queried_metrics() -> dict[str, str]:
    """Metric name -> where it is queried first (a panel or an alert)."""
    found: dict[str, str] = {}
    for title, expr in dashboard_exprs():
        for name in METRIC.findall(expr):
            found.setdefault(name, f"dashboard panel {title!r}")
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        for name in METRIC.findall(variable.get("definition", "")):
            found.setdefault(name, f"dashboard variable ${variable['name']}")
    for rule in alert_rules():
        for name in METRIC.findall(rule["expr"]):
            found.setdefault(name, f"alert {rule['alert']}")
    return found
