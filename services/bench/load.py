"""The offered load of soak and chaos: deposits and withdrawals on the commands stream, WS4
fills through the integration service, and queries, each carrying the token a real client
carries; outcomes are read back from the public lifecycle stream as a downstream consumer
reads them. A command without an outcome is re-sent with the same id, as a client retries.

With `Lanes` (soak and chaos, under the ACL file) the operator and the engine are machine
clients writing each its own lane as its own Redis user (docs/lanes.md); a query's answer is
counted from the operator's outcome stream, each query with a reply stream of its own (the
service expires them). Without, one trusted writer writes the shared streams (the bench)."""

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import redis.exceptions
from redis.asyncio import Redis

from services.bench.tokens import Tokens
from shared.contracts.envelope import new_event
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_LIFECYCLE,
    ACCOUNT_QUERIES,
    WS4_EVENTS,
    Streams,
)
from shared.contracts.trust import reply_namespace
from shared.infra.runtime.redisclient import connect
from shared.simulators import upstream
from shared.simulators.feed import Event
from shared.tooling.credentials import token_subject

SOURCE = "alluse-load/1"
# Where a fill's trading day is decided (the account service's protocol checks, too; a test
# holds the bench's fills to them).
EXCHANGE_TZ = ZoneInfo("America/New_York")
# Accounts whose protocol the bench's fills keep on any trading day (Load.fill).
PROTOCOL_KEPT = {"entry_days": ["monday", "tuesday", "wednesday", "thursday", "friday"]}
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
CENT = Decimal("0.01")


@dataclass
class Command:
    """One command sent; `amount` is what the ledger must show for it if it is applied."""

    kind: str
    account: str
    amount: Decimal
    stream: str
    fields: dict[str, str]
    sent_at: float = 0.0
    attempts: int = 0
    outcome: str | None = None  # "applied" or the rejection code
    outcomes: set[str] = field(default_factory=set)
    done_at: float | None = None  # when its first outcome was read (monotonic clock)

    @property
    def id(self) -> str:
        return self.fields["id"]


@dataclass(frozen=True)
class Lanes:
    """The load's clients in their lanes (their client ids), each with its own connection."""

    operator: str
    engine: str
    operator_redis: Redis
    engine_redis: Redis


def in_lanes(operator: Mapping[str, str], engine: Mapping[str, str]) -> Lanes:
    """The lanes of two machine clients made by Platform.client (their ids, their users)."""
    return Lanes(
        operator["ALLUSE_CLIENT_ID"],
        engine["ALLUSE_CLIENT_ID"],
        connect(operator["REDIS_URL"]),
        connect(engine["REDIS_URL"]),
    )


async def retrying(call: Callable[[], Awaitable[Any]]) -> Any:
    """Until Redis answers: a restart of Redis is a pause for a client, not an error."""
    while True:
        try:
            return await call()
        except REDIS_DOWN:
            await asyncio.sleep(0.2)


