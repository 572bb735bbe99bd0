"""Verifies bearer tokens locally, against the access-token keys of the security service's JWKS.

Whatever is wrong with a token (malformed, wrong algorithm for its key, unknown or withdrawn
kid, expired beyond the 30 s leeway, revoked) is that entry's `unauthorized`, never an
exception that fails its batch; only KeysUnavailable (the JWKS cannot be fetched) escapes,
so the entry waits for the keys instead of being refused.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from shared.contracts.permissions import PORTFOLIOS_CLAIM, REQUIRED, Scope, allows
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.keys import KeySet, KeysUnavailable, UnknownKey

REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "role"]
LEEWAY_SECONDS = 30  # clock skew between the security service and its readers
CACHE_MAX = 4096


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    token_id: str
    # The portfolios it may act on and read (docs/scopes.md): by role, or the token's claim.
    scope: Scope = field(default_factory=Scope)


class Lapsed(Rejected):
    """`unauthorized` for a genuine token that no longer admits anything (expired, or revoked):
    its signature holds, so `who` wrote the entry is still proven (Verifier.authorize: only
    for a type its role may send). Such an entry is never applied, but one its key already
    applied is answered as that entry's duplicate (shared/infra/stream/pipeline.py,
    docs/lanes.md)."""

    def __init__(self, reason: str, who: Principal) -> None:
        super().__init__("unauthorized", reason)
        self.who = who


class Verifier:
    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        is_revoked: Callable[[dict[str, Any]], bool] = lambda _: False,
    ) -> None:
        self.keys, self.issuer, self.audience, self.is_revoked = keys, issuer, audience, is_revoked
        # An engine sends many entries with one token: verified once, then looked up.
        self._verified: dict[str, tuple[dict[str, Any], str]] = {}

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Rejected("unauthorized", "missing 'authorization: Bearer <token>'")
        expired = None
        try:
            try:
                claims = await self._claims(token)
            except jwt.ExpiredSignatureError as exc:  # genuine otherwise? then still its writer's
                expired = f"invalid token: {str(exc)[:200]}"
                claims = await self._claims(token, expired_ok=True)
        except KeysUnavailable:
            raise
        except UnknownKey as exc:
            raise Rejected("unauthorized", f"token signing key not recognised: {exc}") from None
        except Exception as exc:  # poison of any kind stays this entry's refusal
            raise Rejected("unauthorized", expired or f"invalid token: {str(exc)[:200]}") from None
        role = str(claims["role"])
        who = Principal(
            subject=str(claims["sub"]),
            role=role,
            token_id=str(claims["jti"]),
            scope=Scope.of(role, claims.get(PORTFOLIOS_CLAIM)),
        )
        if expired is not None:
            raise Lapsed(expired, who)
        if self.is_revoked(claims):
            raise Lapsed("token has been revoked", who)
        return who

    async def _claims(self, token: str, *, expired_ok: bool = False) -> dict[str, Any]:
        """The token's claims, all checked (with `expired_ok`, all but its expiry: not cached)."""
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            claims, kid = cached
            live = claims["nbf"] - LEEWAY_SECONDS <= now < claims["exp"] + LEEWAY_SECONDS
            if live and self.keys.known(kid):
                return claims
        kid = str(jwt.get_unverified_header(token).get("kid") or "")
        if not kid:
            raise jwt.InvalidTokenError("the token names no signing key (kid)")
        key = await self.keys.get(kid)
        if key.service is not None:
            raise jwt.InvalidTokenError("a service's entry-signing key never signs a token")
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm],  # only the algorithm the JWK names for this kid
            audience=self.audience,
            issuer=self.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS, "verify_exp": not expired_ok},
        )
        if expired_ok:
            return claims
        if len(self._verified) >= CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (claims, kid)
        return claims

    async def authorize(self, authorization: str | None, message_type: str) -> Principal:
        """The caller, if its token is valid and its role may send this message type. A
        lapsed token (Lapsed) proves its writer only for a type its role may send: for any
        other, it is refused as an invalid token, naming no writer."""
        try:
            who = await self.principal(authorization)
        except Lapsed as lapsed:
            try:
                permit(lapsed.who, message_type)
            except Rejected:
                raise Rejected(lapsed.code, lapsed.reason) from None
            raise
        return permit(who, message_type)


def permit(who: Principal, message_type: str) -> Principal:
    needed = REQUIRED.get(message_type)
    if needed is None:
        raise Rejected("unknown_type", f"unknown message type '{message_type[:100]}'")
    if not allows(who.role, needed):
        raise Rejected(
            "forbidden", f"role '{who.role}' lacks permission '{needed}' for {message_type}"
        )
    return who
