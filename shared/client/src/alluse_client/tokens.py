"""Access tokens: OAuth 2.0 at the security service.

tokens = ClientCredentials("http://security:8081/oauth/token", "ws4-gateway", secret)
bearer = await tokens.token()    # renewed when less than `margin` seconds are left

`request_token` posts any grant (a person's password, a refresh token) and `revoke` ends a
token (RFC 7009), for tools that sign people in; both block, so run them in a thread.
"""

import asyncio
import base64
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class TokenError(Exception):
    """The token endpoint refused the credentials or could not be reached."""


class TokenRefused(TokenError):
    """The issuer answered and said no (bad password, spent refresh token, unknown client):
    asking again with the same credentials will not help."""

    def __init__(self, error: str, description: str = "") -> None:
        said = f"{error}: {description}" if description else error
        super().__init__(f"token request refused: {said}")
        self.error, self.description = error, description


class IssuerUnreachable(TokenError):
    """No usable answer from the issuer (down, not HTTP(S), not speaking OAuth): try later."""


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


def redacted(url: str) -> str:
    """The URL without its credentials or query, fit for a message or a log line."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _post(url: str, form: dict[str, str], basic: tuple[str, str] | None, timeout: float) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise IssuerUnreachable(f"token URL must be http(s): {redacted(url)}")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if basic is not None:  # RFC 6749 section 2.3.1: both parts form-encoded, then Basic
        pair = f"{urllib.parse.quote_plus(basic[0])}:{urllib.parse.quote_plus(basic[1])}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (checked)
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError, OSError):
            err = json.loads(exc.read())
            raise TokenRefused(
                str(err.get("error")), str(err.get("error_description", ""))
            ) from None
        raise TokenRefused(f"HTTP {exc.code}") from None
    except OSError as exc:
        raise IssuerUnreachable(f"token issuer {redacted(url)} unreachable: {exc}") from None


def request_token(
    url: str,
    form: dict[str, str],
    *,
    basic: tuple[str, str] | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """POST one grant (RFC 6749: client_credentials, password, refresh_token) to the token
    endpoint; the JSON answer, which always has an `access_token`. Blocking: callers on an
    event loop run it in a thread. TokenRefused or IssuerUnreachable otherwise."""
    try:
        body = json.loads(_post(url, form, basic, timeout))
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise IssuerUnreachable(f"token issuer {redacted(url)} sent no access_token")
    return body


def client_credentials(
    url: str, client_id: str, client_secret: str, *, timeout: float = 10.0
) -> dict[str, Any]:
    """RFC 6749 section 4.4, the client authenticated with HTTP Basic (blocking)."""
    form = {"grant_type": "client_credentials"}
    return request_token(url, form, basic=(client_id, client_secret), timeout=timeout)


def revoke(url: str, token: str, *, timeout: float = 10.0) -> None:
    """RFC 7009 at the revocation endpoint (blocking): the issuer answers the same whether or
    not the token was live."""
    _post(url, {"token": token}, None, timeout)


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
        now = self.clock()
        body = client_credentials(self.url, self.client_id, self._secret, timeout=self.timeout)
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
