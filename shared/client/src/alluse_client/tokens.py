"""Access tokens for a machine client: OAuth 2.0 client credentials at the security service.

tokens = ClientCredentials("http://security:8081/oauth/token", "ws4-gateway", secret)
bearer = await tokens.token()    # renewed when less than `margin` seconds are left
"""

import asyncio
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class TokenError(Exception):
    """The token endpoint refused the credentials or could not be reached."""


def claims(token: str) -> dict[str, Any]:
    """The token's claims, unverified (the platform verifies it; we read `exp` and `sub`)."""
    try:
        payload = token.split(".")[1]
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise TokenError("the token is not a JWT") from exc
    if not isinstance(body, dict):
        raise TokenError("the token's claims are not an object")
    return body


class ClientCredentials:
    """RFC 6749 section 4.4, the client authenticated with HTTP Basic; renewed ahead of expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        margin: float = 60.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if urllib.parse.urlsplit(token_url).scheme not in ("http", "https"):
            raise ValueError(f"the token URL must be http(s): {token_url!r}")
        self.url, self.client_id, self._secret = token_url, client_id, client_secret.strip()
        self.margin, self.timeout, self.clock = margin, timeout, clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    @property
    def subject(self) -> str:
        """The client id the platform knows this client by (the token's `sub`)."""
        return self.client_id

    async def token(self) -> str:
        """A token with more than `margin` seconds left, fetched anew when needed."""
        async with self._lock:
            if self._token is None or self._expires - self.clock() <= self.margin:
                token, self._expires = await asyncio.to_thread(self._fetch)
                self._token = token
                return token
            return self._token

    def _fetch(self) -> tuple[str, float]:
        basic = base64.b64encode(
            f"{urllib.parse.quote_plus(self.client_id)}:{urllib.parse.quote_plus(self._secret)}".encode()
        ).decode()
        request = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.url,
            data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        now = self.clock()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:  # noqa: S310
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise TokenError(f"token request refused ({exc.code}): {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TokenError(f"token endpoint unreachable: {exc}") from None
        token = str(body["access_token"])
        exp = claims(token).get("exp")
        if isinstance(exp, int | float):
            return token, float(exp)
        return token, now + float(body.get("expires_in", 300))


class StaticToken:
    """A token given as is (e.g. read from a file by the caller); never renewed."""

    def __init__(self, token: str) -> None:
        self._token = token.strip().removeprefix("Bearer ").strip()

    @property
    def subject(self) -> str:
        return str(claims(self._token).get("sub", ""))

    async def token(self) -> str:
        return self._token
