"""Composition root of the console: settings -> Redis, sessions, issuer, templates -> routes."""

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jinja2
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import alluse_client
from services.console import commands, live, operations, pages, signin, views, web
from services.console.forms import new_command_id
from services.console.sessions import Sessions
from services.console.settings import ConsoleSettings
from shared.contracts.streams import REVOCATIONS
from shared.infra.runtime.logs import setup
from shared.infra.runtime.redisclient import connect
from shared.infra.trust.auth import Verifier
from shared.infra.trust.keys import KeySet
from shared.infra.trust.revocations import Revocations
from shared.tooling.client import Refused

HERE = Path(__file__).parent
HEADERS = [  # no script, style, frame or form target from anywhere but this console
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none';"
        b" base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
                if not scope["path"].startswith("/static/"):
                    message["headers"].append((b"cache-control", b"no-store"))
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters["usd"] = views.usd
    env.globals["short"] = views.SHORT
    env.globals["new_id"] = new_command_id  # each form its own id, shown on it
    return Jinja2Templates(env=env)


def build(settings: ConsoleSettings) -> Starlette:
    keys = KeySet.from_url(settings.jwks_url)
    redis = connect(settings.redis_url)
    # Followed like every service does, so a revoked user's session ends at its next page.
    revocations = Revocations(redis, settings.streams.key(REVOCATIONS), keys=keys)
    verifier = Verifier(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        is_revoked=revocations.is_revoked,
    )
    console = web.Console(
        settings=settings,
        redis=redis,
        sessions=Sessions(
            idle=settings.console_session_idle_seconds,
            max_age=settings.console_session_max_seconds,
            capacity=settings.console_max_sessions,
            per_user=settings.console_max_sessions_per_user,
        ),
        issuer=signin.Issuer(settings.security_url.rstrip("/"), verifier),
        templates=templates(),
        source=f"alluse-console/{socket.gethostname()}",
        live_feeds=asyncio.Semaphore(settings.console_max_live_feeds),
        keys=alluse_client.KeySet.from_url(settings.jwks_url),
    )

    async def readyz(_: Request) -> Response:
        try:
            await console.redis.ping()
            return JSONResponse({"status": "ok", "redis": "ok", "sessions": len(console.sessions)})
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "redis": type(exc).__name__}, 503)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *signin.routes(),
        *pages.routes(),
        *commands.routes(),
        *live.routes(),
        *operations.routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        follower = await revocations.start()
        yield
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await redis.aclose()

    app = Starlette(routes=routes, exception_handlers=_handlers(), lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    app.state.console = console
    return app


def _handlers() -> dict[Any, Any]:
    async def sign_in(request: Request, exc: web.SignInNeeded) -> Response:
        return web.signin_redirect(request, expired=exc.expired)

    async def forbidden(request: Request, exc: web.Forbidden) -> Response:
        return web.refused(request, str(exc))

    async def refused(request: Request, exc: Refused) -> Response:
        status = 404 if exc.code.startswith("unknown_") else 403 if exc.code == "forbidden" else 400
        return web.render(
            request,
            "error.html",
            status_code=status,
            title=f"Refused: {exc.code}",
            message=exc.reason,
        )

    async def unavailable(request: Request, exc: web.Unavailable) -> Response:
        return web.render(
            request,
            "error.html",
            status_code=503,
            title="The platform did not answer",
            message=str(exc),
        )

    async def not_found(request: Request, exc: web.NotFound) -> Response:
        return web.render(
            request, "error.html", status_code=404, title="Not found", message=str(exc)
        )

    return {
        web.SignInNeeded: sign_in,
        web.Forbidden: forbidden,
        Refused: refused,
        web.Unavailable: unavailable,
        web.NotFound: not_found,
    }


class _Server(uvicorn.Server):
    """SIGINT/SIGTERM end the server with exit status 0 (uvicorn would re-raise them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: ConsoleSettings) -> None:
    app = build(settings)
    tls: dict[str, Any] = {}
    if settings.tls:
        tls = {"ssl_certfile": settings.console_tls_cert, "ssl_keyfile": settings.console_tls_key}
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=3,
        **tls,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()


def main() -> None:
    settings = ConsoleSettings()  # from the environment
    setup(settings.log_level, "console")
    logging.getLogger(__name__).info("console on port %s", settings.http_port)
    asyncio.run(serve(settings))
