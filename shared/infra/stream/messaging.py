"""The words every message-handling part shares: an entry of a stream, what a handler emits,
a caller-fixable refusal (`Rejected`), what a batch came to (`Outcome`) and a dead letter.

The path a message takes, stage by stage, is the pipeline (shared/infra/stream/pipeline.py).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.envelope import CloudEvent
from shared.contracts.errors import DomainError

Emit = tuple[str, dict[str, str]]  # (stream key, CloudEvent fields)
Entry = tuple[bytes, dict[bytes, bytes]]  # (stream entry id, fields)
# An admitted lane entry's refusal on its lane, should it die in the consumer: (code, reason).
Answer = Callable[[str, str], Emit]
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


class AlreadyApplied(Exception):
    """The entry repeats another entry already applied (e.g. a fill re-sent under a new entry
    id with the same figures): nothing happens, and its lane hears `duplicate` of `of`."""

    def __init__(self, of: tuple[str, str]) -> None:
        super().__init__(f"already applied as ({of[0]}, {of[1]})")
        self.of = of  # (source, id) of the applied entry


@dataclass
class Outcome:
    """What a batch produced: entries to acknowledge, entries to dead-letter, events written."""

    ack: list[bytes] = field(default_factory=list)
    dead: list[tuple[bytes, dict[bytes, bytes], str]] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)  # waiting for the keys: retried, not counted
    failed: dict[bytes, str] = field(default_factory=dict)  # left pending: the error, for the DLQ
    # The verified writer of each entry admitted, and the entries refused for who wrote them:
    # what a dead letter says of its entry, under the service's signature.
    writers: dict[bytes, str] = field(default_factory=dict)
    refused_writer: set[bytes] = field(default_factory=set)
    # How to answer each admitted entry that came through a lane, should it be dead-lettered
    # after failed deliveries: the pipeline knows its origin and who answers it.
    answers: dict[bytes, Answer] = field(default_factory=dict)
    emitted: int = 0
    rejected: int = 0
    # Outbox rows the batch committed (part of `emitted`): the relay has something to publish.
    # Entries forwarded or republished straight to Redis leave none.
    outboxed: int = 0


LETTER_FIELDS = (
    b"dlq_reason",
    b"dlq_stream",
    b"dlq_entry_id",
    b"dlq_deliveries",
    b"dlq_writer",
    b"dlq_refused",
    b"dlq_signed_at",
    b"dlq_signature",
)


def dead_letter_fields(
    fields: dict[bytes, bytes],
    *,
    reason: str,
    stream: str,
    entry_id: bytes,
    deliveries: int,
    writer: str = "",
    refused_writer: bool = False,
) -> dict[bytes, bytes]:
    """The original fields, so an operator can re-drive them, plus why it failed, the writer
    the service verified (`dlq_writer`, empty when none was) and whether it was refused for
    who wrote it (`dlq_refused: writer`: never re-driven). The service signs the letter.

    A bearer token is not copied: the dead-letter stream is kept long and read by operators;
    a re-drive is authorized by the operator's token and applied as `dlq_writer`. Fields of
    a letter (dlq_*) the entry itself carried are dropped: only the service writes them.
    """
    kept = {
        k: (b"[redacted]" if k == b"authorization" else v)
        for k, v in fields.items()
        if k not in LETTER_FIELDS
    }
    return {
        **kept,
        b"dlq_reason": reason.encode()[:2000],
        b"dlq_stream": stream.encode(),
        b"dlq_entry_id": entry_id,
        b"dlq_deliveries": str(deliveries).encode(),
        b"dlq_writer": writer.encode(),
        b"dlq_refused": b"writer" if refused_writer else b"",
    }
