"""Where the CLI's token comes from, and its renewal during a long run.

Never from argv (it would show in `ps`), never printed: --token-file, ALLUSE_TOKEN_FILE,
ALLUSE_TOKEN, or client credentials exchanged at ALLUSE_TOKEN_URL.
"""

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path

from services.cli.output import REJECTED, UNAVAILABLE, USAGE, CliError
from shared.tooling import credentials

DEFAULT_TOKEN_URL = "http://127.0.0.1:8081/oauth/token"  # noqa: S105 - a URL, not a secret


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


RENEW_MARGIN = 120.0  # seconds: a long run takes a fresh token when less than this is left


async def renewed(
    token: str,
    token_file: str | None,
    env: Mapping[str, str] = os.environ,
    margin: float = RENEW_MARGIN,
) -> str:
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
