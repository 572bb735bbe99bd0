"""docs/rules.md sections 4-6 in the running account service, on real Redis and PostgreSQL.

A $250,000 moderate system is fed simulated weeks of fills (dated in 2025, so the service's
business time moves a week per fill) until it forks, forks again and a fork merges back.
"""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import build, reinvestment_scheduler
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EFFECTS, ACCOUNT_EVENTS
from shared.infra.runtime.db import connection
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from tests.support import streams
from tests.support.account import Client, assert_ledger_balanced, rejection
from tests.support.streams import caused, ce, entries, outcomes
from tests.support.tokens import Signer
from tests.support.waiting import until

D = Decimal
START = datetime(2025, 1, 2, 15, tzinfo=UTC)  # a Thursday
WEEKLY = D("12339.19")  # 10 x 12.3457 x 100 - 6.51


@dataclass
class Svc:
    client: Client
    rt: Runtime

    async def effect(
        self, type_: str, data: dict[str, Any], at: datetime, *, want: int = 1
    ) -> list[dict[str, Any]]:
        fields = ce(
            f"alluse.effect.{type_}",
            data,
            source="ws4/gateway-1",
            subject=data["account_id"],
            time=at.isoformat(),
        )
        signed = self.client.signer.sign("integration", fields)  # as the integration service does
        await xadd(self, self.client.s.key(ACCOUNT_EFFECTS), signed)
        got = await outcomes(
            self.client.redis,
            self.client.s.key(ACCOUNT_EVENTS),
            fields["id"],
            want=want,
            timeout=10,
        )  # an effect's events commit together: once one is there, all are
        return [e for e in got if e["type"] != "alluse.account.position_changed"]

    async def gen_week(self, account_id: str, week: int, *, want: int = 1) -> list[dict[str, Any]]:
        at = START + timedelta(weeks=week)
        return await self.effect(
            "trade_filled",
            fill(account_id, at, quantity=10, price="12.3457", commission="6.51"),
            at,
            want=want,
        )

    async def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async with connection(self.rt.pool) as conn:
            return [dict(r) for r in await conn.fetch(query, *args)]

    async def balances(self, root: str) -> dict[tuple[int, str], Decimal]:
        rows = await self.sql(
            "SELECT p.generation, p.created_at, a.type, a.balance FROM accounts a JOIN portfolios p ON p.id = a.portfolio_id"
            " WHERE p.root_id = $1 ORDER BY p.generation, p.created_at",
            uuid.UUID(root),
        )
        return {(r["generation"], r["type"]): r["balance"] for r in rows}

    async def total(self, root: str) -> Decimal:
        rows = await self.sql(
            "SELECT coalesce(sum(a.balance), 0) AS s FROM accounts a JOIN portfolios p ON p.id = a.portfolio_id WHERE p.root_id = $1",
            uuid.UUID(root),
        )
        return D(rows[0]["s"])


async def xadd(svc: Svc, stream: str, fields: dict[str, str]) -> None:
    await streams.xadd(svc.client.redis, stream, fields)


def fill(account_id: str, at: datetime, **over: Any) -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex,
        "order_id": "o-1",
        "account_id": account_id,
        "symbol": "NVDA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "1.00",
        "expiration": "2027-01-15",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 2,
        "price": "3.50",
        "multiplier": 100,
        "commission": "1.30",
        "filled_at": at.isoformat(),
        "week_type": "P-EW",
        **over,
    }


@pytest.fixture
async def svc(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Svc]:
    rt = await build(settings)
    async with running(rt):
        yield Svc(Client(redis, settings, signer), rt)
        async with connection(rt.pool) as conn:
            await conn.execute("DELETE FROM growth_settings")  # the next test starts from defaults
        await assert_ledger_balanced(rt)


