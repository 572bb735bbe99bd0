"""Portfolio scopes in the account service, which knows where every account lies
(docs/scopes.md). Commands and effects pass `scoped` after their guard; queries pass
`check_query` before they read, and a scoped caller's list and totals cover only its scope.

An entry names accounts (its subject, `data.account_id`) and portfolios (`data.portfolio_id`);
each must lie in a portfolio of the writer's scope or below one (forks inherit their parent's
grant). An entry that names neither concerns the whole platform and needs its scope. Unknown
accounts are refused the same way as foreign ones, so a scoped writer learns nothing of the
accounts outside its scope.
"""

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from services.account.reads import queries
from shared.contracts.envelope import CloudEvent
from shared.contracts.permissions import Scope
from shared.contracts.streams import Streams
from shared.infra.stream.messaging import Guard, Rejected
from shared.infra.stream.unit import Sql
from shared.infra.trust.scopes import forbidden

# A portfolio's ancestry never changes (a fork's parent is fixed), so it is cached; bounded.
_ANCESTRY: dict[UUID, tuple[str, ...]] = {}
_ANCESTRY_MAX = 100_000
_PORTFOLIO_OF: dict[UUID, UUID] = {}  # an account's portfolio never changes either
Db = Callable[[], Awaitable[Sql]]  # a connection, asked for only when a cache misses
# Queries about the whole platform's books, which a scope does not narrow.
PLATFORM_QUERIES = frozenset({"alluse.query.integrity"})
# Queries whose answer a scope narrows to its portfolios instead of refusing.
NARROWED_QUERIES = frozenset({"alluse.query.accounts", "alluse.query.summary"})


def scope_of(ev: CloudEvent) -> Scope | None:
    """The writer's scope when it is narrower than the whole platform; None otherwise."""
    scope = ev.scope
    return scope if isinstance(scope, Scope) and not scope.whole else None


async def ancestry(db: Db, portfolio_id: UUID) -> tuple[str, ...]:
    """The portfolio and every portfolio above it."""
    if portfolio_id not in _ANCESTRY:
        rows = await (await db()).fetch(
            "WITH RECURSIVE up AS (SELECT id, parent_id FROM portfolios WHERE id = $1"
            " UNION ALL SELECT p.id, p.parent_id FROM portfolios p JOIN up ON p.id = up.parent_id)"
            " SELECT id FROM up",
            portfolio_id,
        )
        if not rows:  # made in this very batch: not yet written, so not cached either
            return (str(portfolio_id),)
        if len(_ANCESTRY) >= _ANCESTRY_MAX:
            _ANCESTRY.clear()
        _ANCESTRY[portfolio_id] = tuple(str(r["id"]) for r in rows)
    return _ANCESTRY[portfolio_id]


async def visible_portfolios(conn: Sql, scope: Scope) -> list[UUID]:
    """The portfolios a scope covers: those granted and every one below them."""
    rows = await conn.fetch(
        "WITH RECURSIVE down AS (SELECT id FROM portfolios WHERE id = ANY($1::uuid[])"
        " UNION SELECT p.id FROM portfolios p JOIN down ON p.parent_id = down.id)"
        " SELECT id FROM down ORDER BY id",
        [UUID(p) for p in scope.portfolios],
    )
    return [r["id"] for r in rows]


def named(ev: CloudEvent) -> tuple[list[str], list[str]]:
    """(accounts, portfolios) an entry names."""
    data = ev.data
    accounts = {str(v) for v in (data.get("account_id"), ev.subject) if v}
    portfolios = {str(data["portfolio_id"])} if data.get("portfolio_id") else set()
    return sorted(accounts), sorted(portfolios)


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


async def covered(ev: CloudEvent, scope: Scope, db: Db) -> str | None:
    """Why the entry lies outside `scope`, or None if it lies inside. `db` is asked for a
    connection only when the caches do not know an account or portfolio yet."""
    accounts, portfolios = named(ev)
    if not accounts and not portfolios:
        return f"{ev.type} concerns the whole platform: it needs the whole platform's scope"
    for text in accounts:
        account = _uuid(text)
        pid = None if account is None else await portfolio_of(db, account)
        if pid is None or not scope.covers(await ancestry(db, pid)):
            return f"account {text[:40]} is not in a portfolio of your scope"
    for text in portfolios:
        pid = _uuid(text)
        if pid is None or not scope.covers(await ancestry(db, pid)):
            return f"portfolio {text[:40]} is not in your scope"
    return None


class Lazy:
    """A pooled connection taken on first use only: a warm cache needs none."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.conn: Any = None  # the pool's connection proxy

    async def __call__(self) -> Sql:
        if self.conn is None:
            self.conn = await self.pool.acquire()
        conn: Sql = self.conn
        return conn

    async def release(self) -> None:
        if self.conn is not None:
            await self.pool.release(self.conn)
            self.conn = None


def scoped(guard: Guard, pool: asyncpg.Pool) -> Guard:
    """`guard` (who wrote it, may it), then the writer's scope: an entry outside it is refused
    like one of the wrong writer, before its batch (it claims no idempotency key; the pipeline
    answers and audits the refusal). Reads on a pooled connection; what it learns is cached."""

    async def check(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        await guard(ev, fields)
        scope = scope_of(ev)
        if scope is None:
            return
        db = Lazy(pool)
        try:
            why = await covered(ev, scope, db)
        finally:
            await db.release()
        if why is not None:
            raise Rejected("forbidden", why, subject=ev.subject)

    return check


async def portfolio_of(db: Db, account_id: UUID) -> UUID | None:
    """The account's portfolio (fixed for its life, so cached), or None if there is none."""
    if account_id not in _PORTFOLIO_OF:
        found: UUID | None = await (await db()).fetchval(
            "SELECT portfolio_id FROM accounts WHERE id = $1", account_id
        )
        if found is None:
            return None
        if len(_PORTFOLIO_OF) >= _ANCESTRY_MAX:
            _PORTFOLIO_OF.clear()
        _PORTFOLIO_OF[account_id] = found
    return _PORTFOLIO_OF[account_id]


async def check_query(conn: Sql, ev: CloudEvent, streams: Streams, source: str) -> None:
    """Refuse a query outside the caller's scope; lists and totals are narrowed instead."""
    scope = scope_of(ev)
    if scope is None or (ev.type in NARROWED_QUERIES and not ev.data.get("portfolio_id")):
        return
    if ev.type in PLATFORM_QUERIES:
        raise forbidden(
            ev,
            f"{ev.type} reads every portfolio's books: it needs the whole platform's scope",
            streams,
            source,
        )

    async def db() -> Sql:
        return conn

    why = await covered(ev, scope, db)
    if why is not None:
        raise forbidden(ev, why, streams, source)


async def narrowed(conn: asyncpg.Connection, ev: CloudEvent, p: Any) -> dict[str, Any] | None:
    """A scoped caller's list of accounts or totals, over its portfolios only; None when the
    query is not narrowed (the whole platform's caller, or a query of one portfolio)."""
    scope = scope_of(ev)
    if scope is None or ev.type not in NARROWED_QUERIES or ev.data.get("portfolio_id"):
        return None
    within = await visible_portfolios(conn, scope)
    if ev.type == "alluse.query.accounts":
        return await queries.accounts(conn, p, within=within)
    return await queries.summary(conn, p, within=within)
