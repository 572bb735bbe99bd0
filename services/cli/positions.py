"""`alluse positions|reverse`: what an account holds and what it is worth (docs/rules.md section
11), and corrections that book the opposite entry instead of editing history."""

import argparse
from typing import Any

from services.cli.arguments import account_id
from services.cli.client import StreamClient, until
from services.cli.output import OK, emit, money, rows_table, value_lines
from services.cli.wiring import add


async def positions(c: StreamClient, a: argparse.Namespace) -> int:
    data = await c.query(
        "alluse.query.positions", {"account_id": a.account_id}, subject=a.account_id
    )
    if a.json:
        emit(a, data)
    else:
        value_lines(data)
    return OK


async def reverse(c: StreamClient, a: argparse.Namespace) -> int:
    data = {"transaction_id": a.transaction_id, "reason": a.reason}
    events = await c.command(
        "alluse.account.reverse", data, done=until("alluse.account.reversed"), event_id=a.id
    )
    done = next(e.data for e in events if e.type == "alluse.account.reversed")
    if a.json:
        emit(a, done)
        return OK
    print(
        f"transaction {done['reverses']} reversed by {done['transaction_id']} "
        f"({done['type']} {money(done['amount'])}); balance {money(done['balance'])}"
    )
    moved = [e.data for e in events if e.type == "alluse.account.position_changed"]
    if moved:
        rows_table(moved, ("contract", "kind", "change", "quantity", "cost"))
    return OK


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a transaction id (a whole number)")
    return value


def register(sub: Any) -> None:
    p = add(
        sub,
        "positions",
        positions,
        "an account's positions at their marks, and its value",
        "  alluse positions ACCOUNT_ID\n  alluse --json positions ACCOUNT_ID | jq -r .value",
        command=False,
    )
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    p = add(
        sub,
        "reverse",
        reverse,
        "correct a booking: the opposite entry, naming it, once",
        "  alluse reverse 4711 --reason 'deposit booked to the wrong account'",
        command=True,
    )
    p.add_argument("transaction_id", type=_positive, metavar="TX_ID", help="from alluse history")
    p.add_argument("--reason", required=True, help="why; kept with the entry and in the audit")
