"""`alluse simulate-decade`: ten simulated years of one portfolio tree, trading the ALL-USE cycle
through the running account service.

The feed of shared/simulators/feed.py trades every account of the tree, children born of
forks included: puts within position sizing, shares held after an assignment with covered calls
sold on them until they are called away, expirations. As WS2 and WS4 would, it publishes each
week's classification, fills, quotes, assignments and expirations on the upstream streams, with
the CLI's token (role trading_engine granted `*`, or admin: docs/scopes.md), for the integration
service to forward; they are dated in the past, so the service's business time runs a week per
step. Each week waits for its outcomes and sizes the next on the cash the accounts really hold.
The broker's valuations are left out: they are only compared with what the service marks.
"""

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.cli.client import StreamClient
from services.cli.output import OK, TIMEOUT, CliError, emit
from services.cli.wiring import add
from shared.contracts.envelope import new_event
from shared.contracts.messages import COMMAND_REJECTED
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EVENTS
from shared.simulators.feed import Event, Feed, monday_of
from shared.tooling.progress import Progress

SENT = (
    "ws2.week.classified",
    "ws4.trade.filled",
    "ws4.option.assigned",
    "ws4.option.expired",
    "ws4.market.quote",
)
ANSWERED = frozenset(SENT[1:4])  # a quote or a week type has no account event to wait for


class Tree:
    """The tree's accounts as its events announce them: cash, status, forks and merges."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.born: dict[str, dict[str, Any]] = {}  # created by some fork; ours once `forked` says
        self.forks = self.merges = self.drawdowns = self.assignments = self.at_assignment = 0
        self.assigned: set[str] = set()  # the assignments' ids, to tell their drawdowns apart
        self.lowest: Decimal | None = None  # the lowest cash any account was left with

    def note(self, e: dict[str, Any], feed: Feed) -> None:
        d, kind = e["data"], e["type"].rsplit(".", 1)[-1]
        if kind == "balance_changed":
            for pool in (self.accounts, self.born):
                if d["account_id"] in pool:
                    pool[d["account_id"]]["cash"] = Decimal(d["balance"])
                    cash = Decimal(d["balance"])
                    self.lowest = cash if self.lowest is None else min(self.lowest, cash)
        elif kind == "created":
            x = d["account"]
            self.born[x["id"]] = {"type": x["type"], "cash": Decimal(x["balance"])}
        elif kind == "forked" and d["account_id"] in self.accounts:
            self.forks += 1
            feed.sync({}, {d["account_id"]: Decimal(d["parent_balance"])})
            for child in d["child_accounts"].values():
                self.accounts[child] = acc = self.born.pop(child)
                feed.add(child, acc["type"], acc["cash"])
        elif kind == "merged" and d["target_account_id"] in self.accounts:
            self.merges += 1
            for gone in d["accounts"]:
                self.accounts[gone]["status"] = "merged"
                feed.books.pop(gone, None)
        elif kind == "drawdown_breached" and d["account_id"] in self.accounts:
            self.drawdowns += 1
            self.at_assignment += e.get("causationid") in self.assigned
        elif kind == "position_changed" and d["cause"] == "assignment" and d["kind"] != "shares":
            self.assignments += d["account_id"] in self.accounts
            self.assigned.add(e.get("causationid", ""))

    @property
    def cash(self) -> Decimal:
        return sum((x["cash"] for x in self.accounts.values()), start=Decimal(0))

    def live(self) -> list[str]:
        return [i for i, x in self.accounts.items() if x.get("status", "active") == "active"]

    async def value(self, c: StreamClient) -> Decimal:
        """Cash plus positions at the service's own marks, account by account."""
        total = Decimal(0)
        for account in self.live():
            held = await c.query("alluse.query.positions", {"account_id": account}, subject=account)
            total += Decimal(held["value"])
        return total


