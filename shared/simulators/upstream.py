"""Simulators of the WS2 protocol engine and the WS4 market integration.

Publishes the feed of shared/simulators/feed.py with plain redis-py XADD, one CloudEvents
binary-mode entry per event, at `--rate` events per second (0: as fast as Redis takes them),
each with the `authorization` of a trading engine (role trading_engine granted the whole
platform, `*`, since weeks and quotes concern every portfolio; or admin): through
`alluse simulate` the token comes as for every `alluse` command (--token-file,
ALLUSE_TOKEN_FILE, ALLUSE_TOKEN, or ALLUSE_CLIENT_ID with ALLUSE_CLIENT_SECRET_FILE).
After each week it reads the week's outcomes on the public lifecycle stream and sizes the next
week's puts on the cash the accounts really hold. `--measure` instead publishes every week at
once, then follows the lifecycle stream until every fill has caused an event there and prints
fills per second from the first XADD to the last such event.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.contracts.envelope import dumps
from shared.contracts.streams import ACCOUNT_LIFECYCLE, Streams
from shared.infra.runtime.redisclient import connect
from shared.infra.runtime.settings import Settings
from shared.simulators.feed import PROFILES, Event, Feed, monday_of
from shared.tooling.credentials import default_lane
from shared.tooling.progress import Progress

CLOSING = ("ws4.trade.filled", "ws4.option.assigned", "ws4.option.expired")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weeks", type=int, default=4, help="weeks to simulate (default 4)")
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="events per second; 0 = as fast as possible (default 50)",
    )
    parser.add_argument(
        "--accounts",
        nargs="*",
        default=[],
        metavar="ID[:TYPE]",
        help="account ids, TYPE generation|revenue|compounding (default"
        " generation); none given: discovered from the lifecycle stream",
    )
    parser.add_argument("--seed", type=int, help="same seed and --start: the same feed")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        help="first week's Monday, YYYY-MM-DD (default: this week's)",
    )
    parser.add_argument(
        "--violations",
        type=float,
        default=0.05,
        help="share of entries breaking a protocol rule (default 0.05)",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="wait for each fill's lifecycle event and print fills per second",
    )
    parser.add_argument(
        "--measure-stream",
        default=ACCOUNT_LIFECYCLE,
        help="stream watched by --measure (an event counts if its id or causationid is a fill's)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="--measure, or waiting for a week's outcomes, gives up after",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-week progress lines")
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the trading engine's JWT (default: $ALLUSE_TOKEN_FILE,"
        " $ALLUSE_TOKEN, or client credentials)",
    )
    parser.add_argument(
        "--week-types",
        type=lambda v: v.split(","),
        metavar="CODE,CODE,...",
        help="the week types to cycle through instead of drawing them, e.g."
        " P-EW,P-AWL,C-PNO,C-WAP (a put assignment in the second week)",
    )


def fields(event: Event, token: str) -> dict[str, str]:
    out = {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.at.isoformat(),
        "datacontenttype": "application/json",
        "authorization": f"Bearer {token}",
    }
    if event.subject:
        out["subject"] = event.subject
    out["data"] = dumps(event.data)
    return out


class Ledger:
    """Each account's cash as the platform announced it on the public lifecycle stream, so the
    feed sizes its next puts on what the account really holds (forks move money out)."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key, self.cursor = redis, key, "0"
        self.cash: dict[str, Decimal] = {}
        self.baselines: dict[str, Decimal] = {}
        self.blind = False  # the stream cannot be read: the feed keeps its own books

    async def follow(self, causes: set[str], timeout: float) -> bool:
        """Read on until an event caused by each of `causes` has been seen (False: timed out)."""
        waiting, deadline = set(causes), time.monotonic() + timeout
        while not self.blind:
            try:
                reply: Any = await self.redis.xread({self.key: self.cursor}, count=1000, block=200)
            except ResponseError as exc:  # a trading engine's Redis user may not read it (ACL)
                print(
                    f"cannot follow the lifecycle stream ({exc}): sizing on the feed's own books",
                    file=sys.stderr,
                )
                self.blind = True
                break
            for _, entries in reply or []:
                for entry_id, raw in entries:
                    self.cursor = entry_id.decode()
                    waiting.discard(raw.get(b"causationid", b"").decode())
                    self._note(raw.get(b"type", b"").decode(), json.loads(raw.get(b"data", b"{}")))
            if not waiting and not reply:
                return True
            if time.monotonic() > deadline:
                return False
        return True

    def _note(self, kind: str, data: dict[str, Any]) -> None:
        snaps = data.get("accounts", []) if kind == "alluse.system.initialized" else []
        snaps += [data["account"]] if kind == "alluse.account.created" else []
        self.cash |= {s["id"]: Decimal(s["balance"]) for s in snaps if "balance" in s}
        self.baselines |= {s["id"]: Decimal(s["baseline"]) for s in snaps if "baseline" in s}
        if kind == "alluse.account.balance_changed":
            self.cash[data["account_id"]] = Decimal(data["balance"])
        if kind == "alluse.account.forked":
            self.baselines[data["account_id"]] = Decimal(data["parent_balance"])


