"""`alluse init|create|show|list|update|deposit|withdraw|status|close|history|summary|integrity`.

Everything goes through the account service's streams, never its database, so the CLI
needs only REDIS_URL (plus ALLUSE_STREAM_PREFIX when the deployment uses one) and a token.
"""

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.cli.client import (
    CliError,
    StreamClient,
    platform_keys,
    redacted,
    redis_url,
    resolve_token,
    until,
)
from services.cli.output import OK, UNAVAILABLE, USAGE, emit, fail, table
from shared.contracts.money import parse_money
from shared.contracts.streams import Streams
from shared.infra.redisclient import connect

Action = Callable[[StreamClient, argparse.Namespace], Awaitable[int]]
TYPES = {"gen": "generation", "rev": "revenue", "com": "compounding"}
MONEY = {
    "amount", "balance", "balance_after", "cash_buffer", "available", "contributed_capital",
    "baseline", "total_balance", "active_balance", "total_capital", "cash_buffer_total",
    "available_total", "ledger",
}  # fmt: skip
ACCOUNT_COLUMNS = ("type", "id", "name", "status", "balance", "cash_buffer", "available")


# --- argument types: a friendly error before anything is sent ------------------------------


def amount(text: str) -> str:
    try:
        value = parse_money(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"amount '{text}' {exc}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"amount '{text}' must be greater than zero")
    return str(value)


def percent(text: str) -> str:
    try:
        return str(parse_money(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"percentage '{text}' {exc}") from None


def account_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an account id (a UUID)") from None


def account_type(text: str) -> str:
    name = TYPES.get(text.lower(), text.lower())
    if name not in TYPES.values():
        raise argparse.ArgumentTypeError(
            f"'{text}' is not one of gen, rev, com ({', '.join(TYPES.values())})"
        )
    return name


def allocation(text: str) -> dict[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(
            "allocation is three percentages: gen,rev,com (e.g. 40,30,30)"
        )
    return dict(zip(TYPES.values(), map(percent, parts), strict=True))


def setting(text: str) -> tuple[str, str | list[str]]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    # Lists (entry_days=monday,wednesday) split on commas; numbers travel as strings, like money.
    return key.strip(), [v.strip() for v in value.split(",")] if "," in value else value.strip()


def moment(text: str) -> str:
    """An RFC 3339 time with its zone, e.g. 2026-06-30T21:00:00Z."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a time with its zone, e.g. 2026-06-30T21:00:00Z"
        )
    return at.isoformat()


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number of seconds")
    return value


# --- how results look to a person ----------------------------------------------------------


FIRST = ("id", "name", "type", "status", "portfolio_id", "balance", "cash_buffer", "available")


def human(values: Mapping[str, Any]) -> dict[str, Any]:
    """Money with thousands separators, the usual fields first, config one setting a line."""
    ordered = {k: values[k] for k in FIRST if k in values} | dict(values)
    out = {k: _money(v) if k in MONEY and v is not None else v for k, v in ordered.items()}
    config = out.pop("config", None)
    if isinstance(config, dict):
        out |= {f"config.{k}": ",".join(v) if isinstance(v, list) else v for k, v in config.items()}
    elif config is not None:
        out["config"] = config
    return out


def _money(value: Any) -> str:
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:  # not ours to fix: show what the service sent
        return str(value)


def rows_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    cells = [
        {c: "" if r.get(c) is None else str(r.get(c)) for c in columns} for r in map(human, rows)
    ]
    for c in set(columns) & MONEY:  # right-align money, which the table sees as text
        width = max([len(c)] + [len(r[c]) for r in cells])
        for r in cells:
            r[c] = r[c].rjust(width)
    table(cells, columns)


def show(
    args: argparse.Namespace, raw: Mapping[str, Any], view: Mapping[str, Any] | None = None
) -> int:
    emit(args, raw if args.json else human(view if view is not None else raw))
    return OK


# --- the subcommands ------------------------------------------------------------------------


async def init(c: StreamClient, a: argparse.Namespace) -> int:
    data: dict[str, Any] = {"total_capital": a.capital, "name": a.name}
    optional = {"template": a.template, "strategy": a.strategy, "allocation": a.allocation,
                "cash_buffer_pct": a.buffer, "risk_profile": a.risk_profile}  # fmt: skip
    data.update({k: v for k, v in optional.items() if v is not None})
    (ev, *_) = await c.command(
        "alluse.system.initialize", data, done=until("alluse.system.initialized"), event_id=a.id
    )
    d = ev.data
    if a.json:
        return show(a, d)
    plan = d.get("template") or d.get("strategy") or "custom"
    print(f"System initialized: portfolio {d['portfolio_id']} ({plan}, risk {d.get('risk_level')})")
    print(f"capital {_money(d['total_capital'])}  cash buffer {_money(d['cash_buffer_total'])}  "
          f"available {_money(d['available_total'])}")  # fmt: skip
    rows_table(d["accounts"], ACCOUNT_COLUMNS)
    return OK


async def create(c: StreamClient, a: argparse.Namespace) -> int:
    data: dict[str, Any] = {"type": a.type, "name": a.name, "initial_balance": a.initial_balance,
                            "config": dict(a.set)}  # fmt: skip
    if a.portfolio:
        data["portfolio_id"] = a.portfolio
    (ev,) = await c.command(
        "alluse.account.create", data, done=until("alluse.account.created"), event_id=a.id
    )
    return show(a, ev.data["account"])


POSITION_COLUMNS = (
    "contract", "kind", "quantity", "strike", "expiration", "cost", "mark", "market_value",
)  # fmt: skip
VALUE = ("cash", "positions", "positions_value", "value")


def value_lines(data: Mapping[str, Any]) -> None:
    """An account's positions as a table, then cash + positions = value (section 11)."""
    if data.get("positions"):
        rows_table(data["positions"], POSITION_COLUMNS)
    else:
        print("no open positions")
    print(f"cash {_money(data['cash'])}  +  positions {_money(data['positions_value'])}"
          f"  =  value {_money(data['value'])}")  # fmt: skip


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


async def update(c: StreamClient, a: argparse.Namespace) -> int:
    data: dict[str, Any] = {"account_id": a.account_id, "config": dict(a.set)}
    if a.name is not None:
        data["name"] = a.name
    if a.name is None and not a.set:
        raise CliError("nothing to update: give --name and/or --set KEY=VALUE", USAGE)
    done = until("alluse.account.updated")
    (ev,) = await c.command(
        "alluse.account.update", data, done=done, subject=a.account_id, event_id=a.id
    )
    return show(a, ev.data["account"])


def move(type_: str) -> Action:
    async def run(c: StreamClient, a: argparse.Namespace) -> int:
        data = {"account_id": a.account_id, "amount": a.amount, "description": a.description}
        if a.reference:
            data["reference"] = a.reference
        done = until("alluse.account.balance_changed")
        (ev,) = await c.command(type_, data, done=done, subject=a.account_id, event_id=a.id)
        tx = ev.data["transaction"]
        view = {"account_id": a.account_id, "transaction": tx["id"], "type": tx["type"], "amount": tx["amount"],
                "balance": ev.data["balance"], "cash_buffer": ev.data["cash_buffer"],
                "available": ev.data["available"]}  # fmt: skip
        return show(a, ev.data, view)

    return run


async def status(c: StreamClient, a: argparse.Namespace) -> int:
    data = {"account_id": a.account_id, "status": a.status, "reason": a.reason}
    done = until("alluse.account.status_changed")
    events = await c.command(
        "alluse.account.set_status", data, done=done, subject=a.account_id, event_id=a.id
    )
    return show(a, events[0].data)


async def close(c: StreamClient, a: argparse.Namespace) -> int:
    data = {"account_id": a.account_id, "reason": a.reason}
    done = until("alluse.account.closed")
    events = await c.command(
        "alluse.account.close", data, done=done, subject=a.account_id, event_id=a.id
    )
    return show(a, next(e.data for e in events if e.type == "alluse.account.status_changed"))


async def history(c: StreamClient, a: argparse.Namespace) -> int:
    data = {"account_id": a.account_id, "type": a.type, "limit": a.limit, "before": a.before,
            "until": a.until}  # fmt: skip
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
        print(f"ok: {result['accounts_checked']} accounts checked, every balance equals its ledger;"
              f" {result.get('positions_checked', 0)} open positions, each the sum of its history")  # fmt: skip
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


# --- wiring ---------------------------------------------------------------------------------


def run(action: Action) -> Callable[[argparse.Namespace], Awaitable[int]]:
    """Connect, act, and turn what went wrong into an exit code and a line on stderr."""

    async def go(args: argparse.Namespace) -> int:
        url = ""
        try:
            url = redis_url()
            token = await asyncio.to_thread(resolve_token, args.token_file)
            redis = connect(url, socket_connect_timeout=5)
            try:
                streams = Streams(os.environ.get("ALLUSE_STREAM_PREFIX", ""))
                client = StreamClient(redis, streams, token, args.timeout, keys=platform_keys())
                return await action(client, args)
            finally:
                await redis.aclose()
        except CliError as exc:
            if exc.data and args.json:
                print(json.dumps(exc.data, indent=2, default=str))
            return fail(exc.message, exc.code)
        except BrokenPipeError:
            raise  # the reader of our output went away (`| head`): not Redis's fault
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            return fail(f"Redis at {redacted(url)} is unreachable: {exc}", UNAVAILABLE)

    return go


def _common(*, command: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument("--token-file", metavar="PATH", help="file holding the JWT (default: $ALLUSE_TOKEN_FILE, "
                   "$ALLUSE_TOKEN, or client credentials from $ALLUSE_CLIENT_ID/$ALLUSE_CLIENT_SECRET_FILE)")  # fmt: skip
    g.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the outcome (default 10; exit 4 when it passes)")  # fmt: skip
    g.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    if command:
        g.add_argument("--id", metavar="ID", help="CloudEvent id; re-send with the same --id to retry "
                       "idempotently (default: a fresh UUID)")  # fmt: skip
    return p


EXIT_CODES = "exit codes: 0 ok, 1 rejected, 2 usage, 3 Redis unreachable, 4 timeout"


def _add(
    sub: Any, name: str, action: Action, help_: str, examples: str, *, command: bool
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help_, description=help_, parents=[_common(command=command)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}",
    )  # fmt: skip
    p.set_defaults(func=run(action))
    return p


def _account(p: argparse.ArgumentParser) -> None:
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID", help="the account's UUID")


def _money_move(p: argparse.ArgumentParser) -> None:
    _account(p)
    p.add_argument("amount", type=amount, metavar="AMOUNT", help="decimal string, e.g. 1000.00")
    p.add_argument("--description", default="", help="free text kept with the transaction")
    p.add_argument("--reference", help="your own reference (e.g. a wire id)")


def register(subparsers: Any) -> None:
    p = _add(subparsers, "init", init, "initialize a system: a portfolio with its three accounts",
             "  alluse init --capital 250000 --template moderate --name 'Family fund'\n"
             "  alluse init --capital 100000 --strategy growth_focused\n"
             "  alluse init --capital 100000 --template custom --allocation 40,30,30 --buffer 5",
             command=True)  # fmt: skip
    p.add_argument("--capital", type=amount, required=True, help="total capital, e.g. 250000.00")
    plan = p.add_mutually_exclusive_group()
    plan.add_argument("--template", help="conservative | moderate | aggressive | custom")
    plan.add_argument(
        "--strategy", help="standard | growth_focused | income_focused | compound_focused"
    )
    p.add_argument(
        "--allocation", type=allocation, metavar="GEN,REV,COM", help="percentages, e.g. 40,30,30"
    )
    p.add_argument("--buffer", type=percent, metavar="PCT", help="cash buffer percentage, e.g. 5")
    p.add_argument("--risk-profile", help="risk profile name, if not the template's own")
    p.add_argument("--name", default="", help="portfolio name")

    p = _add(subparsers, "create", create, "create one account",
             "  alluse create --type rev --name spare\n"
             "  alluse create --type gen --initial-balance 5000 --portfolio PORTFOLIO_ID --set max_drawdown_pct=12",
             command=True)  # fmt: skip
    p.add_argument("--type", type=account_type, required=True, help="gen | rev | com")
    p.add_argument("--name", default="")
    p.add_argument("--initial-balance", type=percent, default="0.00", metavar="AMOUNT")
    p.add_argument(
        "--portfolio", type=account_id, metavar="PORTFOLIO_ID", help="add to this portfolio"
    )
    p.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override",
    )

    p = _add(subparsers, "show", show_account, "show one account, its positions and value",
             "  alluse show ACCOUNT_ID\n  alluse show ACCOUNT_ID --as-of 2026-06-30T21:00:00Z\n"
             "  alluse show ACCOUNT_ID --json | jq -r .value", command=False)  # fmt: skip
    _account(p)
    p.add_argument("--as-of", type=moment, metavar="TIME",
                   help="as it was then (RFC 3339), from the ledger and position history")  # fmt: skip

    p = _add(subparsers, "list", list_accounts, "list accounts, a page at a time",
             "  alluse list --type com --status active\n  alluse list --limit 50 --after LAST_ID_OF_PREVIOUS_PAGE",
             command=False)  # fmt: skip
    p.add_argument("--portfolio", type=account_id, metavar="PORTFOLIO_ID")
    p.add_argument("--type", type=account_type, help="gen | rev | com")
    p.add_argument("--status", help="active | inactive | suspended | closed | merged")
    p.add_argument("--after", type=account_id, metavar="ACCOUNT_ID", help="page after this id")
    p.add_argument("--limit", type=int, default=100, help="page size, 1-1000 (default 100)")

    p = _add(subparsers, "update", update, "rename an account or change its settings",
             "  alluse update ACCOUNT_ID --name 'Gen main'\n"
             "  alluse update ACCOUNT_ID --set max_drawdown_pct=12 --set entry_days=monday,thursday", command=True)  # fmt: skip
    _account(p)
    p.add_argument("--name")
    p.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override",
    )

    for verb, help_ in (
        ("deposit", "deposit money into an account"),
        ("withdraw", "withdraw money, up to `available` (a Com-Acc refuses every withdrawal)"),
    ):
        p = _add(subparsers, verb, move(f"alluse.account.{verb}"), help_,
                 f"  alluse {verb} ACCOUNT_ID 1000.00 --description 'monthly top-up' --reference WIRE-77\n"
                 f"  alluse {verb} ACCOUNT_ID 250 --id my-retry-key-1   # safe to re-run", command=True)  # fmt: skip
        _money_move(p)

    p = _add(subparsers, "status", status, "set an account's status",
             "  alluse status ACCOUNT_ID suspended --reason 'drawdown review'", command=True)  # fmt: skip
    _account(p)
    p.add_argument("status", choices=("active", "inactive", "suspended", "closed"))
    p.add_argument("--reason", default="")

    p = _add(subparsers, "close", close, "close an account", "  alluse close ACCOUNT_ID --reason 'merged by hand'",
             command=True)  # fmt: skip
    _account(p)
    p.add_argument("--reason", default="")

    p = _add(subparsers, "history", history, "an account's transactions, newest first",
             "  alluse history ACCOUNT_ID --type deposit --limit 20\n"
             "  alluse history ACCOUNT_ID --before 1234   # the next page", command=False)  # fmt: skip
    _account(p)
    p.add_argument("--type", help="only this transaction type, e.g. deposit, withdrawal")
    p.add_argument("--limit", type=int, default=50, help="page size, 1-1000 (default 50)")
    p.add_argument("--before", type=int, metavar="TX_ID", help="transactions older than this id")
    p.add_argument("--until", type=moment, metavar="TIME",
                   help="only transactions dated up to then (RFC 3339)")  # fmt: skip

    _add(subparsers, "summary", summary, "totals by account type and status",
         "  alluse summary\n  alluse summary --json", command=False)  # fmt: skip
    _add(subparsers, "integrity", integrity, "check every balance against its ledger and every position"
         " against its history (exit 1 if not)",
         "  alluse integrity || page-the-on-call", command=False)  # fmt: skip
