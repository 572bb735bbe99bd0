"""The alert rules pass promtool, the dashboard answers what an ops team asks, compose mounts both."""

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import yaml

from tests.support.observability import ALERTS, ROOT, dashboard, metric_names, queries, rules

NEEDED = {  # what the issue asks the dashboard to show, by the series that answer it
    "alluse_messages_consumed_total",
    "alluse_messages_rejected_total",
    "alluse_messages_dead_lettered_total",
    "alluse_stream_lag",
    "alluse_stream_pending",
    "alluse_handler_seconds_bucket",
    "alluse_outbox_backlog",
    "alluse_outbox_relayed_total",
    "alluse_token_refusals_total",
    "alluse_logins_total",
    "alluse_lockouts_total",
    "alluse_ready",
    "alluse_partition_pending",
    "alluse_partition_lag_seconds",
}
ALERTS_NEEDED = {
    "AlluseDeadLettersGrowing",
    "AlluseConsumerLagHigh",
    "AlluseOutboxBacklog",
    "AlluseServiceNotReady",
    "AlluseAuditChainBroken",
    "AllusePartitionStalled",
}


def promtool() -> str | None:
    beside = Path(sys.executable).parent / "promtool"
    return str(beside) if beside.exists() else shutil.which("promtool")


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    tool = promtool()
    if tool is None:
        warnings.warn(
            "promtool absent (make fetches it from the Debian package `prometheus`):"
            " the alert rules were checked for structure only",
            stacklevel=1,
        )
    else:
        done = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"SUCCESS: {len(rules())} rules found" in done.stdout
    for rule in rules():  # what promtool cannot know: each rule tells the on-call what to do
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and len(rule["annotations"]["runbook"]) > 40


def test_the_rules_cover_dlq_lag_outbox_readiness_and_the_audit_chain() -> None:
    by_name = {r["alert"]: r for r in rules()}
    assert set(by_name) >= ALERTS_NEEDED
    assert by_name["AlluseConsumerLagHigh"]["for"] == "5m"
    assert "alluse_audit_chain_intact" in by_name["AlluseAuditChainBroken"]["expr"]


def test_every_panel_says_what_it_answers_and_the_panels_cover_the_platform() -> None:
    panels = dashboard()["panels"]
    assert all(p["description"].strip() and p["targets"] for p in panels)
    assert len({p["title"] for p in panels}) == len(panels)
    assert metric_names(queries()) >= NEEDED
    assert any("histogram_quantile(0.99" in q for q in queries())


def test_the_compose_observability_profile_mounts_these_files() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    profiled = {
        n for n, s in compose["services"].items() if "observability" in s.get("profiles", [])
    }
    assert {"prometheus", "grafana", "otel-collector", "jaeger"} <= profiled
    for name in profiled:
        for volume in compose["services"][name].get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts a missing {source}"
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"  # no admin with a default password
