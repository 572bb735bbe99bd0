"""python -m services.bench [--count N] [--rate R] [--duration S] [--batch-size B] ... (--help)"""

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from redis.asyncio import Redis

from services.bench import bare, figures, measure, peer, scale
from services.bench.platform import UNLIMITED
from services.bench.report import Result, print_report, progress
from services.bench.servers import DATA_DIR, fresh_database, servers
from services.bench.service import ServiceProcess
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EVENTS, Streams
from shared.infra.runtime.db import create_pool
from shared.infra.runtime.redisclient import connect
from shared.simulators.jwks import Signer

WARMUP = 50


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m services.bench",
        description="Account creations and deposits per second through the streams, XADD to "
        "outcome event, with p50/p99 latency, a paced-load latency run, and a bare redis-py + "
        "asyncpg loop for comparison. Servers: REDIS_URL / DATABASE_URL, else embedded ones "
        "(data under ./var/bench). Each run uses its own database and stream prefix. Beside "
        "them, in the same run: the peer, a synchronous PostgreSQL ledger (one transaction per "
        "transfer), to which every figure is given as a ratio; and the fill latency on the "
        "whole platform at 50, 200, 500 and 1,000 fills/s paced (var/bench/latency.png).",
    )
    p.add_argument(
        "--count", type=int, default=10_000, help="commands per throughput phase (default 10000)"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="offered load of the latency phase, commands/s (default 1000)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="length of the latency phase, seconds (default 5)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="entries per read and transaction (ALLUSE_BATCH_SIZE; default 500)",
    )
    p.add_argument(
        "--platform-count",
        type=int,
        default=3000,
        help="commands per whole-platform phase (fills, deposits, 1-3 replicas; default 3000); "
        "0 skips those phases",
    )
    p.add_argument(
        "--peer-workers",
        type=int,
        default=20,
        help="concurrent connections of the peer ledger (default 20); 0 skips the peer",
    )
    p.add_argument(
        "--peer-accounts", type=int, default=1000, help="accounts of the peer ledger (default 1000)"
    )
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=5.0,
        help="length of each paced fill-latency run on the whole platform (default 5); 0 skips",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy flame graphs of each service during the platform's deposits and fills "
        "bursts, written to DIR (e.g. docs/performance)",
    )
    p.add_argument(
        "--platform-only",
        action="store_true",
        help="run only the whole-platform phases (fills / deposits, replicas) and their ratios",
    )
    args = p.parse_args(argv)
    if args.platform_only and not args.platform_count:
        p.error("--platform-only needs a --platform-count above 0")
    if args.platform_count < 0 or args.peer_workers < 0 or args.latency_seconds < 0:
        p.error("--platform-count, --peer-workers and --latency-seconds must be 0 or more")
    if args.peer_accounts < 2:
        p.error("--peer-accounts must be 2 or more")
    if args.count < 1 or args.rate <= 0 or args.duration <= 0 or args.batch_size < 1:
        p.error("--count, --rate, --duration and --batch-size must be positive")
    return args


def creates(n: int, bearer: str, tag: str) -> list[measure.Fields]:
    data = {"type": "revenue", "initial_balance": "1000.00"}
    return [
        measure.command("alluse.account.create", {**data, "name": f"{tag}-{i}"}, bearer=bearer)
        for i in range(n)
    ]


def deposits(n: int, accounts: Sequence[str], bearer: str) -> list[measure.Fields]:
    return [
        measure.command(
            "alluse.account.deposit",
            {"amount": "10.00"},
            bearer=bearer,
            subject=accounts[i % len(accounts)],
        )
        for i in range(n)
    ]


