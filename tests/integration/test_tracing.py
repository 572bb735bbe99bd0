"""One trace across the three services for one WS4 fill (CloudEvents distributed tracing).

The security, account and integration services run in-process on real Redis and PostgreSQL,
tracing into the OpenTelemetry SDK's in-memory exporter.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from services.account.app import build as build_account
from services.integration.app import build as build_integration
from services.security.app import build as build_security
from shared.contracts.streams import ACCOUNT_LIFECYCLE, WS4_EVENTS
from shared.infra.runtime import tracing
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.conftest import as_service
from tests.integration.test_integration_service import fill
from tests.integration.test_security_http import security_settings
from tests.support.account import Client
from tests.support.streams import ce, entries, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM = f"00-{TRACE}-00f067aa0ba902b7-01"  # a trading engine's own span, sampled


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)


@pytest.fixture
async def platform(
    spans: InMemorySpanExporter, settings: Settings, redis: Redis, signer: Signer
) -> AsyncIterator[Client]:
    async with services(settings, redis, signer) as client:
        yield client


@contextlib.asynccontextmanager
async def services(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Client]:
    """The three services in-process, traced or not as the tracing module is set."""
    own = security_settings(
        settings, http_port=0, jwks_url=signer.jwks_url, signing_key=signer.seed("security")
    )
    security = await build_security(own)
    account = await build_account(as_service(settings, signer, "account"))
    integration = await build_integration(as_service(settings, signer, "integration"))
    async with contextlib.AsyncExitStack() as stack:
        for rt in (security.rt, account, integration):
            await stack.enter_async_context(running(rt))
        yield Client(redis, settings, signer)


async def trace_of(
    spans: InMemorySpanExporter, trace: int, complete: Callable[[list[ReadableSpan]], bool]
) -> list[ReadableSpan]:
    async def found() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.context.trace_id == trace]

    return await until(found, complete, timeout=15, what=f"the spans of trace {trace:x}")


def consumed(found: list[ReadableSpan]) -> dict[str, str]:
    """Message type consumed -> the service that consumed it."""
    return {
        s.name.removeprefix("consume "): str((s.attributes or {})["service"])
        for s in found
        if s.name.startswith("consume ")
    }


async def lifecycle_traceparents(redis: Redis, settings: Settings, account: str) -> list[str]:
    found = await entries(redis, settings.streams.key(ACCOUNT_LIFECYCLE))
    return [
        f.get(b"traceparent", b"").decode()
        for _, f in found
        if f.get(b"subject", b"").decode() == account
        and f[b"type"] == b"alluse.account.balance_changed"
    ]


WANTED = {
    "ws4.trade.filled": "alluse/integration",
    "alluse.effect.trade_filled": "alluse/account",
    "alluse.audit.recorded": "alluse/security",
    "alluse.account.balance_changed": "alluse/integration",
}


async def test_one_ws4_fill_is_one_trace_across_the_three_services(
    platform: Client, spans: InMemorySpanExporter, redis: Redis, settings: Settings
) -> None:
    gen = (await platform.initialize())["generation"]["id"]
    entry = ce(
        "ws4.trade.filled",
        fill(gen),
        source="ws4/gateway-1",
        subject=gen,
        traceparent=UPSTREAM,
        tracestate="engine=fill7781",
        authorization=platform.signer.bearer("trading_engine"),
    )
    await xadd(redis, settings.streams.key(WS4_EVENTS), entry)

    def complete(found: list[ReadableSpan]) -> bool:
        return set(WANTED) <= set(consumed(found))

    found = await trace_of(spans, int(TRACE, 16), complete)
    by_type = consumed(found)
    assert {t: by_type.get(t, "").removesuffix("-service") for t in WANTED} == WANTED
    names = {s.name for s in found}
    assert {"handle ws4.trade.filled", "handle alluse.effect.trade_filled", "relay"} <= names
    (first,) = [s for s in found if s.name == "consume ws4.trade.filled"]
    assert first.parent is not None and first.parent.span_id == 0x00F067AA0BA902B7
    batches = [s for s in spans.get_finished_spans() if s.name == "db transaction"]
    assert any(link.context.trace_id == int(TRACE, 16) for s in batches for link in s.links)

    # The republishing span ends before the relay writes the lifecycle entry: wait for it.
    async def published_count() -> int:
        return len(await lifecycle_traceparents(redis, settings, gen))

    await until(published_count, equals=1, timeout=15)
    (published,) = await lifecycle_traceparents(redis, settings, gen)
    assert published.split("-")[1] == TRACE  # downstream consumers can join the trace too


async def test_an_entry_without_traceparent_starts_a_trace_that_reaches_the_lifecycle(
    platform: Client, spans: InMemorySpanExporter, redis: Redis, settings: Settings
) -> None:
    gen = (await platform.initialize())["generation"]["id"]
    entry = ce(
        "ws4.trade.filled",
        fill(gen),
        source="ws4/gateway-1",
        subject=gen,
        authorization=platform.signer.bearer("trading_engine"),
    )
    await xadd(redis, settings.streams.key(WS4_EVENTS), entry)
    published = await until(
        lambda: lifecycle_traceparents(redis, settings, gen), timeout=15, what="traced events"
    )
    trace = int(published[0].split("-")[1], 16)
    found = await trace_of(spans, trace, lambda f: set(WANTED) <= set(consumed(f)))
    assert set(consumed(found)) >= set(WANTED)
    (root,) = [s for s in found if s.parent is None]
    assert root.name == "consume ws4.trade.filled"


def test_tracing_off_passes_an_inbound_context_on_unchanged_and_makes_none() -> None:
    assert not tracing.enabled()
    inbound = {"traceparent": UPSTREAM, "tracestate": "engine=fill7781"}
    caused = {"id": uuid.uuid4().hex}
    with tracing.span("consume x", parent=inbound), tracing.span("handle x"):
        tracing.stamp(caused)
    assert caused == {"id": caused["id"], **inbound}  # W3C: a non-tracing participant forwards
    untraced = {"id": uuid.uuid4().hex}
    with tracing.span("consume y", parent={"id": "no context"}):
        tracing.stamp(untraced)
    after = {"id": uuid.uuid4().hex}
    tracing.stamp(after)  # the inbound context ended with its span
    assert set(untraced) == {"id"} and set(after) == {"id"}


async def test_tracing_off_a_traced_fill_s_lifecycle_events_keep_its_trace_id(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    assert not tracing.enabled()
    async with services(settings, redis, signer) as platform:
        gen = (await platform.initialize())["generation"]["id"]
        entry = ce(
            "ws4.trade.filled",
            fill(gen),
            source="ws4/gateway-1",
            subject=gen,
            traceparent=UPSTREAM,
            authorization=platform.signer.bearer("trading_engine"),
        )
        await xadd(redis, settings.streams.key(WS4_EVENTS), entry)
        (published,) = await until(
            lambda: lifecycle_traceparents(redis, settings, gen), timeout=15, what="the event"
        )
    assert published == UPSTREAM  # passed on as it came: no span of ours in between


def test_the_otlp_exporter_is_set_up_only_when_its_endpoint_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.setup("account")
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    try:
        tracing.setup("account")
        assert tracing.enabled()  # no span made here: nothing listens on that endpoint
    finally:
        tracing.use(None)
