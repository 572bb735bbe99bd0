"""Tokens as the CLI gets them (client credentials at ALLUSE_TOKEN_URL), renewed well before
they expire; while the issuer is down (a chaos fault) the current token is kept."""

import asyncio
import time
from collections.abc import Mapping

from services.cli.client import CliError, resolve_token

RENEW_AFTER_S = 240.0  # access tokens live 15 minutes by default


class Tokens:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.current, self.fetched_at = "", 0.0

    async def token(self) -> str:
        if self.current and time.monotonic() - self.fetched_at < RENEW_AFTER_S:
            return self.current
        try:
            self.current = await asyncio.to_thread(resolve_token, None, self.env)
            self.fetched_at = time.monotonic()
        except CliError:
            if not self.current:
                raise
            self.fetched_at = time.monotonic() - RENEW_AFTER_S + 5  # try again in 5 s
        return self.current
