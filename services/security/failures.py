"""Token requests that fail before anyone is identified: counted, and audited as one record per
interval rather than one chain row each.

Whoever can reach POST /oauth/token can fail there: a malformed form, an unsupported grant, an
unknown client, user or refresh token. Each such failure proves nothing about any principal,
so none earns a row of the append-only audit chain of its own (200 anonymous posts made 200
permanent rows). Each is counted in `alluse_token_failures_total{grant,error}` at once, and
every `ALLUSE_UNAUTHENTICATED_AUDIT_EVERY` seconds the counts since the last record become one
`security.token.refused` record (actor `anonymous`, details: the window and the counts). A
failure of a known principal (a wrong password for a real user, a disabled client) is still
audited on its own, with the failed-login count and lockouts it drives.
"""

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter as Metric

from services.security import audit

log = logging.getLogger(__name__)
FAILURES = Metric(
    "alluse_token_failures_total",
    "Token requests refused before any principal was identified, by grant and error",
    ["grant", "error"],
)
GRANTS = frozenset({"password", "client_credentials", "refresh_token", "revoke"})


class Unauthenticated:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.counts: Counter[tuple[str, str]] = Counter()
        self.since = datetime.now(UTC)

    def note(self, grant: str, error: str) -> None:
        """One failure; the grant as asked for only if it is one we know (labels stay few)."""
        grant = grant if grant in GRANTS else "other"
        FAILURES.labels(grant, error).inc()
        self.counts[(grant, error)] += 1

    async def flush(self) -> int:
        """The counts since the last record as one audit record; returns how many it covers."""
        counts, since, now = self.counts, self.since, datetime.now(UTC)
        if not counts:
            return 0
        self.counts, self.since = Counter(), now
        total = sum(counts.values())
        details = {
            "from": since.isoformat(),
            "until": now.isoformat(),
            "total": total,
            "counts": [{"grant": g, "error": e, "n": n} for (g, e), n in sorted(counts.items())],
        }
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await audit.append(
                    conn, action="security.token.refused", actor="anonymous", details=details
                )
        except Exception:
            self.counts.update(counts)  # kept for the next round: never lost, never doubled
            self.since = since
            raise
        return total

    async def flush_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush()
            except Exception:
                log.exception("unauthenticated failures not audited yet; will try again")
