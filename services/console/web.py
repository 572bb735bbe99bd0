"""The plumbing every page shares: the console's resources, sessions, CSRF, rendering, asking.

A page handler reads `session(request)`, asks the platform through `ask` (queries with the
signed-in user's own token) and returns `render(...)`. Anything that needs a new sign-in
raises SignInNeeded, which the app turns into a redirect to /signin.
"""

import asyncio
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from alluse_client import KeySet, KeysUnavailable, SignatureError
from alluse_client.signatures import text_fields
from services.console.sessions import Session, Sessions
from services.console.settings import ConsoleSettings
from shared.contracts.permissions import REQUIRED, Permission, allows
from shared.contracts.streams import ACCOUNT_LIFECYCLE
from shared.contracts.trust import INTEGRATION
from shared.tooling.client import NoAnswer, Refused, StreamClient

if TYPE_CHECKING:
    from services.console.signin import Issuer

COOKIE = "alluse_console"
MAX_FORM_BYTES = 16 * 1024


@dataclass
class Console:
    settings: ConsoleSettings
    redis: Redis
    sessions: Sessions
    issuer: "Issuer"
    templates: Jinja2Templates
    source: str
    live_feeds: asyncio.Semaphore
    # The published keys as the client library checks entries with them (the platform's own
    # KeySet verifies the users' access tokens, in the Verifier).
    keys: KeySet

    async def from_integration(self, raw: dict[bytes, bytes]) -> bool:
        """Only the integration service writes the lifecycle stream: its signature or nothing."""
        try:
            return await self.keys.signer_of(text_fields(raw)) == INTEGRATION
        except (SignatureError, KeysUnavailable, ValueError):  # ValueError: not even text
            return False


class SignInNeeded(Exception):
    def __init__(self, *, expired: bool) -> None:
        super().__init__("sign-in needed")
        self.expired = expired


class Unavailable(Exception):
    """The platform did not answer (a timeout or an unreadable reply)."""


def console(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


def session(request: Request) -> Session:
    found = console(request).sessions.get(request.cookies.get(COOKIE))
    if found is None:
        raise SignInNeeded(expired=COOKIE in request.cookies)
    return found


def signin_redirect(request: Request, *, expired: bool) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urlencode({"next": target, **({"expired": "1"} if expired else {})})
    response = RedirectResponse(f"/signin?{query}", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    """HttpOnly, SameSite=Strict, and Secure whenever the console is reached over TLS."""
    c = console(request)
    secure = request.url.scheme == "https" or c.settings.console_secure_cookies
    response.set_cookie(
        name, value, path="/", httponly=True, samesite="strict", secure=secure, **kw
    )


def can(session: Session | None, permission: Permission) -> bool:
    return session is not None and allows(session.role, permission)


def may_send(session: Session, message_type: str) -> bool:
    return allows(session.role, REQUIRED[message_type])


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> Response:
    c = console(request)
    me = c.sessions.get(request.cookies.get(COOKIE))
    context.setdefault("flash", me.pop_flash() if me else None)
    context |= {
        "me": me,
        "csrf": me.csrf if me else "",
        "quote": quote,
        "can_move": can(me, Permission.UPDATE_BALANCE),
        "can_manage": can(me, Permission.MANAGE_ACCOUNTS),
    }
    return c.templates.TemplateResponse(request, name, context, status_code=status_code)


def refused(request: Request, message: str, *, status: int = 403) -> Response:
    return render(request, "error.html", status_code=status, title="Refused", message=message)


def same_secret(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


class Forbidden(Exception):
    """A post this console will not act on: forged (bad CSRF) or beyond the user's role."""


async def form_of(request: Request) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise Forbidden("form too large")
    async with request.form(max_files=0, max_fields=50) as data:
        return {k: v for k, v in data.items() if isinstance(v, str)}


async def checked_form(request: Request, me: Session) -> dict[str, str]:
    """The posted form, only if it carries this session's CSRF token."""
    form = await form_of(request)
    if not same_secret(form.get("csrf"), me.csrf):
        raise Forbidden(
            "This form was not sent by this console session (missing or wrong CSRF token)."
        )
    return form


async def client(request: Request, me: Session) -> StreamClient:
    c = console(request)
    if not await c.issuer.fresh(c, me):
        c.sessions.drop(me.id)
        raise SignInNeeded(expired=True)
    return StreamClient(
        c.redis,
        c.settings.streams,
        me.access_token,
        c.settings.console_timeout_seconds,
        source=c.source,
        outcomes=ACCOUNT_LIFECYCLE,
        keys=c.keys,
        lane=c.settings.console_lane or None,
    )


async def ask(
    request: Request, me: Session, type_: str, data: dict[str, Any], *, subject: str | None = None
) -> dict[str, Any]:
    """A query with the user's own token; a token refused mid-session is renewed once."""
    c = console(request)
    for attempt in range(2):
        try:
            return await (await client(request, me)).query(type_, data, subject=subject)
        except Refused as exc:
            if exc.code != "unauthorized" or attempt:
                raise
            if not await c.issuer.fresh(c, me, force=True):
                c.sessions.drop(me.id)
                raise SignInNeeded(expired=True) from None
        except NoAnswer as exc:
            raise Unavailable(str(exc)) from None
    raise AssertionError("unreachable")


class NotFound(Exception):
    """A page for something that is not there (or is not even an id)."""


def local_path(value: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    parts = urlsplit(value or "/")
    ok = parts.path.startswith("/") and not parts.path.startswith("//") and not parts.netloc
    ok = ok and not parts.scheme and "\\" not in parts.path
    return parts.path + (f"?{parts.query}" if parts.query else "") if ok else "/"
