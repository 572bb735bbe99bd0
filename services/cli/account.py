"""`alluse init|create|update|deposit|withdraw|status|close`: the commands that change accounts
(what reads them: services/cli/reports.py).

Everything goes through the account service's streams, never its database, so the CLI
needs only REDIS_URL (plus ALLUSE_STREAM_PREFIX when the deployment uses one) and a token.
"""

import argparse
from typing import Any

from services.cli.arguments import (
    account_id,
    account_type,
    allocation,
    amount,
    percent,
    setting,
)
from services.cli.client import StreamClient, until
from services.cli.output import (
    OK,
    USAGE,
    CliError,
    money,
    rows_table,
    show,
)
from services.cli.wiring import Action, add
from shared.contracts.vocabulary import SETTABLE_STATUSES

ACCOUNT_COLUMNS = ("type", "id", "name", "status", "balance", "cash_buffer", "available")


# --- the subcommands ------------------------------------------------------------------------


async def init(c: StreamClient, a: argparse.Namespace) -> int:
    data: dict[str, Any] = {"total_capital": a.capital, "name": a.name}
    optional = {
        "template": a.template,
        "strategy": a.strategy,
        "allocation": a.allocation,
        "cash_buffer_pct": a.buffer,
        "risk_profile": a.risk_profile,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    (ev, *_) = await c.command(
        "alluse.system.initialize", data, done=until("alluse.system.initialized"), event_id=a.id
    )
    d = ev.data
    if a.json:
        return show(a, d)
    plan = d.get("template") or d.get("strategy") or "custom"
    print(f"System initialized: portfolio {d['portfolio_id']} ({plan}, risk {d.get('risk_level')})")
    print(
        f"capital {money(d['total_capital'])}  cash buffer {money(d['cash_buffer_total'])}  "
        f"available {money(d['available_total'])}"
    )
    rows_table(d["accounts"], ACCOUNT_COLUMNS)
    return OK


async def create(c: StreamClient, a: argparse.Namespace) -> int:
    data: dict[str, Any] = {
        "type": a.type,
        "name": a.name,
        "initial_balance": a.initial_balance,
        "config": dict(a.set),
    }
    if a.portfolio:
        data["portfolio_id"] = a.portfolio
    (ev,) = await c.command(
        "alluse.account.create", data, done=until("alluse.account.created"), event_id=a.id
    )
    return show(a, ev.data["account"])


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
        view = {
            "account_id": a.account_id,
            "transaction": tx["id"],
            "type": tx["type"],
            "amount": tx["amount"],
            "balance": ev.data["balance"],
            "cash_buffer": ev.data["cash_buffer"],
            "available": ev.data["available"],
        }
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


def account_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID", help="the account's UUID")


def _money_move(p: argparse.ArgumentParser) -> None:
    account_arg(p)
    p.add_argument("amount", type=amount, metavar="AMOUNT", help="decimal string, e.g. 1000.00")
    p.add_argument("--description", default="", help="free text kept with the transaction")
    p.add_argument("--reference", help="your own reference (e.g. a wire id)")


def register(subparsers: Any) -> None:
    p = add(
        subparsers,
        "init",
        init,
        "initialize a system: a portfolio with its three accounts",
        "  alluse init --capital 250000 --template moderate --name 'Family fund'\n"
        "  alluse init --capital 100000 --strategy growth_focused\n"
        "  alluse init --capital 100000 --template custom --allocation 40,30,30 --buffer 5",
        command=True,
    )
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

    p = add(
        subparsers,
        "create",
        create,
        "create one account",
        "  alluse create --type rev --name spare\n"
        "  alluse create --type gen --initial-balance 5000 --portfolio PORTFOLIO_ID --set max_drawdown_pct=12",
        command=True,
    )
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

    p = add(
        subparsers,
        "update",
        update,
        "rename an account or change its settings",
        "  alluse update ACCOUNT_ID --name 'Gen main'\n"
        "  alluse update ACCOUNT_ID --set max_drawdown_pct=12 --set entry_days=monday,thursday",
        command=True,
    )
    account_arg(p)
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
        p = add(
            subparsers,
            verb,
            move(f"alluse.account.{verb}"),
            help_,
            f"  alluse {verb} ACCOUNT_ID 1000.00 --description 'monthly top-up' --reference WIRE-77\n"
            f"  alluse {verb} ACCOUNT_ID 250 --id my-retry-key-1   # safe to re-run",
            command=True,
        )
        _money_move(p)

    p = add(
        subparsers,
        "status",
        status,
        "set an account's status",
        "  alluse status ACCOUNT_ID suspended --reason 'drawdown review'",
        command=True,
    )
    account_arg(p)
    p.add_argument("status", choices=[s.value for s in SETTABLE_STATUSES])
    p.add_argument("--reason", default="")

    p = add(
        subparsers,
        "close",
        close,
        "close an account",
        "  alluse close ACCOUNT_ID --reason 'merged by hand'",
        command=True,
    )
    account_arg(p)
    p.add_argument("--reason", default="")
