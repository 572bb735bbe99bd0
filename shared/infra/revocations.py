"""Follows the security service's revocation stream, so every Verifier refuses revoked tokens.

    revocations = Revocations(redis, settings.streams.key(REVOCATIONS), keys=keys)
    task = await revocations.start()        # replays what is live, then follows in the background
    verifier = Verifier(..., is_revoked=revocations.is_revoked)

Entries: {type: alluse.security.revoked, kind: "jti", value: <jti>, until: <epoch>} refuses one
token; {..., kind: "user", value: <sub>, at: <epoch>, until: <epoch>} refuses the subject's
tokens issued at or before `at`. Each is signed by the security service; any other is ignored
(and logged), and one that cannot be checked yet (no JWKS) is waited for, in stream order.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from shared.contracts.trust import REVOKED, owner
from shared.infra.keys import KeySet, KeysUnavailable
from shared.infra.messaging import Rejected
from shared.infra.signing import signer_of, text_fields

log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Revocations:
    def __init__(
        self,
        redis: Redis,
        stream_key: str,
        *,
        keys: KeySet,
        block_ms: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis, self.stream, self.block_ms, self.clock = redis, stream_key, block_ms, clock
        self.keys = keys
        self.jtis: dict[str, float] = {}  # jti -> until
        self.users: dict[str, tuple[float, float]] = {}  # sub -> (issued at or before, until)
        self.last_id = "0"
        self.caught_up = asyncio.Event()

    def apply(self, raw: dict[Any, Any]) -> None:
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
                log.warning("revocation of unknown kind %r ignored", kind)
        except (KeyError, ValueError, UnicodeDecodeError):
            log.warning("malformed revocation entry ignored: %r", raw)

    async def poll(self, block_ms: int | None) -> int:
        """Read what is new (waiting up to block_ms when given); returns the entries applied."""
        reply: Any = await self.redis.xread({self.stream: self.last_id}, count=1000, block=block_ms)
        n = 0
        for _, entries in reply.items() if isinstance(reply, dict) else reply:  # RESP3 or RESP2
            for entry_id, fields in entries:
                if await self.authentic(entry_id, fields):  # KeysUnavailable: this entry waits
                    self.apply(fields)
                self.last_id = _text(entry_id)
                n += 1
        return n

    async def authentic(self, entry_id: Any, raw: dict[Any, Any]) -> bool:
        try:
            fields = text_fields(raw)
            signer = await signer_of(self.keys, fields)
            if fields.get("type") != REVOKED or signer != owner(REVOKED, ""):
                raise Rejected(
                    "forbidden",
                    f"revocations are taken only from the security service, not {signer}",
                )
        except Rejected as r:
            log.warning("revocation entry %s refused: %s", _text(entry_id), r.reason)
            return False
        except UnicodeDecodeError:
            log.warning("revocation entry %s refused: not UTF-8", _text(entry_id))
            return False
        return True

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
