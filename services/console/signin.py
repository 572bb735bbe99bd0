"""Signing in and out against the security service: password grant, refresh, revocation
(the client library's OAuth requests, alluse_client.tokens).

Tokens go from the issuer into the session store and from there onto the streams; they are
never written into a page, a cookie or a log line.
"""

import asyncio
import contextlib
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from alluse_client import tokens
from services.console import web
from services.console.forms import Problems, text
from services.console.sessions import Session
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.auth import Verifier
from shared.infra.trust.keys import KeysUnavailable

SIGNIN_CSRF = "alluse_console_signin"
REFRESH_MARGIN = 30  # seconds before expiry at which a token is renewed


@dataclass
class Issuer:
    base_url: str
    verifier: Verifier

    async def sign_in(self, c: "web.Console", username: str, password: str) -> Session:
        form = {"grant_type": "password", "username": username, "password": password}
        body = await asyncio.to_thread(tokens.request_token, f"{self.base_url}/oauth/token", form)
        who = await self.verifier.principal(f"Bearer {body['access_token']}")
        return c.sessions.create(
            name=username,
            subject=who.subject,
            role=who.role,
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_in=float(body.get("expires_in", 60)),
        )

    async def fresh(self, c: "web.Console", session: Session, *, force: bool = False) -> bool:
        """A live access token for the session, renewed when it is about to expire, has been
        revoked, or `force`; False if none can be had (the user must sign in again)."""
        if not force and session.access_expires - c.sessions.clock() > REFRESH_MARGIN:
            try:
                await self.verifier.principal(f"Bearer {session.access_token}")
                return True
            except KeysUnavailable:
                return True  # cannot tell now; the platform checks the token itself
            except Rejected:
                pass  # revoked (a lockout, a role change, a sign-out elsewhere): renew or end
        if not session.refresh_token:
            return False
        form = {"grant_type": "refresh_token", "refresh_token": session.refresh_token}
        try:
            body = await asyncio.to_thread(
                tokens.request_token, f"{self.base_url}/oauth/token", form
            )
            who = await self.verifier.principal(f"Bearer {body['access_token']}")
        except (tokens.TokenRefused, tokens.IssuerUnreachable, Rejected, KeysUnavailable):
            return False
        session.access_token, session.role = body["access_token"], who.role
        session.refresh_token = body.get("refresh_token", session.refresh_token)
        session.access_expires = c.sessions.clock() + float(body.get("expires_in", 60))
        session.visible = None  # the new token's scope may be narrower: learnt again
        return True

    async def sign_out(self, session: Session) -> None:
        url = f"{self.base_url}/oauth/revoke"
        for value in (session.refresh_token, session.access_token):
            if value:
                # The session ends here all the same; a token not revoked expires on its own.
                with contextlib.suppress(tokens.TokenRefused, tokens.IssuerUnreachable):
                    await asyncio.to_thread(tokens.revoke, url, value)


async def signin_page(request: Request) -> Response:
    return _form(request, {}, Problems(), expired=request.query_params.get("expired") == "1")


def _form(
    request: Request,
    values: dict[str, str],
    problems: Problems,
    *,
    status: int = 200,
    expired: bool = False,
) -> Response:
    token = secrets.token_urlsafe(32)  # double-submit: the form and a cookie must agree
    values = {
        **values,
        "next": web.local_path(values.get("next") or request.query_params.get("next")),
    }
    response = web.render(
        request,
        "signin.html",
        status_code=status,
        values=values,
        problems=problems,
        signin_csrf=token,
        expired=expired,
    )
    web.set_cookie(request, response, SIGNIN_CSRF, token, max_age=3600)
    return response


async def signin(request: Request) -> Response:
    c = web.console(request)
    form = await web.form_of(request)
    if not web.same_secret(form.get("csrf"), request.cookies.get(SIGNIN_CSRF)):
        return web.refused(request, "The sign-in form has expired or was not sent by this site.")
    problems = Problems()
    username = text(problems, form, "username", required=True, most=200)
    password = text(problems, form, "password", required=True, most=1000, strip=False)
    values = {"username": username, "next": form.get("next", "")}
    if problems:
        return _form(request, values, problems, status=400)
    try:
        session = await c.issuer.sign_in(c, username, password)
    except tokens.TokenRefused as exc:
        problems.add("password", exc.description or "sign-in refused")
        return _form(request, values, problems, status=401)
    except (tokens.IssuerUnreachable, Rejected, KeysUnavailable) as exc:
        problems.add("username", f"the security service did not answer usably: {exc}")
        return _form(request, values, problems, status=503)
    response = RedirectResponse(web.local_path(values["next"]), status_code=303)
    web.set_cookie(request, response, web.COOKIE, session.id)
    response.delete_cookie(SIGNIN_CSRF, path="/")
    return response


async def signout(request: Request) -> Response:
    c = web.console(request)
    session = web.session(request)
    await web.checked_form(request, session)
    c.sessions.drop(session.id)
    await c.issuer.sign_out(session)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(web.COOKIE, path="/")
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
    ]
