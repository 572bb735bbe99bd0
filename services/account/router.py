"""Which handler and payload model serve each message type; translation of domain errors."""

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import BaseModel, ValidationError

from services.account import analytics, effects, growth, handlers, queries, reinvestment
from services.account.events import SOURCE
from services.account.uow import AccountUnit
from shared.contracts import account as c
from shared.contracts.envelope import CloudEvent, explain
from shared.contracts.streams import Streams
from shared.infra.audit import audit_event
from shared.infra.auth import Verifier
from shared.infra.messaging import Emit, Rejected

Command = Callable[[AccountUnit, Any], Awaitable[None]]  # (unit of work, payload)
Query = Callable[[asyncpg.Connection, Any], Awaitable[Any]]

COMMANDS: dict[str, tuple[type[BaseModel], Command]] = {
    "alluse.system.initialize": (c.InitializeSystem, handlers.initialize),
    "alluse.account.create": (c.CreateAccount, handlers.create),
    "alluse.account.update": (c.UpdateAccount, handlers.update),
    "alluse.account.deposit": (c.MoveMoney, handlers.deposit),
    "alluse.account.withdraw": (c.MoveMoney, handlers.withdraw),
    "alluse.account.set_status": (c.SetStatus, handlers.set_status),
    "alluse.account.close": (c.CloseAccount, handlers.close),
    "alluse.account.fork": (c.ForkAccount, growth.fork),
    "alluse.account.merge": (c.MergePortfolio, growth.merge),
    "alluse.account.reinvest": (c.Reinvest, reinvestment.reinvest),
    "alluse.config.update": (c.UpdateConfig, reinvestment.update_config),
}
# Internal: effects of upstream events, forwarded by the integration service (no user token;
# the internal stream is the platform's own).
EFFECTS: dict[str, tuple[type[BaseModel], Command]] = {
    "alluse.effect.trade_filled": (effects.TradeEffect, effects.trade_filled),
    "alluse.effect.option_assigned": (effects.AssignmentEffect, effects.option_assigned),
    "alluse.effect.account_valuation": (effects.ValuationEffect, effects.account_valuation),
    "alluse.effect.protocol_validated": (effects.ValidationEffect, effects.protocol_validated),
}
QUERIES: dict[str, tuple[type[BaseModel], Query]] = {
    "alluse.query.account": (c.AccountRef, queries.account),
    "alluse.query.accounts": (c.ListAccounts, queries.accounts),
    "alluse.query.history": (c.History, queries.history),
    "alluse.query.summary": (c.Empty, queries.summary),
    "alluse.query.integrity": (c.Empty, queries.integrity),
    "alluse.query.metrics": (c.AccountRef, analytics.metrics),
    "alluse.query.tree": (c.PortfolioRef, analytics.tree),
}


def parse(model: type[BaseModel], ev: CloudEvent) -> Any:
    data = dict(ev.data)
    named = "account_id" in model.model_fields
    if ev.subject and named and data.setdefault("account_id", ev.subject) != ev.subject:
        raise Rejected("invalid_payload", "subject and data.account_id name different accounts")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Rejected("invalid_payload", explain(exc), subject=ev.subject) from None
    except Exception as exc:  # a validator's own error (e.g. decimal.Overflow) is this entry's
        reason = f"unreadable payload ({type(exc).__name__})"
        raise Rejected("invalid_payload", reason, subject=ev.subject) from None


def command_handler(
    verifier: Verifier | None,
    streams: Streams,
    table: dict[str, tuple[type[BaseModel], Command]] = COMMANDS,
) -> Callable[[AccountUnit, CloudEvent], Awaitable[list[Emit]]]:
    """Commands need a token (verifier); internal effects come without one (verifier None)."""

    async def handle(uow: AccountUnit, ev: CloudEvent) -> list[Emit]:
        if ev.type not in table:
            raise Rejected("unknown_type", f"'{ev.type}' is not a message this service takes")
        actor = ev.source  # effects come from the integration service, on behalf of upstream
        if verifier is not None:
            try:
                actor = (await verifier.authorize(ev.authorization, ev.type)).subject
            except Rejected as denied:  # every denial leaves an audit record
                denied.extra = [
                    _audit(streams, ev, "command.denied", "anonymous", {"code": denied.code})
                ]
                raise
        model, handler = table[ev.type]
        payload = parse(model, ev)
        await handler(uow, payload)
        if uow.events:
            done = sorted({fields["type"] for _, fields in uow.events})
            uow.events.append(_audit(streams, ev, ev.type, actor, {"outcome": done}))
        return uow.events

    return handle


def _audit(
    streams: Streams, ev: CloudEvent, action: str, actor: str, details: dict[str, Any]
) -> Emit:
    details = {"message_type": ev.type, "message_id": ev.id, "source": ev.source, **details}
    return audit_event(
        streams,
        source=SOURCE,
        action=action,
        actor=actor,
        subject=ev.subject,
        details=details,
        cause=ev,
    )


def query_answerer(
    verifier: Verifier,
) -> Callable[[asyncpg.Connection, CloudEvent], Awaitable[dict[str, Any]]]:
    async def answer(conn: asyncpg.Connection, ev: CloudEvent) -> dict[str, Any]:
        if ev.type not in QUERIES:
            raise Rejected("unknown_type", f"'{ev.type}' is not a query this service answers")
        await verifier.authorize(ev.authorization, ev.type)
        model, query = QUERIES[ev.type]
        result: dict[str, Any] = await query(conn, parse(model, ev))
        return result

    return answer
