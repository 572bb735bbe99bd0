"""The account service's dispatch tables: message type -> (payload model, handler), in one place.

The stages every message passes (type, token and permission, payload, audit) are the shared
pipeline's (shared/infra/stream/pipeline.py); handlers have one shape, `(uow, payload)`.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.account.handlers import accounts as handlers
from services.account.handlers import (
    corrections,
    effects,
    growth,
    reinvestment,
    scopes,
    trades,
    valuation,
)
from services.account.reads import analytics, queries
from services.account.reads import positions as position_queries
from shared.contracts import account as c
from shared.contracts.envelope import CloudEvent
from shared.contracts.streams import Streams
from shared.infra.stream.messaging import Rejected
from shared.infra.stream.pipeline import Route, payload

COMMANDS: dict[str, Route] = {
    "alluse.system.initialize": Route(c.InitializeSystem, handlers.initialize),
    "alluse.account.create": Route(c.CreateAccount, handlers.create),
    "alluse.account.update": Route(c.UpdateAccount, handlers.update),
    "alluse.account.deposit": Route(c.MoveMoney, handlers.deposit),
    "alluse.account.withdraw": Route(c.MoveMoney, handlers.withdraw),
    "alluse.account.set_status": Route(c.SetStatus, handlers.set_status),
    "alluse.account.close": Route(c.CloseAccount, handlers.close),
    "alluse.account.fork": Route(c.ForkAccount, growth.fork),
    "alluse.account.merge": Route(c.MergePortfolio, growth.merge),
    "alluse.account.reinvest": Route(c.Reinvest, reinvestment.reinvest),
    "alluse.config.update": Route(c.UpdateConfig, reinvestment.update_config),
    "alluse.account.reverse": Route(c.ReverseTransaction, corrections.reverse),
}
# Internal: effects of upstream events, forwarded by the integration service and believed only
# with its signature (shared/infra/trust/guards.py, signed_by).
EFFECTS: dict[str, Route] = {
    "alluse.effect.trade_filled": Route(effects.TradeEffect, trades.trade_filled),
    "alluse.effect.option_assigned": Route(effects.AssignmentEffect, trades.option_assigned),
    "alluse.effect.option_expired": Route(effects.ExpirationEffect, trades.option_expired),
    "alluse.effect.market_quote": Route(effects.QuoteEffect, valuation.market_quote),
    "alluse.effect.account_valuation": Route(effects.ValuationEffect, valuation.account_valuation),
    "alluse.effect.protocol_validated": Route(effects.ValidationEffect, effects.protocol_validated),
}
Query = Callable[[asyncpg.Connection, Any], Awaitable[dict[str, Any]]]
QUERIES: dict[str, tuple[Any, Query]] = {
    "alluse.query.account": (c.AccountRef, queries.account),
    "alluse.query.accounts": (c.ListAccounts, queries.accounts),
    "alluse.query.history": (c.History, queries.history),
    "alluse.query.summary": (c.Empty, queries.summary),
    "alluse.query.integrity": (c.Empty, queries.integrity),
    "alluse.query.metrics": (c.AccountRef, analytics.metrics),
    "alluse.query.tree": (c.PortfolioRef, analytics.tree),
    "alluse.query.positions": (c.AccountRef, position_queries.positions),
    "alluse.query.as_of": (c.AsOf, position_queries.as_of),
}


def query_answerer(
    streams: Streams, source: str
) -> Callable[[asyncpg.Connection, CloudEvent], Awaitable[dict[str, Any]]]:
    """Answers a query whose token the replier has verified and whose type it has permitted.

    Queries read on a pooled connection, outside any unit of work: a unit exists to make a
    batch's writes exactly-once and to lock the accounts it changes, while a query writes
    nothing and must not wait for a batch. Each query reads in one read-only snapshot, so its
    statements (an account and its holdings, a tree and its balances) see one moment.
    A query outside the caller's portfolio scope is refused; a scoped caller's list of
    accounts and totals cover its scope only (services/account/handlers/scopes.py).
    """

    async def answer(conn: asyncpg.Connection, ev: CloudEvent) -> dict[str, Any]:
        if ev.type not in QUERIES:
            raise Rejected("unknown_type", f"'{ev.type}' is not a query this service answers")
        model, query = QUERIES[ev.type]
        p = payload(model, ev, subject_is_account=True)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await scopes.check_query(conn, ev, streams, source)
            return await scopes.narrowed(conn, ev, p) or await query(conn, p)

    return answer
