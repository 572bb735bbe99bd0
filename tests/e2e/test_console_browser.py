"""The web console in a real headless Chromium (Debian's `chromium`), driven by Playwright.

Everything runs as in production: four service processes, real Redis and PostgreSQL, users
signed in over the security service's OAuth endpoint. Screenshots of the main pages go to
$ALLUSE_CONSOLE_SCREENSHOTS (the README's pictures) or to the test's temporary folder.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from PIL import Image
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_LIFECYCLE,
    CONSOLE_LANE,
    Streams,
)
from tests.conftest import RUN, fresh_database
from tests.e2e.console_platform import Platform, initialize, platform
from tests.support.waiting import until_sync

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN, OPERATOR, VIEWER = "ada-admin", "otto-operator", "vera-viewer"
MALLORY = "mallory"  # a low-privilege client's lane, the attacker's
OWNER = "pia-owner"  # a portfolio owner: a viewer granted one portfolio


@pytest.fixture(scope="module")
def console(
    servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("console")
    name = f"alluse_test_{RUN}_console"
    db = asyncio.run(fresh_database(servers[1], name).__aenter__())
    try:
        with platform(servers[0], db, f"t{RUN}.console.", tmp) as p:
            for user, role in ((ADMIN, "admin"), (OPERATOR, "operator"), (VIEWER, "viewer")):
                p.user(user, role)
            initialize(p, ADMIN)
            # A viewer reads the portfolios granted to it, no others (docs/scopes.md).
            p.cli("security", "grant", "--user", VIEWER, "--portfolio", p.portfolio)
            yield p
    finally:
        asyncio.run(_drop(servers[1], name))


async def _drop(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("ALLUSE_CONSOLE_SCREENSHOTS")
    return Path(target) if target else tmp_path_factory.mktemp("shots")


@pytest.fixture(scope="module")
def chromium() -> Iterator[BrowserContext]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 860},
        )
        context.set_default_timeout(15_000)
        yield context
        context.close()


@pytest.fixture
def browser(chromium: BrowserContext) -> Iterator[BrowserContext]:
    """The module's browser, signed out: no cookie and no page left by the test before."""
    chromium.clear_cookies()
    yield chromium
    for page in chromium.pages:
        page.close()


def shoot(target: Page | Locator, path: Path, *, full_page: bool = False) -> None:
    """A screenshot, kept small for the README: 128 colours are plenty for these pages."""
    if isinstance(target, Page):
        target.screenshot(path=path, full_page=full_page)
    else:
        target.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def sign_in(page: Page, p: Platform, user: str, path: str = "/portfolios") -> None:
    page.goto(p.console + path)
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", p.passwords[user])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def test_an_operator_follows_a_deposit_and_a_refused_withdrawal(
    console: Platform, browser: BrowserContext, shots: Path
) -> None:
    p, page = console, browser.new_page()
    sign_in(page, p, OPERATOR)
    row = page.locator(f"tr[data-portfolio='{p.portfolio}']")
    expect(row).to_contain_text("250,000.00")
    shoot(page, shots / "portfolios.png")

    row.locator("a").first.click()
    expect(page).to_have_url(re.compile(f"/portfolios/{p.portfolio}$"))
    cards = page.locator("a.card.account")
    expect(cards).to_have_count(3)
    for kind, balance in (
        ("generation", "100,000.00"),
        ("revenue", "75,000.00"),
        ("compounding", "75,000.00"),
    ):
        expect(page.locator(f"a.card.account[data-type={kind}] [data-balance]")).to_have_text(
            balance
        )
    expect(page.locator(f"[data-tree] [data-node='{p.portfolio}']")).to_contain_text("250,000.00")
    shoot(page, shots / "portfolio.png", full_page=True)

    feed = browser.new_page()
    feed.goto(f"{p.console}/live?account={p.accounts['generation']}")
    expect(feed.locator("[data-live-state]")).to_have_text("live")

    page.locator("a.card.account[data-type=generation]").click()
    deposit = page.locator("form[data-command=deposit]")
    command_id = deposit.locator("input[name=command_id]").input_value()
    expect(deposit.locator(".cid")).to_contain_text(command_id)
    other = page.locator("form[data-command=withdraw] input[name=command_id]").input_value()
    assert other != command_id  # each form its own id
    deposit.locator("input[name=amount]").fill("1000.00")
    deposit.locator("input[name=description]").fill("monthly top-up")
    deposit.locator("button").click()
    outcome = page.locator(".outcome[data-outcome=done]")
    expect(outcome).to_contain_text("balance 101,000.00")
    expect(outcome).to_contain_text(command_id)
    expect(page.locator("[data-balance]")).to_have_text("101,000.00")
    expect(page.locator("table.history tbody tr").first).to_contain_text("monthly top-up")
    shoot(page, shots / "account.png", full_page=True)

    event = feed.locator("tr[data-event='alluse.account.balance_changed']").first
    expect(event).to_contain_text("deposit 1,000.00, balance 101,000.00")
    shoot(feed, shots / "live.png")

    page.goto(f"{p.console}/accounts/{p.accounts['compounding']}")
    withdraw = page.locator("form[data-command=withdraw]")
    withdraw.locator("input[name=amount]").fill("10.00")
    withdraw.locator("button").click()
    refused = page.locator(".outcome[data-outcome=refused]")
    expect(refused.locator(".code")).to_have_text("withdrawal_forbidden")
    expect(refused.locator(".reason")).not_to_be_empty()
    expect(page.locator("[data-balance]")).to_have_text("75,000.00")
    shoot(page.locator("#commands"), shots / "refused.png")
    expect(feed.locator("tr[data-event='alluse.command.rejected']")).to_have_count(
        0
    )  # filtered out


