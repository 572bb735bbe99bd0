"""A token as a machine client gets one (RFC 6749 client credentials at the security
service), and the subject of our own token: for the CLI and for the load of soak and chaos."""

import base64
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Literal

Problem = Literal["usage", "refused", "unavailable"]


class TokenError(Exception):
    """`problem` says whose to fix: the caller's settings, the issuer's refusal, or the issuer
    being out of reach."""

    def __init__(self, message: str, problem: Problem) -> None:
        super().__init__(message)
        self.message, self.problem = message, problem


def redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def client_credentials(url: str, client_id: str, secret: str, timeout: float = 10) -> str:
    """RFC 6749 section 4.4, client authenticated with HTTP Basic (section 2.3.1)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise TokenError(f"ALLUSE_TOKEN_URL must be http(s): {redacted(url)}", "usage")
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError, OSError):
            err = json.loads(exc.read())
            detail = f"{err.get('error')}: {err.get('error_description', '')}"
            raise TokenError(f"token request refused: {detail}", "refused") from None
        raise TokenError(f"token request refused: HTTP {exc.code}", "refused") from None
    except (OSError, ValueError) as exc:
        raise TokenError(
            f"token issuer {redacted(url)} unreachable: {exc}", "unavailable"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise TokenError(f"token issuer {redacted(url)} sent no access_token", "unavailable")
    return str(body["access_token"])


def token_subject(token: str) -> str:
    """The `sub` of our own token (not verified here: the services verify it), naming the only
    reply streams the account service will answer on."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise TokenError("the token is not a JWT with a subject", "usage") from None
