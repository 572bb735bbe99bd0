"""Tokens as a machine client gets them (client credentials at ALLUSE_TOKEN_URL, as the CLI
does), renewed well before they expire; while the issuer is down (a chaos fault) the current
token is kept."""

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

from shared.tooling.credentials import TokenError, client_credentials

RENEW_AFTER_S = 240.0  # access tokens live 15 minutes by default


class Tokens:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.url, self.client_id = env["ALLUSE_TOKEN_URL"], env["ALLUSE_CLIENT_ID"]
        self.secret = Path(env["ALLUSE_CLIENT_SECRET_FILE"]).read_text().strip()
        self.current, self.fetched_at = "", 0.0

    async def token(self) -> str:
        if self.current and time.monotonic() - self.fetched_at < RENEW_AFTER_S:
            return self.current
        try:
            self.current = await asyncio.to_thread(
                client_credentials, self.url, self.client_id, self.secret
            )
            self.fetched_at = time.monotonic()
        except TokenError:
            if not self.current:
                raise
            self.fetched_at = time.monotonic() - RENEW_AFTER_S + 5  # try again in 5 s
        return self.current
