"""The engine side: publish WS2/WS4 entries the platform accepts and learn each one's outcome.

    tokens = ClientCredentials(token_url, "ws4-gateway", secret)
    engine = Engine(redis, tokens, source="ws4/gateway-1", keys=KeySet.from_url(jwks_url),
                    prefix="", lane="ws4-gateway")
    sent = await engine.trade_filled({...})
    outcome = await engine.outcome(sent)          # applied, duplicate or refused

With a `lane` (the platform's lanes: a client writes into its own lane and reads one outcome
per entry from `alluse.outcomes.<lane>`), outcomes are the platform's `alluse.entry.applied`,
`alluse.entry.duplicate` and `alluse.entry.refused`. Without one (`lane=None`, platforms
before lanes, or `ALLUSE_LANES=open`) entries go to the shared stream and the outcome is read
from the lifecycle stream: the first event caused by the entry (`causationid`), or its
`alluse.command.rejected`. Types that change nothing visible (a quote, a compliant verdict, a
valuation that matches) announce nothing there: waiting for their outcome times out.

An outcome is believed only when it is signed by the service that owns the decision, names
an entry this engine sent (stream, source, id), and was signed after the entry was sent.
Outcomes of the entries an engine sent are kept until `outcome` or `outcomes` takes them:
wait for what you publish.
"""

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from alluse_client import payloads
from alluse_client.consumer import Event, Inspector, Invalid
from alluse_client.keys import KeySet, KeysUnavailable
from alluse_client.schemas import SchemaSet
from alluse_client.streams import LIFECYCLE, STREAM_OF, Streams
from alluse_client.wire import binary_fields

APPLIED, DUPLICATE, REFUSED = (
    "alluse.entry.applied",
    "alluse.entry.duplicate",
    "alluse.entry.refused",
)
REJECTED = "alluse.command.rejected"
# Who may decide an entry of each type: effects the account service books (or the integration
# service refuses before forwarding); the rest the integration service alone.
DECIDERS: dict[str, frozenset[str]] = {
    "ws4.trade.filled": frozenset({"account", "integration"}),
    "ws4.option.assigned": frozenset({"account", "integration"}),
    "ws4.option.expired": frozenset({"account", "integration"}),
}
OTHERS = frozenset({"integration"})
CLOCK_SKEW_MS = 60_000  # how much earlier than our send a signature may claim to be


class Tokens(Protocol):
    async def token(self) -> str: ...

    @property
    def subject(self) -> str: ...


class NoOutcome(TimeoutError):
    """No outcome arrived in time (is the platform running? does this type announce one?)."""


@dataclass(frozen=True)
class Sent:
    """One entry as published."""

    stream: str  # logical stream, e.g. ws4.market.events
    key: str  # the Redis key it was XADDed to
    type: str
    source: str
    id: str
    entry_id: str
    sent_at_ms: int


@dataclass(frozen=True)
class Outcome:
    status: Literal["applied", "duplicate", "refused"]
    sent: Sent
    code: str | None = None  # refused: the refusal code, e.g. fill_conflict
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # applied: what it caused
    signer: str | None = None
    entry: Event | None = None  # the outcome entry itself

    @property
    def ok(self) -> bool:
        return self.status != "refused"


