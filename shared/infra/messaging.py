"""The words every message-handling part shares: an entry of a stream, what a handler emits,
a caller-fixable refusal (`Rejected`), what a batch came to (`Outcome`) and a dead letter.

The path a message takes, stage by stage, is the pipeline (shared/infra/pipeline.py).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.envelope import CloudEvent
from shared.contracts.errors import DomainError

Emit = tuple[str, dict[str, str]]  # (stream key, CloudEvent fields)
Entry = tuple[bytes, dict[bytes, bytes]]  # (stream entry id, fields)
# A handler gets its service's unit of work (the only door to state) and the message.
Handler = Callable[[Any, CloudEvent], Awaitable[list[Emit]]]
# Proves who wrote an entry and that it may (ev.verified_as(...)); raises Rejected to refuse
# it, KeysUnavailable to leave it waiting.
Guard = Callable[[CloudEvent, dict[bytes, bytes]], Awaitable[None]]


class Rejected(DomainError):
    """A caller-fixable problem found outside a domain (token, type, payload), code given."""

    def __init__(self, code: str, reason: str, subject: str | None = None) -> None:
        super().__init__(reason, subject=subject)
        self.code = code
        self.extra: list[Emit] = []  # e.g. an audit record of the refusal, published with it


@dataclass
class Outcome:
    """What a batch produced: entries to acknowledge, entries to dead-letter, events written."""

    ack: list[bytes] = field(default_factory=list)
    dead: list[tuple[bytes, dict[bytes, bytes], str]] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)  # waiting for the keys: retried, not counted
    failed: dict[bytes, str] = field(default_factory=dict)  # left pending: the error, for the DLQ
    emitted: int = 0
    rejected: int = 0


def dead_letter_fields(
    fields: dict[bytes, bytes], *, reason: str, stream: str, entry_id: bytes, deliveries: int
) -> dict[Any, Any]:
    """The original fields, so an operator can re-drive them, plus why it failed.

    A bearer token is not copied: the dead-letter stream is kept long and read by operators;
    re-driving a command takes a fresh token.
    """
    kept = {k: (b"[redacted]" if k == b"authorization" else v) for k, v in fields.items()}
    return {
        **kept,
        b"dlq_reason": reason.encode()[:2000],
        b"dlq_stream": stream.encode(),
        b"dlq_entry_id": entry_id,
        b"dlq_deliveries": str(deliveries).encode(),
    }
