"""CloudEvents 1.0 in binary mode over Redis Streams: one stream field per attribute."""

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, cast

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError


class EnvelopeError(ValueError):
    """An entry that is not a CloudEvent we can read: it goes to the dead-letter stream."""


@dataclass(frozen=True)
class Limits:
    """What one inbound entry may be (settings ALLUSE_MAX_*; docs/architecture.md "Limits")."""

    entry_bytes: int = 256 * 1024  # all field names and values together
    json_depth: int = 32  # nesting of arrays and objects in `data`
    string_length: int = 65_536  # any string or key in `data`, in characters


LIMITS = Limits()


@dataclass(slots=True)
class Proof:
    """What the reader proved about an entry, set once verified; never read from the entry."""

    # Who proved to have written the entry (a token's subject, or a service's name).
    actor: str | None = None
    # The same, as the first part of the idempotency key: `client:<token subject>`,
    # `service:<signer>` (plus `/<writer it verified>` for what a service forwards), or
    # `platform:<what>` for what the platform makes itself.
    writer: str = ""
    sent_type: str | None = None  # as the vouched writer sent it
    # Keys that `data` named twice (anywhere in it): taking either value would guess what the
    # writer meant ({"amount": "1.00", "amount": "9000.00"}), so the entry is refused as
    # `invalid_payload` once its writer is known (shared/infra/stream/pipeline.py, payload()).
    duplicates: tuple[str, ...] = ()
    redriven_by: str | None = None
    # The portfolios that writer may touch (shared/contracts/permissions.py, Scope), set with
    # it; None where no scope applies (a service's own entries).
    scope: Any = None
    # The lane entry this came from, as its writer sent it (shared/infra/stream/lanes.py Origin).
    origin: Any = None


class CloudEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    time: AwareDatetime
    datacontenttype: Literal["application/json"] | None = None
    subject: str | None = Field(default=None, max_length=200)
    dataschema: str | None = Field(default=None, max_length=500)
    # Excluded from repr so a token never reaches a log line.
    authorization: str | None = Field(default=None, max_length=8192, repr=False)
    replyto: str | None = Field(default=None, max_length=200)
    correlationid: str | None = Field(default=None, max_length=200)
    causationid: str | None = Field(default=None, max_length=200)
    # CloudEvents distributed-tracing extension (W3C Trace Context), carried hop to hop.
    traceparent: str | None = Field(
        default=None,
        max_length=55,
        description="W3C Trace Context traceparent (CloudEvents distributed-tracing extension):"
        " the span that wrote the entry; the reader's spans join its trace. Optional.",
    )
    tracestate: str | None = Field(
        default=None,
        max_length=512,
        description="W3C Trace Context tracestate, vendor data carried with traceparent.",
    )
    data: dict[str, Any]
    # What the reader proved about the entry (Proof), in one private attribute: pydantic
    # initializes each declared one on every instance, in Python (seven took 6 us a decode).
    _proof: Proof = PrivateAttr(default_factory=Proof)

    @property
    def key(self) -> tuple[str, str, str]:
        """The idempotency key: the same writer, source and id are applied once. Bound to the
        verified writer, so two principals never share a key (one cannot claim another's)."""
        return (_proof(self).writer, self.source, self.id)

    def key_digest(self) -> str:
        """The idempotency key as one id-safe string: distinct writers and sources never collide."""
        raw = f"{self.writer}\x00{self.source}\x00{self.id}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @property
    def actor(self) -> str | None:
        return _proof(self).actor

    @property
    def writer(self) -> str:
        return _proof(self).writer

    @property
    def duplicate_keys(self) -> tuple[str, ...]:
        return _proof(self).duplicates

    @property
    def sent_type(self) -> str:
        """The type its writer sent: a forwarded entry's original (`ws4.trade.filled` for an
        effect), else its own. What a refusal names, so the writer recognises its entry."""
        return _proof(self).sent_type or self.type

    def verified_as(
        self,
        actor: str,
        kind: Literal["client", "service", "platform"] = "client",
        *,
        vouched: str | None = None,
        sent_type: str | None = None,
    ) -> None:
        """`actor` proved to have written the entry. `vouched` (and `sent_type`): the writer a
        signing service verified and forwards the entry for (the engine behind an effect),
        and the type that writer sent."""
        own = _proof(self)
        own.actor = actor
        own.writer = f"{kind}:{actor}" + (f"/{vouched}" if vouched else "")
        own.sent_type = sent_type

    @property
    def redriven_by(self) -> str | None:
        """The operator whose token re-drove this entry from a signed dead letter, if one did."""
        return _proof(self).redriven_by

    def redriven_as(self, writer: str, *, operator: str, sent_type: str | None = None) -> None:
        """A re-driven dead letter: applied as the writer its service verified and signed into
        the letter, on the authority of `operator`'s token. Same writer, same key: a re-drive
        of an entry applied before changes nothing."""
        own = _proof(self)
        own.actor = writer.partition(":")[2].split("/")[0]
        own.writer, own.redriven_by, own.sent_type = writer, operator, sent_type

    @property
    def scope(self) -> Any:
        """The verified writer's Scope (shared/contracts/permissions.py), or None."""
        return _proof(self).scope

    def scoped_to(self, scope: Any) -> None:
        _proof(self).scope = scope

    @property
    def origin(self) -> Any:
        return _proof(self).origin

    def came_from(self, origin: Any) -> None:
        _proof(self).origin = origin

    def fingerprint(self) -> str:
        """What must match for a re-sent entry to count as the same command. An effect's
        annotations (ANNOTATIONS: what its forwarder looked up when it read the upstream entry,
        not what the entry's writer sent) are left out: the same entry forwarded again after a
        new week classification is the same effect, applied once."""
        data = self.data
        if self.type.startswith(EFFECT_PREFIX) and not ANNOTATIONS.isdisjoint(data):
            data = {k: v for k, v in data.items() if k not in ANNOTATIONS}
        return _fingerprint(self.type, self.subject, data)

    def fingerprints(self) -> tuple[str, ...]:
        """Every fingerprint a known entry of the same command may carry: `fingerprint()`,
        and an effect's with its annotations in, as inbox rows written before they were left
        out have it (kept while the deduplication window may hold such rows)."""
        whole = _fingerprint(self.type, self.subject, self.data)
        return tuple(dict.fromkeys((self.fingerprint(), whole)))


def _proof(ev: CloudEvent) -> Proof:
    """The entry's proof, read in pydantic's own dict of private attributes: an attribute
    access would go through BaseModel.__getattr__ / __setattr__, several times a plain
    lookup's cost, and the pipeline reads the writer and scope of every entry often."""
    return cast(dict[str, Proof], ev.__pydantic_private__)["_proof"]


EFFECT_PREFIX = "alluse.effect."
# What the integration service adds to an effect's data (the week type of its business day,
# read when it forwards the entry; a WS2 verdict's own, which that service's inbox keys).
ANNOTATIONS = frozenset({"week_type"})


# What json.dumps(..., sort_keys=True, default=str) makes, without building an encoder per call.
_CANON = json.JSONEncoder(sort_keys=True, default=str)


def _fingerprint(type_: str, subject: str | None, data: dict[str, Any]) -> str:
    canon = _CANON.encode([type_, subject, data])
    return hashlib.sha256(canon.encode()).hexdigest()


