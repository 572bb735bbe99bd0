"""An operator's tool on the streams: send a command and wait for its outcome, ask a query.

With a lane (docs/lanes.md; the CLI's `operator` or its client id, the console's `console`),
commands and queries are XADDed to the lane's own streams, and the one outcome of each is read
from the lane's outcome stream: believed only for the exact entry sent (stream, source, id),
only signed by the account service, and only signed after it was sent (less the clock skew).
An applied command's events are then read by id from `outcomes` (the account events or the
lifecycle stream), each signed by its writer; a query's answer only from its own reply
stream, for its id, signed and fresh. Anything else on those streams is ignored, never shown.

Entries are built, and outcomes' signatures checked, by the client library (alluse_client),
as an integrator's engine does it.

Without a lane (a single trusted writer on a Redis without the ACL, ALLUSE_LANES=open), the
shared streams are written and the outcome is found by `causationid`, as before lanes.
"""

import contextlib
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from alluse_client import KeySet, KeysUnavailable, SignatureError
from alluse_client.signatures import text_fields
from alluse_client.wire import binary_fields
from shared.contracts.answers import ENTRY_REFUSED, OUTCOME_TYPES
from shared.contracts.envelope import CloudEvent, EnvelopeError, decode
from shared.contracts.messages import COMMAND_REJECTED, QUERY_FAILED, QUERY_RESULT
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    ACCOUNT_QUERIES,
    Streams,
)
from shared.contracts.trust import ACCOUNT, INTEGRATION, SIGNED_AT, reply_namespace
from shared.tooling.credentials import token_subject

Done = Callable[[list[CloudEvent]], bool]
Waiting = Callable[[str], AbstractAsyncContextManager[None]]
WRITER = {ACCOUNT_EVENTS: ACCOUNT, ACCOUNT_LIFECYCLE: INTEGRATION}  # who signs outcomes there
SKEW_MS = 5 * 60 * 1000  # how far the signing service's clock may lag ours (guards.SKEW)