async def test_250k_moderate_forks_forks_again_and_a_fork_merges_to_the_cent(svc: Svc) -> None:
    events = await svc.client.command(
        "alluse.system.initialize",
        {"total_capital": "250000.00", "template": "moderate"},
        want=4,
        time=(START - timedelta(days=1)).isoformat(),
    )
    accounts = {a["type"]: a for a in events[0]["data"]["accounts"]}
    root, gen = accounts["generation"]["portfolio_id"], accounts["generation"]["id"]
    income = D(0)
    for week in range(4):
        await svc.gen_week(gen, week)
        income += WEEKLY
        assert await svc.total(root) == D("250000.00") + income  # money conserved at every step
    assert (await svc.balances(root))[(0, "generation")] == D("149356.76")
    events = await svc.gen_week(gen, 4, want=8)  # the fifth week crosses the $50,000 surplus
    income += WEEKLY
    assert [e["type"].rsplit(".", 1)[1] for e in events] == [
        "balance_changed",
        "fork_eligible",
        "balance_changed",
        "created",
        "balance_changed",
        "created",
        "balance_changed",
        "forked",
    ]
    forked = events[-1]["data"]
    assert (forked["surplus"], forked["to_generation"], forked["to_compounding"]) == (
        "61695.95",
        "30847.98",
        "30847.97",
    )
    assert await svc.balances(root) == {
        (0, "generation"): D("100000.00"),
        (0, "revenue"): D("75000.00"),
        (0, "compounding"): D("75000.00"),
        (1, "generation"): D("30847.98"),
        (1, "compounding"): D("30847.97"),
    }
    assert await svc.total(root) == D("250000.00") + income
    child1 = forked["child_accounts"]
    for week in range(5, 10):  # five weeks later (past the 24 h cooling period) it forks again
        await svc.gen_week(gen, week, want=8 if week == 9 else 1)
        income += WEEKLY
        assert await svc.total(root) == D("250000.00") + income
    forks = await svc.sql(
        "SELECT surplus, to_generation, to_compounding FROM forks WHERE root_id = $1 ORDER BY at",
        uuid.UUID(root),
    )
    assert [(f["surplus"], f["to_generation"]) for f in forks] == [
        (D("61695.95"), D("30847.98"))
    ] * 2
    # The first child's Com-Acc earns until the child portfolio reaches $500,000: it merges.
    monday = START + timedelta(weeks=10, days=-3)
    big = {
        "quantity": 200,
        "price": "11.0000",
        "commission": "0.00",
        "delta": "-0.25",
        "option_type": "call",
    }
    (one,) = await svc.effect("trade_filled", fill(child1["compounding"], monday, **big), monday)
    assert one["data"]["balance"] == "250847.97"
    income += D("220000.00")
    later = monday + timedelta(weeks=1)
    events = await svc.effect(
        "trade_filled", fill(child1["compounding"], later, **big), later, want=7
    )
    income += D("220000.00")
    merged = events[-1]
    assert merged["type"] == "alluse.account.merged" and merged["data"]["total"] == "501695.95"
    assert merged["data"]["target_account_id"] == accounts["compounding"]["id"]
    statuses = await svc.sql(
        "SELECT status, balance FROM accounts WHERE id = ANY($1::uuid[])",
        [uuid.UUID(i) for i in child1.values()],
    )
    assert statuses == [{"status": "merged", "balance": D("0.00")}] * 2
    assert (await svc.balances(root))[(0, "compounding")] == D("576695.95")
    assert await svc.total(root) == D("250000.00") + income == D("813391.90")
    history = await svc.client.query("alluse.query.history", {"account_id": child1["compounding"]})
    assert [t["type"] for t in history["data"]["transactions"]] == [
        "merge_transfer",
        "trade_premium",
        "trade_premium",
        "fork_transfer",
    ]
    tree = (await svc.client.query("alluse.query.tree", {"portfolio_id": root}))["data"]
    assert (tree["forks"], tree["merges"], tree["total_cash"]) == (2, 1, "813391.90")
    # Value as `alluse show` gives it, account by account: cash + positions at their marks.
    shown = D(0)
    for node in tree["portfolios"]:
        for account in node["accounts"]:
            view = await svc.client.query("alluse.query.positions", {"account_id": account["id"]})
            assert account["value"] == view["data"]["value"]
            shown += D(view["data"]["value"])
    assert D(tree["total_value"]) == shown < D("813391.90")  # the open puts' premium is owed
    assert tree["attribution"]["P-EW"]["income"] == "563391.90"
    metrics = (await svc.client.query("alluse.query.metrics", {"account_id": gen}))["data"]
    # On value (section 11): the ten puts sold are still open, marked at cost (no quote), so
    # the premium is not earned yet and only the commissions are lost; the fork debits and
    # the merge are flows, never losses.
    assert metrics["total_return"] == "-65.10"
    assert metrics["trades"]["total_trades"] == 10


async def auto_fork_off(svc: Svc) -> None:
    (ev,) = await svc.client.command("alluse.config.update", {"growth": {"auto_fork": False}})
    assert ev["type"] == "alluse.config.updated" and ev["data"]["growth"]["auto_fork"] is False


