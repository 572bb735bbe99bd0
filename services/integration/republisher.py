"""The account service's events to the public lifecycle stream, without a database.

A republished event is the account service's own entry, same id, re-signed by this service:
applying it twice changes nothing but a second copy of the same id, which lifecycle readers
already drop (the relay may publish twice after a crash, and a redelivered event was always
republished again). So the inbox row, the outbox row, the transaction and the relay's round a
pipeline message costs buy nothing here. Each entry is checked as the pipeline's guard checks
it (the account service's signature, fresh, a lifecycle type), written to the lifecycle stream
with the batch's other entries in one round trip, its fsync confirmed with WAITAOF as the relay
confirms one (durability.py), and only then acknowledged: a crash before the acknowledgement
publishes again, never loses.

Anything else (a forged or stale signature, an unknown type, an unreadable entry, keys that
cannot be fetched) goes through the pipeline as before, which refuses, dead-letters or holds
it; and so does every entry while Redis cannot confirm durability (its outbox keeps them).
"""

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from services.integration.direct import write_durably
from shared.contracts import trust
from shared.contracts.envelope import LIMITS, Limits
from shared.contracts.lifecycle import LIFECYCLE_TYPES, dataschema
from shared.infra.runtime import tracing
from shared.infra.stream.durability import Durability
from shared.infra.stream.messaging import Entry, Outcome
from shared.infra.stream.settle import Process
from shared.infra.trust.guards import fresh
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of, text_fields

log = logging.getLogger(__name__)
CARRIED = ("subject", "causationid", "correlationid")  # copied when present, as they are
REQUIRED = ("id", "source", "type", "time", "data")


class Republisher:
    def __init__(
        self,
        *,
        redis: Redis,
        keys: KeySet,
        window: timedelta,
        sign: Callable[[list[dict[str, str]]], list[dict[str, str]]],
        durability: Durability,
        lifecycle: str,
        source: str,
        otherwise: Process,
        limits: Limits = LIMITS,
    ) -> None:
        self.redis, self.keys, self.window, self.sign = redis, keys, window, sign
        self.durability, self.lifecycle, self.source = durability, lifecycle, source
        self.otherwise, self.limits = otherwise, limits  # the pipeline, for everything else

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        if not await self.durability.ready(self.redis):
            return await self.otherwise(entries)  # its outbox keeps them until Redis can confirm
        direct: list[tuple[bytes, dict[str, str]]] = []
        others: list[Entry] = []
        for entry_id, raw in entries:
            fields = await self.republishable(raw)
            if fields is None:
                others.append((entry_id, raw))
            else:
                direct.append((entry_id, fields))
        out = await self.otherwise(others) if others else Outcome()
        if direct:
            try:
                await self.publish([fields for _, fields in direct])
            except Exception as exc:  # left pending: reclaimed and published again
                log.warning("republishing %d events failed: %s", len(direct), exc)
                out.failed.update({i: f"{type(exc).__name__}: {exc}"[:500] for i, _ in direct})
            else:
                out.ack.extend(i for i, _ in direct)
                out.emitted += len(direct)
        return out

    async def republishable(self, raw: dict[bytes, bytes]) -> dict[str, str] | None:
        """The entry's lifecycle copy if it passes the pipeline's checks for it, else None."""
        try:
            if sum(len(k) + len(v) for k, v in raw.items()) > self.limits.entry_bytes:
                return None
            text = text_fields(raw)
            kind = text.get("type", "")
            if kind not in LIFECYCLE_TYPES or text.get("specversion") != "1.0":
                return None
            if not all(text.get(k) for k in REQUIRED) or text.get("datacontenttype") not in (
                None,
                "application/json",
            ):
                return None
            owner = trust.owner(kind, text["source"])
            if owner != trust.ACCOUNT or await signer_of(self.keys, text) != owner:
                return None
            fresh(text, self.window)
        except Exception:  # refused, unreadable, or keys unavailable: the pipeline says which
            return None
        fields = {
            "specversion": "1.0",
            "id": text["id"],
            "source": text["source"],
            "type": kind,
            "time": text["time"],
            "datacontenttype": "application/json",
        }
        fields |= {k: text[k] for k in CARRIED if text.get(k)}
        fields["dataschema"] = dataschema(kind)
        with tracing.span(
            f"consume {kind}", parent=text, kind=SpanKind.CONSUMER, service=self.source
        ):
            tracing.stamp(fields)
        fields["data"] = text["data"]  # as the account service wrote it: read, not re-encoded
        return fields

    async def publish(self, events: list[dict[str, str]]) -> None:
        await write_durably(self.redis, self.durability, self.lifecycle, self.sign(events))
