"""`alluse show|list|history|summary|integrity`: what the account service answers about its
accounts, as tables for people or JSON for scripts.

Everything goes through the account service's streams, never its database, so the CLI
needs only REDIS_URL (plus ALLUSE_STREAM_PREFIX when the deployment uses one) and a token.
"""

import argparse
import sys
from typing import Any

from services.cli.account import ACCOUNT_COLUMNS, account_arg
from services.cli.arguments import account_id, account_type, moment
from services.cli.client import StreamClient
from services.cli.output import OK, VALUE, emit, fail, human, rows_table, show, value_lines
from services.cli.wiring import add


async def show_account(c: StreamClient, a: argparse.Namespace) -> int:
    if a.as_of:  # rebuilt from the ledger and the position history
        query, data = "alluse.query.as_of", {"account_id": a.account_id, "at": a.as_of}
    else:
        query, data = "alluse.query.account", {"account_id": a.account_id}
    result = await c.query(query, data, subject=a.account_id)
    if a.json:
        return show(a, result)
    show(a, {k: v for k, v in result.items() if k not in VALUE})
    print()
    value_lines(result)
    return OK


async def list_accounts(c: StreamClient, a: argparse.Namespace) -> int:
    data = {
        "portfolio_id": a.portfolio,
        "type": a.type,
        "status": a.status,
        "after": a.after,
        "limit": a.limit,
    }
    result = await c.query(
        "alluse.query.accounts", {k: v for k, v in data.items() if v is not None}
    )
    if a.json:
        return show(a, result)
    rows_table(result["accounts"], (*ACCOUNT_COLUMNS, "portfolio_id"))
    if result.get("next"):
        print(f"more: alluse list --after {result['next']}", file=sys.stderr)
    return OK


async def history(c: StreamClient, a: argparse.Namespace) -> int:
    data = {
        "account_id": a.account_id,
        "type": a.type,
        "limit": a.limit,
        "before": a.before,
        "until": a.until,
    }
    result = await c.query(
        "alluse.query.history",
        {k: v for k, v in data.items() if v is not None},
        subject=a.account_id,
    )
    if a.json:
        return show(a, result)
    columns = ("id", "type", "amount", "balance_after", "description", "reference", "created_at")
    rows_table(result["transactions"], columns)
    if result.get("next"):
        print(f"more: alluse history {a.account_id} --before {result['next']}", file=sys.stderr)
    return OK


async def summary(c: StreamClient, a: argparse.Namespace) -> int:
    result = await c.query("alluse.query.summary", {})
    if a.json:
        return show(a, result)
    emit(a, human({k: v for k, v in result.items() if k != "by_type_and_status"}))
    print()
    rows_table(result["by_type_and_status"], ("type", "status", "accounts", "balance"))
    return OK


async def integrity(c: StreamClient, a: argparse.Namespace) -> int:
    result = await c.query("alluse.query.integrity", {})
    if a.json:
        show(a, result)
    elif result["ok"]:
        print(
            f"ok: {result['accounts_checked']} accounts checked, every balance equals its ledger;"
            f" {result.get('positions_checked', 0)} open positions, each the sum of its history"
        )
    else:
        rows_table(result["mismatches"], ("account_id", "balance", "ledger"))
        moved = result.get("position_mismatches") or []
        rows_table(
            moved,
            ("account_id", "contract", "quantity", "history_quantity", "cost", "history_cost"),
        )
    if result["ok"]:
        return OK
    return fail(
        f"integrity check failed: {len(result['mismatches'])} account(s) disagree with their ledger,"
        f" {len(result.get('position_mismatches') or [])} position(s) with their history"
    )


def register(subparsers: Any) -> None:
    p = add(
        subparsers,
        "show",
        show_account,
        "show one account, its positions and value",
        "  alluse show ACCOUNT_ID\n  alluse show ACCOUNT_ID --as-of 2026-06-30T21:00:00Z\n"
        "  alluse show ACCOUNT_ID --json | jq -r .value",
        command=False,
    )
    account_arg(p)
    p.add_argument(
        "--as-of",
        type=moment,
        metavar="TIME",
        help="as it was then (RFC 3339), from the ledger and position history",
    )

    p = add(
        subparsers,
        "list",
        list_accounts,
        "list accounts, a page at a time",
        "  alluse list --type com --status active\n  alluse list --limit 50 --after LAST_ID_OF_PREVIOUS_PAGE",
        command=False,
    )
    p.add_argument("--portfolio", type=account_id, metavar="PORTFOLIO_ID")
    p.add_argument("--type", type=account_type, help="gen | rev | com")
    p.add_argument("--status", help="active | inactive | suspended | closed | merged")
    p.add_argument("--after", type=account_id, metavar="ACCOUNT_ID", help="page after this id")
    p.add_argument("--limit", type=int, default=100, help="page size, 1-1000 (default 100)")

    p = add(
        subparsers,
        "history",
        history,
        "an account's transactions, newest first",
        "  alluse history ACCOUNT_ID --type deposit --limit 20\n"
        "  alluse history ACCOUNT_ID --before 1234   # the next page",
        command=False,
    )
    account_arg(p)
    p.add_argument("--type", help="only this transaction type, e.g. deposit, withdrawal")
    p.add_argument("--limit", type=int, default=50, help="page size, 1-1000 (default 50)")
    p.add_argument("--before", type=int, metavar="TX_ID", help="transactions older than this id")
    p.add_argument(
        "--until", type=moment, metavar="TIME", help="only transactions dated up to then (RFC 3339)"
    )

    add(
        subparsers,
        "summary",
        summary,
        "totals by account type and status",
        "  alluse summary\n  alluse summary --json",
        command=False,
    )
    add(
        subparsers,
        "integrity",
        integrity,
        "check every balance against its ledger and every position"
        " against its history (exit 1 if not)",
        "  alluse integrity || page-the-on-call",
        command=False,
    )