def test_a_refused_token_less_copy_of_a_console_deposit_never_shows_refused(
    console: Platform, browser: BrowserContext
) -> None:
    """Finding 2 of issue 18 in the console: an attacker holding a low-privilege client's
    Redis access (its own lane) copies each deposit the console sends, token-less, into its
    lane and into the shared commands stream; the account service refuses the copies (signed
    refusals naming the deposit's source and id). The console shows each deposit booked, the
    refusals are the attacker's alone."""
    p, page = console, browser.new_page()
    r = redis.Redis.from_url(p.env["REDIS_URL"])
    s = Streams(p.env["ALLUSE_STREAM_PREFIX"])
    r.sadd(s.lanes, MALLORY)
    gen = p.accounts["generation"]
    sign_in(page, p, OPERATOR, f"/accounts/{gen}")
    account = p.procs["account"]
    for n in range(3):
        before = Decimal(page.locator("[data-balance]").inner_text().replace(",", ""))
        form = page.locator("form[data-command=deposit]")
        command_id = form.locator("input[name=command_id]").input_value()
        form.locator("input[name=amount]").fill("5.00")
        account.send_signal(signal.SIGSTOP)  # so the copies are certainly there first
        try:
            form.locator("button").click(no_wait_after=True)
            sent = until_sync(
                lambda: [
                    f
                    for f in fields(r, s.lane(ACCOUNT_COMMANDS, CONSOLE_LANE))
                    if f.get(b"id") == command_id.encode()
                ],
                what="the console's deposit in its lane",
            )[0]
            copy = {k: v for k, v in sent.items() if k != b"authorization"}
            r.xadd(s.lane(ACCOUNT_COMMANDS, MALLORY), copy)
            r.xadd(s.key(ACCOUNT_COMMANDS), copy)
        finally:
            account.send_signal(signal.SIGCONT)
        done = page.locator(".outcome[data-outcome=done]")
        expect(done).to_contain_text(command_id)
        expect(done).to_contain_text(f"balance {before + 5:,.2f}")
        expect(page.locator(".outcome[data-outcome=refused]")).to_have_count(0)
        expect(page.locator("[data-balance]")).to_have_text(f"{before + 5:,.2f}")
        refusals = until_sync(
            lambda: [
                json.loads(f[b"data"])
                for f in fields(r, s.outcomes(MALLORY))
                if json.loads(f[b"data"]).get("id") == command_id
            ],
            what="the refusal of the attacker's copy",
        )
        assert [d["code"] for d in refusals] == ["unauthorized"], (n, refusals)


