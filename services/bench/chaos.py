"""`make chaos`: the platform under a fault schedule, then proof that nothing was lost or doubled.

On servers of its own (a scratch Valkey with AOF on and a scratch PostgreSQL under var/chaos/,
never a shared one) it starts the three services as `make run` does and as in production (the
generated ACL file, lanes required; the operator and the engine are machine clients, each
writing its own lane as its own Redis user, with tokens), opens the accounts, then
sends mixed commands (deposits, withdrawals, WS4 fills through the integration service) at a
steady rate while it kills -9 each service at random moments, kills -9 Redis and restarts it,
shuts PostgreSQL down (fast) and starts it again, and starts a second account service half-way.
A command without an outcome is re-sent with the same id, as a client retries. At the end it
checks every command's effect in the ledger, the lifecycle stream, balances against ledgers and
money against the commands sent, prints how long each service took to be ready after each
fault, and exits 1 when a check fails. The same seed draws the same commands and fault moments.
"""

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from services.bench.checks import Check, run_checks
from services.bench.load import Load, in_lanes
from services.bench.platform import Platform, say
from services.bench.tokens import Tokens
from shared.contracts.streams import Streams

MIX = {"deposit": 0.4, "withdrawal": 0.3, "fill": 0.3}
RESEND_AFTER_S = 60.0  # beyond the reclaim idle time (30 s): the platform recovers alone first
SETTLE_TIMEOUT_S = 600.0
# Entries a killed consumer left pending are claimed by the living after 5 s instead of 30:
# recovery within the run, and more redeliveries racing live consumers (the inbox's job).
SETTINGS = {"ALLUSE_RECLAIM_IDLE_MS": "5000"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="make chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--commands",
        type=int,
        default=int(env("CHAOS_COMMANDS", "20000")),
        help="mixed commands to send (CHAOS_COMMANDS, default 20000)",
    )
    p.add_argument(
        "--accounts",
        type=int,
        default=int(env("CHAOS_ACCOUNTS", "200")),
        help="accounts they spread over (CHAOS_ACCOUNTS, default 200)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=int(env("CHAOS_SEED", "0")) or None,
        help="replays a run: same commands, same fault moments (CHAOS_SEED)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=float(env("CHAOS_RATE", "200")),
        help="commands offered per second (CHAOS_RATE, default 200)",
    )
    p.add_argument(
        "--kills",
        type=int,
        default=int(env("CHAOS_KILLS", "2")),
        help="kill -9 of each service (CHAOS_KILLS, default 2)",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("var/chaos"),
        help="scratch servers' data and the services' logs (emptied first)",
    )
    args = p.parse_args(argv)
    if args.commands < 10 or args.accounts < 1 or args.rate <= 0 or args.kills < 0:
        p.error("--commands >= 10, --accounts >= 1, --rate > 0 and --kills >= 0")
    args.seed = args.seed or random.SystemRandom().randrange(1, 2**31)
    return args


def schedule(rng: random.Random, commands: int, kills: int) -> dict[int, str]:
    """Command index -> fault, at random moments between 5 % and 90 % of the run."""
    faults = [f"kill -9 {s}" for s in ("security", "account", "integration") for _ in range(kills)]
    faults += ["kill -9 redis", "restart postgres"]
    moments = rng.sample(range(commands // 20, commands * 9 // 10), len(faults))
    plan = dict(zip(moments, rng.sample(faults, len(faults)), strict=True))
    half = next(i for i in range(commands // 2, commands) if i not in plan)
    plan[half] = "second account replica"
    return plan


def action(platform: Platform, fault: str) -> Callable[[], dict[str, float]]:
    if fault == "kill -9 redis":
        return platform.kill_redis
    if fault == "restart postgres":
        return platform.restart_postgres
    if fault == "second account replica":
        return lambda: {"account-2": platform.add_replica("account-2", "account")}
    return lambda: platform.kill_service(fault.removeprefix("kill -9 "))


async def drive(args: argparse.Namespace, platform: Platform) -> tuple[Load, list[str]]:
    rng = random.Random(args.seed)  # noqa: S311 - seeded on purpose: the same seed replays a run
    plan = schedule(rng, args.commands, args.kills)
    operator, engine = platform.client("operator"), platform.client("trading_engine")
    lanes = in_lanes(operator, engine)  # each its own lane, as its own Redis user
    redis = lanes.operator_redis
    load = Load(
        redis,
        Streams(platform.env.get("ALLUSE_STREAM_PREFIX", "")),
        Tokens(operator),
        Tokens(engine),
        [],
        rng,
        MIX,
        lanes=lanes,
    )
    follower = asyncio.create_task(load.follow())
    faults: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    report: list[str] = []

    async def faulter() -> None:
        while True:
            at, fault = await faults.get()
            say(f"fault at command {at}: {fault}")
            ready = await asyncio.to_thread(action(platform, fault))
            times = ", ".join(f"{name} {s:.1f} s" for name, s in ready.items())
            report.append(f"{fault:<24} at command {at:>6}: ready after {times}")
            say(f"  ready again: {times}")
            faults.task_done()

    async def resender() -> None:
        while True:
            await asyncio.sleep(2)
            await load.resend_stale(RESEND_AFTER_S)

    async def tick(i: int) -> None:
        if i in plan:
            faults.put_nowait((i, plan[i]))
        if i % max(1, args.commands // 20) == 0:
            say(
                f"{i}/{args.commands} sent, {load.waiting()} awaiting an outcome, {load.resent} re-sent"
            )

    workers = [asyncio.create_task(faulter()), asyncio.create_task(resender())]
    try:
        say(f"opening {args.accounts} accounts")
        await load.open_accounts(args.accounts, ["generation", "revenue"], Decimal("5000.00"), 120)
        started = time.monotonic()
        await load.offer(args.commands, args.rate, tick)
        say(
            f"all {args.commands} sent in {time.monotonic() - started:.0f} s; waiting for faults and outcomes"
        )
        await faults.join()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while load.waiting() and time.monotonic() < deadline:
            say(f"{load.waiting()} commands awaiting an outcome")
            await asyncio.sleep(2)
        report.append(
            f"sent in {time.monotonic() - started:.0f} s; {load.resent} re-sent after {RESEND_AFTER_S:.0f} s without an outcome"
        )
    finally:
        for task in [*workers, follower]:
            task.cancel()
        await asyncio.gather(*workers, follower, return_exceptions=True)
        await lanes.operator_redis.aclose()
        await lanes.engine_redis.aclose()
    return load, report


def show(args: argparse.Namespace, report: list[str], checks: list[Check]) -> None:
    print(
        f"\nchaos: {args.commands} commands over {args.accounts} accounts at {args.rate:g}/s, seed {args.seed}"
    )
    print("\nfaults and readiness (seconds from the fault until /readyz answered 200):")
    for line in report:
        print(f"  {line}")
    print("\nchecks:")
    for c in checks:
        print(f"  {'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
    verdict = "PASS" if all(c.ok for c in checks) else "FAIL"
    print(f"\nchaos {verdict} (seed {args.seed}; replay with CHAOS_SEED={args.seed})")


async def run(args: argparse.Namespace) -> int:
    say(f"seed {args.seed}")
    with Platform(args.dir, SETTINGS, acl=True) as platform:
        load, report = await drive(args, platform)
        checks = await run_checks(platform.postgres.url, load)
    show(args, report, checks)
    return 0 if all(c.ok for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
