"""Per-client rate limits (docs/scopes.md, "Limits"): a token bucket per verified subject,
held in the consuming service's memory.

Each replica keeps its own buckets, so N replicas admit up to N times the rate: the limit is
there to keep one client from crowding out the others, and a replica's share of one client's
entries is what it has to protect itself from. Refusals are `rate_limited`, counted in a
metric rather than each in the audit chain (a flood must not become a flood of audit rows).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.contracts.envelope import CloudEvent
from shared.infra.stream.messaging import Guard, Rejected

MAX_CLIENTS = 100_000  # buckets kept; full ones (the same as none) are dropped first
WARN_EVERY = 60.0  # seconds between two log lines about the same client's refusals
log = logging.getLogger(__name__)


@dataclass
class Buckets:
    rate: float  # tokens per second; 0: no limit
    burst: int  # a bucket's size: what a quiet client may send at once
    clock: Callable[[], float] = time.monotonic
    _level: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)
    _warned: dict[str, float] = field(default_factory=dict)  # key -> when last logged

    def take(self, key: str, cost: float = 1.0) -> float | None:
        """None if `key` may go on (its bucket pays `cost`), else seconds until it may."""
        if self.rate <= 0:
            return None
        now = self.clock()
        tokens, at = self._level.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        cost = min(cost, float(self.burst))  # a costly request is slow, never impossible
        if tokens < cost:
            self._level[key] = (tokens, now)
            if now - self._warned.get(key, -WARN_EVERY) >= WARN_EVERY:  # once a minute a client
                if len(self._warned) >= MAX_CLIENTS:
                    self._warned.clear()
                self._warned[key] = now
                log.warning(
                    "client %r over its rate (%g/s, burst %d): refusing rate_limited",
                    key[:200],
                    self.rate,
                    self.burst,
                )
            return (cost - tokens) / self.rate
        if len(self._level) >= MAX_CLIENTS and key not in self._level:
            self._sweep(now)
        self._level[key] = (tokens - cost, now)
        return None

    def left(self, key: str) -> float | None:
        """The tokens `key` holds now (None: no limit); nothing is taken."""
        if self.rate <= 0:
            return None
        now = self.clock()
        tokens, at = self._level.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def _sweep(self, now: float) -> None:
        full = [k for k, (t, at) in self._level.items() if t + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._level[k]
        if len(self._level) >= MAX_CLIENTS:  # every bucket busy: forget the oldest half
            for k in sorted(self._level, key=lambda k: self._level[k][1])[: MAX_CLIENTS // 2]:
                del self._level[k]


def refusal(wait: float, what: str) -> Rejected:
    return Rejected(
        "rate_limited",
        f"too many {what} from this client: retry in {max(wait, 0.001):.3f} s",
    )


def limited(guard: Guard, buckets: Buckets, what: str = "commands") -> Guard:
    """`guard` (who wrote it, may it), then its writer's bucket."""

    async def limit(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        await guard(ev, fields)
        wait = buckets.take(ev.actor or "")
        if wait is not None:
            raise refusal(wait, what)

    return limit