class Load:
    def __init__(
        self,
        redis: Redis,
        streams: Streams,
        operator: Tokens,
        engine: Tokens,
        accounts: list[str],
        rng: random.Random,
        mix: dict[str, float],
        *,
        lanes: Lanes | None = None,
    ) -> None:
        """`redis`: what the load reads with (the operator's connection, with lanes)."""
        self.redis, self.streams, self.rng, self.mix = redis, streams, rng, mix
        self.operator, self.engine, self.accounts = operator, engine, accounts
        self.lanes = lanes
        self.commands: dict[str, Command] = {}
        self.lifecycle_tx: set[str] = set()  # ledger row ids announced on the lifecycle stream
        self.lifecycle_entries = 0
        self.resent = 0
        self.queries_sent = self.queries_answered = 0
        self.replies = ""  # in the operator's reply namespace, known with its first token
        self.cursors = {streams.key(ACCOUNT_LIFECYCLE): "0-0"}
        if lanes is not None:
            self.cursors[streams.outcomes(lanes.operator)] = "0-0"

    def target(self, stream: str, *, engine: bool = False) -> str:
        """Where the operator (or the engine) writes `stream`: its lane, or the shared one."""
        if self.lanes is None:
            return self.streams.key(stream)
        return self.streams.lane(stream, self.lanes.engine if engine else self.lanes.operator)

    def writer(self, cmd: Command) -> Redis:
        if self.lanes is None:
            return self.redis
        return self.lanes.engine_redis if cmd.kind == "fill" else self.lanes.operator_redis

    # --- what is sent -----------------------------------------------------------------------

    def draw(self) -> Command | None:
        """The next command of the mix (None for a query, which is sent at once)."""
        kind = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        account = self.rng.choice(self.accounts)
        if kind == "query":
            return None
        if kind == "fill":
            return self.fill(account)
        amount = Decimal(self.rng.randrange(100, 20_000)) * CENT
        if kind == "withdrawal" and self.rng.random() < 0.05:
            amount *= 50  # now and then more than is free: refused as insufficient_funds
        type_ = "alluse.account.deposit" if kind == "deposit" else "alluse.account.withdraw"
        fields = new_event(
            type_,
            SOURCE,
            {"account_id": account, "amount": str(amount)},
            subject=account,
            event_id=str(uuid.uuid4()),
        )
        signed = amount if kind == "deposit" else -amount
        return Command(kind, account, signed, self.target(ACCOUNT_COMMANDS), fields)

    def fill(self, account: str) -> Command:
        """A put sold to open, as an engine keeping to a revenue account's protocol sells one
        (delta 35; one contract, whose assignment, $40,000, is within the position-sizing
        share of a $50,000 account; dated on a trading day): it credits price x 100 less
        commission and books the position, with no protocol violation where the account
        enters on every trading day (the bench's accounts, `PROTOCOL_KEPT`)."""
        fill_id = f"fill-{uuid.uuid4().hex}"
        quantity, price = 1, Decimal(self.rng.randrange(50, 300)) * CENT
        commission = Decimal("0.65") * quantity
        now = trading_time(datetime.now(UTC))
        data = {
            "fill_id": fill_id,
            "order_id": f"ord-{fill_id[5:17]}",
            "account_id": account,
            "symbol": "SPY",
            "instrument_type": "option",
            "option_type": "put",
            "strike": "400.00",
            "expiration": (now + timedelta(days=7)).date().isoformat(),
            "delta": "-0.35",
            "side": "sell_to_open",
            "quantity": quantity,
            "price": str(price),
            "multiplier": 100,
            "commission": str(commission),
            "filled_at": now.isoformat(),
        }
        event = Event(WS4_EVENTS, "ws4/load", "ws4.trade.filled", now, data, fill_id, account)
        amount = (quantity * price * 100 - commission).quantize(CENT)
        fields = upstream.fields(event, "")  # its token is put on at each send
        return Command("fill", account, amount, self.target(WS4_EVENTS, engine=True), fields)

    def create(
        self, account_type: str, balance: Decimal, config: Mapping[str, Any] | None = None
    ) -> Command:
        data: dict[str, Any] = {
            "type": account_type,
            "name": f"load {account_type}",
            "initial_balance": str(balance),
        }
        if config:
            data["config"] = dict(config)
        fields = new_event("alluse.account.create", SOURCE, data, event_id=str(uuid.uuid4()))
        return Command("create", "", balance, self.target(ACCOUNT_COMMANDS), fields)

    async def open_accounts(
        self,
        count: int,
        types: list[str],
        balance: Decimal,
        timeout: float,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """`count` accounts of `types` in turn, each with `balance` (and `config`'s settings);
        the load then spreads over them."""
        creates = [self.create(types[i % len(types)], balance, config) for i in range(count)]
        for cmd in creates:
            await self.send(cmd)
        deadline = time.monotonic() + timeout
        while any(c.outcome is None for c in creates):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{sum(c.outcome is None for c in creates)} accounts not created"
                )
            await asyncio.sleep(0.1)
        if bad := {c.outcome for c in creates} - {"applied"}:
            raise RuntimeError(f"account creation refused: {bad}")
        self.accounts = [c.account for c in creates]

    async def send(self, cmd: Command) -> None:
        tokens = self.engine if cmd.kind == "fill" else self.operator
        cmd.fields["authorization"] = f"Bearer {await tokens.token()}"
        cmd.attempts += 1
        cmd.sent_at = time.monotonic()
        self.commands[cmd.id] = cmd
        writer = self.writer(cmd)
        await retrying(lambda: writer.xadd(cmd.stream, cmd.fields))  # type: ignore[arg-type]

    async def query(self) -> None:
        account, token = self.rng.choice(self.accounts), await self.operator.token()
        if self.lanes is not None:  # a box each, expired by the service; counted by outcome
            box = self.streams.replies(self.lanes.operator) + uuid.uuid4().hex
        else:
            if not self.replies:
                space = reply_namespace(self.streams.prefix, token_subject(token))
                self.replies = f"{space}load-{uuid.uuid4().hex[:8]}"
                self.cursors[self.replies] = "0-0"
            box = self.replies
        fields = new_event(
            "alluse.query.account",
            SOURCE,
            {"account_id": account},
            subject=account,
            replyto=box,
            authorization=f"Bearer {token}",
        )
        self.queries_sent += 1
        key = self.target(ACCOUNT_QUERIES)
        writer = self.lanes.operator_redis if self.lanes is not None else self.redis
        await retrying(lambda: writer.xadd(key, fields))  # type: ignore[arg-type]

    async def offer(self, count: int, rate: float, tick: Callable[[int], Awaitable[None]]) -> None:
        """`count` draws at `rate` per second (a steady offered load, not a closed loop);
        `tick(i)` runs before the i-th, for faults and progress."""
        started = time.monotonic()
        for i in range(count):
            await tick(i)
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            cmd = self.draw()
            await (self.query() if cmd is None else self.send(cmd))

    async def resend_stale(self, after: float) -> None:
        """Every command still without an outcome `after` seconds on: again, same id."""
        now = time.monotonic()
        for cmd in [c for c in self.commands.values() if c.outcome is None]:
            if now - cmd.sent_at > after:
                self.resent += 1
                await self.send(cmd)

    def waiting(self) -> int:
        return sum(c.outcome is None for c in self.commands.values())

    # --- what comes back --------------------------------------------------------------------

    async def follow(self) -> None:
        """Read the lifecycle stream and the reply stream for as long as the run lasts."""
        while True:
            try:
                got: Any = await self.redis.xread(self.cursors, count=1000, block=500)  # type: ignore[arg-type]
            except REDIS_DOWN:
                await asyncio.sleep(0.2)
                continue
            for key, entries in got or []:
                stream = key.decode()
                self.cursors[stream] = entries[-1][0].decode()
                if self.lanes is not None and stream == self.streams.outcomes(self.lanes.operator):
                    self.queries_answered += sum(
                        orjson.loads(raw.get(b"data", b"{}")).get("stream") == ACCOUNT_QUERIES
                        for _, raw in entries
                    )
                    continue
                if stream == self.replies:
                    self.queries_answered += len(entries)
                    # The reply stream is ours to keep bounded: a reply read is deleted.
                    ids = [i for i, _ in entries]
                    await retrying(lambda: self.redis.xdel(self.replies, *ids))  # noqa: B023
                    continue
                self.lifecycle_entries += len(entries)
                for _, raw in entries:
                    self.seen(raw)

    def seen(self, raw: dict[bytes, bytes]) -> None:
        type_ = raw.get(b"type", b"").decode()
        cmd = self.commands.get(raw.get(b"causationid", b"").decode())
        data: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            data = orjson.loads(raw.get(b"data", b"{}"))
        if type_ == "alluse.account.created" and cmd is not None and cmd.kind == "create":
            cmd.account = str(data.get("account", {}).get("id"))
            outcome = "applied"
        elif type_ == "alluse.account.balance_changed":
            self.lifecycle_tx.add(str(data.get("transaction", {}).get("id")))
            outcome = "applied"
        elif type_ == "alluse.command.rejected":
            outcome = str(data.get("code"))
        else:
            return
        if cmd is not None:
            if cmd.outcome is None:
                cmd.done_at = time.monotonic()
            cmd.outcome = cmd.outcome or outcome
            cmd.outcomes.add(outcome)


def trading_time(now: datetime) -> datetime:
    """`now`, or on a weekend at the exchange the same time of its last Friday: a fill an
    engine reports is dated on a trading day."""
    weekday = now.astimezone(EXCHANGE_TZ).weekday()
    return now - timedelta(days=max(0, weekday - 4))
