"""The read pages: portfolios, one portfolio (accounts, tree, growth), one account."""

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.console import live, views, web
from services.console.forms import STATUSES, Problems, ident, page_size
from services.console.sessions import Session
from shared.contracts.vocabulary import AccountStatus, TransactionType
from shared.tooling.client import Refused

PAGE = 200  # accounts per query: a reply must fit one stream entry
MAX_PAGES = 10
TX_TYPES = tuple(t.value for t in TransactionType)


async def accounts(
    request: Request, me: Session, **filters: str
) -> tuple[list[dict[str, Any]], bool]:
    """Every account (matching `filters`), a page at a time; False if the cap cut it short."""
    found: list[dict[str, Any]] = []
    after = None
    for _ in range(MAX_PAGES):
        data: dict[str, Any] = {**filters, "limit": PAGE} | ({"after": after} if after else {})
        answer = await web.ask(request, me, "alluse.query.accounts", data)
        found += answer["accounts"]
        after = answer.get("next")
        if not after:
            return found, True
    return found, False


async def with_positions(
    request: Request, me: Session, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each account with its positions and value (docs/rules.md section 11) where the platform
    reports them."""

    async def one(a: dict[str, Any]) -> dict[str, Any]:
        ref = {"account_id": a["id"]}
        try:
            held = await web.ask(request, me, "alluse.query.positions", ref, subject=a["id"])
        except Refused:  # a platform without positions: cash is the whole value
            return a
        return a | {
            "positions": held.get("positions") or [],
            "value": held.get("value", a["balance"]),
            "positions_value": held.get("positions_value", "0.00"),
        }

    return list(await asyncio.gather(*(one(a) for a in found)))


async def home(_: Request) -> Response:
    return RedirectResponse("/portfolios", status_code=303)


async def portfolio_list(request: Request) -> Response:
    me = web.session(request)
    q = request.query_params
    text, status = q.get("q", "").strip()[:100], q.get("status", "")
    status = status if status in (*STATUSES, AccountStatus.MERGED) else ""
    totals = await web.ask(request, me, "alluse.query.summary", {})
    found, complete = await accounts(request, me)
    everything = views.portfolios(found)
    shown = [p for p in everything if views.matches(p, text, status)]
    return web.render(
        request,
        "portfolios.html",
        totals=totals,
        portfolios=shown,
        total_count=len(everything),
        complete=complete,
        q=text,
        status=status,
        statuses=(*STATUSES, AccountStatus.MERGED.value),
    )


async def portfolio(request: Request) -> Response:
    me = web.session(request)
    pid = _id(request, "portfolio_id")
    found, _ = await accounts(request, me, portfolio_id=pid)
    found = await with_positions(request, me, found)
    if not found:
        return web.render(
            request,
            "error.html",
            status_code=404,
            title="No such portfolio",
            message=f"There is no portfolio {pid}.",
        )
    tree = await web.ask(request, me, "alluse.query.tree", {"portfolio_id": pid})
    node: dict[str, Any] = next((n for n in tree["portfolios"] if n["portfolio_id"] == pid), {})
    return web.render(
        request,
        "portfolio.html",
        p=views.summary(pid, found),
        tree=tree,
        roots=views.tree(tree),
        node=node,
        chart=views.chart(tree["growth"]),
    )


async def account(request: Request) -> Response:
    me = web.session(request)
    aid = _id(request, "account_id")
    q = request.query_params
    tx_type = q.get("type", "") if q.get("type", "") in TX_TYPES else ""
    before = q.get("before", "")
    history_q: dict[str, Any] = {"account_id": aid, "limit": page_size(q.get("limit"))}
    if tx_type:
        history_q["type"] = tx_type
    if before.isascii() and before.isdigit() and int(before) > 0:
        history_q["before"] = int(before)
    found = await web.ask(request, me, "alluse.query.account", {"account_id": aid}, subject=aid)
    (found,) = await with_positions(request, me, [found])
    history = await web.ask(request, me, "alluse.query.history", history_q, subject=aid)
    metrics = await web.ask(request, me, "alluse.query.metrics", {"account_id": aid}, subject=aid)
    kind = "alluse.account.protocol_violation"
    _, violations = await live.recent(web.console(request), account=aid, kind=kind, scan=5000)
    return web.render(
        request,
        "account.html",
        a=found,
        value=views.value_of(found),
        history=history,
        metrics=metrics,
        tx_type=tx_type,
        tx_types=TX_TYPES,
        limit=history_q["limit"],
        first_page=not history_q.get("before"),
        statuses=STATUSES,
        violations=violations[::-1],
    )


async def figures(request: Request) -> Response:
    """An account's figures as the account service answers now: what an open account page shows
    when a balance event says they changed. The event is only the cue (a genuine old one can be
    added to the stream again), the signed fresh answer is what is shown."""
    me = web.session(request)
    aid = _id(request, "account_id")
    found = await web.ask(request, me, "alluse.query.account", {"account_id": aid}, subject=aid)
    shown = {"balance": found["balance"], "available": found["available"]}
    shown["buffer"] = found["cash_buffer"]
    return JSONResponse({k: views.usd(v) for k, v in shown.items()}, headers=NO_STORE)


NO_STORE = {"Cache-Control": "no-store"}


def _id(request: Request, name: str) -> str:
    problems = Problems()
    value = ident(problems, {name: request.path_params[name]}, name)
    if problems:
        raise web.NotFound(f"'{request.path_params[name][:60]}' is not an id")
    return value


def routes() -> list[BaseRoute]:
    return [
        Route("/", home),
        Route("/portfolios", portfolio_list),
        Route("/portfolios/{portfolio_id}", portfolio),
        Route("/accounts/{account_id}", account),
        Route("/accounts/{account_id}/figures", figures),
    ]
