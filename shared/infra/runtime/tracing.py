"""OpenTelemetry tracing across the streams, by the CloudEvents distributed-tracing extension.

An inbound entry's `traceparent` / `tracestate` (W3C Trace Context) is the parent of the span
that consumes it (a trace starts where an entry has none); every entry the platform emits
carries the context of the span that made it, so one trace runs from a trading engine's XADD
to the lifecycle event, with spans for consume, handler, database transaction and relay.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the standard OTel variables configure the OTLP
exporter): then no span is made and no SDK is even imported, but an inbound `traceparent` is
still passed on, as W3C Trace Context asks of a participant that does not trace: what an entry
causes carries its trace context unchanged, so a traced fill's lifecycle events keep its trace
id. An entry without one costs a dictionary look-up.
"""

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

FIELDS = ("traceparent", "tracestate")
_propagator = TraceContextTextMapPropagator()
_tracer: Tracer | None = None  # set by setup(): tracing is on
_OFF = contextlib.nullcontext()  # what every hook returns while tracing is off


def enabled() -> bool:
    return _tracer is not None


def setup(service: str) -> None:
    """Export spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT says where; else stay off."""
    if _tracer is not None or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or f"alluse-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use(provider)


def use(provider: Any) -> None:
    """Trace with this TracerProvider (tests hand in one with an in-memory exporter); None: off."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("alluse")


def _field(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


def _parent(entry: Any) -> Context:
    """The context an entry (its fields, or a CloudEvent) carries; a new trace when none."""
    found = {k: _field(entry, k) for k in FIELDS}
    carrier = {k: str(v) for k, v in found.items() if v}
    return _propagator.extract(carrier) if carrier else Context()


def span(
    name: str,
    *,
    parent: Any = None,
    links: Sequence[Any] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    **attributes: str,
) -> AbstractContextManager[Any]:
    """A span: child of the entry `parent` (fields or a CloudEvent; a new trace if it carries
    none), else of the current span; linked to the entries in `links`."""
    if _tracer is None:
        if parent is None or not _field(parent, "traceparent"):
            return _OFF
        return _passed_on(_parent(parent))
    context = _parent(parent) if parent is not None else None
    linked = [Link(trace.get_current_span(c).get_span_context()) for c in map(_parent, links)]
    return _tracer.start_as_current_span(
        name, context=context, kind=kind, links=linked, attributes=attributes
    )


@contextlib.contextmanager
def each(name: str, entries: Iterable[Any], kind: SpanKind = SpanKind.PRODUCER) -> Iterator[None]:
    """One span per entry (fields, or their JSON), each in its entry's trace, around one
    operation done for all of them at once (the relay's pipelined XADDs)."""
    if _tracer is None:
        yield
        return
    parents = [orjson.loads(e) if isinstance(e, str | bytes) else e for e in entries]
    spans = [_tracer.start_span(name, context=_parent(p), kind=kind) for p in parents]
    try:
        yield
    finally:
        for s in spans:
            s.end()


@contextlib.contextmanager
def _passed_on(parent: Context) -> Iterator[None]:
    """Tracing off: the inbound entry's context is current (no span of ours), for `stamp`."""
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)


def stamp(fields: MutableMapping[str, str]) -> None:
    """Write the current span's context into an entry about to be emitted; tracing off, the
    context of the entry being handled, if it came with one (nothing is written otherwise).
    An empty context holds no span: the propagator is not asked (tracing off, the usual case)."""
    if "traceparent" not in fields and otel_context.get_current():
        _propagator.inject(fields)
