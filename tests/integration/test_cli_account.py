"""The `alluse` operator CLI against the account service running in-process on real servers."""

import asyncio
import base64
import json
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from redis.asyncio import Redis

from services.account.app import build
from services.cli.__main__ import build_parser, main
from services.cli.output import TIMEOUT
from shared.contracts.streams import ACCOUNT_EFFECTS, ACCOUNT_EVENTS, ACCOUNT_QUERIES, OPERATOR_LANE
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.support.streams import ce, outcomes, read, xadd
from tests.support.tokens import Signer

SUBCOMMANDS = (
    "init",
    "create",
    "show",
    "list",
    "update",
    "deposit",
    "withdraw",
    "status",
    "close",
    "history",
    "summary",
    "integrity",
    "positions",
    "reverse",
    "simulate-decade",
)
CLI_ENV = ("ALLUSE_TOKEN", "ALLUSE_TOKEN_FILE", "ALLUSE_CLIENT_ID", "ALLUSE_CLIENT_SECRET_FILE")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    capsys: pytest.CaptureFixture[str]

    async def __call__(self, *argv: str) -> Result:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))  # main() runs its own event loop
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    async def init(self, capital: str = "250000", template: str = "moderate") -> dict[str, str]:
        got = await self("--json", "init", "--capital", capital, "--template", template)
        assert got.code == 0, got
        return {a["type"]: a["id"] for a in got.json()["accounts"]}


