"""Audit records for the `alluse.audit` stream, emitted through the caller's outbox.

Inside a pipeline handler: `return [effect..., audit_event(settings.streams, source=...,
action="account.created", actor=principal.subject, subject=account_id, cause=ev)]`; the
security service stores each record once in its hash chain.
"""

import re
from collections.abc import Mapping
from typing import Any

from shared.contracts.envelope import CloudEvent, new_event
from shared.contracts.messages import AUDIT_RECORDED
from shared.contracts.streams import AUDIT, Streams

# Keys whose values must never reach the trail: they are redacted wherever they appear.
SECRET = re.compile(r"pass(word)?|secret|token|authorization|credential|private|api_?key", re.I)
REDACTED = "[redacted]"


def scrub(details: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with values under secret-looking keys replaced, at any depth."""
    return {k: REDACTED if SECRET.search(str(k)) else _scrub(v) for k, v in details.items()}


def _scrub(value: Any) -> Any:
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
