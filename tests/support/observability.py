"""The dashboard and alert rules as files, and the metric names their queries use."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "alluse.json"
ALERTS = OBSERVABILITY / "alerts.yml"
# Series names the exposition adds to a histogram's or counter's own name.
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def queries() -> list[str]:
    panels = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    return panels + [r["expr"] for r in rules()]


def metric_names(exprs: list[str]) -> set[str]:
    """The platform's own series the queries read (Prometheus's `up` is its own)."""
    return {m for e in exprs for m in re.findall(r"\balluse_[a-z0-9_]+", e)}


def exported(text: str) -> set[str]:
    """Names a /metrics page declares or has samples of, with their exposition suffixes."""
    names = set(re.findall(r"^# (?:HELP|TYPE) (\S+)", text, re.M))
    names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    return names | {n + s for n in names for s in SUFFIXES}
