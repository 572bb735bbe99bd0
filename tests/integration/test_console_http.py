"""The console's HTTP surface without a browser: cookies, headers, redirects, forged posts."""

from collections.abc import AsyncIterator

import httpx
import pytest

from services.console.app import build
from services.console.settings import ConsoleSettings
from shared.infra.runtime.settings import Settings
from tests.support.tokens import Signer


@pytest.fixture
async def console(settings: Settings, signer: Signer) -> AsyncIterator[httpx.AsyncClient]:
    app = build(
        ConsoleSettings(
            redis_url=settings.redis_url,
            stream_prefix=settings.stream_prefix,
            jwks_url=signer.jwks_url,
            security_url="http://127.0.0.1:9",
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as client:
        yield client


async def test_cookies_are_httponly_strict_and_secure_over_tls(console: httpx.AsyncClient) -> None:
    over_tls = (await console.get("/signin")).headers["set-cookie"].lower()
    assert "httponly" in over_tls and "samesite=strict" in over_tls and "secure" in over_tls
    plain = (await console.get("http://console.test/signin")).headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=strict" in plain and "secure" not in plain


async def test_every_page_forbids_framing_inline_scripts_and_caching(
    console: httpx.AsyncClient,
) -> None:
    page = await console.get("/signin")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/static/console.js"' in page.text and "<script>" not in page.text
    css = await console.get("/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_pages_need_a_session_and_a_stale_one_says_so(console: httpx.AsyncClient) -> None:
    for path in (
        "/portfolios",
        "/accounts/3f2c9a1e-2d1e-4c7a-9b57-0a4f3c2e9d10",
        "/live/events",
        "/operations",
    ):
        answer = await console.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=")
    console.cookies.set("alluse_console", "made-up-or-expired", domain="console.test")
    stale = await console.get("/portfolios")
    assert stale.status_code == 303 and "expired=1" in stale.headers["location"]


async def test_posts_without_the_forms_own_token_are_refused(console: httpx.AsyncClient) -> None:
    signin = await console.post("/signin", data={"username": "ada", "password": "x"})
    assert signin.status_code == 403
    await console.get("/signin")  # the sign-in cookie alone, without the form's copy, is not enough
    assert (
        await console.post("/signin", data={"username": "ada", "password": "x"})
    ).status_code == 403
    deposit = await console.post(
        "/accounts/3f2c9a1e-2d1e-4c7a-9b57-0a4f3c2e9d10/deposit", data={"amount": "5.00"}
    )
    assert deposit.status_code == 303 and deposit.headers["location"].startswith("/signin")


async def test_a_sign_in_is_only_ever_sent_back_to_a_page_of_the_console(
    console: httpx.AsyncClient,
) -> None:
    page = await console.get("/signin?next=https://evil.example/steal")
    assert 'name="next" value="/"' in page.text
