"""The first step of every pipeline: who wrote this entry, and may it write this type?

Pipeline(..., guard=bearer(verifier))                     # clients: a token whose role allows it
Pipeline(..., guard=signed_by(keys, "account", window))    # internal: the owner's fresh signature
"""

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from shared.contracts import trust
from shared.contracts.envelope import CloudEvent
from shared.infra.auth import Verifier
from shared.infra.keys import KeySet
from shared.infra.messaging import Guard, Rejected
from shared.infra.signing import signer_of, text_fields

SKEW = timedelta(minutes=5)  # how far ahead of this reader's clock a signer's clock may run

# Who may date an entry further back than the backdating limit: an entry's `time` dates the
# rows it writes (business time), and only those who backfill and correct books may write
# into the past.
BACKDATING_ROLES = frozenset({"admin", "operator"})


def bearer(verifier: Verifier, *, backdate: timedelta | None = None) -> Guard:
    """A client's token whose role may send the type; with `backdate`, an entry dated more than
    that before now is refused as `stale_time` unless the role may backdate."""

    async def guard(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        who = await verifier.authorize(ev.authorization, ev.type)
        ev.verified_as(who.subject, "client")
        if backdate is None or who.role in BACKDATING_ROLES:
            return
        if ev.time < datetime.now(UTC) - backdate:
            raise Rejected(
                "stale_time",
                f"dated {ev.time.isoformat()}, more than {backdate} before now: role"
                f" '{who.role}' may not write into the past (admins and operators may)",
                subject=ev.subject,
            )

    return guard


def signed_by(keys: KeySet, service: str | None, window: timedelta) -> Guard:
    """Entries of types owned by `service` (None: by whichever service the type names), each
    signed by its owner within `window`: the deduplication window, so a copy replayed after
    the inbox has forgotten its (source, id) is refused rather than applied again."""

    async def guard(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        text = text_fields(fields)
        signer = await signer_of(keys, text)
        owner = trust.owner(ev.type, ev.source)
        if owner is None or (service is not None and owner != service):
            raise Rejected("forbidden", f"'{ev.type[:100]}' is not taken on this stream")
        if signer != owner:
            raise Rejected(
                "forbidden", f"'{ev.type}' is accepted only from the {owner} service, not {signer}"
            )
        fresh(text, window)
        # A service may forward an entry for the writer it verified (an engine's fill, as an
        # effect): covered by its signature, so the forwarded entry keeps that writer's keys.
        vouched, sent = text.get(trust.WRITER) or None, text.get(trust.ORIGIN_TYPE) or None
        ev.verified_as(signer, "service", vouched=vouched, sent_type=sent)

    return guard


def fresh(fields: Mapping[str, str], window: timedelta) -> None:
    """Refuse an entry signed longer ago than `window`, or in the future beyond SKEW."""
    stamp = fields.get(trust.SIGNED_AT, "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 15:
        raise Rejected("unauthorized", "entry carries no signing time (signed_at)")
    age = timedelta(milliseconds=time.time() * 1000 - int(stamp))
    if age > window:
        raise Rejected(
            "unauthorized",
            f"signed {age.total_seconds():.0f} s ago, beyond the deduplication window "
            f"({window.total_seconds():.0f} s): a replay cannot be told from a new entry",
        )
    if age < -SKEW:
        raise Rejected("unauthorized", "signed in the future (signer's clock ahead by > 5 min)")
