"""The platform's published keys (the security service's JWKS), cached, and the entry check.

    keys = KeySet.from_url("http://security:8081/.well-known/jwks.json")
    service = await keys.signer_of(fields)   # "integration", or SignatureError

Only the JWKs with a `service` member are entry-signing keys (the others sign access tokens).
A kid not in the cache refetches the set, at most once a second; the set is refetched every
`refresh` seconds anyway. A failed fetch keeps the keys already known, and raises
KeysUnavailable for what it cannot check: retry such an entry later, do not drop it.
"""

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from alluse_client.signatures import SIGNATURE, Proof, SignatureError, b64decode

log = logging.getLogger(__name__)
Fetch = Callable[[], Awaitable[Mapping[str, Any]]]
RETRY_SECONDS = 1.0
VERIFIED_MAX = 4096


class KeysUnavailable(Exception):
    """The key set cannot be fetched now: the entry is retried later, not refused."""


@dataclass(frozen=True)
class ServiceKey:
    kid: str
    service: str  # the platform service this key signs for: account, integration, security
    key: Ed25519PublicKey


def parse_jwks(jwks: Mapping[str, Any]) -> dict[str, ServiceKey]:
    """The entry-signing keys of a JWKS document (Ed25519 JWKs with a `service` member)."""
    keys: dict[str, ServiceKey] = {}
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, dict) or not jwk.get("service"):
            continue
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "kid" not in jwk:
            log.warning("entry-signing key %r is not an Ed25519 JWK: skipped", jwk.get("kid"))
            continue
        try:
            public = Ed25519PublicKey.from_public_bytes(b64decode(str(jwk["x"])))
        except (KeyError, ValueError) as exc:
            log.warning("unusable key %r in the JWKS skipped: %s", jwk.get("kid"), exc)
            continue
        keys[str(jwk["kid"])] = ServiceKey(str(jwk["kid"]), str(jwk["service"]), public)
    return keys


def http_fetch(url: str, timeout: float = 5.0) -> Fetch:
    """GET the JWKS with the standard library, off the event loop."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the JWKS URL must be http(s): {url!r}")

    def get() -> Mapping[str, Any]:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (checked above)
            body: Mapping[str, Any] = json.loads(r.read())
            return body

    async def fetch() -> Mapping[str, Any]:
        return await asyncio.to_thread(get)

    return fetch


class KeySet:
    """The service keys the platform publishes, and the check of each entry's signature."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        refresh: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch, self.refresh, self.clock = fetch, refresh, clock
        self.keys: dict[str, ServiceKey] = {}
        self.fetched_at: float | None = None
        self.tried_at = -RETRY_SECONDS
        # Signed groups already checked: the other entries of a group cost a hash path only.
        self.verified: set[tuple[str, bytes, bytes]] = set()

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> "KeySet":
        return cls(http_fetch(url), **kw)

    @classmethod
    def of(cls, jwks: Mapping[str, Any]) -> "KeySet":
        """A fixed key set (tests, or a JWKS distributed out of band)."""

        async def fixed() -> Mapping[str, Any]:
            return jwks

        return cls(fixed, refresh=float("inf"))

    async def update(self) -> bool:
        """Fetch the set now; False (keeping what is known) when it cannot be had."""
        self.tried_at = self.clock()
        try:
            fresh = parse_jwks(await self.fetch())
        except Exception as exc:
            log.warning("JWKS unavailable: %s", exc)
            return False
        self.keys, self.fetched_at = fresh, self.tried_at
        return True

    async def get(self, kid: str) -> ServiceKey:
        """The key `kid`; SignatureError when the platform does not publish it."""
        now = self.clock()
        stale = self.fetched_at is None or now - self.fetched_at >= self.refresh
        fetched = False
        if (stale or kid not in self.keys) and now - self.tried_at >= RETRY_SECONDS:
            fetched = await self.update()
        key = self.keys.get(kid)
        if key is not None:
            return key
        if not fetched:  # not looked up in a fresh set (outage, or fetched a moment ago)
            raise KeysUnavailable(f"kid {kid[:40]!r} not in the keys at hand; will look again")
        raise SignatureError(f"signing key {kid[:40]!r} is not published")

    async def signer_of(self, fields: Mapping[str, str]) -> str:
        """The service whose published key signed exactly these fields, else SignatureError."""
        proof = Proof(fields.get(SIGNATURE))
        key = await self.get(proof.kid)
        message = proof.message(fields)
        if (proof.kid, proof.signature, message) not in self.verified:
            try:
                key.key.verify(proof.signature, message)
            except InvalidSignature:
                raise SignatureError("signature does not match the entry") from None
            if len(self.verified) >= VERIFIED_MAX:
                self.verified.clear()
            self.verified.add((proof.kid, proof.signature, message))
        return key.service
