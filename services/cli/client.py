"""What an operator's tool needs to talk to the services: connection, token, stream client.

The stream client itself lives in shared/infra/client.py (the web console uses it too); here
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
from pathlib import Path
from typing import Any, TextIO

from services.cli.output import REJECTED, TIMEOUT, UNAVAILABLE, USAGE
from shared.contracts.envelope import CloudEvent
from shared.infra import client as shared
from shared.infra import credentials
from shared.infra.client import Done, until
from shared.infra.keys import KeySet

__all__ = ["CliError", "Done", "StreamClient", "redacted", "until"]

DEFAULT_TOKEN_URL = "http://127.0.0.1:8081/oauth/token"  # noqa: S105 - a URL, not a secret
DEFAULT_JWKS_URL = "http://127.0.0.1:8081/.well-known/jwks.json"
SOURCE = f"alluse-cli/{socket.gethostname()}"


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


def platform_keys(env: Mapping[str, str] = os.environ) -> KeySet:
    """The keys the platform publishes: an answer is believed only with its writer's signature."""
    return KeySet.from_url(env.get("ALLUSE_JWKS_URL") or DEFAULT_JWKS_URL)


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


def _seconds_left(token: str) -> float:
    try:
        expires = credentials.token_expires_at(token)
    except credentials.TokenError as exc:
        raise CliError(exc.message, CODES[exc.problem]) from None
    return float("inf") if expires is None else expires - time.time()


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


# --- the stream client: the shared one, its refusals turned into exit codes ---------------


RENEW_MARGIN = 120.0  # seconds: a long run takes a fresh token when less than this is left


async def renewed(
    token: str, token_file: str | None, env: Mapping[str, str] = os.environ,
    margin: float = RENEW_MARGIN,
) -> str:  # fmt: skip
    """`token`, or a fresh one from its source (the token file, read again; client credentials,
    asked again) when less than `margin` seconds of it are left. A source that gives nothing
    fresher (a fixed ALLUSE_TOKEN) stops the run with a clear message rather than refusals."""
    if _seconds_left(token) > margin:
        return token
    fresh = await asyncio.to_thread(resolve_token, token_file, env)
    left = _seconds_left(fresh)
    if left <= margin:
        raise CliError(
            f"the token expires in {max(left, 0):.0f} s and its source has no fresher one: use"
            " client credentials (ALLUSE_CLIENT_ID, ALLUSE_CLIENT_SECRET_FILE) or a token file"
            " that is kept fresh",
            USAGE,
        )
    return fresh


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
