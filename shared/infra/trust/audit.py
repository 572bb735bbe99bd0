"""Audit records for the `alluse.audit` stream, emitted through the caller's outbox.

Inside a pipeline handler: `return [effect..., audit_event(settings.streams, source=...,
action="account.created", actor=principal.subject, subject=account_id, cause=ev)]`; the
security service stores each record once in its hash chain. The pipeline folds the records of
one batch into `alluse.audit.batch` entries (`batched`) before its outbox: one entry, one
signature and one pass through the security service's pipeline for the batch, each record
still chained on its own under its own id.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from shared.contracts.envelope import CloudEvent, new_event
from shared.contracts.messages import AUDIT_BATCH, AUDIT_RECORDED
from shared.contracts.streams import AUDIT, Streams
from shared.infra.stream.messaging import Emit

# Keys whose values must never reach the trail: they are redacted wherever they appear.
SECRET = re.compile(r"pass(word)?|secret|token|authorization|credential|private|api_?key", re.I)
REDACTED = "[redacted]"


def scrub(details: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with values under secret-looking keys replaced, at any depth."""
    return {k: REDACTED if SECRET.search(str(k)) else _scrub(v) for k, v in details.items()}


def _scrub(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):  # the usual leaves, at once
        return value
    if isinstance(value, Mapping):
        return scrub(value)
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def audit_event(
    streams: Streams,
    *,
    source: str,
    action: str,
    actor: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    cause: CloudEvent | None = None,
    event_id: str | None = None,
) -> tuple[str, dict[str, str]]:
    """(stream key, fields) of one audit record, to return from a handler for its outbox.

        `action` names what happened (e.g. "account.created", "command.denied"), `actor` who did it
        (the token's sub), `subject` what it happened to (an account id). A re-delivered command
        replays the same outcome, so the record is stored once: its id is a hash of the command's
    key (writer, source, id), so two writers' commands never share one; pass `event_id` to fix it.
    """
    data = {"action": action, "actor": actor, "subject": subject, "details": scrub(details or {})}
    fields = new_event(
        AUDIT_RECORDED,
        source,
        data,
        subject=subject,
        cause=cause,
        event_id=event_id or (f"{cause.key_digest()}:audit:{action}" if cause else None),
    )
    return streams.key(AUDIT), fields


# One batch entry's size, in bytes as written: its records' JSON at most BATCH_BYTES, and the
# rest of the entry (its id, source, type, time, signature, trace context) within
# ENVELOPE_BYTES, so that an entry stays well under an inbound entry's limit
# (ALLUSE_MAX_ENTRY_BYTES, 256 KiB by default) and the security service reads every batch a
# service writes, whatever characters its records carry (up to 4 bytes each in UTF-8).
BATCH_RECORDS = 500
BATCH_BYTES = 96 * 1024
ENVELOPE_BYTES = 8 * 1024  # a source alone may be 500 characters, 2,000 bytes
_ATTRIBUTES = ("causationid", "correlationid")  # a record's own, beside its id and time


def is_record(fields: Mapping[str, str]) -> bool:
    return fields.get("type") == AUDIT_RECORDED


def batched(records: Sequence[Emit]) -> list[Emit]:
    """`alluse.audit.recorded` entries as `alluse.audit.batch` entries, per (stream, source)
    in their order, each at most BATCH_RECORDS records and BATCH_BYTES of them in UTF-8; a
    record alone, or larger than BATCH_BYTES by itself, stays as it is. Every record keeps its
    id, so the chain stores it once however often it comes and in whichever batch."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for stream, fields in records:
        groups.setdefault((stream, fields["source"]), []).append(fields)
    out: list[Emit] = []
    for (stream, source), group in groups.items():
        if len(group) == 1:
            out.append((stream, group[0]))
            continue
        chunk: list[dict[str, Any]] = []
        size = 0
        for fields in group:
            record, n = _record(fields)
            if chunk and (len(chunk) >= BATCH_RECORDS or size + n > BATCH_BYTES):
                out.append(_batch(stream, source, chunk))
                chunk, size = [], 0
            if n > BATCH_BYTES:  # too large to share an entry: its own, as a record alone
                out.append((stream, fields))
                continue
            chunk.append(record)
            size += n
        if chunk:
            out.append(_batch(stream, source, chunk))
    return out


def _record(fields: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """A record as a batch carries it, and at least its size there in bytes: its data's JSON
    and its own attributes' JSON, each as encoded (a comma between records included)."""
    own = {"id": fields["id"], "time": fields["time"]}
    own.update((k, fields[k]) for k in _ATTRIBUTES if fields.get(k))
    size = len(fields["data"].encode()) + len(orjson.dumps(own))
    return {**orjson.loads(fields["data"]), **own}, size


def _batch(stream: str, source: str, records: list[dict[str, Any]]) -> Emit:
    # Named by its records: the same records again (a replayed batch) are the same entry.
    digest = hashlib.sha256("\n".join(r["id"] for r in records).encode()).hexdigest()
    fields = new_event(AUDIT_BATCH, source, {"records": records}, event_id=f"batch:{digest}")
    return stream, fields
