"""Consuming the lifecycle stream: crash-safe consumer group, verified, validated, de-duplicated.

    consumer = Consumer(redis, streams.key(LIFECYCLE), group="billing", name="billing-1",
                        keys=KeySet.from_url(jwks_url), store=SqliteStore("seen.db"))
    await consumer.run(handle)        # handle(event: Event) -> Awaitable[None]

The recipe, and why each step:

1. The group is created at id 0 (not `$`): entries written before the consumer first ran are
   read too. An existing group is kept as it is.
2. On start the consumer reads its own pending entries first (XREADGROUP from id 0): what it
   had read but not acknowledged when it died. Reading only `>` would strand them.
3. Then new entries (`>`), and every `claim_every` seconds XAUTOCLAIM takes over entries
   another member left idle for `claim_idle_ms` (a member that died and never came back).
4. An entry is acknowledged only after the handler returned and its key was marked in the
   de-duplication store; a handler that raises leaves it pending and the consumer re-reads
   its own pending entries (in order) before anything new.
5. Each entry's signature is checked against the platform's published keys (by default it must
   be the integration service's, which writes the lifecycle stream), its data against the JSON
   Schema of its type. An entry that fails either is passed to `on_invalid` and acknowledged;
   one whose key cannot be fetched now stays pending and is retried.
6. An entry whose (source, id) the store has seen is acknowledged without calling the handler.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from alluse_client.dedupe import DedupeStore, MemoryStore
from alluse_client.keys import KeySet, KeysUnavailable
from alluse_client.schemas import SchemaError, SchemaSet
from alluse_client.signatures import SignatureError, text_fields

log = logging.getLogger(__name__)
INTEGRATION = "integration"  # the service that writes and signs the lifecycle stream


@dataclass(frozen=True)
class Event:
    """One verified lifecycle entry."""

    entry_id: str  # the Redis stream entry id
    type: str
    source: str
    id: str
    subject: str | None
    time: str
    data: dict[str, Any]  # JSON numbers as Decimal: money stays exact
    fields: Mapping[str, str]  # every field as written (CloudEvents binary mode)
    signer: str | None  # the service whose key signed it; None when not verified

    @property
    def key(self) -> tuple[str, str]:
        """The de-duplication key: the platform applies and announces (source, id) once."""
        return (self.source, self.id)


class Invalid(Exception):
    """An entry to skip: unsigned or forged, not a CloudEvent, or against its schema."""


Handler = Callable[[Event], Awaitable[None]]
OnInvalid = Callable[[str, Mapping[str, str], Invalid], Awaitable[None]]


@dataclass
class Inspector:
    """Turns raw stream fields into an Event, or says why not (Invalid / KeysUnavailable)."""

    keys: KeySet | None  # None: signatures are not checked (a trusted, private Redis only)
    schemas: SchemaSet | None = None  # None: data is not validated
    signed_by: str | None = INTEGRATION  # None: any service's published key will do
    unknown_types: bool = True  # deliver types the schema set does not know (newer platform)

    async def inspect(self, entry_id: str, raw: Mapping[Any, Any]) -> Event:
        fields = text_fields(raw)
        signer = None
        if self.keys is not None:
            try:
                signer = await self.keys.signer_of(fields)
            except SignatureError as exc:
                raise Invalid(f"signature: {exc}") from None
            if self.signed_by is not None and signer != self.signed_by:
                raise Invalid(f"signed by the {signer} service, not the {self.signed_by} service")
        missing = [k for k in ("type", "source", "id", "data") if not fields.get(k)]
        if missing:
            raise Invalid(f"not a CloudEvent: no {', '.join(missing)}")
        try:
            data = json.loads(fields["data"], parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise Invalid(f"data is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise Invalid("data is not a JSON object")
        type_ = fields["type"]
        if self.schemas is not None:
            if self.schemas.known(type_):
                try:
                    self.schemas.validate(type_, json.loads(fields["data"]))
                except SchemaError as exc:
                    raise Invalid(f"schema of {type_}: {exc}") from None
            elif not self.unknown_types:
                raise Invalid(f"no schema for type {type_!r}")
        return Event(
            entry_id=entry_id,
            type=type_,
            source=fields["source"],
            id=fields["id"],
            subject=fields.get("subject"),
            time=fields.get("time", ""),
            data=data,
            fields=fields,
            signer=signer,
        )


async def _log_invalid(entry_id: str, fields: Mapping[str, str], why: Invalid) -> None:
    log.warning("entry %s (%s) skipped: %s", entry_id, fields.get("type"), why)


@dataclass
class Stats:
    handled: int = 0
    duplicates: int = 0
    invalid: int = 0
    claimed: int = 0


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Consumer:
    """One member of a consumer group on a platform stream (see the module's recipe)."""

    redis: Redis
    stream: str  # the full key, e.g. Streams(prefix).key(LIFECYCLE)
    group: str
    name: str  # this member's name; reuse it after a restart to read its own pending first
    keys: KeySet | None
    store: DedupeStore = field(default_factory=MemoryStore)
    schemas: SchemaSet | None = None
    signed_by: str = INTEGRATION
    on_invalid: OnInvalid = _log_invalid
    count: int = 100
    block_ms: int = 1000
    claim_idle_ms: int = 60_000
    claim_every: float = 5.0
    retry_delay: float = 1.0  # after a handler failure or a key outage
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.inspector = Inspector(self.keys, self.schemas, self.signed_by)
        self._own_pending = True  # start with what this member had not acknowledged
        self._failed = False
        self._claimed_at = -float("inf")

    async def ensure_group(self) -> None:
        """XGROUP CREATE at id 0 (MKSTREAM); an existing group is left as it is."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, handler: Handler, stop: asyncio.Event | None = None) -> None:
        """Consume until `stop` is set (or forever)."""
        await self.ensure_group()
        while stop is None or not stop.is_set():
            await self.step(handler)
            if self._failed:
                self._failed = False
                await asyncio.sleep(self.retry_delay)  # something failed: do not spin on it

    async def step(self, handler: Handler) -> bool:
        """One round: own pending entries, else idle ones of others, else new ones (blocking
        up to `block_ms`). True when something was read."""
        if self._own_pending:
            entries = await self._read("0", block=None)
            if not entries:
                self._own_pending = False
                return False
            await self._process(entries, handler)
            return True
        if time.monotonic() - self._claimed_at >= self.claim_every:
            self._claimed_at = time.monotonic()
            if await self._claim(handler):
                return True
        entries = await self._read(">", block=self.block_ms)
        if entries:
            await self._process(entries, handler)
        return bool(entries)

    async def _read(self, from_id: str, block: int | None) -> list[tuple[Any, Any]]:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: from_id}, count=self.count, block=block
        )
        return [entry for _, entries in reply or [] for entry in entries]

    async def _claim(self, handler: Handler) -> bool:
        """XAUTOCLAIM every entry idle past the threshold (from any member) and process it."""
        start, any_claimed = "0-0", False
        while True:
            reply: Any = await self.redis.xautoclaim(
                self.stream, self.group, self.name, self.claim_idle_ms, start, count=self.count
            )
            start, entries = _id(reply[0]), list(reply[1])
            if entries:
                any_claimed = True
                self.stats.claimed += len(entries)
                await self._process(entries, handler)
                if self._own_pending:  # a failure: reread own pending, in order, first
                    return True
            if start == "0-0":
                return any_claimed

    async def _process(self, entries: list[tuple[Any, Any]], handler: Handler) -> None:
        for raw_id, raw in entries:
            entry_id = _id(raw_id)
            if not raw:  # deleted or trimmed while pending: nothing left to apply
                await self._ack(entry_id)
                continue
            if not await self._one(entry_id, raw, handler):
                # Left pending: read it again, before anything newer, after a pause.
                self._own_pending = self._failed = True
                return

    async def _one(self, entry_id: str, raw: Mapping[Any, Any], handler: Handler) -> bool:
        try:
            event = await self.inspector.inspect(entry_id, raw)
        except KeysUnavailable as exc:
            log.warning("entry %s waits: %s", entry_id, exc)
            return False
        except Invalid as exc:
            self.stats.invalid += 1
            await self.on_invalid(entry_id, text_fields(raw), exc)
            await self._ack(entry_id)
            return True
        if await self.store.seen(event.source, event.id):
            self.stats.duplicates += 1
            await self._ack(entry_id)
            return True
        try:
            await handler(event)
        except Exception:
            log.exception("handler failed on %s (%s); it stays pending", entry_id, event.type)
            return False
        await self.store.mark(event.source, event.id)
        await self._ack(entry_id)
        self.stats.handled += 1
        return True

    async def _ack(self, entry_id: str) -> None:
        await self.redis.xack(self.stream, self.group, entry_id)
