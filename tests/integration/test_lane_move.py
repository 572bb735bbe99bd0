"""A lane router's move on real Redis, command by command: a lane's batch costs the read and
the one Lua step, which also reads the server's clock for the exhausted-lane check."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.infra.runtime.settings import Settings
from shared.infra.stream.lanes import Move, Registry
from tests.support.streams import entries, xadd

MAX_ID = "18446744073709551615-18446744073709551615"


class Sent:
    """The commands a client sends, by name, while it is watched."""

    def __init__(self, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        send: Callable[..., Awaitable[Any]] = redis.execute_command

        async def watched(*args: Any, **options: Any) -> Any:
            self.names.append(str(args[0]).upper())
            return await send(*args, **options)

        monkeypatch.setattr(redis, "execute_command", watched)


@pytest.mark.parametrize("exhausted", [False, True])
async def test_a_lane_batch_is_moved_with_one_step_and_an_exhausted_lane_is_reset(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch, exhausted: bool
) -> None:
    s, name = settings.streams, "toy.upstream"
    target, lane = s.key(name), s.lane(name, "engine-a")
    await redis.sadd(s.lanes, "engine-a")
    move = Move(redis, s, name, [target], lambda _: 1, Registry(redis, s), f"{target}.dlq", 10)
    await xadd(redis, lane, {"n": "1"})
    if exhausted:  # its writer jumped to the end of the id space
        await xadd(redis, lane, {"n": "2"}, id=MAX_ID)
    sent = Sent(redis, monkeypatch)
    assert await move.once(None) == (2 if exhausted else 1)
    names, sent.names = sent.names, []
    moved = [(f[b"n"], f[b"lane"]) for _, f in await entries(redis, target)]
    assert moved == [(b"1", b"engine-a"), (b"2", b"engine-a")][: len(moved)]
    assert len(moved) == (2 if exhausted else 1)
    # The registry's first read, the wait, the move; and the reset only when exhausted.
    assert names == ["SMEMBERS", "XREAD", "EVAL", *(["EVAL"] if exhausted else [])]
    assert await redis.xlen(lane) == 0
    assert await redis.exists(lane) == (0 if exhausted else 1)  # exhausted: deleted, so that
    await xadd(redis, lane, {"n": "3"})  # its writer's next entry starts it afresh
