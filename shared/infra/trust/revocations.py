"""Follows the security service's revocation stream, so every Verifier refuses revoked tokens.

    revocations = Revocations(redis, settings.streams.key(REVOCATIONS), keys=keys)
    task = await revocations.start()        # replays what is live, then follows in the background
    verifier = Verifier(..., is_revoked=revocations.is_revoked)

Entries: {type: alluse.security.revoked, kind: "jti", value: <jti>, until: <epoch>} refuses one
token; {..., kind: "user", value: <sub>, at: <epoch>, until: <epoch>} refuses the subject's
tokens issued at or before `at`. Each is signed by the security service; any other entry is
refused: never applied, and (in the security service, which owns the stream: `dead_letters`)
copied to `<stream>.dlq` with the reason and deleted from the stream, as every consumer does
with bad input; other readers log it. One that cannot be checked yet (no JWKS) is waited for,
in stream order.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from shared.contracts.trust import REVOKED, owner
from shared.infra.runtime import metrics
from shared.infra.runtime.redisclient import streams_read
from shared.infra.stream.messaging import Rejected, dead_letter_fields
from shared.infra.trust.keys import KeySet, KeysUnavailable
from shared.infra.trust.signing import signer_of, text_fields

log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class Revocations:
    def __init__(
        self,
        redis: Redis,
        stream_key: str,
        *,
        keys: KeySet,
        block_ms: int = 500,
        clock: Callable[[], float] = time.time,
        dead_letters: str | None = None,
    ) -> None:
        self.redis, self.stream, self.block_ms, self.clock = redis, stream_key, block_ms, clock
        self.keys, self.dead_letters = keys, dead_letters
        self.jtis: dict[str, float] = {}  # jti -> until
        self.users: dict[str, tuple[float, float]] = {}  # sub -> (issued at or before, until)
        self.last_id = "0"
        self.caught_up = asyncio.Event()

    def apply(self, raw: dict[Any, Any]) -> str | None:
        """In force from now on; returns why not when the entry is malformed."""
        try:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            kind, value, until = fields["kind"], fields["value"], float(fields["until"])
            if kind == "jti":
                self.jtis[value] = max(until, self.jtis.get(value, 0.0))
            elif kind == "user":
                at = float(fields["at"])
                old_at, old_until = self.users.get(value, (0.0, 0.0))
                self.users[value] = (max(at, old_at), max(until, old_until))
            else:
                return f"revocation of unknown kind {kind!r}"
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            return f"malformed revocation entry: {type(exc).__name__} {exc}"
        return None

    async def poll(self, block_ms: int | None) -> int:
        """Read what is new (waiting up to block_ms when given); returns the entries applied."""
        reply: Any = await self.redis.xread({self.stream: self.last_id}, count=1000, block=block_ms)
        n = 0
        for _, entries in streams_read(reply):
            for entry_id, fields in entries:
                # KeysUnavailable: this entry (and those after it) wait
                problem = await self.refusal(fields) or self.apply(fields)
                if problem is not None:
                    await self.refuse(entry_id, fields, problem)
                self.last_id = _text(entry_id)
                n += 1
        return n

    async def refusal(self, raw: dict[Any, Any]) -> str | None:
        """Why the entry is not the security service's revocation; None when it is."""
        try:
            fields = text_fields(raw)
            signer = await signer_of(self.keys, fields)
            if fields.get("type") != REVOKED or signer != owner(REVOKED, ""):
                return (
                    f"forbidden: revocations are taken only from the security service, not {signer}"
                )
        except Rejected as r:
            return f"{r.code}: {r.reason}"
        except UnicodeDecodeError:
            return "not UTF-8"
        return None

    async def refuse(self, entry_id: Any, raw: dict[Any, Any], reason: str) -> None:
        """Never applied; the stream's owner dead-letters it (the copy first, then the delete:
        a crash in between dead-letters it twice, never loses it)."""
        log.warning("revocation entry %s refused: %s", _text(entry_id), reason)
        if self.dead_letters is None:
            return
        copy = dead_letter_fields(
            raw,
            reason=reason,
            stream=self.stream,
            entry_id=_bytes(entry_id),
            deliveries=1,
            refused_writer=True,
        )
        await self.redis.xadd(self.dead_letters, copy)  # type: ignore[arg-type]
        await self.redis.xdel(self.stream, entry_id)
        metrics.DEAD.labels(self.stream).inc()

    def prune(self) -> None:
        now = self.clock()
        self.jtis = {k: u for k, u in self.jtis.items() if u > now}
        self.users = {k: v for k, v in self.users.items() if v[1] > now}

    async def catch_up(self) -> None:
        while await self.poll(None):
            pass
        self.prune()
        self.caught_up.set()

    async def follow(self) -> None:
        """Apply new entries as they come, forever; outlives Redis outages."""
        while True:
            try:
                if not self.caught_up.is_set():
                    await self.catch_up()
                await self.poll(self.block_ms)
                self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocations: %s; retrying", exc)
                await asyncio.sleep(1)

    async def start(self) -> "asyncio.Task[None]":
        """Replay the live revocations before returning, then follow in a background task."""
        try:
            await self.catch_up()
        except KeysUnavailable as exc:  # followed as soon as the JWKS answers
            log.warning("revocations not replayed yet: %s", exc)
        return asyncio.create_task(self.follow(), name=f"revocations {self.stream}")

    def is_revoked(self, claims: dict[str, Any]) -> bool:
        now = self.clock()
        until = self.jtis.get(str(claims.get("jti")))
        if until is not None and until > now:
            return True
        user = self.users.get(str(claims.get("sub")))
        if user is not None and user[1] > now:
            return float(claims.get("iat", 0)) <= user[0]
        return False
