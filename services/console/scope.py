"""What a signed-in user may see (docs/scopes.md): its token's portfolio scope.

The account service narrows every query by the token's scope itself; the live feed reads the
public lifecycle stream directly, so the console narrows it: a scoped user sees events of its
own accounts only, learnt from the account service (the accounts its token may list) and
re-learnt every minute, so an account created in its portfolio meanwhile appears too.
"""

import time
from typing import Any

import jwt
from starlette.requests import Request

from services.console import web
from services.console.sessions import Session
from shared.contracts.permissions import PORTFOLIOS_CLAIM, Scope

RELEARN_SECONDS = 60
PAGE, MAX_PAGES = 200, 10


def scope_of(me: Session) -> Scope:
    """The session token's scope. Read, not verified, here: the account service verifies the
    token on every query, and this only ever narrows what the console shows."""
    try:
        claims: dict[str, Any] = jwt.decode(me.access_token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return Scope()
    return Scope.of(me.role, claims.get(PORTFOLIOS_CLAIM))


async def visible_accounts(request: Request, me: Session) -> frozenset[str] | None:
    """The accounts a scoped user may see; None for the whole platform's users."""
    if scope_of(me).whole:
        return None
    now = time.monotonic()
    if me.visible is not None and now - me.visible[0] < RELEARN_SECONDS:
        return me.visible[1]
    found: set[str] = set()
    after = None
    for _ in range(MAX_PAGES):
        data: dict[str, Any] = {"limit": PAGE} | ({"after": after} if after else {})
        answer = await web.ask(request, me, "alluse.query.accounts", data)
        found |= {str(a["id"]) for a in answer["accounts"]}
        after = answer.get("next")
        if not after:
            break
    me.visible = (now, frozenset(found))
    return me.visible[1]


def shown(row: dict[str, Any], visible: frozenset[str] | None) -> bool:
    """Whether a live-feed row may be shown: any, or one of the user's accounts' own."""
    return visible is None or str(row.get("account") or "") in visible