class Refused(Exception):
    """The platform answered no: a rejected command or a failed query, with code and reason."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(f"{data.get('code')}: {data.get('reason')}")
        self.data = data
        self.code, self.reason = str(data.get("code")), str(data.get("reason"))


class NoAnswer(Exception):
    """Nothing came back in time (is the account service running?)."""


def _quiet(_: str) -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


def reply_stream(streams: Streams, token: str) -> str:
    """A fresh private stream for one query's answer, in the caller's own reply namespace."""
    return reply_namespace(streams.prefix, token_subject(token)) + uuid.uuid4().hex


@dataclass
class StreamClient:
    redis: Redis
    streams: Streams
    token: str
    timeout: float = 10.0
    source: str = "alluse-client"
    # Where outcomes are read: the public lifecycle stream, or the account service's own.
    outcomes: str = ACCOUNT_EVENTS
    waiting: Waiting = field(default=_quiet)
    # The platform's published keys, checked by the client library (alluse_client) as any
    # integrator checks them: outcomes and answers without their writer's signature are ignored. None believes every entry (only for tools on a trusted, private Redis).
    keys: KeySet | None = None
    # This tool's lane (docs/lanes.md); None: the shared streams, for ALLUSE_LANES=open only.
    lane: str | None = None

    async def command(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        done: Done,
        subject: str | None = None,
        event_id: str | None = None,
    ) -> list[CloudEvent]:
        """XADD a command, return the events it caused once `done` says they are all here."""
        if self.lane is not None:
            return await self._laned_command(type_, data, done, subject, event_id, self.lane)
        events = self.streams.key(self.outcomes)
        # Where the stream ends now, before the XADD, so the outcome cannot slip past us.
        last = await self.redis.xrevrange(events, count=1)
        cursor: Any = last[0][0] if last else "0-0"
        fields = binary_fields(
            type_,
            self.source,
            data,
            id=event_id or str(uuid.uuid4()),
            subject=subject,
            token=self.token,
        )
        await self.redis.xadd(self.streams.key(ACCOUNT_COMMANDS), fields)  # type: ignore[arg-type]
        found: list[CloudEvent] = []
        deadline = time.monotonic() + self.timeout
        async with self.waiting(f"waiting for the outcome of {type_}"):
            while True:
                for _, entries in await self._read({events: cursor}, deadline):
                    for entry_id, raw in entries:
                        cursor = entry_id
                        ev = _decoded(raw)
                        if ev is None or ev.causationid != fields["id"] or ev.type in OUTCOME_TYPES:
                            continue
                        if await self._signed(raw, WRITER[self.outcomes]):
                            found.append(ev)
                if any(e.type == COMMAND_REJECTED for e in found):
                    raise Refused(next(e.data for e in found if e.type == COMMAND_REJECTED))
                if found and done(found):
                    return found

    async def query(
        self, type_: str, data: dict[str, Any], *, subject: str | None = None
    ) -> dict[str, Any]:
        """XADD a query with a private reply stream; return the answer's data."""
        if self.lane is not None:
            box = self.streams.replies(self.lane) + uuid.uuid4().hex
            target = self.streams.lane(ACCOUNT_QUERIES, self.lane)
        else:
            box, target = reply_stream(self.streams, self.token), self.streams.key(ACCOUNT_QUERIES)
        fields = binary_fields(
            type_,
            self.source,
            data,
            id=str(uuid.uuid4()),
            subject=subject,
            token=self.token,
            replyto=box,
        )
        cursors: dict[Any, Any] = {box: "0-0"}
        if self.lane is not None:  # a refusal (no answer on the box) comes as the outcome
            cursors[self.streams.outcomes(self.lane)] = await self._end(
                self.streams.outcomes(self.lane)
            )
        sent_ms = time.time() * 1000
        await self.redis.xadd(target, fields)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.timeout
        reply: CloudEvent | None = None
        try:
            async with self.waiting(f"waiting for the answer to {type_}"):
                while reply is None:
                    for name, entries in await self._read(cursors, deadline):
                        key = name.decode() if isinstance(name, bytes) else name
                        for entry_id, raw in entries:  # anything not the service's is skipped
                            cursors[key] = entry_id
                            ev = await self._believed(raw, ACCOUNT, sent_ms)
                            if ev is None or ev.causationid != fields["id"]:
                                continue
                            if ev.type in (QUERY_RESULT, QUERY_FAILED):
                                reply = reply or ev
                            elif ev.type == ENTRY_REFUSED and self._ours(
                                ev, ACCOUNT_QUERIES, fields
                            ):
                                raise Refused(ev.data)
        finally:
            await self.redis.delete(box)
        if reply.type == QUERY_FAILED:
            raise Refused(reply.data)
        return reply.data

    async def _laned_command(
        self,
        type_: str,
        data: dict[str, Any],
        done: Done,
        subject: str | None,
        event_id: str | None,
        lane: str,
    ) -> list[CloudEvent]:
        """The command through the lane; its one outcome from the lane's outcome stream; the
        events an applied (or duplicate) outcome names, by id, from `outcomes`."""
        verdicts, events = self.streams.outcomes(lane), self.streams.key(self.outcomes)
        cursors: dict[Any, Any] = {
            verdicts: await self._end(verdicts),
            events: await self._end(events),
        }
        fields = binary_fields(
            type_,
            self.source,
            data,
            id=event_id or str(uuid.uuid4()),
            subject=subject,
            token=self.token,
        )
        sent_ms = time.time() * 1000
        await self.redis.xadd(self.streams.lane(ACCOUNT_COMMANDS, lane), fields)  # type: ignore[arg-type]
        verdict: CloudEvent | None = None
        seen: dict[str, CloudEvent] = {}
        deadline = time.monotonic() + self.timeout
        async with self.waiting(f"waiting for the outcome of {type_}"):
            while True:
                for name, entries in await self._read(cursors, deadline):
                    key = name.decode() if isinstance(name, bytes) else name
                    for entry_id, raw in entries:
                        cursors[key] = entry_id
                        if key == verdicts:
                            ev = await self._believed(raw, ACCOUNT, sent_ms)
                            if ev is not None and self._ours(ev, ACCOUNT_COMMANDS, fields):
                                verdict = verdict or ev
                        else:
                            ev = _decoded(raw)
                            mine = ev is not None and ev.causationid == fields["id"]
                            if mine and ev and await self._signed(raw, WRITER[self.outcomes]):
                                seen.setdefault(ev.id, ev)
                if verdict is None:
                    continue
                if verdict.type == ENTRY_REFUSED:
                    raise Refused(verdict.data)
                wanted = [str(e.get("id")) for e in verdict.data.get("events", [])]
                found = [seen[i] for i in wanted if i in seen]
                if len(found) == len(wanted) or (found and done(found)):
                    return found

    @staticmethod
    def _ours(ev: CloudEvent, stream: str, sent: dict[str, str]) -> bool:
        """An outcome of exactly the entry we sent: its stream, source and id."""
        d = ev.data
        return (
            ev.type in OUTCOME_TYPES
            and d.get("stream") == stream
            and d.get("source") == sent["source"]
            and d.get("id") == sent["id"]
        )

    async def _believed(
        self, raw: dict[bytes, bytes], writer: str, sent_ms: float
    ) -> CloudEvent | None:
        """The entry, if signed by `writer` no earlier than we sent (less the clock skew):
        an old signed answer replayed is not this request's."""
        if not await self._signed(raw, writer):
            return None
        stamp = raw.get(SIGNED_AT.encode(), b"")
        if self.keys is not None and (not stamp.isdigit() or int(stamp) < sent_ms - SKEW_MS):
            return None
        return _decoded(raw)

    async def _end(self, key: str) -> Any:
        """Where the stream ends now: what is written after the XADD cannot slip past."""
        last = await self.redis.xrevrange(key, count=1)
        return last[0][0] if last else "0-0"

    async def _signed(self, raw: dict[bytes, bytes], writer: str) -> bool:
        if self.keys is None:
            return True
        try:
            return await self.keys.signer_of(text_fields(raw)) == writer
        except (SignatureError, ValueError):  # unsigned, forged, or not even text
            return False
        except KeysUnavailable as exc:
            raise NoAnswer(f"cannot check who wrote the answer: {exc}") from None

    async def _read(self, streams: dict[Any, Any], deadline: float) -> list[Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAnswer(f"no outcome within {self.timeout:g}s (is the account service running?)")
        block = max(1, int(min(left, 0.5) * 1000))  # short slices: BLOCK 0 would wait forever
        got: Any = await self.redis.xread(streams, count=200, block=block)
        return list(got or [])


def _decoded(fields: dict[bytes, bytes]) -> CloudEvent | None:
    try:
        return decode(fields)
    except EnvelopeError:
        return None  # not ours to judge: someone else's malformed entry


def until(*types: str) -> Done:
    """Done once an event of each of `types` has arrived."""
    return lambda events: set(types) <= {e.type for e in events}
