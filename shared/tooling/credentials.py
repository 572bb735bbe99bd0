"""A token as a machine client gets one (RFC 6749 client credentials at the security
service), and the subject of our own token: for the CLI and for the load of soak and chaos."""

import urllib.parse
from collections.abc import Mapping
from typing import Literal

from alluse_client import tokens
from alluse_client.tokens import redacted
from shared.contracts.streams import OPERATOR_LANE

__all__ = [
    "TokenError",
    "client_credentials",
    "default_lane",
    "redacted",
    "token_claims",
    "token_expires_at",
    "token_subject",
]

Problem = Literal["usage", "refused", "unavailable"]


class TokenError(Exception):
    """`problem` says whose to fix: the caller's settings, the issuer's refusal, or the issuer
    being out of reach."""

    def __init__(self, message: str, problem: Problem) -> None:
        super().__init__(message)
        self.message, self.problem = message, problem


def client_credentials(url: str, client_id: str, secret: str, timeout: float = 10) -> str:
    """RFC 6749 section 4.4 through the client library, its failures sorted by whose to fix."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise TokenError(f"ALLUSE_TOKEN_URL must be http(s): {redacted(url)}", "usage")
    try:
        body = tokens.client_credentials(url, client_id, secret, timeout=timeout)
    except tokens.TokenRefused as exc:
        raise TokenError(str(exc), "refused") from None
    except tokens.TokenError as exc:
        raise TokenError(str(exc), "unavailable") from None
    return str(body["access_token"])


def token_subject(token: str) -> str:
    """The `sub` of our own token (not verified here: the services verify it), naming the only
    reply streams the account service will answer on."""
    try:
        return str(_claims(token)["sub"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise TokenError("the token is not a JWT with a subject", "usage") from None


def token_expires_at(token: str) -> float | None:
    """The `exp` of our own token (seconds since the epoch; not verified here), None without."""
    try:
        exp = _claims(token).get("exp")
    except (IndexError, ValueError, TypeError, AttributeError):
        raise TokenError("the token is not a JWT", "usage") from None
    return float(exp) if isinstance(exp, int | float) else None


def token_claims(token: str) -> dict[str, object]:
    """Our own token's claims, unverified (only to choose our lane: the services verify)."""
    try:
        return _claims(token)
    except (IndexError, ValueError, TypeError, AttributeError):
        raise TokenError("the token is not a JWT", "usage") from None


def default_lane(token: str, env: Mapping[str, str]) -> str | None:
    """The lane a tool writes through (docs/lanes.md): $ALLUSE_LANE if set (empty: the shared
    streams, where lanes are open); else a machine client's own (its client id, with client
    credentials), or `operator` for an operator's or admin's token; else none."""
    chosen = env.get("ALLUSE_LANE")
    if chosen is not None:
        return chosen or None
    claims = token_claims(token)
    client = env.get("ALLUSE_CLIENT_ID")
    if client and claims.get("sub") == client:
        return client
    return OPERATOR_LANE if claims.get("role") in ("operator", "admin") else None


def _claims(token: str) -> dict[str, object]:
    try:
        return tokens.claims(token)
    except tokens.TokenError as exc:  # the callers say what they needed the claims for
        raise ValueError(str(exc)) from None
