"""The live feed: lifecycle events as Server-Sent Events, filtered by account and type.

Each open feed reads the public lifecycle stream from where it stands (or from the browser's
Last-Event-ID after a reconnect), so nothing between two reads is missed. Open feeds are
capped; a feed ends when its session does.
"""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from services.console import views, web
from services.console.scope import shown, visible_accounts
from shared.contracts.envelope import EnvelopeError, decode
from shared.contracts.lifecycle import LIFECYCLE_TYPES
from shared.contracts.streams import ACCOUNT_LIFECYCLE

ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$", re.ASCII)
BACKLOG, SHOWN = 500, 30  # recent entries searched, and shown, when a feed opens
TYPES = tuple(LIFECYCLE_TYPES)


def filters(request: Request) -> tuple[str, str]:
    q = request.query_params
    account = q.get("account", "").strip().lower()[:36]
    kind = q.get("type", "")
    return (account if re.fullmatch(r"[0-9a-f-]*", account) else ""), (
        kind if kind in TYPES else ""
    )


def wanted(row: dict[str, Any], account: str, kind: str) -> bool:
    return (not account or account in row["account"]) and (not kind or row["type"] == kind)


async def row_of(c: web.Console, entry_id: bytes, raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    try:
        ev = decode(raw)
    except EnvelopeError:
        return None  # not a lifecycle event we can read: nothing to show
    if not await c.from_integration(raw):
        return None  # not written by the integration service: not believed, not shown
    fields = {"type": ev.type, "time": ev.time.isoformat(), "subject": ev.subject, "data": ev.data}
    return views.event_row(entry_id.decode(), fields)


async def recent(
    c: web.Console,
    *,
    account: str = "",
    kind: str = "",
    scan: int = BACKLOG,
    most: int = SHOWN,
    visible: frozenset[str] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """The stream's last id and up to `most` matching rows of its last `scan` entries, oldest
    first; with `visible`, only rows of those accounts (a scoped user's)."""
    entries: Any = await c.redis.xrevrange(c.settings.streams.key(ACCOUNT_LIFECYCLE), count=scan)
    rows = [
        r
        for e, raw in entries
        if (r := await row_of(c, e, raw)) and wanted(r, account, kind) and shown(r, visible)
    ]
    return (entries[0][0] if entries else "0-0"), list(reversed(rows[:most]))


def sse(row: dict[str, Any]) -> str:
    return f"id: {row['id']}\nevent: lifecycle\ndata: {json.dumps(row, default=str)}\n\n"


async def page(request: Request) -> Response:
    web.session(request)
    account, kind = filters(request)
    return web.render(request, "live.html", account=account, kind=kind, types=TYPES)


async def events(request: Request) -> Response:
    c = web.console(request)
    me = web.session(request)
    if c.live_feeds.locked():
        return Response("too many live feeds open; try again later\n", 503)
    account, kind = filters(request)
    resume = request.headers.get("last-event-id", "")
    key = c.settings.streams.key(ACCOUNT_LIFECYCLE)
    seen = await visible_accounts(request, me) if account else None
    if seen is not None and account not in seen:  # as the account page: not this user's
        return Response("not an account of your portfolios\n", 403)

    async def stream() -> AsyncIterator[str]:
        async with c.live_feeds:
            cursor: Any = resume if ENTRY_ID.match(resume) else None
            if cursor is None and request.query_params.get("backlog") == "0":
                cursor, _ = await recent(c, scan=1, most=0)  # from now on: what changes next
            if cursor is None:
                seen = await visible_accounts(request, me)
                cursor, rows = await recent(c, account=account, kind=kind, visible=seen)
                for old in rows:
                    yield sse(old)
            yield "event: ready\ndata: {}\n\n"
            while c.sessions.get(me.id) is not None and await c.issuer.fresh(c, me):
                got: Any = await c.redis.xread({key: cursor}, count=200, block=10_000)
                if not got:
                    yield ": still here\n\n"  # keeps proxies from closing an idle feed
                seen = await visible_accounts(request, me) if got else None
                for _, entries in got or []:
                    for entry_id, raw in entries:
                        cursor = entry_id
                        row = await row_of(c, entry_id, raw)
                        if row and wanted(row, account, kind) and shown(row, seen):
                            yield sse(row)
            yield "event: signedout\ndata: {}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def routes() -> list[BaseRoute]:
    return [Route("/live", page), Route("/live/events", events)]
