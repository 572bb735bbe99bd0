"""The first step of every pipeline: who wrote this entry, and may it write this type?

Pipeline(..., guard=bearer(verifier, lanes="required", stream=...))  # clients: a token whose
                                                          # role allows it, bound to its lane
Pipeline(..., guard=signed_by(keys, "account", window))    # internal: the owner's fresh signature
"""

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from shared.contracts import trust
from shared.contracts.envelope import CloudEvent
from shared.contracts.streams import FIXED_LANES
from shared.infra.stream.lanes import Registry, bind, unlaned
from shared.infra.stream.messaging import Guard, Rejected
from shared.infra.trust.auth import Lapsed, Principal, Verifier
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import (
    LETTER_SIGNATURE,
    LETTER_SIGNED_AT,
    letter_signer,
    signer_of,
    text_fields,
)

SKEW = timedelta(minutes=5)  # how far ahead of this reader's clock a signer's clock may run
REDRIVERS = frozenset({"admin", "operator"})  # who may re-drive a dead letter

# Who may date an entry further back than the backdating limit: an entry's `time` dates the
# rows it writes (business time), and only those who backfill and correct books may write
# into the past.
BACKDATING_ROLES = frozenset({"admin", "operator"})


def bearer(
    verifier: Verifier,
    *,
    backdate: timedelta | None = None,
    lanes: str | None = None,
    stream: str = "",
    registry: Registry | None = None,
) -> Guard:
    """A client's token whose role may send the type; with `backdate`, an entry dated more than
    that before now is refused as `stale_time` unless the role may backdate. With `lanes`
    (settings.lanes), the token's principal must own the lane the entry came through (field
    `lane`, set by the router), and an entry from no lane is taken only when lanes are open."""

    async def bound(who: Principal, fields: dict[bytes, bytes]) -> None:
        if lanes is not None:
            lane = fields.get(b"lane")
            if lane is None:
                unlaned(lanes, stream)
            else:
                known = await registry.names() if registry is not None else FIXED_LANES
                bind(lane.decode(errors="replace"), who.subject, who.role, known)

    async def guard(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        try:
            who = await verifier.authorize(ev.authorization, ev.type)
        except Lapsed as lapsed:  # a genuine token, expired or revoked: its writer, if bound
            try:
                await bound(lapsed.who, fields)
            except Rejected:
                raise lapsed from None
            ev.verified_as(lapsed.who.subject, "client")  # refused, yet recognised
            raise
        await bound(who, fields)
        ev.verified_as(who.subject, "client")
        ev.scoped_to(who.scope)  # checked where the portfolio of an entry is known
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
        # A service may forward an entry for the writer it verified (an engine's fill, as an
        # effect): covered by its signature, so the forwarded entry keeps that writer's keys.
        vouched, sent = text.get(trust.WRITER) or None, text.get(trust.ORIGIN_TYPE) or None
        ev.verified_as(signer, "service", vouched=vouched, sent_type=sent)
        fresh(text, window)  # refused if stale, yet recognised: its key may be applied already
        if lapsed := text.get(trust.LAPSED_CODE):  # its writer's refusal, forwarded for its key
            reason = text.get(trust.LAPSED_REASON) or lapsed
            raise Rejected(lapsed[:100], reason[:2000], subject=ev.subject)

    return guard


def fresh(fields: Mapping[str, str], window: timedelta) -> None:
    """Refuse an entry signed longer ago than `window`, or in the future beyond SKEW."""
    stamp = fields.get(trust.SIGNED_AT, "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 15:
        raise Rejected("unauthorized", "entry carries no signing time (signed_at)")
    age = time.time() - int(stamp) / 1000  # seconds, as a float: no timedelta per entry
    if age > window.total_seconds():
        raise Rejected(
            "unauthorized",
            f"signed {age:.0f} s ago, beyond the deduplication window "
            f"({window.total_seconds():.0f} s): a replay cannot be told from a new entry",
        )
    if age < -SKEW.total_seconds():
        raise Rejected("unauthorized", "signed in the future (signer's clock ahead by > 5 min)")


def redrivable(
    guard: Guard, *, keys: KeySet, verifier: Verifier, service: str, stream: str, window: timedelta
) -> Guard:
    """`guard`, and beside it a dead letter re-driven by an operator (`alluse dlq redrive`).

    An entry carrying a dead letter's signature is taken only if this service signed that
    letter for this very stream within `window` (the deduplication window: an older one may
    have been forgotten by the inbox and would apply twice), the letter names the writer it
    verified and was not refused for who wrote it, and the entry's token is an operator's or
    an admin's. It is then applied as that original writer (same key: a second re-drive
    changes nothing), with the operator who re-drove it in its audit record. A letter
    written by anyone else - a fabricated one - holds no signature and is refused.
    """

    async def guard_or_letter(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        if LETTER_SIGNATURE not in fields:
            if any(k.startswith(b"dlq_") for k in fields):  # a letter's copy, re-driven bare
                raise Rejected("unauthorized", "a dead letter without its service's signature")
            return await guard(ev, fields)
        signer = await letter_signer(keys, fields)
        if signer != service or fields.get(b"dlq_stream", b"").decode(errors="replace") != stream:
            raise Rejected("forbidden", "a dead letter is re-driven only to the stream it left")
        if fields.get(b"dlq_refused") == b"writer":
            raise Rejected("forbidden", "refused for who wrote it: a dead letter never re-driven")
        writer = fields.get(b"dlq_writer", b"").decode(errors="replace")
        if not writer:
            raise Rejected("unauthorized", "the dead letter names no verified writer")
        stamp = fields.get(LETTER_SIGNED_AT, b"").decode(errors="replace")
        fresh({trust.SIGNED_AT: stamp}, window)
        who = await verifier.principal(ev.authorization)
        if who.role not in REDRIVERS:
            raise Rejected("forbidden", f"role '{who.role}' may not re-drive dead letters")
        sent = fields.get(trust.ORIGIN_TYPE.encode(), b"").decode(errors="replace") or None
        ev.redriven_as(writer, operator=who.subject, sent_type=sent)

    return guard_or_letter