async def simulate_decade(c: StreamClient, a: argparse.Namespace) -> int:
    began = time.monotonic()
    start = monday_of((datetime.now(UTC) - timedelta(weeks=52 * a.years + 1)).date())
    events_key = c.streams.key(ACCOUNT_EVENTS)
    last = await c.redis.xrevrange(events_key, count=1)
    cursor: Any = last[0][0] if last else "0-0"
    init = new_event(
        "alluse.system.initialize",
        c.source,
        {"total_capital": a.capital, "template": a.template, "name": "decade"},
        authorization=f"Bearer {c.token}",
    )
    init["time"] = datetime.combine(start - timedelta(days=3), datetime.min.time(), UTC).isoformat()
    await c.redis.xadd(c.streams.key(ACCOUNT_COMMANDS), init)  # type: ignore[arg-type]
    tree, feed, root = Tree(), Feed([], seed=a.seed, violation_rate=0.0), ""
    while not root:
        cursor, evs = await _read(c, events_key, cursor)
        for e in evs:
            if e["type"] == "alluse.system.initialized" and e.get("causationid") == init["id"]:
                root = e["data"]["portfolio_id"]
                for x in e["data"]["accounts"]:
                    tree.accounts[x["id"]] = {"type": x["type"], "cash": Decimal(x["balance"])}
                    feed.add(x["id"], x["type"], Decimal(x["balance"]))
            elif e["type"] == COMMAND_REJECTED and e.get("causationid") == init["id"]:
                raise CliError(f"initialize rejected: {e['data']}", 1, e["data"])
    print(
        f"portfolio tree {root}: {a.capital} {a.template}, simulating {a.years} years from {start}"
    )
    bar, sent = Progress("simulate-decade", 52 * a.years, unit="weeks"), 0
    for week in range(52 * a.years):
        token = await c.fresh_token()  # a decade outlives a token: renewed before it expires
        batch = [ev for ev in feed.week(start + timedelta(weeks=week)) if ev.type in SENT]
        pipe = c.redis.pipeline(transaction=False)
        for ev in batch:
            pipe.xadd(c.streams.key(ev.stream), _fields(ev, token))  # type: ignore[arg-type]
        await pipe.execute()
        sent += len(batch)
        waiting = {ev.id for ev in batch if ev.type in ANSWERED}
        deadline = time.monotonic() + c.timeout
        while waiting:
            if time.monotonic() > deadline:
                raise CliError(
                    f"{len(waiting)} events of week {week} had no outcome in {c.timeout:g}s",
                    TIMEOUT,
                )
            cursor, evs = await _read(c, events_key, cursor)
            if evs:  # a busy service is no stuck one: the timeout counts from the last outcome
                deadline = time.monotonic() + c.timeout
            for e in evs:
                waiting.discard(e.get("causationid", ""))
                tree.note(e, feed)
        feed.sync({i: x["cash"] for i, x in tree.accounts.items()})
        if week % 52 == 51 or a.verbose:
            bar.note(
                f"year {week // 52 + 1:>2}: value {await tree.value(c):>18,.2f}  forks {tree.forks:>4}  merges {tree.merges:>4}  "
                f"accounts {len(tree.live()):>4}  assignments {tree.assignments:>5}  events {sent:>7}  "
                f"{time.monotonic() - began:6.1f}s"
            )
        bar.advance()
    bar.close()
    summary = {
        "portfolio_id": root,
        "years": a.years,
        "forks": tree.forks,
        "merges": tree.merges,
        "accounts": len(tree.live()),
        "assignments": tree.assignments,
        "drawdowns_announced": tree.drawdowns,
        "drawdowns_caused_by_an_assignment": tree.at_assignment,
        "events": sent,
        "initial_capital": a.capital,
        "final_cash": f"{tree.cash:.2f}",
        "final_value": f"{await tree.value(c):.2f}",
        "lowest_cash": f"{tree.lowest or 0:.2f}",
        "elapsed_seconds": round(time.monotonic() - began, 1),
    }
    emit(a, summary)
    return OK


def _fields(e: Event, token: str) -> dict[str, str]:
    fields = new_event(
        e.type, e.source, e.data, subject=e.subject, event_id=e.id, authorization=f"Bearer {token}"
    )
    fields["time"] = e.at.isoformat()
    return fields


async def _read(c: StreamClient, key: str, cursor: Any) -> tuple[Any, list[dict[str, Any]]]:
    raw_got: Any = await c.redis.xread({key: cursor}, count=5000, block=2000)
    got: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = raw_got
    out: list[dict[str, Any]] = []
    for _, entries in got or []:
        for entry_id, raw in entries:
            cursor = entry_id
            fields: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
            fields["data"] = json.loads(fields.get("data", "{}"))
            out.append(fields)
    return cursor, out


def register(sub: Any) -> None:
    p = add(
        sub,
        "simulate-decade",
        simulate_decade,
        "ten simulated years of one portfolio tree trading the ALL-USE cycle, through the real service",
        "  alluse simulate-decade --capital 250000.00 --template moderate --seed 7",
        command=False,
    )
    p.add_argument("--capital", default="250000.00")
    p.add_argument("--template", default="moderate")
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--verbose", action="store_true", help="a line per simulated week")