async def discover(redis: Redis, streams: Streams) -> list[tuple[str, str]]:
    """Open accounts as the public lifecycle stream announced them."""
    found: dict[str, str] = {}
    last = "-"
    while True:
        batch: Any = await redis.xrange(streams.key(ACCOUNT_LIFECYCLE), min=last, count=1000)
        if not batch:
            break
        for _, raw in batch:
            kind, data = raw.get(b"type", b"").decode(), json.loads(raw.get(b"data", b"{}"))
            snaps = data.get("accounts", []) if kind == "alluse.system.initialized" else []
            snaps += [data["account"]] if kind == "alluse.account.created" else []
            found |= {s["id"]: s["type"] for s in snaps if s.get("type") in PROFILES}
            if kind in ("alluse.account.closed", "alluse.account.merged"):
                found.pop(data.get("account_id", ""), None)
        last = "(" + batch[-1][0].decode()
    return list(found.items())


def parse_accounts(values: list[str]) -> list[tuple[str, str]]:
    pairs = [(v.partition(":")[0], v.partition(":")[2] or "generation") for v in values]
    for account, kind in pairs:
        if kind not in PROFILES:
            raise SystemExit(f"unknown account type '{kind}' for {account}")
    return pairs


async def publish(
    redis: Redis,
    streams: Streams,
    events: list[Event],
    rate: float,
    token: str,
    lane: str | None = None,
) -> None:
    """`lane`: the engine's own (docs/lanes.md); None: the shared streams (lanes open)."""
    started, pipe = time.perf_counter(), redis.pipeline(transaction=False)
    for n, event in enumerate(events, 1):
        key = streams.lane(event.stream, lane) if lane else streams.key(event.stream)
        pipe.xadd(key, fields(event, token))  # type: ignore[arg-type]
        if rate > 0:
            await pipe.execute()
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        elif n % 500 == 0:
            await pipe.execute()
    await pipe.execute()


async def measure(redis: Redis, stream: str, fills: set[str], since: str, timeout: float) -> int:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while seen != fills and time.monotonic() < deadline:
        reply: Any = await redis.xread({stream: since}, count=1000, block=500)
        for _, entries in reply:
            for entry_id, raw in entries:
                since = entry_id.decode()
                for key in (b"id", b"causationid"):
                    if (value := raw.get(key, b"").decode()) in fills:
                        seen.add(value)
    return len(seen)


def week_line(week: int, weeks: int, events: list[Event], total: int, started: float) -> str:
    kinds = {t.split(".", 1)[1]: sum(e.type == t for e in events) for t in {e.type for e in events}}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    rate = total / max(time.perf_counter() - started, 1e-9)
    return (
        f"week {week + 1}/{weeks} {events[0].data['week_start']} "
        f"{events[0].data['week_type']:<6} {len(events)} events ({counts})"
        f"; {total} in all, {rate:.0f}/s"
    )


Token = str | Callable[[], Awaitable[str]]  # a token, or how to get a fresh one


async def run(args: Any, token: Token, settings: Settings | None = None) -> int:
    """Publish the feed with `token` (a trading engine's) on every entry; a callable is asked
    for it before each week, so a run longer than a token's life can renew it."""
    settings = settings or Settings()
    streams, redis = settings.streams, connect(settings.redis_url)
    try:
        accounts = parse_accounts(args.accounts) or await discover(redis, streams)
        if not accounts:
            print("no accounts: pass --accounts or create some first", file=sys.stderr)
            return 2
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
        ledger = Ledger(redis, streams.key(ACCOUNT_LIFECYCLE))
        await ledger.follow(set(), args.timeout)
        feed = Feed(
            accounts,
            seed=seed,
            violation_rate=args.violations,
            cash=ledger.cash,
            week_types=args.week_types,
        )
        feed.sync(ledger.cash, ledger.baselines)
        monday = args.start or monday_of(datetime.now(UTC).date())
        watch = streams.key(args.measure_stream)
        info: Any = await redis.xinfo_stream(watch) if await redis.exists(watch) else None
        since = info["last-generated-id"].decode() if info else "0"
        fills: set[str] = set()
        started, total = time.perf_counter(), 0
        with Progress("simulate", args.weeks, unit="weeks") as bar:
            for week in range(args.weeks):
                events = feed.week(monday + timedelta(weeks=week))
                current = token if isinstance(token, str) else await token()
                lane = default_lane(current, os.environ)
                await publish(redis, streams, events, args.rate, current, lane)
                if not args.measure:  # the week's outcomes, then the cash they left
                    closing = {e.id for e in events if e.type in CLOSING}
                    if not await ledger.follow(closing, args.timeout):
                        print(
                            f"week {week + 1}: no outcome within {args.timeout:g}s", file=sys.stderr
                        )
                        return 4
                    feed.sync(ledger.cash, ledger.baselines)
                fills |= {e.id for e in events if e.type == "ws4.trade.filled"}
                total += len(events)
                if not args.quiet:
                    bar.note(week_line(week, args.weeks, events, total, started))
                bar.advance()
        print(f"published {total} events for {len(accounts)} accounts (seed {seed})")
        if args.measure:
            done = await measure(redis, watch, fills, since, args.timeout)
            elapsed = time.perf_counter() - started
            print(
                f"measured: {done}/{len(fills)} fills reached {args.measure_stream} in"
                f" {elapsed:.2f}s: {done / elapsed:.1f} fills/s"
            )
            return 0 if done == len(fills) else 4
        return 0
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.simulators.upstream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    token = os.environ.get("ALLUSE_TOKEN")
    if not token:
        parser.error("set ALLUSE_TOKEN to a trading engine's token (or use `alluse simulate`)")
    return asyncio.run(run(args, token))


if __name__ == "__main__":
    sys.exit(main())