def explain(exc: ValidationError) -> str:
    """Every problem of a payload at once, each with the field it is about."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors())


def decode(fields: dict[bytes, bytes], limits: Limits = LIMITS) -> CloudEvent:
    """The entry as a CloudEvent, or EnvelopeError saying why not: never any other exception,
    so one unreadable entry is that entry's dead letter and not its batch's failure."""
    try:
        return _decode(fields, limits)
    except EnvelopeError:
        raise
    except Exception as exc:  # e.g. RecursionError, MemoryError, or a bug: still one entry's
        raise EnvelopeError(f"unreadable entry ({type(exc).__name__})") from exc


def _decode(fields: dict[bytes, bytes], limits: Limits) -> CloudEvent:
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > limits.entry_bytes:
        raise EnvelopeError(f"entry of {size} bytes exceeds the {limits.entry_bytes}-byte limit")
    try:
        attrs = {k.decode(): v.decode() for k, v in fields.items()}
    except UnicodeDecodeError as exc:
        raise EnvelopeError("entry is not UTF-8") from exc
    raw = attrs.pop("data", None)
    if raw is None:
        raise EnvelopeError("missing field 'data'")
    twice: list[str] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            twice.extend(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        return obj

    try:
        data = json.loads(raw, parse_float=Decimal, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"field 'data' is not JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise EnvelopeError(_too_deep(limits)) from exc
    if not isinstance(data, dict):
        raise EnvelopeError("field 'data' must be a JSON object")
    if not _surely_within(raw, limits):
        _within(data, limits)
    try:
        ev = CloudEvent.model_validate({**attrs, "data": data})
    except ValidationError as exc:
        raise EnvelopeError(f"not a CloudEvents 1.0 entry: {explain(exc)}") from exc
    _proof(ev).duplicates = tuple(dict.fromkeys(twice))
    return ev


def _too_deep(limits: Limits) -> str:
    return f"field 'data' is nested deeper than {limits.json_depth} levels"


def _surely_within(raw: str, limits: Limits) -> bool:
    """Whether JSON text this short and this flat cannot break the limits, so `_within` would
    find nothing: no decoded string is longer than the text it came from, and no value is
    nested deeper than the number of brackets opened in that text (in strings too)."""
    return len(raw) <= limits.string_length and raw.count("{") + raw.count("[") <= limits.json_depth


def _within(data: dict[str, Any], limits: Limits) -> None:
    """Depth and string length of decoded JSON, walked without recursion: depth first, the
    last item of each object (its keys, then its values) or array first. Only containers are
    stacked, each as an iterator over its items; strings are checked as they are met."""
    if limits.json_depth < 1:
        raise EnvelopeError(_too_deep(limits))
    stack: list[tuple[Iterator[Any], int]] = [(_items(data), 1)]
    while stack:
        items, depth = stack[-1]
        for value in items:
            if isinstance(value, str):
                if len(value) > limits.string_length:
                    raise EnvelopeError(
                        f"field 'data' holds a string longer than {limits.string_length} characters"
                    )
            elif isinstance(value, dict | list):
                if depth >= limits.json_depth:
                    raise EnvelopeError(_too_deep(limits))
                stack.append((_items(value), depth + 1))
                break
        else:
            stack.pop()


def _items(value: dict[str, Any] | list[Any]) -> Iterator[Any]:
    items: list[Any] = [*value, *value.values()] if isinstance(value, dict) else value
    backwards: Iterator[Any] = reversed(items)
    return backwards


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # money stays an exact decimal string
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(data: Any) -> str:
    """Compact JSON with sorted keys; UUIDs and datetimes (RFC 3339) natively, Decimal as a string."""
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_SORT_KEYS).decode()


def new_event(
    type: str,
    source: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    cause: CloudEvent | None = None,
    event_id: str | None = None,
    **attributes: str,
) -> dict[str, str]:
    """Stream fields of a new event; causation and correlation follow the causing entry. Its
    `time` is now unless the attributes name one (a forwarded entry's own)."""
    fields = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": attributes.pop("time") if "time" in attributes else datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        **attributes,
    }
    if subject:
        fields["subject"] = subject
    if cause is not None:
        fields["causationid"] = cause.id
        fields["correlationid"] = cause.correlationid or cause.id
    fields["data"] = dumps(data)
    return fields