def test_a_replayed_old_balance_event_never_changes_an_open_account_page(
    console: Platform, browser: BrowserContext
) -> None:
    """A genuine balance event (signed by the integration service) of an earlier deposit,
    added again to the lifecycle stream while the account page is open: the page keeps the
    balance the account service answers; a later deposit still shows at once."""
    p, page = console, browser.new_page()
    r = redis.Redis.from_url(p.env["REDIS_URL"])
    s = Streams(p.env["ALLUSE_STREAM_PREFIX"])
    com = p.accounts["compounding"]
    admin = p.token(ADMIN)
    p.cli("deposit", com, "2.00", token=admin)
    p.cli("deposit", com, "3.00", token=admin)
    old = next(
        f
        for f in fields(r, s.key(ACCOUNT_LIFECYCLE), newest=500)
        if f[b"type"] == b"alluse.account.balance_changed"
        and json.loads(f[b"data"])["account_id"] == com
        and json.loads(f[b"data"])["transaction"]["amount"] == "2.00"
    )
    stale = f"{Decimal(json.loads(old[b'data'])['balance']):,.2f}"
    sign_in(page, p, OPERATOR, f"/accounts/{com}")
    now = page.locator("[data-balance]").inner_text()
    assert now != stale
    page.evaluate(SHOWN_BALANCES)
    expect(page.locator("[data-live-account][data-live=ready]")).to_have_count(1)
    r.xadd(s.key(ACCOUNT_LIFECYCLE), old)
    p.cli("deposit", com, "1.00", token=admin)  # the barrier: a later genuine event
    after = f"{Decimal(now.replace(',', '')) + 1:,.2f}"
    expect(page.locator("[data-balance]")).to_have_text(after)
    assert stale not in page.evaluate("window.shownBalances"), stale


def fields(r: "redis.Redis", key: str, *, newest: int = 0) -> list[dict[Any, Any]]:
    """The entries of a stream, oldest first (or its `newest` entries, newest first)."""
    got: Any = r.xrevrange(key, count=newest) if newest else r.xrange(key)
    return [f for _, f in got]


# Every text the account page's balance shows, in order, from now on.
SHOWN_BALANCES = """() => {
  const el = document.querySelector("[data-balance]");
  window.shownBalances = [el.textContent];
  new MutationObserver(() => window.shownBalances.push(el.textContent))
    .observe(el, {childList: true, characterData: true, subtree: true});
}"""


def test_every_form_field_is_checked_by_the_server(
    console: Platform, browser: BrowserContext
) -> None:
    p, page = console, browser.new_page()
    sign_in(page, p, OPERATOR, f"/accounts/{p.accounts['revenue']}")
    before = page.locator("[data-balance]").inner_text()
    csrf = page.locator("form[data-command=deposit] input[name=csrf]").input_value()
    url = f"{p.console}/accounts/{p.accounts['revenue']}/deposit"
    for bad in (
        "1e3",
        "10.001",
        "\u0661\u0660\u0660",
        " ",
        "-5.00",
        "0.00",
        "1,000.00",
        "1000000000000.00",
    ):
        sent: dict[str, str | float | bool] = {
            "csrf": csrf,
            "command_id": str(uuid.uuid4()),
            "amount": bad,
            "back": "/portfolios",
        }
        page.request.post(url, form=sent)
        page.goto(f"{p.console}/accounts/{p.accounts['revenue']}")  # the outcome shows once
        # the flash went to the page named by `back`; the account page shows nothing sent
        expect(page.locator("[data-balance]")).to_have_text(before)
    page.request.post(
        url,
        form={
            "csrf": csrf,
            "command_id": "not-an-id",
            "amount": "5.00",
            "back": f"/accounts/{p.accounts['revenue']}",
        },
    )
    page.goto(f"{p.console}/accounts/{p.accounts['revenue']}")
    expect(page.locator("[data-balance]")).to_have_text(before)
    form = page.locator("form[data-command=deposit]")
    form.locator("input[name=amount]").evaluate(
        "e => { e.removeAttribute('pattern'); e.value = '12.345'; }"
    )
    form.locator("button").click()
    expect(page.locator(".outcome[data-outcome=problems]")).to_be_visible()
    expect(form.locator(".problem")).to_contain_text("at most two decimals")
    expect(page.locator("[data-balance]")).to_have_text(before)


