"""docs/grafana-dashboard.json and docs/prometheus-alerts.yml: they load, promtool accepts
the rules, and every metric they name is one a live server exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ZkServer, require_tool

DOCS = Path(__file__).resolve().parents[2] / "docs"
DASHBOARD = DOCS / "grafana-dashboard.json"
ALERTS = DOCS / "prometheus-alerts.yml"
METRIC = re.compile(r"\bzonekeeper_[a-z_]+\b")


def exported(zk: ZkServer) -> set[str]:
    """Every series name the server's /metrics exports, empty families included (their
    HELP and TYPE lines), with the suffixes Prometheus gives their samples."""
    text = httpx2.get(zk.api_url + "/metrics").text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                    "info": ("_info",)}.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
        names.update(s.name for s in family.samples)
    return names


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    assert exprs
    return exprs


def test_dashboard_names_only_exported_metrics(zk: ZkServer) -> None:
    named = {m for e in dashboard_exprs() for m in METRIC.findall(e)}
    assert {"zonekeeper_zone_serial", "zonekeeper_xfr_out_total",
            "zonekeeper_peer_lag_seconds"} <= named
    missing = named - exported(zk)
    assert not missing, f"the dashboard names metrics /metrics does not export: {sorted(missing)}"


def test_alert_rules_pass_promtool_and_name_exported_metrics(zk: ZkServer) -> None:
    promtool = require_tool("promtool", "prometheus")
    r = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = ALERTS.read_text()
    named = set(METRIC.findall(text))
    assert {"zonekeeper_peer_state", "zonekeeper_tsig_errors_total"} <= named
    missing = named - exported(zk)
    assert not missing, f"the alert rules name metrics /metrics does not export: {sorted(missing)}"
