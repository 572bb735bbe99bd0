"""The platform-wide phases of `make bench`, on scratch servers of their own with all three
services running as `make run` starts them: WS4 fills through the integration and account
services beside deposits sent straight to the account service, the fill latency at paced
rates (services/bench/latency.py), and deposits with 1, 2 and 3 account replicas in one
consumer group. Every command is counted from its XADD to its outcome
on the public lifecycle stream, as a downstream consumer sees it."""

import asyncio
import dataclasses
import random
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from redis.asyncio import Redis

from services.bench import latency, profile
from services.bench.load import PROTOCOL_KEPT, SOURCE, Command, Load
from services.bench.platform import Platform
from services.bench.report import progress
from services.bench.tokens import Tokens
from shared.contracts.envelope import new_event
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_LIFECYCLE, AUDIT, Streams
from shared.infra.runtime.redisclient import connect

ACCOUNTS = 100
PIPELINE = 500  # entries per round trip while a burst is written
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Rate:
    name: str
    count: int
    seconds: float
    cpu: profile.Cpu = field(default_factory=profile.Cpu)  # of each service, over the burst

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        line = f"  {self.name:<44}{self.per_second:>9,.1f}/s   n={self.count}"
        return f"{line}\n{self.cpu.line(self.count)}" if self.cpu.seconds else line


def deposit(load: Load, account: str) -> Command:
    amount = Decimal("10.00")
    fields = new_event(
        "alluse.account.deposit",
        SOURCE,
        {"account_id": account, "amount": str(amount)},
        subject=account,
        event_id=str(uuid.uuid4()),
    )
    return Command("deposit", account, amount, load.streams.key(ACCOUNT_COMMANDS), fields)


async def burst(load: Load, name: str, cmds: list[Command]) -> Rate:
    """Write every command at once (pipelined), then wait until each has its outcome."""
    operator, engine = await load.operator.token(), await load.engine.token()
    started = time.monotonic()
    pipe = load.redis.pipeline(transaction=False)
    for cmd in cmds:
        token = engine if cmd.kind == "fill" else operator
        cmd.fields["authorization"] = f"Bearer {token}"
        cmd.attempts, cmd.sent_at = 1, started
        load.commands[cmd.id] = cmd
        pipe.xadd(cmd.stream, cmd.fields)  # type: ignore[arg-type]
        if len(pipe) >= PIPELINE:
            await pipe.execute()
    await pipe.execute()
    while (waiting := sum(c.outcome is None for c in cmds)) > 0:
        if time.monotonic() - started > TIMEOUT_S:
            raise TimeoutError(f"{name}: {waiting} of {len(cmds)} without an outcome")
        await asyncio.sleep(0.01)
    refused = {str(c.outcome) for c in cmds} - {"applied"}
    if refused:
        raise RuntimeError(f"{name}: refused as {sorted(refused)}")
    return Rate(name, len(cmds), time.monotonic() - started)


async def spread(redis: Redis, streams: Streams, stream: str, replicas: int) -> float:
    """Seconds until `replicas` processes hold the stream's partitions (docs/architecture.md "Scaling out"),
    so a burst measures replicas sharing the work, not the handover of partitions."""
    started = time.monotonic()
    while True:
        keys = [k async for k in redis.scan_iter(match=streams.beside(stream, ".lease.p*"))]
        holders = {v for v in await redis.mget(keys) if v} if keys else set()
        if len(holders) >= replicas:
            return time.monotonic() - started
        if time.monotonic() - started > TIMEOUT_S:
            raise TimeoutError(f"{len(holders)} of {replicas} replicas hold partitions of {stream}")
        await asyncio.sleep(0.1)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel until it ends: redis-py may turn a cancel that lands inside a blocking XREAD into a
    connection error, which the follower survives by design (Redis restarts are pauses)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)


async def phases(
    count: int, directory: Path, latency_seconds: float = 0.0, flames: Path | None = None
) -> tuple[dict[str, Rate], list[latency.Latency]]:
    """Throughput of each phase; with `latency_seconds`, the paced fill latencies (1 replica);
    with `flames`, a py-spy flame graph of each service during the deposits and fills bursts."""
    rates: dict[str, Rate] = {}
    paced: list[latency.Latency] = []
    progress("platform phases: starting scratch servers and the three services")
    with Platform(directory) as platform:
        redis = connect(platform.redis.url)
        load = Load(
            redis,
            Streams(platform.env.get("ALLUSE_STREAM_PREFIX", "")),
            Tokens(platform.client("operator")),
            Tokens(platform.client("trading_engine")),
            [],
            random.Random(7),  # noqa: S311
            {},
        )
        follower = asyncio.create_task(load.follow())
        try:
            await load.open_accounts(
                ACCOUNTS, ["revenue"], Decimal("50000.00"), TIMEOUT_S, PROTOCOL_KEPT
            )
            accounts = load.accounts
            await burst(load, "warm-up", [deposit(load, a) for a in accounts])
            pids = {name: s.pid for name, s in platform.services.items()}
            progress(f"{count} deposits straight to the account service")
            with profile.watched(pids, "deposits", flames) as cpu:
                rates["deposits"] = await burst(
                    load,
                    "deposits, straight to account (1 replica)",
                    [deposit(load, accounts[i % ACCOUNTS]) for i in range(count)],
                )
            rates["deposits"] = dataclasses.replace(rates["deposits"], cpu=cpu)
            progress(f"{count} WS4 fills through integration -> account -> integration")
            with profile.watched(pids, "fills", flames) as cpu:
                rates["fills"] = await burst(
                    load,
                    "WS4 fills through three services",
                    [load.fill(accounts[i % ACCOUNTS]) for i in range(count)],
                )
            rates["fills"] = dataclasses.replace(rates["fills"], cpu=cpu)
            if latency_seconds > 0:
                settle = [load.streams.key(ACCOUNT_LIFECYCLE), load.streams.key(AUDIT)]
                paced = await latency.phases(load, accounts, latency_seconds, settle, pids)
            for replicas in (2, 3):
                seconds = platform.add_replica(f"account-{replicas}", "account")
                commands = load.streams.key(ACCOUNT_COMMANDS)
                shared = await spread(redis, load.streams, commands, replicas)
                progress(
                    f"account replica {replicas} ready in {seconds:.1f}s, holding partitions"
                    f" {shared:.1f}s later; {count} deposits"
                )
                rates[f"replicas-{replicas}"] = await burst(
                    load,
                    f"deposits, {replicas} account replicas",
                    [deposit(load, accounts[i % ACCOUNTS]) for i in range(count)],
                )
        finally:
            await stop(follower)
            await redis.aclose()
    return rates, paced
