"""`make soak`: the whole platform under a steady offered load for a bounded time, sampled.

On servers of its own (a scratch Valkey with AOF on and a scratch PostgreSQL under var/soak/)
it starts the three services as `make run` does and as in production (the generated ACL file,
lanes required; the operator and the engine are machine clients, each writing its own lane as
its own Redis user, with tokens), with retention set short for the run, opens
the accounts and offers mixed load (deposits, withdrawals, WS4 fills through the integration
service, account queries) at a steady rate. Every interval it samples Redis used_memory, every
stream's length, consumer-group lag and pending, inbox/outbox/ledger rows and each service's
RSS. It prints a table, draws var/soak/soak.png, and passes when Redis memory, every stream's
length and the inbox rows are flat over the last half of the run (the ledger is the books: it
grows by design).
"""

import argparse
import asyncio
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

from redis.asyncio import Redis

from services.bench import samples
from services.bench.load import Load, in_lanes
from services.bench.platform import Platform, say
from services.bench.soak_report import chart, print_table, verdict
from services.bench.tokens import Tokens
from shared.contracts.streams import Streams
from shared.infra.runtime.redisclient import connect

MIX = {"deposit": 0.35, "withdrawal": 0.25, "fill": 0.25, "query": 0.15}
RETENTION_NAMES = (
    "ALLUSE_LIFECYCLE_RETENTION",
    "ALLUSE_ACCOUNT_EVENTS_RETENTION",
    "ALLUSE_AUDIT_RETENTION",
    "ALLUSE_UPSTREAM_RETENTION",
    "ALLUSE_DLQ_RETENTION",
    "ALLUSE_AUDIT_HEADS_RETENTION",
    "ALLUSE_DEDUP_WINDOW",
    "ALLUSE_OUTCOME_RETENTION",
    "ALLUSE_REPLY_TTL_SECONDS",
)


def retention(minutes: float) -> dict[str, str]:
    """Retention short for the run (the defaults are days), so that a plateau shows within
    minutes: an eighth of the run, between 15 and 60 s; trimming every 10 s (or a quarter of
    that)."""
    keep = max(15, min(60, round(minutes * 60 / 8)))
    return {
        **{name: str(keep) for name in RETENTION_NAMES},
        "ALLUSE_RETENTION_INTERVAL": str(max(2, min(10, keep // 4))),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="make soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=float(env("SOAK_MINUTES", "10")),
        help="length of the run (SOAK_MINUTES, default 10)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=float(env("SOAK_RATE", "300")),
        help="commands and queries offered per second (SOAK_RATE, default 300)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=float(env("SOAK_INTERVAL", "10")),
        help="seconds between samples (SOAK_INTERVAL, default 10)",
    )
    p.add_argument(
        "--accounts",
        type=int,
        default=int(env("SOAK_ACCOUNTS", "200")),
        help="accounts the load spreads over (SOAK_ACCOUNTS, default 200)",
    )
    p.add_argument("--seed", type=int, default=int(env("SOAK_SEED", "1")), help="SOAK_SEED")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("var/soak"),
        help="scratch servers' data, logs and the chart (emptied first)",
    )
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.interval <= 0 or args.accounts < 1:
        p.error("--minutes, --rate, --interval and --accounts must be positive")
    return args


async def sampler(
    platform: Platform,
    redis: Redis,
    load: Load,
    out: list[samples.Sample],
    interval: float,
    started: float,
) -> None:
    while True:
        s = await samples.take(
            redis, platform.postgres.url, platform.services, time.monotonic() - started
        )
        out.append(s)
        say(
            f"t={s.at:5.0f}s mem {s.used_memory / samples.MB:7.1f} MB, "
            f"{sum(s.streams.values())} stream entries, inbox {s.rows['inbox']}, "
            f"lag {s.lag}, pending {s.pending}, {load.waiting()} awaiting an outcome"
        )
        await asyncio.sleep(max(0.0, started + len(out) * interval - time.monotonic()))


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel and wait a little: a task caught in a Redis call must not hold the report back."""
    if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
        say(f"{task.get_name()} stopped early: {type(exc).__name__}: {exc}")
    task.cancel()
    await asyncio.wait([task], timeout=5)


async def run(args: argparse.Namespace) -> int:
    settings = retention(args.minutes)
    with Platform(args.dir, settings, acl=True) as platform:
        redis = connect(platform.observer)  # the server's state, read as the observer
        operator, engine = platform.client("operator"), platform.client("trading_engine")
        lanes = in_lanes(operator, engine)  # each its own lane, as its own Redis user
        rng = random.Random(args.seed)  # noqa: S311 - seeded: a run replays
        load = Load(
            lanes.operator_redis,
            Streams(platform.env.get("ALLUSE_STREAM_PREFIX", "")),
            Tokens(operator),
            Tokens(engine),
            [],
            rng,
            MIX,
            lanes=lanes,
        )
        follower = asyncio.create_task(load.follow())
        taken: list[samples.Sample] = []
        try:
            say(f"opening {args.accounts} accounts")
            await load.open_accounts(args.accounts, ["revenue"], Decimal("50000.00"), 120)
            count = round(args.rate * args.minutes * 60)
            say(
                f"offering {count} commands and queries at {args.rate:g}/s for {args.minutes:g} min"
            )
            started = time.monotonic()
            watcher = asyncio.create_task(
                sampler(platform, redis, load, taken, args.interval, started)
            )
            try:
                await load.offer(count, args.rate, lambda i: asyncio.sleep(0))
                achieved = count / (time.monotonic() - started)
                await asyncio.sleep(max(0.0, started + args.minutes * 60 - time.monotonic()))
            finally:
                await stop(watcher)
        finally:
            await stop(follower)
            closing = [redis.aclose(), lanes.operator_redis.aclose(), lanes.engine_redis.aclose()]
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=5)
    print_table(taken)
    path = chart(taken, args.dir / "soak.png")
    answered = sum(c.outcome is not None for c in load.commands.values()) - args.accounts
    print(
        f"\noffered {args.rate:g}/s, achieved {achieved:.0f}/s; {answered} of "
        f"{len(load.commands) - args.accounts} commands and {load.queries_answered} of "
        f"{load.queries_sent} queries answered in the run; chart: {path}"
    )
    ok, line = verdict(taken, settings)
    print(line)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    try:
        return asyncio.run(run(parse_args(argv)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