async def test_same_fork_command_delivered_twice_forks_once(svc: Svc) -> None:
    await auto_fork_off(svc)
    gen = (await svc.client.initialize())["generation"]["id"]
    for week in range(4):
        await svc.gen_week(gen, week)
    events = await svc.gen_week(gen, 4, want=2)
    assert events[1]["type"] == "alluse.account.fork_eligible"
    fields = ce(
        "alluse.account.fork",
        {"account_id": gen},
        authorization=svc.client.signer.bearer("operator"),
    )
    for _ in range(2):  # the same envelope twice: applied once, the same outcome replayed
        await xadd(svc, svc.client.s.key(ACCOUNT_COMMANDS), fields)
    got = await outcomes(svc.client.redis, svc.client.s.key(ACCOUNT_EVENTS), fields["id"], want=12)
    assert len({e["id"] for e in got}) == 6 and got[5]["type"] == "alluse.account.forked"
    again = rejection(await svc.client.command("alluse.account.fork", {"account_id": gen}))
    assert again["code"] == "not_fork_eligible"  # another command: the surplus is gone
    assert (
        len(await svc.sql("SELECT 1 FROM forks WHERE parent_account_id = $1", uuid.UUID(gen))) == 1
    )


async def test_rule_4_operator_fork_is_blocked_by_the_cooling_period(svc: Svc) -> None:
    await auto_fork_off(svc)
    gen = (await svc.client.initialize())["generation"]["id"]
    for week in range(5):
        await svc.gen_week(gen, week)
    at = START + timedelta(weeks=4, hours=1)
    first = ce(
        "alluse.account.fork",
        {"account_id": gen},
        authorization=svc.client.signer.bearer("operator"),
        time=at.isoformat(),
    )
    await xadd(svc, svc.client.s.key(ACCOUNT_COMMANDS), first)
    await outcomes(svc.client.redis, svc.client.s.key(ACCOUNT_EVENTS), first["id"], want=6)
    for week in range(5, 10):
        await svc.gen_week(gen, week)
    again = ce(
        "alluse.account.fork",
        {"account_id": gen},
        authorization=svc.client.signer.bearer("operator"),
        time=(at + timedelta(hours=23)).isoformat(),
    )
    await xadd(svc, svc.client.s.key(ACCOUNT_COMMANDS), again)
    got = rejection(await outcomes(svc.client.redis, svc.client.s.key(ACCOUNT_EVENTS), again["id"]))
    assert got["code"] == "fork_cooling_period"
    root = (await svc.sql("SELECT portfolio_id FROM accounts WHERE id = $1", uuid.UUID(gen)))[0][
        "portfolio_id"
    ]
    bad = rejection(await svc.client.command("alluse.account.merge", {"portfolio_id": str(root)}))
    assert bad["code"] == "not_a_child_portfolio"


@contextlib.asynccontextmanager
async def failing_inserts(svc: Svc, table: str) -> AsyncIterator[None]:
    """Every insert into `table` fails, as a crash would after the transaction's other writes."""
    async with connection(svc.rt.pool) as conn:
        await conn.execute(
            f"CREATE OR REPLACE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION 'injected failure in {table}'; END $$;"
            f" CREATE TRIGGER fail_{table} BEFORE INSERT ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION fail_{table}()"
        )
    try:
        yield
    finally:
        async with connection(svc.rt.pool) as conn:
            await conn.execute(f"DROP TRIGGER IF EXISTS fail_{table} ON {table}")


async def dead_lettered(svc: Svc, type_: str, data: dict[str, Any]) -> dict[str, str]:
    """Send an operator command and wait until it lands on the dead-letter stream."""
    cmd = ce(type_, data, authorization=svc.client.signer.bearer("operator"))
    await xadd(svc, svc.client.s.key(ACCOUNT_COMMANDS), cmd)
    dlq = svc.client.s.dlq(ACCOUNT_COMMANDS)
    await until(lambda: svc.client.redis.xlen(dlq), equals=1, timeout=15, what="dead letters")
    (dead,) = await entries(svc.client.redis, dlq)
    assert dead[1][b"id"].decode() == cmd["id"]
    return cmd


async def test_interrupted_fork_leaves_nothing_and_is_dead_lettered_then_redriven(svc: Svc) -> None:
    await auto_fork_off(svc)
    gen = (await svc.client.initialize())["generation"]["id"]
    for week in range(5):
        await svc.gen_week(gen, week, want=2 if week == 4 else 1)
    async with failing_inserts(svc, "forks"):  # the fork fails after its debit and credits
        cmd = await dead_lettered(svc, "alluse.account.fork", {"account_id": gen})
        # Whatever its attempts committed is out before a later command's outcome.
        await svc.client.barrier()
        assert await caused(svc.client.redis, svc.client.events, cmd["id"]) == []
        gen_row = await svc.sql(
            "SELECT balance, baseline FROM accounts WHERE id = $1", uuid.UUID(gen)
        )
        assert gen_row == [
            {"balance": D("161695.95"), "baseline": D("100000.00")}
        ]  # nothing half-done
        moved = await svc.sql(
            "SELECT 1 FROM transactions WHERE type = 'fork_transfer' AND command_id = $1", cmd["id"]
        )
        assert (
            moved == []
            and await svc.sql("SELECT 1 FROM forks WHERE parent_account_id = $1", uuid.UUID(gen))
            == []
        )
    events = await svc.client.command(
        "alluse.account.fork", {"account_id": gen}, role="operator", want=6
    )
    assert (
        events[-1]["type"] == "alluse.account.forked"
        and events[-1]["data"]["surplus"] == "61695.95"
    )


