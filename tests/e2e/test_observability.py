"""What an ops team scrapes and traces from the three running service processes: every metric
the dashboard and the alert rules read, and one fill's trace exported over OTLP."""

import threading
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from redis import Redis

from shared.infra.settings import Settings
from tests.e2e.test_platform import Lifecycle, ce, platform, token  # noqa: F401 - platform: the three service processes
from tests.support.observability import exported, metric_names, queries
from tests.support.waiting import until_sync

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


class Collector(TraceServiceServicer):
    """An OTLP/gRPC trace receiver standing in for the OpenTelemetry collector."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []  # (service.name, trace id, span name)
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> ExportTraceServiceResponse:
        for rs in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            with self.lock:
                self.spans += [
                    (attrs.get("service.name", "?"), span.trace_id.hex(), span.name)
                    for ss in rs.scope_spans
                    for span in ss.spans
                ]
        return ExportTraceServiceResponse()


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """Listens before the platform starts; the services find it in their environment."""
    receiver = Collector()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within 0.1 s, not 5 s
    yield receiver
    server.stop(None)


def test_the_services_export_one_fills_trace_over_otlp(
    collector: Collector,
    platform: Any,  # noqa: F811
    settings: Settings,
) -> None:
    redis = Redis.from_url(settings.redis_url)
    s, bearer = settings.streams, "Bearer " + token(platform, f"otel-{uuid.uuid4().hex[:6]}")
    init = ce(
        "alluse.system.initialize", {"total_capital": "250000.00"}, "ops/tool", authorization=bearer
    )
    redis.xadd(s.key("alluse.account.commands"), init)
    life = Lifecycle(redis, s.key("alluse.account.lifecycle"))
    events = life.until(lambda es: any(e["type"] == "alluse.account.created" for e in es))
    gen = next(
        e["data"]["account"]["id"]
        for e in events
        if e["type"] == "alluse.account.created" and e["data"]["account"]["type"] == "generation"
    )
    trace = uuid.uuid4().hex
    fill = {
        "fill_id": "f-otel",
        "order_id": "o-1",
        "account_id": gen,
        "symbol": "NVDA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "120.00",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 1,
        "price": "2.15",
        "commission": "1.95",
        "filled_at": "2026-11-26T15:00:00Z",
    }
    redis.xadd(
        s.key("ws4.market.events"),
        ce(
            "ws4.trade.filled",
            fill,
            "ws4/gateway-1",
            subject=gen,
            authorization=bearer,
            traceparent=f"00-{trace}-00f067aa0ba902b7-01",
        ),
    )
    wanted = {"alluse-integration", "alluse-account", "alluse-security"}

    def services() -> set[str]:
        with collector.lock:
            return {svc for svc, t, _ in collector.spans if t == trace}

    assert until_sync(services, lambda found: found >= wanted, timeout=20) == wanted
    with collector.lock:
        names = {name for _, t, name in collector.spans if t == trace}
    assert {"consume ws4.trade.filled", "consume alluse.effect.trade_filled", "relay"} <= names
