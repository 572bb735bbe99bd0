"""What an operator's tool needs to talk to the services: connection, token, stream client.

Commands are XADDed as CloudEvents and their outcome is read back from the account events
stream by `causationid`; queries carry a private `replyto` stream the service answers on.
"""

import asyncio
import contextlib
import itertools
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from redis.asyncio import Redis

from services.cli.output import REJECTED, TIMEOUT, UNAVAILABLE, USAGE
from shared.contracts.envelope import CloudEvent, EnvelopeError, decode, new_event
from shared.contracts.messages import COMMAND_REJECTED, QUERY_FAILED
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EVENTS, ACCOUNT_QUERIES, Streams
from shared.contracts.trust import reply_namespace
from shared.infra import credentials

DEFAULT_TOKEN_URL = "http://127.0.0.1:8081/oauth/token"  # noqa: S105 - a URL, not a secret
SOURCE = f"alluse-cli/{socket.gethostname()}"
Done = Callable[[list[CloudEvent]], bool]


class CliError(Exception):
    """Something the operator must fix or know about, with the exit code that says which."""

    def __init__(self, message: str, code: int, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.data = message, code, dict(data or {})


def rejected(data: Mapping[str, Any]) -> CliError:
    return CliError(f"rejected: {data.get('code')}: {data.get('reason')}", REJECTED, data)


def redis_url(env: Mapping[str, str] = os.environ) -> str:
    url = env.get("REDIS_URL") or env.get("ALLUSE_REDIS_URL")
    if not url:
        raise CliError("REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/0)", USAGE)
    return url


redacted = credentials.redacted


# --- the token: never from argv (it would show in `ps`), never printed ---------------------


def resolve_token(token_file: str | None, env: Mapping[str, str] = os.environ) -> str:
    """--token-file, ALLUSE_TOKEN_FILE, ALLUSE_TOKEN, then client credentials from the issuer."""
    path = token_file or env.get("ALLUSE_TOKEN_FILE")
    if path:
        return _jwt(_read_secret(path, "token file"), f"token file {path}")
    if env.get("ALLUSE_TOKEN"):
        return _jwt(env["ALLUSE_TOKEN"], "ALLUSE_TOKEN")
    client_id, secret_file = env.get("ALLUSE_CLIENT_ID"), env.get("ALLUSE_CLIENT_SECRET_FILE")
    if client_id and secret_file:
        url = env.get("ALLUSE_TOKEN_URL") or DEFAULT_TOKEN_URL
        return _jwt(
            client_credentials(url, client_id, _read_secret(secret_file, "secret file")), url
        )
    raise CliError(
        "no token: use --token-file PATH, or set ALLUSE_TOKEN_FILE or ALLUSE_TOKEN, "
        "or ALLUSE_CLIENT_ID with ALLUSE_CLIENT_SECRET_FILE",
        USAGE,
    )


def _read_secret(path: str, what: str) -> str:
    try:
        value = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {what} {path}: {type(exc).__name__}", USAGE) from None
    if not value:
        raise CliError(f"{what} {path} is empty", USAGE)
    return value


def _jwt(value: str, origin: str) -> str:
    token = value.strip().removeprefix("Bearer ").strip()
    if token.count(".") != 2 or any(c.isspace() for c in token):
        raise CliError(f"{origin} does not hold a JWT", USAGE)
    return token


CODES = {"usage": USAGE, "refused": REJECTED, "unavailable": UNAVAILABLE}


def client_credentials(url: str, client_id: str, secret: str, timeout: float = 10) -> str:
    try:
        return credentials.client_credentials(url, client_id, secret, timeout)
    except credentials.TokenError as exc:
        raise CliError(exc.message, CODES[exc.problem]) from None


def token_subject(token: str) -> str:
    try:
        return credentials.token_subject(token)
    except credentials.TokenError as exc:
        raise CliError(exc.message, CODES[exc.problem]) from None


# --- waiting, visibly -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def progress(
    label: str, out: TextIO | None = None, after: float = 1.0
) -> AsyncIterator[None]:
    """A spinner with elapsed seconds on stderr, once a wait passes `after`; TTYs only."""
    out = out or sys.stderr
    if not out.isatty():
        yield
        return
    task = asyncio.create_task(_spin(label, out, after))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _spin(label: str, out: TextIO, after: float) -> None:
    start = time.monotonic()
    await asyncio.sleep(after)
    try:
        for frame in itertools.cycle("|/-\\"):
            out.write(f"\r{frame} {label} {time.monotonic() - start:4.1f}s")
            out.flush()
            await asyncio.sleep(0.1)
    finally:
        out.write("\r\033[K")
        out.flush()


# --- the stream client ----------------------------------------------------------------------


@dataclass
class StreamClient:
    redis: Redis
    streams: Streams
    token: str
    timeout: float = 10.0
    source: str = SOURCE

    async def command(
        self, type_: str, data: dict[str, Any], *, done: Done, subject: str | None = None,
        event_id: str | None = None,
    ) -> list[CloudEvent]:  # fmt: skip
        """XADD a command, return the events it caused once `done` says they are all here."""
        events = self.streams.key(ACCOUNT_EVENTS)
        # Where the stream ends now, before the XADD, so the outcome cannot slip past us.
        last = await self.redis.xrevrange(events, count=1)
        cursor: Any = last[0][0] if last else "0-0"
        fields = new_event(type_, self.source, data, subject=subject, event_id=event_id or str(uuid.uuid4()),
                           authorization=f"Bearer {self.token}")  # fmt: skip
        await self.redis.xadd(self.streams.key(ACCOUNT_COMMANDS), fields)  # type: ignore[arg-type]
        found: list[CloudEvent] = []
        deadline = time.monotonic() + self.timeout
        async with progress(f"waiting for the outcome of {type_}"):
            while True:
                for _, entries in await self._read({events: cursor}, deadline):
                    for entry_id, raw in entries:
                        cursor = entry_id
                        ev = _decoded(raw)
                        if ev is not None and ev.causationid == fields["id"]:
                            found.append(ev)
                if any(e.type == COMMAND_REJECTED for e in found):
                    raise rejected(next(e.data for e in found if e.type == COMMAND_REJECTED))
                if found and done(found):
                    return found

    async def query(
        self, type_: str, data: dict[str, Any], *, subject: str | None = None
    ) -> dict[str, Any]:
        """XADD a query with a private reply stream; return the answer's data."""
        box = reply_namespace(self.streams.prefix, token_subject(self.token)) + uuid.uuid4().hex
        fields = new_event(type_, self.source, data, subject=subject, replyto=box,
                           authorization=f"Bearer {self.token}")  # fmt: skip
        await self.redis.xadd(self.streams.key(ACCOUNT_QUERIES), fields)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.timeout
        try:
            async with progress(f"waiting for the answer to {type_}"):
                while True:
                    got = await self._read({box: "0-0"}, deadline)
                    if got:
                        break
        finally:
            await self.redis.delete(box)
        reply = _decoded(got[0][1][0][1])
        if reply is None:
            raise CliError(f"unreadable reply on {box}", UNAVAILABLE)
        if reply.type == QUERY_FAILED:
            raise rejected(reply.data)
        return reply.data

    async def _read(self, streams: dict[Any, Any], deadline: float) -> list[Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CliError(
                f"no outcome within {self.timeout:g}s (is the account service running?)", TIMEOUT
            )
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