class Engine:
    """Publishes as one engine (`source`), with one token source and optionally its own lane."""

    def __init__(
        self,
        redis: Redis,
        tokens: Tokens,
        *,
        source: str,
        keys: KeySet | None,
        prefix: str = "",
        lane: str | None = None,
        schemas: SchemaSet | None = None,
    ) -> None:
        """`schemas`: e.g. `SchemaSet.bundled("upstream")`, to refuse an invalid payload here
        (SchemaError) before it is sent, instead of as the platform's `invalid_payload`."""
        self.redis, self.tokens, self.source, self.keys = redis, tokens, source, keys
        self.schemas = schemas
        self.streams, self.lane = Streams(prefix), lane
        watched = self.streams.outcomes(lane) if lane else self.streams.key(LIFECYCLE)
        self.watcher = _Watcher(redis, watched, keys, lanes=lane is not None)

    def key_of(self, stream: str) -> str:
        return self.streams.lane(stream, self.lane) if self.lane else self.streams.key(stream)

    async def publish(
        self,
        type_: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        subject: str | None = None,
        time_: datetime | None = None,
    ) -> Sent:
        """XADD one entry as a binary-mode CloudEvent with this engine's token.

        `id` defaults to one derived from the payload's natural key (a fill's `fill_id`, ...),
        so publishing the same event again is a duplicate, not a second fill.
        """
        stream = STREAM_OF.get(type_)
        if stream is None:
            raise ValueError(f"{type_!r} is not a WS2/WS4 type ({', '.join(STREAM_OF)})")
        await self.watcher.start()  # before the XADD: the outcome cannot slip past
        fields = binary_fields(
            type_,
            self.source,
            data,
            id=id,
            subject=subject or data.get("account_id"),
            token=await self.tokens.token(),
            time=time_,
        )
        if self.schemas is not None:
            self.schemas.validate(type_, json.loads(fields["data"]))
        key = self.key_of(stream)
        sent_at = int(time.time() * 1000)
        sent = Sent(stream, key, type_, self.source, fields["id"], "", sent_at)
        self.watcher.expected.add(self.watcher.match_key(sent))
        entry_id: Any = await self.redis.xadd(key, fields)  # type: ignore[arg-type]
        entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return dataclasses.replace(sent, entry_id=entry)

    async def outcome(self, sent: Sent, timeout: float = 30.0) -> Outcome:
        """Wait for the platform's outcome of one entry (NoOutcome after `timeout` seconds)."""
        return await self.watcher.wait(sent, timeout)

    async def outcomes(self, sent: list[Sent], timeout: float = 30.0) -> AsyncIterator[Outcome]:
        """Each entry's outcome as it arrives (in the order the platform decides them)."""
        left = {(s.source, s.id): s for s in sent}
        deadline = time.monotonic() + timeout
        while left:
            for key, s in list(left.items()):
                outcome = self.watcher.take(s)
                if outcome is not None:
                    del left[key]
                    yield outcome
            if left:
                await self.watcher.poll(deadline, f"{len(left)} outcomes")

    # One method per type, typed, for discoverability; all are `publish`.
    async def week_classified(self, data: payloads.WeekClassified, **kw: Any) -> Sent:
        return await self.publish("ws2.week.classified", data, **kw)

    async def protocol_validated(self, data: payloads.ProtocolValidated, **kw: Any) -> Sent:
        return await self.publish("ws2.protocol.validated", data, **kw)

    async def trade_filled(self, data: payloads.TradeFilled, **kw: Any) -> Sent:
        return await self.publish("ws4.trade.filled", data, **kw)

    async def option_assigned(self, data: payloads.OptionAssigned, **kw: Any) -> Sent:
        return await self.publish("ws4.option.assigned", data, **kw)

    async def option_expired(self, data: payloads.OptionExpired, **kw: Any) -> Sent:
        return await self.publish("ws4.option.expired", data, **kw)

    async def account_valuation(self, data: payloads.AccountValuation, **kw: Any) -> Sent:
        return await self.publish("ws4.account.valuation", data, **kw)

    async def market_quote(self, data: payloads.MarketQuote, **kw: Any) -> Sent:
        return await self.publish("ws4.market.quote", data, **kw)


