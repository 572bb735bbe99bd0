"""hiredis packs commands into exactly the bytes redis-py's own packer makes."""

from redis.asyncio.connection import Connection

from shared.infra.stream import wire


def test_packing_matches_redis_py() -> None:
    own = Connection()
    commands = [
        ("XADD", "s", "*", "a", b"b", "\u00e9", memoryview(b"m")),
        ("SET", "k", 1, "PX", 2.5),
        ("CONFIG GET", "appendfsync"),
        (b"CLIENT SETNAME", "n"),
        ("EVAL", "return 1", 0),
    ]
    for args in commands:
        assert b"".join(wire.pack_command(own, *args)) == b"".join(own.pack_command(*args))
