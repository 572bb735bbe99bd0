"""What an operator's tool needs to talk to the services: connection, keys, stream client.

The stream client itself lives in shared/tooling/client.py (the web console uses it too); here
its refusals become exit codes and its waits a spinner.
"""

import asyncio
import contextlib
import itertools
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import alluse_client
from services.cli.output import TIMEOUT, USAGE, CliError, rejected
from services.cli.tokens import CODES, RENEW_MARGIN, renewed
from shared.contracts.envelope import CloudEvent
from shared.infra.trust.keys import KeySet
from shared.tooling import client as shared
from shared.tooling import credentials
from shared.tooling.client import Done, until

__all__ = ["Done", "StreamClient", "redacted", "until"]

DEFAULT_JWKS_URL = "http://127.0.0.1:8081/.well-known/jwks.json"
SOURCE = f"alluse-cli/{socket.gethostname()}"


def redis_url(env: Mapping[str, str] = os.environ) -> str:
    url = env.get("REDIS_URL") or env.get("ALLUSE_REDIS_URL")
    if not url:
        raise CliError("REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/0)", USAGE)
    return url


redacted = credentials.redacted


def platform_keys(env: Mapping[str, str] = os.environ) -> KeySet:
    """The keys the platform publishes, for what only the platform signs (dead letters)."""
    return KeySet.from_url(jwks_url(env))


def outcome_keys(env: Mapping[str, str] = os.environ) -> alluse_client.KeySet:
    """The same keys, as the client library checks entries with them: an outcome or an answer
    is believed only with its writer's signature."""
    return alluse_client.KeySet.from_url(jwks_url(env))


def jwks_url(env: Mapping[str, str]) -> str:
    return env.get("ALLUSE_JWKS_URL") or DEFAULT_JWKS_URL


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


# --- the stream client: the shared one, its refusals turned into exit codes ---------------


@dataclass
class StreamClient(shared.StreamClient):
    source: str = SOURCE
    waiting: shared.Waiting = field(default=progress)
    token_file: str | None = None  # where the token came from (see resolve_token)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    async def fresh_token(self, margin: float = RENEW_MARGIN) -> str:
        """The token, renewed from its source before it expires (see `renewed`); queries and
        commands use it from then on. A run longer than a token's life calls this each step."""
        self.token = await renewed(self.token, self.token_file, self.env, margin)
        return self.token

    async def command(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        done: Done,
        subject: str | None = None,
        event_id: str | None = None,
    ) -> list[CloudEvent]:
        with _translated():
            return await super().command(type_, data, done=done, subject=subject, event_id=event_id)

    async def query(
        self, type_: str, data: dict[str, Any], *, subject: str | None = None
    ) -> dict[str, Any]:
        with _translated():
            return await super().query(type_, data, subject=subject)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except shared.Refused as exc:
        raise rejected(exc.data) from None
    except shared.NoAnswer as exc:
        raise CliError(str(exc), TIMEOUT) from None
    except credentials.TokenError as exc:
        raise CliError(exc.message, CODES[exc.problem]) from None
