"""Signed entries written straight to a stream, confirmed durable: what the republisher and the
forwarder do instead of an outbox row and the relay's round."""

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.infra.runtime import tracing
from shared.infra.stream.durability import Durability
from shared.infra.stream.partitions import DIRECT, Placement


class NotWritten(Exception):
    """Redis refused an entry of the batch: it, and every one after it, was not written."""


async def write_durably(
    redis: Redis, durability: Durability, stream: str, signed: list[dict[str, str]]
) -> None:
    """XADD each to `stream` in one round trip, then WAITAOF on the same connection, as the
    relay confirms a round (durability.py); raises unless Redis confirmed them durable."""
    pipe = redis.pipeline(transaction=False)
    for fields in signed:
        flat: list[Any] = [x for kv in fields.items() for x in kv]
        pipe.execute_command("XADD", stream, "*", *flat)
    await _confirmed(redis, durability, pipe, stream, signed)


async def _confirmed(
    redis: Redis, durability: Durability, pipe: Pipeline, stream: str, signed: list[dict[str, str]]
) -> list[Any]:
    """`pipe`'s writes of `signed` (keys in `stream`'s slot), sent with a WAITAOF behind them on
    the same connection; their replies, once Redis confirmed them durable (else raises)."""
    waits = durability.wait(redis, pipe, [stream])
    with tracing.each("relay", signed):
        replies: list[Any] = await pipe.execute()
    waits.confirm(replies)
    return replies


async def write_placed(
    redis: Redis, durability: Durability, placement: Placement, signed: list[dict[str, str]]
) -> bool:
    """Write each into its partition of `placement`, as the account service's router would
    move it there, in one atomic step (partitions.DIRECT), unless entries wait on the public
    stream to be routed, or the account service counts partitions otherwise: then each goes to
    the public stream (behind them), and its router places it. Then WAITAOF on the
    same connection (all the keys share the public stream's slot). True if they went into the
    partitions; raises unless all were written and Redis confirmed them durable."""
    keys = [placement.stream, placement.sequence, placement.count_key, *placement.parts]
    args: list[Any] = [len(placement.parts)]
    for fields in signed:  # only what orders an entry (partitions.account_of) is encoded
        ordering = {k.encode(): fields[k].encode() for k in ("subject", "data") if k in fields}
        part = placement.partition(ordering)
        args += [part + 1, 2 * len(fields), *(x for kv in fields.items() for x in kv)]
    pipe = redis.pipeline(transaction=False)
    pipe.eval(DIRECT, len(keys), *keys, *args)
    direct, written, *failed = (
        await _confirmed(redis, durability, pipe, placement.stream, signed)
    )[0]
    if failed or int(written) != len(signed):
        error = failed[0] if failed else "not written"
        error = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        raise NotWritten(f"{int(written)} of {len(signed)} written; then: {error}"[:500])
    return bool(int(direct))