async def test_failed_automatic_fork_still_books_the_fill_and_retries_at_the_next_change(
    svc: Svc,
) -> None:
    gen = (await svc.client.initialize())["generation"]["id"]
    for week in range(4):
        await svc.gen_week(gen, week)
    async with failing_inserts(svc, "forks"):
        events = await svc.gen_week(gen, 4, want=2)
        # The inbox row holds the command's whole outcome, committed with it: nothing else came.
        (row,) = await svc.sql("SELECT outcome FROM inbox WHERE id = $1", events[0]["causationid"])
        outcome = [fields["type"] for _, fields in json.loads(row["outcome"])]
        outcome = [t for t in outcome if t != "alluse.account.position_changed"]
        assert outcome[:2] == ["alluse.account.balance_changed", "alluse.account.fork_eligible"]
        assert not {"alluse.account.forked", "alluse.account.created"} & set(outcome), outcome
        assert (await svc.sql("SELECT balance FROM accounts WHERE id = $1", uuid.UUID(gen)))[0][
            "balance"
        ] == D("161695.95")
    events = await svc.gen_week(gen, 5, want=7)
    assert (
        events[-1]["type"] == "alluse.account.forked"
        and events[-1]["data"]["surplus"] == "74035.14"
    )


async def test_reinvestment_run_twice_in_a_quarter_allocates_once(svc: Svc) -> None:
    rev = (await svc.client.initialize())["revenue"]["id"]
    for day in (6, 13, 20):  # three Mondays of January 2025
        at = datetime(2025, 1, day, 15, tzinfo=UTC)
        await svc.effect(
            "trade_filled", fill(rev, at, delta="-0.35", price="4.0000", commission="1.33"), at
        )
    fee = datetime(2025, 2, 3, 15, tzinfo=UTC)
    await svc.effect(
        "trade_filled", fill(rev, fee, side="buy_to_close", price="0.50", commission="1.00"), fee
    )
    # Net: 3 x (800.00 - 1.33) - 101.00 = 2295.01; 75 % = 1721.26 (to the cent), 25 % = 573.75.
    (ev, _) = await svc.client.command(
        "alluse.account.reinvest", {"account_id": rev, "quarter": "2025-Q1"}, want=2
    )
    assert (
        ev["data"]["net_income"],
        ev["data"]["contracts_amount"],
        ev["data"]["leaps_amount"],
    ) == ("2295.01", "1721.26", "573.75")
    again = rejection(
        await svc.client.command(
            "alluse.account.reinvest", {"account_id": rev, "quarter": "2025-Q1"}
        )
    )
    assert again["code"] == "already_reinvested"
    # Two scheduler replicas with their clocks in 2025 run through the year, a day per tick.
    a, b = (
        reinvestment_scheduler(svc.rt, clock=lambda: clock),
        reinvestment_scheduler(svc.rt, clock=lambda: clock),
    )
    clock, fired = datetime(2025, 1, 1, tzinfo=UTC), []
    while clock < datetime(2026, 1, 1, tzinfo=UTC):
        fired += [q for q in (await a.tick(), await b.tick()) if q]
        clock += timedelta(days=1)
    assert sorted(set(fired)) == ["2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]
    rows = await svc.sql(
        "SELECT quarter, contracts_amount FROM reinvestments WHERE account_id = $1 ORDER BY quarter",
        uuid.UUID(rev),
    )
    assert [(r["quarter"], r["contracts_amount"]) for r in rows] == [
        ("2024-Q4", D(0)),
        ("2025-Q1", D("1721.26")),
        ("2025-Q2", D(0)),
        ("2025-Q3", D(0)),
        ("2025-Q4", D(0)),
    ]


async def test_config_update_is_validated_and_applied_all_or_nothing(svc: Svc) -> None:
    gen = (await svc.client.initialize())["generation"]["id"]
    bad = rejection(
        await svc.client.command(
            "alluse.config.update",
            {
                "growth": {"fork_split_pct": "0", "daily_fork_limit": 3},
                "accounts": {"merge_threshold": "40000.00"},
            },
        )
    )
    assert bad["code"] == "invalid_configuration"
    assert "growth.fork_split_pct" in bad["reason"] and "accounts.merge_threshold" in bad["reason"]
    denied = rejection(
        await svc.client.command(
            "alluse.config.update", {"growth": {"daily_fork_limit": 3}}, role="operator"
        )
    )
    assert denied["code"] == "forbidden"
    (ok,) = await svc.client.command(
        "alluse.config.update",
        {
            "growth": {"daily_fork_limit": 3},
            "accounts": {"fork_threshold": "60000.00"},
            "account_type": "generation",
        },
    )
    assert ok["data"]["growth"]["daily_fork_limit"] == 3 and ok["data"]["accounts_updated"] >= 1
    account = await svc.client.query("alluse.query.account", {"account_id": gen})
    assert account["data"]["config"]["fork_threshold"] == "60000.00"


async def test_interrupted_merge_leaves_nothing_and_is_dead_lettered_then_redriven(
    svc: Svc,
) -> None:
    await auto_fork_off(svc)
    accounts = await svc.client.initialize()
    gen, com = accounts["generation"]["id"], accounts["compounding"]["id"]
    for week in range(5):
        await svc.gen_week(gen, week, want=2 if week == 4 else 1)
    forked = await svc.client.command(
        "alluse.account.fork", {"account_id": gen}, role="operator", want=6
    )
    child = forked[-1]["data"]["child_portfolio_id"]
    before = await svc.sql("SELECT id, status, balance FROM accounts ORDER BY id")
    async with failing_inserts(svc, "merges"):  # the merge fails after its debits and credit
        cmd = await dead_lettered(svc, "alluse.account.merge", {"portfolio_id": child})
        assert await svc.sql("SELECT id, status, balance FROM accounts ORDER BY id") == before
        assert await svc.sql("SELECT 1 FROM transactions WHERE command_id = $1", cmd["id"]) == []
    events = await svc.client.command(
        "alluse.account.merge", {"portfolio_id": child}, role="operator", want=4
    )
    merged = events[-1]
    assert merged["type"] == "alluse.account.merged" and merged["data"]["target_account_id"] == com
    assert merged["data"]["total"] == "61695.95"  # the whole surplus comes home, to the cent


BALANCED = {
    "allocation": {"generation": "35", "revenue": "35", "compounding": "30"},
    "cash_buffer_pct": "6",
    "risk_level": "medium",
    "expected_return_pct": "15",
    "risk_profile": "moderate",
}


async def test_template_added_at_run_time_initializes_a_system_and_a_bad_one_changes_nothing(
    svc: Svc,
) -> None:
    off = {**BALANCED, "allocation": {"generation": "35", "revenue": "34", "compounding": "30"}}
    bad = rejection(
        await svc.client.command(
            "alluse.config.update",
            {
                "templates": {"lopsided": off},
                "growth": {"daily_fork_limit": 3},
            },
        )
    )
    assert bad["code"] == "invalid_configuration"
    assert "templates.lopsided.allocation" in bad["reason"]
    assert await svc.sql("SELECT * FROM growth_settings") == []  # nothing applied, not even growth
    unknown = rejection(
        await svc.client.command(
            "alluse.system.initialize", {"total_capital": "250000.00", "template": "lopsided"}
        )
    )
    assert unknown["code"] == "invalid_configuration"

    (ok,) = await svc.client.command("alluse.config.update", {"templates": {"balanced": BALANCED}})
    assert ok["type"] == "alluse.config.updated" and ok["data"]["templates"]["balanced"] == BALANCED
    assert set(ok["data"]["templates"]) == {"conservative", "moderate", "aggressive", "balanced"}
    assert ok["data"]["changes"]["templates"] == {"balanced": BALANCED}
    accounts = await svc.client.initialize("250000.00", template="balanced")
    got = {
        t: (a["balance"], a["cash_buffer"], a["config"]["allocation_pct"])
        for t, a in accounts.items()
    }
    assert got == {
        "generation": ("87500.00", "5250.00", "35"),
        "revenue": ("87500.00", "5250.00", "35"),
        "compounding": ("75000.00", "4500.00", "30"),
    }
    root = (
        await svc.sql(
            "SELECT portfolio_id FROM accounts WHERE id = $1",
            uuid.UUID(accounts["generation"]["id"]),
        )
    )[0]["portfolio_id"]
    assert await svc.total(str(root)) == D("250000.00")
