"""Verifies the bearer token of every command locally, against the security service's JWKS."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from shared.contracts.permissions import REQUIRED, allows
from shared.infra.messaging import Rejected

ALGORITHMS = ["EdDSA", "ES256"]  # asymmetric only: never "none", never HMAC
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "role"]


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    token_id: str


class Verifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        is_revoked: Callable[[dict[str, Any]], bool] = lambda _: False,
    ) -> None:
        # PyJWKClient caches the key set and refetches it when it meets an unknown kid.
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self.issuer, self.audience, self.is_revoked = issuer, audience, is_revoked
        self._keys: dict[str, Any] = {}
        self._verified: dict[str, dict[str, Any]] = {}

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Rejected("unauthorized", "missing 'authorization: Bearer <token>'")
        try:
            claims = await self._claims(token)
        except jwt.PyJWKClientError as exc:
            raise Rejected("unauthorized", f"token signing key not recognised: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise Rejected("unauthorized", f"invalid token: {exc}") from exc
        if self.is_revoked(claims):
            raise Rejected("unauthorized", "token has been revoked")
        return Principal(
            subject=str(claims["sub"]), role=str(claims["role"]), token_id=str(claims["jti"])
        )

    async def _claims(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        now = time.time()
        if cached is not None and cached["nbf"] <= now < cached["exp"]:
            return cached
        kid = str(jwt.get_unverified_header(token).get("kid", ""))
        key = self._keys.get(kid)
        if key is None:  # unknown here: fetch the key set again (off the event loop)
            key = self._keys[kid] = (await asyncio.to_thread(self.jwks.get_signing_key, kid)).key
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=self.audience,
            issuer=self.issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        if len(self._verified) >= 4096:
            self._verified.clear()
        self._verified[token] = claims  # an engine sends many commands with one token
        return claims

    async def authorize(self, authorization: str | None, message_type: str) -> Principal:
        """The caller, if its token is valid and its role may send this message type."""
        who = await self.principal(authorization)
        needed = REQUIRED.get(message_type)
        if needed is None:
            raise Rejected("unknown_type", f"unknown message type '{message_type}'")
        if not allows(who.role, needed):
            raise Rejected(
                "forbidden", f"role '{who.role}' lacks permission '{needed}' for {message_type}"
            )
        return who
