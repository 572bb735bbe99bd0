"""Portfolio scopes at the services (docs/scopes.md): the refusal of an entry outside its
writer's scope, and how the scope travels on an internal effect.

The guard sets the verified scope on the entry (`ev.scoped_to(...)`); the service that knows
where an entry's account lies checks it. Upstream fills and the like reach the account service
as effects of the integration service, which carries the engine's verified scope in the signed
field `scope` (`*`, or portfolio ids joined by commas).
"""

import uuid

from shared.contracts.envelope import CloudEvent
from shared.contracts.permissions import Scope
from shared.contracts.streams import Streams
from shared.infra.stream.messaging import Guard, Rejected
from shared.infra.trust.audit import audit_event

SCOPE_FIELD = "scope"


def forbidden(ev: CloudEvent, reason: str, streams: Streams, source: str) -> Rejected:
    """`forbidden`, with an audit record of the attempt published beside the refusal."""
    r = Rejected("forbidden", reason, subject=ev.subject)
    details = {
        "message_type": ev.type,
        "message_id": ev.id,
        "source": ev.source,
        "code": "forbidden",
        "reason": reason[:300],
    }
    record = audit_event(
        streams,
        source=source,
        action="scope.denied",
        actor=ev.actor or "anonymous",
        subject=ev.subject,
        details=details,
        cause=ev,
        event_id=str(uuid.uuid4()),
    )
    r.extra.append(record)
    return r


def whole_platform(guard: Guard, types: frozenset[str]) -> Guard:
    """`guard`, then: entries of `types` concern no one portfolio (a week's classification, a
    quote that marks every holder's positions) and need the whole platform's scope."""

    async def check(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        await guard(ev, fields)
        scope = ev.scope
        if ev.type in types and isinstance(scope, Scope) and not scope.whole:
            raise Rejected(
                "forbidden",
                f"{ev.type} concerns every portfolio: it needs the whole platform's scope",
                subject=ev.subject,
            )

    return check


def effect_scope(ev: CloudEvent) -> str:
    """The value of the `scope` field of the effect of upstream entry `ev`."""
    scope = ev.scope
    return scope.text() if isinstance(scope, Scope) else Scope(whole=True).text()


def carrying_scope(guard: Guard) -> Guard:
    """`guard` (the integration service's signature), then the scope the effect carries: an
    effect without the field was written before scopes existed, by a service that checked
    everything it forwarded then; every effect written now carries it."""

    async def scoped(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        await guard(ev, fields)
        raw = fields.get(SCOPE_FIELD.encode())
        ev.scoped_to(Scope(whole=True) if raw is None else Scope.parse(raw.decode()))

    return scoped
