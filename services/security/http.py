"""HTTP: POST /oauth/token (RFC 6749), POST /oauth/revoke (RFC 7009), GET /.well-known/jwks.json."""

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.security.domain import (
    InvalidClient,
    InvalidRequest,
    SecurityError,
    UnsupportedGrantType,
)
from services.security.grants import Authority

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024
JwksSource = Callable[[], Awaitable[dict[str, Any]]]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(err: SecurityError) -> Response:
    headers = dict(NO_STORE)
    if isinstance(err, InvalidClient):
        headers["WWW-Authenticate"] = 'Basic realm="alluse"'
    body = {"error": err.code, "error_description": err.description}
    return JSONResponse(body, err.status, headers=headers)


async def form(request: Request) -> dict[str, str]:
    """The urlencoded body; a parameter given twice is an error (RFC 6749 section 3.2)."""
    if (
        request.headers.get("content-type", "").split(";")[0].strip()
        != "application/x-www-form-urlencoded"
    ):
        raise InvalidRequest("body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidRequest(f"body larger than {MAX_BODY} bytes")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict", max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"body is not a valid form: {type(exc).__name__}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidRequest(f"parameter '{key[:40]}' given more than once")
        params[key] = value
    return params


def client_credentials(request: Request, params: dict[str, str]) -> tuple[str, str]:
    """HTTP Basic (RFC 6749 section 2.3.1) or client_id/client_secret in the body, not both."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        if "client_secret" in params:
            raise InvalidRequest("use one client authentication method, not two")
        try:
            cid, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidClient("malformed Basic credentials") from None
        if not sep:
            raise InvalidClient("malformed Basic credentials")
        return unquote_plus(cid), unquote_plus(secret)
    return required(params, "client_id"), required(params, "client_secret")


def required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"missing parameter '{name}'")
    return value


def routes(authority: Authority, pool: asyncpg.Pool, jwks: JwksSource) -> list[BaseRoute]:
    async def refused(err: SecurityError, grant: str) -> Response:
        # Refusals raised before a grant's own transaction identify nobody: counted, and
        # audited as one record per interval (services/security/failures.py).
        if isinstance(err, InvalidRequest | UnsupportedGrantType):
            authority.failures.note(grant, err.code)
        return oauth_error(err)

    async def token(request: Request) -> Response:
        grant = ""
        try:
            params = await form(request)
            grant = required(params, "grant_type")
            body: dict[str, Any]
            if grant == "password":
                body = await authority.password(
                    required(params, "username"), required(params, "password")
                )
            elif grant == "client_credentials":
                body = await authority.client(*client_credentials(request, params))
            elif grant == "refresh_token":
                body = await authority.refresh(required(params, "refresh_token"))
            else:
                raise UnsupportedGrantType(f"grant_type '{grant[:40]}' is not supported")
        except SecurityError as err:
            return await refused(err, grant)
        return JSONResponse(body, headers=NO_STORE)

    async def revoke(request: Request) -> Response:
        try:
            await authority.revoke(required(await form(request), "token"))
        except SecurityError as err:
            return await refused(err, "revoke")
        return Response(status_code=200, headers=NO_STORE)

    async def published(_: Request) -> Response:
        return JSONResponse(await jwks(), headers={"Cache-Control": "public, max-age=60"})

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
        Route("/.well-known/jwks.json", published, methods=["GET"]),
    ]