class _Watcher:
    """Reads the outcome stream (or the lifecycle stream) from where it stood before the first
    publish, keeping every believable outcome by the entry it is about."""

    def __init__(self, redis: Redis, key: str, keys: KeySet | None, *, lanes: bool) -> None:
        self.redis, self.key, self.lanes = redis, key, lanes
        # Outcomes come from two services: the Inspector checks the signature, judge() the signer.
        self.inspector = Inspector(keys, None, signed_by=None)
        self.cursor: str | None = None
        self.unreadable: str | None = None  # why this Redis user cannot read the stream
        self.found: dict[str, list[Event]] = {}
        # The entries this engine sent: only outcomes (or caused events) of these are kept.
        self.expected: set[str] = set()
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        if self.cursor is None and self.unreadable is None:
            try:
                last: Any = await self.redis.xrevrange(self.key, count=1)
            except ResponseError as exc:  # e.g. NOPERM: this Redis user may only publish
                self.unreadable = str(exc)
                return
            self.cursor = _text(last[0][0]) if last else "0-0"

    def _cursor(self) -> str:
        return self.cursor or "0-0"

    def match_key(self, sent: Sent) -> str:
        return f"{sent.source}\x00{sent.id}" if self.lanes else sent.id

    async def wait(self, sent: Sent, timeout: float) -> Outcome:
        deadline = time.monotonic() + timeout
        while (outcome := self.take(sent)) is None:
            await self.poll(deadline, f"the outcome of {sent.type} {sent.id}")
        return outcome

    def take(self, sent: Sent) -> "Outcome | None":
        """The entry's outcome if a believable one has been read; unbelievable ones (wrong
        signer, stale) are dropped and the wait goes on."""
        key = self.match_key(sent)
        deciders = DECIDERS.get(sent.type, OTHERS)
        good = [e for e in self.found.pop(key, []) if self._believable(sent, e, deciders)]
        if not good:
            return None
        if self.lanes:
            # One outcome per entry written: an entry sent again (a retry) has its own, so
            # the next ones stay for the next wait on the same (source, id).
            if good[1:]:
                self.found[key] = good[1:]
            return self.judge(sent, good[:1])
        return self.judge(sent, good)  # the lifecycle events it caused, as far as read

    async def poll(self, deadline: float, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoOutcome(f"no {what} on {self.key}")
        await self.start()
        if self.unreadable is not None:
            raise NoOutcome(f"cannot read {self.key}: {self.unreadable}")
        async with self.lock:
            block = max(1, int(min(left, 0.5) * 1000))
            reply: Any = await self.redis.xread({self.key: self._cursor()}, count=500, block=block)
            for _, entries in reply or []:
                for raw_id, raw in entries:
                    self.cursor = _text(raw_id)
                    await self._take(self.cursor, raw)

    async def _take(self, entry_id: str, raw: Mapping[Any, Any]) -> None:
        try:
            event = await self.inspector.inspect(entry_id, raw)
        except Invalid:
            return  # unsigned or forged: not an outcome to believe
        except KeysUnavailable as exc:
            raise NoOutcome(f"cannot check who wrote the outcome: {exc}") from None
        if self.lanes:
            if event.type not in (APPLIED, DUPLICATE, REFUSED):
                return
            key = f"{event.data.get('source')}\x00{event.data.get('id')}"
        else:
            if not event.fields.get("causationid"):
                return
            key = event.fields["causationid"]
        if key in self.expected:
            self.found.setdefault(key, []).append(event)

    def judge(self, sent: Sent, good: list[Event]) -> Outcome:
        """The outcome that the believable events `good` say."""
        first = good[0]
        if not self.lanes:
            if first.type == REJECTED:
                return Outcome(
                    "refused",
                    sent,
                    str(first.data.get("code")),
                    str(first.data.get("reason")),
                    signer=first.signer,
                    entry=first,
                )
            return Outcome(
                "applied",
                sent,
                events=[{"type": e.type, "id": e.id} for e in good],
                signer=first.signer,
                entry=first,
            )
        if first.type == REFUSED:
            return Outcome(
                "refused",
                sent,
                str(first.data.get("code")),
                str(first.data.get("reason")),
                signer=first.signer,
                entry=first,
            )
        status: Literal["applied", "duplicate"] = (
            "applied" if first.type == APPLIED else "duplicate"
        )
        return Outcome(
            status,
            sent,
            events=list(first.data.get("events") or []),
            signer=first.signer,
            entry=first,
        )

    def _believable(self, sent: Sent, event: Event, deciders: frozenset[str]) -> bool:
        if self.inspector.keys is not None:
            if event.signer not in (deciders if self.lanes else {"integration"}):
                return False
            signed_at = event.fields.get("signed_at", "")
            if not signed_at.isdigit() or int(signed_at) < sent.sent_at_ms - CLOCK_SKEW_MS:
                return False
        if self.lanes:
            stream = str(event.data.get("stream", ""))
            return stream in (sent.stream, sent.key) or stream.endswith(sent.stream)
        return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
