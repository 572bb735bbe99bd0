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


# One batch entry's size: well under an inbound entry's limit (ALLUSE_MAX_ENTRY_BYTES, 256 KiB
# by default), so that the security service reads every batch a service writes.
BATCH_RECORDS = 500
BATCH_BYTES = 96 * 1024  # of its records' JSON
_ATTRIBUTES = ("causationid", "correlationid")  # a record's own, beside its id and time


def is_record(fields: Mapping[str, str]) -> bool:
    return fields.get("type") == AUDIT_RECORDED


def batched(records: Sequence[Emit]) -> list[Emit]:
    """`alluse.audit.recorded` entries as `alluse.audit.batch` entries, per (stream, source)
    in their order, each at most BATCH_RECORDS records and about BATCH_BYTES; a record alone
    stays as it is. Every record keeps its id, so the chain stores it once however often it
    comes and in whichever batch."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for stream, fields in records:
        groups.setdefault((stream, fields["source"]), []).append(fields)
    out: list[Emit] = []
    for (stream, source), group in groups.items():
        chunk: list[dict[str, Any]] = []
        size = 0
        for fields in group:
            record = _record(fields)
            n = len(fields["data"]) + 300  # its data, id, time and causes
            if chunk and (len(chunk) >= BATCH_RECORDS or size + n > BATCH_BYTES):
                out.append(_batch(stream, source, chunk))
                chunk, size = [], 0
            chunk.append(record)
            size += n
        if len(chunk) == 1 and len(group) == 1:
            out.append((stream, group[0]))
        elif chunk:
            out.append(_batch(stream, source, chunk))
    return out


def _record(fields: Mapping[str, str]) -> dict[str, Any]:
    attrs = {k: fields[k] for k in _ATTRIBUTES if fields.get(k)}
    return {**orjson.loads(fields["data"]), "id": fields["id"], "time": fields["time"], **attrs}


def _batch(stream: str, source: str, records: list[dict[str, Any]]) -> Emit:
    # Named by its records: the same records again (a replayed batch) are the same entry.
    digest = hashlib.sha256("\n".join(r["id"] for r in records).encode()).hexdigest()
    fields = new_event(AUDIT_BATCH, source, {"records": records}, event_id=f"batch:{digest}")
    return stream, fields