def test_a_viewer_sees_no_command_buttons_and_cannot_post_one(
    console: Platform, browser: BrowserContext, shots: Path
) -> None:
    p, page = console, browser.new_page()
    sign_in(page, p, VIEWER, f"/accounts/{p.accounts['generation']}")
    expect(page.locator("[data-balance]")).not_to_be_empty()
    expect(page.locator("form.cmd")).to_have_count(0)
    expect(
        page.locator("button", has_text=re.compile("Deposit|Withdraw|Fork|Merge|Reinvest"))
    ).to_have_count(0)
    expect(page.locator("nav a", has_text="Operations")).to_have_count(0)
    before = page.locator("[data-balance]").inner_text()
    csrf = page.locator("form.who input[name=csrf]").input_value()  # the viewer's own, valid token
    answer = page.request.post(
        f"{p.console}/accounts/{p.accounts['generation']}/deposit",
        form={"csrf": csrf, "command_id": str(uuid.uuid4()), "amount": "5.00"},
    )
    assert answer.status == 403
    assert "may not send alluse.account.deposit" in answer.text()
    page.reload()
    expect(page.locator("[data-balance]")).to_have_text(before)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{p.console}/portfolios/{p.portfolio}")
    shoot(page, shots / "phone.png")


def test_a_forged_form_post_is_refused(console: Platform, browser: BrowserContext) -> None:
    p, page = console, browser.new_page()
    sign_in(page, p, OPERATOR, f"/accounts/{p.accounts['generation']}")
    before = page.locator("[data-balance]").inner_text()
    url = f"{p.console}/accounts/{p.accounts['generation']}/withdraw"
    for forged in ({}, {"csrf": "guessed"}, {"csrf": ""}):
        forgery: dict[str, str | float | bool] = {
            **forged,
            "command_id": str(uuid.uuid4()),
            "amount": "5.00",
        }
        answer = page.request.post(url, form=forgery)
        assert answer.status == 403, answer.text()
        assert "CSRF" in answer.text()
    page.reload()
    expect(page.locator("[data-balance]")).to_have_text(before)
    # a sign-in form posted without the console's own form and cookie is refused too
    answer = page.request.post(f"{p.console}/signin", form={"username": OPERATOR, "password": "x"})
    assert answer.status == 403


