"""What chaos proves at the end, from the account service's own tables and what the load saw:
one effect per command, every effect announced, balances equal to ledgers, money conserved."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from services.bench.load import Command, Load

# The one refusal a command of the load may legitimately get: a withdrawal beyond what is free.
ALLOWED = {"deposit": set(), "fill": set(), "create": set(), "withdrawal": {"insufficient_funds"}}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _examples(items: list[str]) -> str:
    return ", ".join(items[:5]) + (f" ... ({len(items)} in all)" if len(items) > 5 else "")


async def run_checks(dsn: str, load: Load) -> list[Check]:
    commands = list(load.commands.values())
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT command_id, id::text AS tx, amount FROM account.transactions"
            " WHERE command_id = ANY($1::text[])",
            [c.id for c in commands],
        )
        unequal = await conn.fetch(
            "SELECT a.id::text, a.balance, coalesce(sum(t.amount), 0) AS ledger"
            " FROM account.accounts a LEFT JOIN account.transactions t ON t.account_id = a.id"
            " GROUP BY a.id HAVING a.balance <> coalesce(sum(t.amount), 0)"
        )
        balances = {
            str(r["id"]): r["balance"]
            for r in await conn.fetch("SELECT id, balance FROM account.accounts")
        }
        outbox = await conn.fetchval(
            "SELECT (SELECT count(*) FROM account.outbox) + (SELECT count(*) FROM integration.outbox)"
        )
    finally:
        await conn.close()
    per_command = Counter(r["command_id"] for r in rows)
    return [
        one_effect(commands, per_command),
        announced(commands, rows, load.lifecycle_tx),
        ledgers(unequal, len(balances)),
        conserved(commands, balances),
        Check("outbox drained", outbox == 0, f"{outbox} rows left"),
    ]


def ledgers(unequal: list[asyncpg.Record], accounts: int) -> Check:
    wrong = [f"{r['id']}: {r['balance']} vs {r['ledger']}" for r in unequal]
    detail = _examples(wrong) if wrong else f"{accounts} accounts"
    return Check("every balance equals its ledger", not wrong, detail)


def one_effect(commands: list[Command], per_command: Counter[str]) -> Check:
    lost: list[str] = []
    doubled: list[str] = []
    wrong: list[str] = []
    refused: Counter[str] = Counter()
    for c in commands:
        rows = per_command[c.id]
        if c.outcome is None:
            lost.append(f"{c.kind} {c.id} (no outcome, {rows} ledger rows)")
        elif len(c.outcomes) > 1:
            wrong.append(f"{c.kind} {c.id} got {sorted(c.outcomes)}")
        elif c.outcome == "applied" and rows != (1 if c.amount else 0):
            (doubled if rows > 1 else lost).append(f"{c.kind} {c.id} ({rows} ledger rows)")
        elif c.outcome != "applied":
            refused[f"{c.kind} {c.outcome}"] += 1
            if c.outcome not in ALLOWED[c.kind]:
                wrong.append(f"{c.kind} {c.id} refused {c.outcome}")
            elif rows:
                doubled.append(f"{c.kind} {c.id} refused yet {rows} ledger rows")
    problems = lost + doubled + wrong
    applied = sum(c.outcome == "applied" for c in commands)
    refusals = ", ".join(f"{n} {k}" for k, n in refused.items()) or "none"
    detail = f"{applied} applied once, refused: {refusals}"
    if problems:
        detail = f"{len(lost)} lost, {len(doubled)} doubled, {len(wrong)} wrong: " + _examples(
            problems
        )
    return Check("every command has exactly one effect", not problems, detail)


def announced(commands: list[Command], rows: list[asyncpg.Record], seen: set[str]) -> Check:
    creates = {c.id for c in commands if c.kind == "create"}  # announced as account.created
    effects = [r["tx"] for r in rows if r["command_id"] not in creates]
    missing = [tx for tx in effects if tx not in seen]
    return Check(
        "every committed effect is on the lifecycle stream",
        not missing,
        f"{len(effects)} ledger rows, all announced"
        if not missing
        else f"{len(missing)} of {len(effects)} never announced: " + _examples(missing),
    )


def conserved(commands: list[Command], balances: dict[str, Decimal]) -> Check:
    """Each account's balance is its opening balance plus what the commands sent to it and
    applied should have moved, to the cent; so is the total."""
    expected: defaultdict[str, Decimal] = defaultdict(Decimal)
    for c in commands:
        if c.outcome == "applied":
            expected[c.account] += c.amount
    off = [
        f"{a}: {balances.get(a)} expected {v}" for a, v in expected.items() if balances.get(a) != v
    ]
    total, want = sum(balances.values(), Decimal(0)), sum(expected.values(), Decimal(0))
    extra = set(balances) - set(expected)
    ok = not off and total == want and not extra
    detail = f"total {total:,.2f} = {want:,.2f} sent"
    if off or extra:
        detail = f"total {total:,.2f} vs {want:,.2f}; " + _examples(
            off + [f"unexpected account {a}" for a in extra]
        )
    return Check("money conserved to the cent", ok, detail)
