"""Signed entries written straight to a stream, confirmed durable: what the republisher and the
forwarder do instead of an outbox row and the relay's round."""

from typing import Any

from redis.asyncio import Redis

from shared.infra.runtime import tracing
from shared.infra.stream.durability import Durability


async def write_durably(
    redis: Redis, durability: Durability, stream: str, signed: list[dict[str, str]]
) -> None:
    """XADD each to `stream` in one round trip, then WAITAOF on the same connection, as the
    relay confirms a round (durability.py); raises unless Redis confirmed them durable."""
    pipe = redis.pipeline(transaction=False)
    for fields in signed:
        flat: list[Any] = [x for kv in fields.items() for x in kv]
        pipe.execute_command("XADD", stream, "*", *flat)
    waits = durability.wait(redis, pipe, [stream])
    with tracing.each("relay", signed):
        replies = await pipe.execute()
    waits.confirm(replies)
