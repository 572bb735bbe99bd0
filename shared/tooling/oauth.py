"""The security service's OAuth endpoints as a client sees them (RFC 6749 token, RFC 7009 revoke).

Blocking (urllib): callers on an event loop run these in a thread.
"""

import base64
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class OAuthRefused(Exception):
    """The issuer answered and said no (bad password, spent refresh token, unknown client)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error, self.description = error, description


class IssuerUnreachable(Exception):
    """No usable answer from the issuer: down, not HTTP(S), or not speaking OAuth."""


def redacted(url: str) -> str:
    """The URL without its credentials, for messages."""
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
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError, OSError):
            err = json.loads(exc.read())
            raise OAuthRefused(
                str(err.get("error")), str(err.get("error_description", ""))
            ) from None
        raise OAuthRefused(f"HTTP {exc.code}", "") from None
    except OSError as exc:
        raise IssuerUnreachable(f"token issuer {redacted(url)} unreachable: {exc}") from None


def token(
    url: str, form: dict[str, str], *, basic: tuple[str, str] | None = None, timeout: float = 10
) -> dict[str, Any]:
    """POST a grant to the token endpoint; the JSON answer, which always has an access_token."""
    try:
        body = json.loads(_post(url, form, basic, timeout))
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise IssuerUnreachable(f"token issuer {redacted(url)} sent no access_token")
    return body


def revoke(url: str, value: str, *, timeout: float = 10) -> None:
    """RFC 7009: the issuer answers the same whether or not the token was live."""
    _post(url, {"token": value}, None, timeout)
