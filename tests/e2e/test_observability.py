"""Every metric the dashboard and the alert rules read is exported by a running service."""

import urllib.request
from typing import Any

import pytest

from tests.e2e.test_platform import platform  # noqa: F401 - the three service processes
from tests.support.observability import exported, metric_names, queries

pytestmark = pytest.mark.slow


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_every_metric_the_dashboard_and_rules_use_is_exported(platform: Any) -> None:  # noqa: F811
    pages = {name: scrape(port) for name, port in platform["ports"].items()}
    names = set().union(*(exported(text) for text in pages.values()))
    wanted = metric_names(queries())
    assert len(wanted) >= 12
    assert sorted(wanted - names) == []
    for service, text in pages.items():  # scraped just now: each says it is ready
        assert f'alluse_ready{{service="{service}"}} 1.0' in text, service
    assert "alluse_audit_chain_intact 1.0" in pages["security"]