def test_an_expired_session_goes_back_to_sign_in(
    console: Platform, browser: BrowserContext
) -> None:
    p, page = console, browser.new_page()
    sign_in(page, p, OPERATOR, f"/accounts/{p.accounts['generation']}")
    cookie = next(c for c in browser.cookies() if c["name"] == "alluse_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert p.passwords[OPERATOR] not in page.content()
    p.cli("security", "revoke", "--user", OPERATOR)  # every token of the user, as on a lockout
    for _ in range(100):  # until the revocation has reached the account service
        page.goto(f"{p.console}/accounts/{p.accounts['generation']}")
        if "/signin" in page.url:
            break
    expect(page).to_have_url(re.compile(r"/signin\?next=.*expired=1"))
    expect(page.locator("[data-expired]")).to_be_visible()


def test_an_admin_suspends_an_account_and_reads_why_a_fork_is_refused(
    console: Platform, browser: BrowserContext
) -> None:
    p, page = console, browser.new_page()
    rev = f"/accounts/{p.accounts['revenue']}"
    sign_in(page, p, ADMIN, rev)
    form = page.locator("form[data-command=status]")
    form.locator("select[name=status]").select_option("suspended")
    form.locator("input[name=reason]").fill("drawdown review")
    form.locator("button").click()
    expect(page.locator(".outcome[data-outcome=done]")).to_contain_text(
        "status active -> suspended"
    )
    expect(page.locator("[data-status]")).to_contain_text("suspended")
    form = page.locator("form[data-command=status]")
    form.locator("select[name=status]").select_option("active")
    form.locator("button").click()
    expect(page.locator("[data-status]")).to_contain_text("active")

    page.goto(f"{p.console}/accounts/{p.accounts['generation']}")
    page.locator("form[data-command=fork] button").click()
    refused = page.locator(".outcome[data-outcome=refused]")
    expect(refused.locator(".code")).to_have_text("not_fork_eligible")
    expect(refused.locator(".reason")).not_to_be_empty()
    expect(page.locator("form[data-command=merge]")).to_have_count(0)  # a root has no parent


def test_operations_shows_each_service(
    console: Platform, browser: BrowserContext, shots: Path
) -> None:
    p, page = console, browser.new_page()
    sign_in(page, p, ADMIN, "/operations")
    for name in ("security", "account", "integration"):
        expect(page.locator(f"[data-service={name}] [data-ready]")).to_have_text("ready")
    expect(page.locator("[data-service=account] table")).to_contain_text("alluse.account.commands")
    shoot(page, shots / "operations.png", full_page=True)
    page.locator("form.who button").click()  # sign out: the session and its tokens end
    expect(page).to_have_url(re.compile("/signin$"))
    page.goto(f"{p.console}/operations")
    expect(page).to_have_url(re.compile(r"/signin\?next="))


def test_a_portfolio_owner_sees_only_its_own_portfolio_in_list_pages_and_live_feed(
    console: Platform, browser: BrowserContext
) -> None:
    """Finding 5: a viewer read every portfolio. An owner granted portfolio A sees A only: the
    list, the pages and the live feed; B's pages are refused. (Last in this module: it adds
    portfolio B to the platform the others share.)"""
    p, page = console, browser.new_page()
    admin = p.token(ADMIN)
    other = json.loads(
        p.cli(
            "--json",
            "init",
            "--capital",
            "50000.00",
            "--template",
            "moderate",
            "--name",
            "Other fund",
            token=admin,
        )
    )
    b, b_gen = other["portfolio_id"], {a["type"]: a["id"] for a in other["accounts"]}["generation"]
    p.user(OWNER, "viewer")
    p.cli("security", "grant", "--user", OWNER, "--portfolio", p.portfolio)

    owner = p.token(OWNER)  # the CLI as a process, with the owner's own token
    listed = json.loads(p.cli("--json", "list", token=owner))
    assert {a["portfolio_id"] for a in listed["accounts"]} == {p.portfolio}
    assert json.loads(p.cli("--json", "show", p.accounts["generation"], token=owner))
    foreign = subprocess.run(
        [sys.executable, "-m", "services.cli", "--json", "show", b_gen],
        env={**p.env, "ALLUSE_TOKEN": owner},
        capture_output=True,
        text=True,
        check=False,
    )
    assert foreign.returncode == 1 and "forbidden" in foreign.stdout + foreign.stderr, foreign

    sign_in(page, p, OWNER)
    expect(page.locator(f"tr[data-portfolio='{p.portfolio}']")).to_contain_text("Family fund")
    expect(page.locator("tr[data-portfolio]")).to_have_count(1)
    expect(page.locator(f"tr[data-portfolio='{b}']")).to_have_count(0)
    for path in (f"/portfolios/{b}", f"/accounts/{b_gen}"):
        answer = page.goto(p.console + path)
        assert answer is not None and answer.status == 403, path
    refused = page.request.get(f"{p.console}/live/events?account={b_gen}")
    assert refused.status == 403
    own = page.goto(f"{p.console}/accounts/{p.accounts['generation']}")
    assert own is not None and own.status == 200

    feed = browser.new_page()
    feed.goto(f"{p.console}/live")
    expect(feed.locator("[data-live-state]")).to_have_text("live")
    p.cli("deposit", b_gen, "7.00", token=admin)  # B's first, then A's: the feed's order
    p.cli("deposit", p.accounts["generation"], "3.00", token=admin)
    mine = feed.locator(f"tr[data-account='{p.accounts['generation']}']")
    expect(mine.first).to_contain_text("deposit 3.00")  # the barrier: B's came before it
    expect(feed.locator(f"tr[data-account='{b_gen}']")).to_have_count(0)

    operator = browser.new_page()  # the whole platform's user sees both
    operator.context.clear_cookies()
    sign_in(operator, p, OPERATOR)
    expect(operator.locator(f"tr[data-portfolio='{b}']")).to_have_count(1)
