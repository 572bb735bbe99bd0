"""One dispatch table per stream, and the stages every message passes on its way to a handler:
type -> payload model -> handler -> audit of the outcome. Who wrote it (token and permission,
or a service's signature) was proven before, by the pipeline's guard (shared/infra/guards.py).

Each stage refuses with a DomainError; the pipeline (messaging.py) turns it into a rejection
and rolls back the message's writes. Handlers have one shape: `(unit of work, payload)`.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from shared.contracts.envelope import CloudEvent, explain
from shared.contracts.money import amount_invalid
from shared.contracts.streams import Streams
from shared.infra.audit import audit_event
from shared.infra.messaging import Emit, Rejected


class Events(Protocol):
    """What the dispatcher needs of a unit of work: the events of the message in hand."""

    events: list[Emit]


Handle = Callable[[Any, Any], Awaitable[None]]  # (unit of work, payload)


@dataclass(frozen=True)
class Route:
    model: type[BaseModel]
    handle: Handle


def payload(model: type[BaseModel], ev: CloudEvent, *, subject_is_account: bool) -> Any:
    """The message's data as `model`; a subject naming another account than the data is refused.

    `subject_is_account`: a missing data.account_id is taken from the subject (commands).
    """
    data = dict(ev.data)
    if ev.subject and "account_id" in model.model_fields:
        named = (
            data.setdefault("account_id", ev.subject)
            if subject_is_account
            else data.get("account_id")
        )
        if named is not None and named != ev.subject:
            raise Rejected("invalid_payload", "subject and data.account_id name different accounts")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        code = "invalid_amount" if amount_invalid(exc) else "invalid_payload"
        raise Rejected(code, explain(exc), subject=ev.subject) from None
    except Exception as exc:  # a validator's own error (e.g. decimal.Overflow) is this entry's
        reason = f"unreadable payload ({type(exc).__name__})"
        raise Rejected("invalid_payload", reason, subject=ev.subject) from None


@dataclass
class Dispatch:
    """The handler a Pipeline runs: the stages, then the route's handler, then the audit."""

    table: Mapping[str, Route]
    streams: Streams
    source: str  # CloudEvents source of the audit records
    audited: bool = False  # an audit record of every outcome
    subject_is_account: bool = True
    heard: Callable[[str], None] = lambda _source: None  # e.g. when an upstream was last heard

    async def __call__(self, unit: Events, ev: CloudEvent) -> list[Emit]:
        self.heard(ev.source)
        route = self.table.get(ev.type)
        if route is None:
            known = ", ".join(sorted(self.table)[:12])
            raise Rejected("unknown_type", f"'{ev.type}' is not one of {known}")
        actor = ev.actor or ev.source  # proven by the guard: a token's subject, or a service
        await route.handle(
            unit, payload(route.model, ev, subject_is_account=self.subject_is_account)
        )
        if self.audited and unit.events:
            done = sorted({fields["type"] for _, fields in unit.events})
            unit.events.append(self.audit(ev, ev.type, actor, {"outcome": done}))
        return unit.events

    def audit(self, ev: CloudEvent, action: str, actor: str, details: dict[str, Any]) -> Emit:
        details = {"message_type": ev.type, "message_id": ev.id, "source": ev.source, **details}
        return audit_event(self.streams, source=self.source, action=action, actor=actor,
                           subject=ev.subject, details=details, cause=ev)  # fmt: skip