@pytest.fixture
def env(
    settings: Settings,
    signer: Signer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis: Redis,
) -> Path:
    """The operator's environment; `redis` is here to delete this test's streams afterwards."""
    for name in CLI_ENV:
        monkeypatch.delenv(name, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(signer.token("admin") + "\n")
    token_file.chmod(0o600)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("ALLUSE_STREAM_PREFIX", settings.stream_prefix)
    monkeypatch.setenv("ALLUSE_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("ALLUSE_JWKS_URL", signer.jwks_url)
    return token_file


@pytest.fixture
async def cli(
    env: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Cli]:
    # A slow reclaimer: these tests leave nothing pending for it to do.
    rt = await build(settings.model_copy(update={"reclaim_idle_ms": 120_000}))
    async with running(rt):
        yield Cli(capsys)


async def test_init_prints_the_three_accounts_of_250k_moderate(cli: Cli) -> None:
    got = await cli("init", "--capital", "250000", "--template", "moderate", "--name", "ops")
    assert got.code == 0, got
    lines = {line.split()[0]: line for line in got.out.splitlines() if line.split()}
    assert "100,000.00" in lines["generation"]
    assert "75,000.00" in lines["revenue"]
    assert "75,000.00" in lines["compounding"]
    assert "(3 rows)" in got.out


async def test_deposit_then_show_gives_the_new_balance(cli: Cli) -> None:
    gen = (await cli.init())["generation"]
    got = await cli("deposit", gen, "1000.00", "--description", "top-up", "--reference", "WIRE-1")
    assert got.code == 0, got
    assert "101,000.00" in got.out
    shown = await cli("show", gen)
    assert shown.code == 0 and "101,000.00" in shown.out
    assert (await cli("show", gen, "--json")).json()["balance"] == "101000.00"


async def test_a_retry_with_the_same_id_is_applied_once(cli: Cli) -> None:
    gen = (await cli.init())["generation"]
    for _ in range(2):
        got = await cli("--json", "deposit", gen, "10.00", "--id", "retry-1")
        assert got.code == 0 and got.json()["balance"] == "100010.00", got


async def test_com_acc_withdrawal_exits_1_with_the_code_on_stderr(cli: Cli) -> None:
    com = (await cli.init())["compounding"]
    got = await cli("withdraw", com, "1.00")
    assert got.code == 1
    assert "withdrawal_forbidden" in got.err and got.out == ""
    as_json = await cli("--json", "withdraw", com, "1.00")
    assert as_json.code == 1 and as_json.json()["code"] == "withdrawal_forbidden"


async def test_json_output_parses_for_scripts(cli: Cli) -> None:
    init = (await cli("--json", "init", "--capital", "100000", "--strategy", "standard")).json()
    ids = {a["type"]: a["id"] for a in init["accounts"]}
    portfolio = init["portfolio_id"]
    listed = (await cli("--json", "list", "--type", "rev", "--portfolio", portfolio)).json()
    assert [a["id"] for a in listed["accounts"]] == [ids["revenue"]]
    summary = (await cli("summary", "--json")).json()  # the database is shared by the run's tests
    assert summary["accounts"] >= 3 and summary["by_type_and_status"]


async def test_update_status_and_close_through_the_cli(cli: Cli) -> None:
    rev = (await cli.init())["revenue"]
    renamed = await cli(
        "--json", "update", rev, "--name", "Rev main", "--set", "max_drawdown_pct=12"
    )
    assert renamed.code == 0 and renamed.json()["name"] == "Rev main", renamed
    suspended = await cli("--json", "status", rev, "suspended", "--reason", "review")
    assert suspended.json()["to_status"] == "suspended"
    refused = await cli("close", rev)
    assert refused.code == 1 and "balance_not_zero" in refused.err
    created = await cli("--json", "create", "--type", "rev", "--name", "spare")
    spare = created.json()["id"]
    closed = await cli("close", spare, "--reason", "done")
    assert closed.code == 0 and "closed" in closed.out, closed
    assert "account_closed" in (await cli("deposit", spare, "1.00")).err


async def test_history_lists_the_transactions(cli: Cli) -> None:
    gen = (await cli.init())["generation"]
    for amount in ("1.00", "2.00"):
        assert (await cli("deposit", gen, amount)).code == 0
    got = await cli("history", gen)
    assert got.code == 0 and "(3 rows)" in got.out, got
    deposits = (await cli("--json", "history", gen, "--type", "deposit", "--limit", "1")).json()
    assert [t["amount"] for t in deposits["transactions"]] == ["2.00"]
    assert deposits["next"] is not None


async def test_integrity_says_ok(cli: Cli) -> None:
    await cli.init()
    got = await cli("integrity")
    assert got.code == 0 and got.out.startswith("ok:"), got


async def test_a_missing_token_exits_with_a_clear_message(
    env: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLUSE_TOKEN_FILE")
    got = await cli("summary")
    assert got.code == 2 and "no token" in got.err and "--token-file" in got.err
    got = await cli("summary", "--token-file", str(env.parent / "nope"))
    assert got.code == 2 and "cannot read token file" in got.err


async def test_the_token_is_read_from_alluse_token_too(
    signer: Signer, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLUSE_TOKEN_FILE")
    monkeypatch.setenv("ALLUSE_TOKEN", signer.token("viewer"))
    assert (await cli("summary")).code == 0


async def test_no_service_means_timeout_and_no_redis_means_unavailable(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(capsys)  # the account service is not running
    got = await cli("summary", "--timeout", "0.3")
    assert got.code == 4 and "no outcome within" in got.err
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:1/0")
    got = await cli("summary")
    assert got.code == 3 and "unreachable" in got.err and "secret" not in got.err


async def test_bad_amounts_and_ids_are_usage_errors(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["deposit", "not-a-uuid", "1.00"],
        ["deposit", "0" * 8 + "-0000-0000-0000-" + "0" * 12, "1.001"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "more than 2 decimal places" in capsys.readouterr().err


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_works_for_every_subcommand(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"alluse {name}" in out and "examples:" in out and "exit codes:" in out


def _issuer(token: str, seen: list[tuple[str, str]]) -> ThreadingHTTPServer:
    """A stand-in for the security service's POST /oauth/token."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append((self.headers["Authorization"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"access_token": token, "token_type": "Bearer"}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def test_client_credentials_fetch_a_token_when_none_is_given(
    env: Path, signer: Signer, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    server = _issuer(signer.token("viewer"), seen)
    secret_file = env.parent / "secret"
    secret_file.write_text("s3cret:with/odd chars\n")
    monkeypatch.delenv("ALLUSE_TOKEN_FILE")
    monkeypatch.setenv("ALLUSE_CLIENT_ID", "ops-cli")
    monkeypatch.setenv("ALLUSE_CLIENT_SECRET_FILE", str(secret_file))
    monkeypatch.setenv("ALLUSE_TOKEN_URL", f"http://127.0.0.1:{server.server_port}/oauth/token")
    try:
        got = await cli("summary")
    finally:
        server.shutdown()
    assert got.code == 0, got
    ((authorization, body),) = seen
    pair = base64.b64decode(authorization.removeprefix("Basic ")).decode()
    assert [unquote_plus(p) for p in pair.split(":")] == ["ops-cli", "s3cret:with/odd chars"]
    assert body == "grant_type=client_credentials"
    assert "s3cret" not in got.out + got.err


async def test_fork_refused_then_merge_of_an_automatic_fork_through_the_cli(
    cli: Cli, settings: Settings, redis: Redis, signer: Signer
) -> None:
    accounts = await cli.init()
    gen = accounts["generation"]
    # One large premium: the Gen-Acc passes its baseline by more than $50,000 and forks itself.
    fill = {
        "fill_id": "big-1",
        "order_id": "o-1",
        "account_id": gen,
        "symbol": "NVDA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "1.00",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 100,
        "price": "6.00",
        "multiplier": 100,
        "commission": "0.00",
        "filled_at": "2026-11-26T15:00:00Z",
        "week_type": "P-EW",
    }
    effect = ce("alluse.effect.trade_filled", fill, source="ws4/gateway-1", subject=gen)
    await xadd(redis, settings.streams.key(ACCOUNT_EFFECTS), signer.sign("integration", effect))
    events = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), effect["id"], want=3)
    forked = next(e for e in events if e["type"] == "alluse.account.forked")
    child = forked["data"]["child_portfolio_id"]

    refused = await cli("fork", gen)  # back at its baseline: nothing left to fork
    assert refused.code == 1 and "not_fork_eligible" in refused.err, refused
    merged = await cli("--json", "merge", child)
    assert merged.code == 0, merged
    assert merged.json()["total"] == "60000.00"  # the whole surplus comes home, to the cent


async def test_positions_value_as_of_and_a_reversal_through_the_cli(
    cli: Cli, settings: Settings, redis: Redis, signer: Signer
) -> None:
    gen = (await cli.init())["generation"]
    deposited = (await cli("--json", "deposit", gen, "1000.00")).json()
    before_fill = (await cli("--json", "history", gen, "--limit", "1")).json()["transactions"][0]
    fill = {
        "fill_id": f"cli-{uuid.uuid4().hex}",
        "order_id": "o-1",
        "account_id": gen,
        "symbol": "AMD",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "150.00",
        "expiration": "2026-12-04",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 3,
        "price": "2.00",
        "multiplier": 100,
        "commission": "1.95",
        "filled_at": "2026-11-26T15:00:00Z",
    }
    effect = ce("alluse.effect.trade_filled", fill, source="ws4/gateway-1", subject=gen)
    await xadd(redis, settings.streams.key(ACCOUNT_EFFECTS), signer.sign("integration", effect))
    await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), effect["id"], want=2)

    held = await cli("positions", gen)
    assert held.code == 0, held
    assert "AMD   261204P00150000" in held.out and "-600.00" in held.out  # short 3, at cost
    assert "value 100,998.05" in held.out  # 101,598.05 cash less the 600.00 the puts are worth
    shown = await cli("show", gen)
    assert "AMD   261204P00150000" in shown.out and "value 100,998.05" in shown.out
    then = await cli("show", gen, "--as-of", before_fill["effective_at"])
    assert "no open positions" in then.out and "value 101,000.00" in then.out, then
    older = (await cli("--json", "history", gen, "--until", before_fill["effective_at"])).json()
    assert older["transactions"][0]["id"] == before_fill["id"]

    tx = deposited["transaction"]["id"]
    got = await cli("reverse", tx, "--reason", "booked twice")
    assert got.code == 0 and f"transaction {tx} reversed by" in got.out, got
    again = await cli("reverse", tx, "--reason", "booked twice")
    assert again.code == 1 and "already_reversed" in again.err
    assert "open positions, each the sum of its history" in (await cli("integrity")).out


async def test_a_reader_that_stops_early_is_not_reported_as_redis_unreachable(
    cli: Cli, env: Path
) -> None:
    """`alluse summary | head -0`: the pipe closes before the CLI writes; it stops quietly."""
    read, write = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "summary",
        stdout=write,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(write)
    os.close(read)  # nobody reads what it prints
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 141, err.decode()
    assert b"unreachable" not in err and b"Traceback" not in err, err.decode()


async def test_an_answer_without_the_account_services_signature_is_not_believed(
    env: Path, redis: Redis, settings: Settings, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone who can write to the caller's reply stream answers, with a made-up balance,
    unsigned and signed by the wrong service: the CLI believes neither and, with no account
    service running to answer, says nothing came back. (An operator's CLI asks through the
    operators' lane.)"""
    queries = settings.streams.lane(ACCOUNT_QUERIES, OPERATOR_LANE)
    account = str(uuid.uuid4())

    async def answer() -> None:
        while True:
            for _, entries in await read(redis, {queries: "0-0"}, block=200):
                for _, raw in entries:
                    box = raw[b"replyto"].decode()
                    data = {"id": account, "balance": "999999.99"}
                    forged = ce("alluse.query.result", data, source="alluse/account-service")
                    await xadd(redis, box, forged)
                    await xadd(redis, box, signer.sign("integration", forged))
                    return

    forger = asyncio.create_task(answer())
    shown = await Cli(capsys)("show", account, "--json", "--timeout", "2")
    await forger
    assert shown.code == TIMEOUT, shown
    assert "999999.99" not in shown.out
