"""The security service's published keys (JWKS), cached, refreshed, and dropped when withdrawn.

    keys = KeySet.from_url(settings.jwks_url, refresh=300, grace=60)
    key = await keys.get(kid)   # KeysUnavailable: cannot tell now (wait); UnknownKey: refuse

A kid not in the cache refetches the set (at most once a second: until then the entry waits);
the set is also refetched every `refresh` seconds, and a key absent from a successful fetch is
dropped `grace` seconds later. A failed fetch keeps the keys already known: an outage refuses
nothing it could check, and what it cannot check waits (KeysUnavailable) instead of failing.
"""

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt

log = logging.getLogger(__name__)
Fetch = Callable[[], Awaitable[dict[str, Any]]]
RETRY_SECONDS = 1.0
VERIFIED_MAX = 4096


class KeysUnavailable(Exception):
    """The key set cannot be fetched now: the entry waits and is retried, it is not refused."""


class UnknownKey(Exception):
    """The kid is in no key set the security service publishes."""


@dataclass(frozen=True)
class PublicKey:
    kid: str
    algorithm: str  # the only algorithm accepted with this key: the one its JWK names
    key: Any
    service: str | None  # set: a service's entry-signing key; None: an access-token key


def parse(jwks: dict[str, Any]) -> dict[str, PublicKey]:
    keys = {}
    for jwk in jwks.get("keys", []):
        try:
            parsed = jwt.PyJWK(jwk)
            kid = str(jwk["kid"])
            service = jwk.get("service")
            keys[kid] = PublicKey(kid, str(parsed.algorithm_name), parsed.key, service)
        except (jwt.PyJWKError, KeyError, TypeError) as exc:
            log.warning("unusable key in the JWKS skipped: %s", exc)
    return keys


def http_fetch(url: str, timeout: float = 5) -> Fetch:
    def get() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (configured URL)
            body: dict[str, Any] = json.loads(r.read())
            return body

    async def fetch() -> dict[str, Any]:
        return await asyncio.to_thread(get)

    return fetch


class KeySet:
    def __init__(
        self,
        fetch: Fetch,
        *,
        refresh: float = 300,
        grace: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch, self.refresh, self.grace, self.clock = fetch, refresh, grace, clock
        self.keys: dict[str, PublicKey] = {}
        self.missing: dict[str, float] = {}  # kid -> when a fetch first lacked it
        self.fetched_at: float | None = None
        self.tried_at = -RETRY_SECONDS
        # Signed groups already checked, (kid, signature, signed root): the rest of a group's
        # entries cost a hash path, not an Ed25519 verification. Bounded like the token cache.
        self.verified: set[tuple[str, str, bytes]] = set()

    def remember(self, checked: tuple[str, str, bytes]) -> None:
        if len(self.verified) >= VERIFIED_MAX:
            self.verified.clear()
        self.verified.add(checked)

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> "KeySet":
        return cls(http_fetch(url), **kw)

    async def update(self) -> bool:
        """Fetch the set now; False (keeping what is known) when it cannot be had."""
        self.tried_at = now = self.clock()
        try:
            fresh = parse(await self.fetch())
        except Exception as exc:
            log.warning("JWKS unavailable: %s", exc)
            return False
        for kid in self.keys.keys() - fresh.keys():
            self.missing.setdefault(kid, now)
        self.missing = {k: t for k, t in self.missing.items() if k not in fresh}
        self.keys = {**{k: self.keys[k] for k in self.missing}, **fresh}
        self.fetched_at = now
        self._expire(now)
        return True

    def _expire(self, now: float) -> None:
        for kid, since in list(self.missing.items()):
            if now - since >= self.grace:
                self.keys.pop(kid, None)
                del self.missing[kid]

    def known(self, kid: str) -> bool:
        """Still trusted (no fetch): what a cache of verified tokens asks before it answers."""
        self._expire(self.clock())
        return kid in self.keys

    async def get(self, kid: str) -> PublicKey:
        now = self.clock()
        stale = self.fetched_at is None or now - self.fetched_at >= self.refresh
        fetched = False
        if (stale or kid not in self.keys) and now - self.tried_at >= RETRY_SECONDS:
            fetched = await self.update()  # at most once a second, whatever the entries say
        self._expire(self.clock())
        key = self.keys.get(kid)
        if key is not None:
            return key
        if not fetched:  # not looked up in a fresh set (outage, or fetched a moment ago): wait
            raise KeysUnavailable(f"kid {kid[:40]!r} not in the keys at hand; will look again")
        raise UnknownKey(f"kid {kid[:40]!r} is not published")