async def service_phases(
    args: argparse.Namespace, redis: Redis, reader: Redis, dsn: str, prefix: str, signer: Signer
) -> tuple[Result, Result, Result]:
    s = Streams(prefix)
    commands, events = s.key(ACCOUNT_COMMANDS), s.key(ACCOUNT_EVENTS)
    log_path = DATA_DIR.resolve() / f"account-{prefix.strip('.')}.log"
    svc = ServiceProcess(
        {
            "REDIS_URL": args.redis_url,
            "DATABASE_URL": dsn,
            "ALLUSE_STREAM_PREFIX": prefix,
            "ALLUSE_JWKS_URL": signer.jwks_url,
            "ALLUSE_BATCH_SIZE": str(args.batch_size),
            "ALLUSE_SIGNING_KEY": signer.seeds["account"],
            **UNLIMITED,
            # One trusted writer on the shared stream, as the bare loop beside it (docs/lanes.md).
            "ALLUSE_LANES": "open",
        },
        log_path,
    )
    bearer = signer.bearer("operator", exp=int(time.time()) + 3600)
    progress(f"starting the account service (log: {log_path})")
    svc.start()
    try:
        await svc.wait_ready(redis, s.beside(commands, ".members"))
        progress(f"service ready (pid {svc.pid}); warming up")
        async with measure.collecting(reader, events) as col:
            try:
                await measure.burst(redis, commands, creates(WARMUP, bearer, "warmup"), col)
            except TimeoutError:
                svc.check_alive()
                raise
            progress(f"{args.count} account creations")
            ids = await measure.burst(redis, commands, creates(args.count, bearer, "bench"), col)
            created = col.result("account creations", ids)
            accounts = [col.subjects[i] for i in ids if i in col.subjects and i not in col.rejected]
            if not accounts:
                raise RuntimeError(
                    f"no account was created; rejections: {set(col.rejected.values())}"
                )
            progress(f"{args.count} deposits over {len(accounts)} accounts")
            ids = await measure.burst(redis, commands, deposits(args.count, accounts, bearer), col)
            deposited = col.result("deposits", ids)
            n = max(1, round(args.rate * args.duration))
            progress(f"{n} deposits paced at {args.rate:,.0f}/s")
            ids = await measure.paced(
                redis, commands, deposits(n, accounts, bearer), col, rate=args.rate
            )
            steady = col.result("deposits, paced", ids, offered=args.rate)
    finally:
        progress("stopping the account service")
        svc.stop()
    return created, deposited, steady


async def bare_phase(
    args: argparse.Namespace, redis: Redis, reader: Redis, dsn: str, prefix: str, signer: Signer
) -> Result:
    progress("bare redis-py + asyncpg loop")
    configs = await bare.prepare(dsn)
    pool = await create_pool(dsn, bare.SCHEMA)
    commands, events = f"{prefix}bare.commands", f"{prefix}bare.events"
    loop = bare.BareLoop(
        pool, redis, commands=commands, events=events, batch=args.batch_size, configs=configs
    )
    task = asyncio.create_task(loop.run(), name="bare loop")
    bearer = signer.bearer("operator", exp=int(time.time()) + 3600)
    try:
        async with measure.collecting(reader, events) as col:
            await measure.burst(redis, commands, creates(WARMUP, bearer, "warmup"), col)
            ids = await measure.burst(redis, commands, creates(args.count, bearer, "bare"), col)
            return col.result("bare loop: account creations", ids)
    finally:
        await measure.stop(loop, task)
        await pool.close()


async def run(args: argparse.Namespace) -> None:
    if args.platform_only:
        rates, fills = await scale.phases(
            args.platform_count, DATA_DIR / "platform", args.latency_seconds, args.profile
        )
        figures.print_platform(rates, figures.ratios(None, None, rates), None, fills)
        return
    signer = Signer()
    try:
        with servers() as (redis_url, admin_url, description):
            args.redis_url = redis_url
            progress(f"servers: {description}")
            async with fresh_database(admin_url) as dsn:
                prefix = f"bench.{uuid.uuid4().hex[:8]}."
                redis, reader = connect(redis_url), connect(redis_url)
                try:
                    created, deposited, steady = await service_phases(
                        args, redis, reader, dsn, prefix, signer
                    )
                    baseline = await bare_phase(args, redis, reader, dsn, prefix, signer)
                    ledger = None
                    if args.peer_workers:
                        ledger = await peer.run(
                            dsn,
                            count=args.count,
                            workers=args.peer_workers,
                            accounts=args.peer_accounts,
                        )
                    print_report(
                        servers=description,
                        batch_size=args.batch_size,
                        creates=created,
                        deposits=deposited,
                        paced=steady,
                        bare=baseline,
                    )
                    rates, fills = {}, []
                    if args.platform_count:
                        rates, fills = await scale.phases(
                            args.platform_count,
                            DATA_DIR / "platform",
                            args.latency_seconds,
                            args.profile,
                        )
                    found = figures.ratios(created, baseline, rates, ledger)
                    figures.print_platform(rates, found, steady, fills)
                    results = [created, deposited, steady, baseline]
                    if ledger is not None:
                        figures.print_peer(ledger, results, rates)
                        results.append(ledger)
                    paths = figures.write(
                        DATA_DIR,
                        servers=description,
                        rates=rates,
                        found=found,
                        results=results,
                        fills=fills,
                    )
                    print(f"\n  figures: {paths[0]}, charts: {', '.join(map(str, paths[1:]))}")
                finally:
                    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
                    if keys:
                        await redis.delete(*keys)
                    await redis.aclose()
                    await reader.aclose()
    finally:
        signer.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    except (RuntimeError, TimeoutError) as exc:
        progress(f"failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
