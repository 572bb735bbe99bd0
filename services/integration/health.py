"""When the integration service last heard from each upstream source: /metrics and /readyz."""

import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

LAST_SEEN = Gauge(
    "alluse_upstream_last_seen_seconds",
    "Unix time at which the integration service last read an entry from this upstream source",
    ["source"],
)
# Sources are named by whoever writes to the stream: cap them so a stray writer cannot blow
# up the metric's cardinality.
MAX_SOURCES = 100
OTHER = "other"


class Upstreams:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def heard(self, source: str) -> None:
        if source not in self.seen and len(self.seen) >= MAX_SOURCES:
            source = OTHER
        now = time.time()
        self.seen[source] = now
        LAST_SEEN.labels(source).set(now)

    def report(self) -> dict[str, Any]:
        now = time.time()
        return {
            "upstream": {
                source: {
                    "last_seen": datetime.fromtimestamp(at, UTC).isoformat(),
                    "age_seconds": round(now - at, 3),
                }
                for source, at in sorted(self.seen.items())
            }
        }
