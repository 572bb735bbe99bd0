"""An operator's tool on the public streams: send a command and wait for its outcome, ask a query.

Commands are XADDed as CloudEvents and their outcome is read back by `causationid` from an
outcome stream; queries carry a private `replyto` stream the account service answers on.
Used by the `alluse` CLI and the web console alike. Given the platform's keys, it believes an
outcome or an answer only when its writer's signature is on it: the account service's on
account events and answers, the integration service's on the lifecycle stream.
"""

import contextlib
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from shared.contracts.envelope import CloudEvent, EnvelopeError, decode, new_event
from shared.contracts.messages import COMMAND_REJECTED, QUERY_FAILED
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    ACCOUNT_QUERIES,
    Streams,
)
from shared.contracts.trust import ACCOUNT, INTEGRATION, reply_namespace
from shared.infra.credentials import token_subject
from shared.infra.keys import KeySet, KeysUnavailable
from shared.infra.messaging import Rejected
from shared.infra.signing import signer_of, text_fields

Done = Callable[[list[CloudEvent]], bool]
Waiting = Callable[[str], AbstractAsyncContextManager[None]]
WRITER = {ACCOUNT_EVENTS: ACCOUNT, ACCOUNT_LIFECYCLE: INTEGRATION}  # who signs outcomes there


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
    # The platform's published keys: outcomes and answers without their writer's signature
    # are ignored. None believes every entry (only for tools on a trusted, private Redis).
    keys: KeySet | None = None

    async def command(
        self, type_: str, data: dict[str, Any], *, done: Done, subject: str | None = None,
        event_id: str | None = None,
    ) -> list[CloudEvent]:  # fmt: skip
        """XADD a command, return the events it caused once `done` says they are all here."""
        events = self.streams.key(self.outcomes)
        # Where the stream ends now, before the XADD, so the outcome cannot slip past us.
        last = await self.redis.xrevrange(events, count=1)
        cursor: Any = last[0][0] if last else "0-0"
        fields = new_event(type_, self.source, data, subject=subject, event_id=event_id or str(uuid.uuid4()),
                           authorization=f"Bearer {self.token}")  # fmt: skip
        await self.redis.xadd(self.streams.key(ACCOUNT_COMMANDS), fields)  # type: ignore[arg-type]
        found: list[CloudEvent] = []
        deadline = time.monotonic() + self.timeout
        async with self.waiting(f"waiting for the outcome of {type_}"):
            while True:
                for _, entries in await self._read({events: cursor}, deadline):
                    for entry_id, raw in entries:
                        cursor = entry_id
                        ev = _decoded(raw)
                        if ev is None or ev.causationid != fields["id"]:
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
        box = reply_stream(self.streams, self.token)
        fields = new_event(type_, self.source, data, subject=subject, replyto=box,
                           authorization=f"Bearer {self.token}")  # fmt: skip
        await self.redis.xadd(self.streams.key(ACCOUNT_QUERIES), fields)  # type: ignore[arg-type]
        deadline, cursor = time.monotonic() + self.timeout, "0-0"
        reply: CloudEvent | None = None
        try:
            async with self.waiting(f"waiting for the answer to {type_}"):
                while reply is None:
                    for _, entries in await self._read({box: cursor}, deadline):
                        for entry_id, raw in entries:  # anything not the service's is skipped
                            cursor = entry_id
                            if reply is None and await self._signed(raw, ACCOUNT):
                                reply = _decoded(raw)
                                if reply is None:
                                    raise NoAnswer(f"unreadable reply on {box}")
        finally:
            await self.redis.delete(box)
        if reply.type == QUERY_FAILED:
            raise Refused(reply.data)
        return reply.data

    async def _signed(self, raw: dict[bytes, bytes], writer: str) -> bool:
        if self.keys is None:
            return True
        try:
            return await signer_of(self.keys, text_fields(raw)) == writer
        except (Rejected, ValueError):  # unsigned, forged, or not even text
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
