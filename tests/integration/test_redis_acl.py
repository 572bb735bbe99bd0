"""The generated Redis ACL file on a real server: each user allowed inside its role only."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis

from services.integration.direct import write_placed
from shared.contracts.streams import ACL_ADMIN, Streams
from shared.infra.stream.durability import Durability
from shared.infra.stream.partitions import DIRECT, Placement
from shared.infra.trust.signing import text_fields
from tests.support.acl import acl_redis, passwords
from tests.support.streams import entries

P = "t."  # the deployment's prefix: ACL patterns include it
CMD, QRY, LIFE = (
    f"{P}alluse.account.commands",
    f"{P}alluse.account.queries",
    f"{P}alluse.account.lifecycle",
)
EVENTS, EFFECTS = f"{P}alluse.internal.account.events", f"{P}alluse.internal.account.effects"
REVOKE, AUDIT, HEADS = (
    f"{P}alluse.internal.security.revocations",
    f"{P}alluse.audit",
    f"{P}alluse.audit.heads",
)
WS2, WS4 = f"{P}ws2.protocol.events", f"{P}ws4.market.events"
# Ordered consumption's keys beside the public stream (Streams.beside): what a runbook reads.
LEASE, MEMBERS = f"{P}{{{CMD}}}.lease.p0", f"{P}{{{EFFECTS}}}.members"
# The effects' partitions and their id sequence, which the integration service writes straight.
EFF_P3, EFF_SEQ = f"{P}{{{EFFECTS}}}.p3", f"{P}{{{EFFECTS}}}.pseq"
EFF_LEASE, EFF_ROUTER = f"{P}{{{EFFECTS}}}.lease.p3", f"{P}{{{EFFECTS}}}.lease.router"
CMD_P0, CMD_SEQ = f"{P}{{{CMD}}}.p0", f"{P}{{{CMD}}}.pseq"
EFF_COUNT = f"{P}{{{EFFECTS}}}.pcount"


def lane(key: str, name: str) -> str:
    return f"{P}{{{key}}}.lane.{name}"


def outcomes(name: str) -> str:
    return f"{P}alluse.outcomes.{name}"


OP_CMD, OP_QRY = lane(CMD, "operator"), lane(QRY, "operator")
CON_CMD, CON_QRY = lane(CMD, "console"), lane(QRY, "console")
A_WS4, B_WS4, A_CMD = lane(WS4, "engine-a"), lane(WS4, "engine-b"), lane(CMD, "engine-a")
ENTRY = {"id": "e-1"}


def xadd(key: str) -> tuple[str, ...]:
    return ("XADD", key, "*", "id", "e-1")


def group(key: str, name: str) -> list[tuple[str, ...]]:
    return [
        ("XGROUP", "CREATE", key, name, "0", "MKSTREAM"),
        ("XREADGROUP", "GROUP", name, "c1", "COUNT", "1", "STREAMS", key, ">"),
    ]


ALLOWED = {
    "client-engine-a": [
        xadd(A_WS4),
        xadd(lane(WS2, "engine-a")),
        xadd(A_CMD),
        ("PING",),
        ("XADD", A_WS4, "MAXLEN", "0", "*", "x", "y"),  # its own lane only
        ("XRANGE", outcomes("engine-a"), "-", "+"),
        ("XRANGE", f"{P}alluse.reply.engine-a.q1", "-", "+"),
        ("DEL", f"{P}alluse.reply.engine-a.q1"),
    ],
    "account": [
        *group(CMD, "acct"),
        *group(QRY, "acctq"),
        *group(EFFECTS, "accte"),
        xadd(EVENTS),
        xadd(AUDIT),
        xadd(f"{CMD}.dlq"),
        ("XREAD", "STREAMS", REVOKE, "0"),
        xadd(f"{P}alluse.reply.u1.q1"),
        ("WAITAOF", "0", "0", "10"),
        ("INFO", "server"),
        ("DEL", f"{P}alluse.reply.u1.q1"),
    ],  # a client's reply streams beyond its cap
    "integration": [
        *group(WS4, "integ"),
        *group(EVENTS, "integ-ev"),
        xadd(LIFE),
        xadd(EFFECTS),
        xadd(AUDIT),
        xadd(f"{WS4}.dlq"),
        ("XTRIM", WS4, "MINID", "0"),
        xadd(EFF_P3),  # the account service's effects partitions, and their one sequence
        ("GET", EFF_SEQ),
        ("SET", EFF_SEQ, "1-0"),
    ],
    "security": [
        *group(AUDIT, "sec"),
        xadd(REVOKE),
        xadd(HEADS),
        ("XTRIM", REVOKE, "MINID", "0"),
        xadd(AUDIT),  # its own refusals of forged records are audited too
        xadd(f"{REVOKE}.dlq"),
        ("XDEL", REVOKE, "1-1"),
        ("XTRIM", HEADS, "MINID", "0"),
    ],
    "operator": [
        xadd(OP_CMD),
        xadd(OP_QRY),
        xadd(CMD),
        xadd(QRY),  # the shared ones: re-drives
        ("XREAD", "STREAMS", LIFE, "0"),
        ("XRANGE", f"{CMD}.dlq", "-", "+"),
        ("XDEL", f"{CMD}.dlq", "1-1"),
        ("XRANGE", f"{P}alluse.reply.operator.q1", "-", "+"),
        ("DEL", f"{P}alluse.reply.operator.q1"),
        ("XRANGE", HEADS, "-", "+"),
        ("XREVRANGE", outcomes("operator"), "+", "-"),
        ("XREVRANGE", EVENTS, "+", "-"),
        # the runbooks: who holds a partition, which replicas live, who is connected
        ("GET", LEASE),
        ("PTTL", LEASE),
        ("ZRANGE", MEMBERS, "0", "-1", "WITHSCORES"),
        ("CLIENT", "LIST"),
        ("INFO", "memory"),
    ],
    "console": [
        xadd(CON_CMD),
        xadd(CON_QRY),
        ("XREAD", "STREAMS", LIFE, "0"),
        ("XREVRANGE", LIFE, "+", "-"),
        ("XREAD", "STREAMS", REVOKE, "0"),
        ("XRANGE", f"{P}alluse.reply.console.q1", "-", "+"),
        ("DEL", f"{P}alluse.reply.console.q1"),
        ("PING",),
        ("XREAD", "STREAMS", outcomes("console"), "0"),
    ],
    "lifecycle": [
        ("XREAD", "STREAMS", LIFE, "0"),
        *group(LIFE, "downstream"),
        ("XACK", LIFE, "downstream", "1-1"),
    ],
}
REFUSED = {
    # Finding 4: no XADD (so no MAXLEN 0, no largest id) on a shared stream or another's lane;
    # nothing of another engine's to read (its lane, its outcomes, its replies).
    "client-engine-a": [
        xadd(WS4),
        xadd(WS2),
        xadd(CMD),
        xadd(QRY),
        xadd(EFFECTS),
        xadd(B_WS4),
        ("XADD", WS4, "MAXLEN", "0", "*", "x", "y"),
        ("XTRIM", WS4, "MAXLEN", "0"),
        ("XTRIM", B_WS4, "MAXLEN", "0"),
        ("XRANGE", B_WS4, "-", "+"),
        ("XRANGE", A_WS4, "-", "+"),
        ("XDEL", B_WS4, "1-1"),
        ("DEL", B_WS4),
        ("XRANGE", outcomes("engine-b"), "-", "+"),
        ("DEL", outcomes("engine-a")),
        ("XADD", outcomes("engine-a"), "*", "x", "y"),
        ("XRANGE", f"{P}alluse.reply.engine-b.q1", "-", "+"),
        ("XRANGE", WS4, "-", "+"),
        ("DEL", WS4),
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("SADD", f"{P}alluse.lanes", "engine-b"),
        ("CONFIG", "SET", "appendonly", "no"),
    ],
    "account": [
        xadd(CMD),
        xadd(EFFECTS),
        xadd(LIFE),
        xadd(REVOKE),
        xadd(WS4),
        ("DEL", CMD),
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("EXPIRE", AUDIT, "1"),
        ("EXPIRE", "mykey", "1"),
        xadd("not-ours"),
        ("CONFIG", "SET", "appendonly", "no"),
        ("XREAD", "STREAMS", WS4, "0"),
    ],
    # It moves engines' lanes into WS2/WS4 (XADD there), and nothing else into them.
    "integration": [
        xadd(EVENTS),
        xadd(REVOKE),
        xadd(CMD),
        ("DEL", LIFE),
        ("FLUSHDB",),
        ("XREAD", "STREAMS", CMD, "0"),
        # Of ordered consumption, only appending effects: no lease, no replica set, nothing
        # read or removed from a partition, nothing of the commands'.
        ("SET", EFF_LEASE, "me"),
        ("GET", EFF_LEASE),
        ("SET", EFF_ROUTER, "me"),
        ("PEXPIRE", EFF_ROUTER, "1"),
        ("ZADD", f"{P}{{{EFFECTS}}}.members", "1", "me"),
        ("XRANGE", EFF_P3, "-", "+"),
        ("XREAD", "STREAMS", EFF_P3, "0"),
        ("XDEL", EFF_P3, "1-1"),
        ("XTRIM", EFF_P3, "MAXLEN", "0"),
        ("DEL", EFF_P3),
        ("SET", EFF_P3, "x"),
        ("DEL", EFF_SEQ),
        ("XADD", EFF_SEQ, "*", "x", "y"),
        xadd(CMD_P0),
        ("SET", CMD_SEQ, "1-0"),
        ("EVAL", "return 1", "2", EFF_P3, EFF_LEASE),
        ("EVAL", "return 1", "2", EFFECTS, CMD_P0),
    ],
    "security": [
        xadd(EFFECTS),
        xadd(EVENTS),
        xadd(LIFE),
        xadd(WS2),
        ("XREAD", "STREAMS", CMD, "0"),
    ],
    "operator": [
        xadd(CON_CMD),
        ("XRANGE", outcomes("console"), "-", "+"),
        ("XRANGE", f"{P}alluse.reply.console.q1", "-", "+"),
        xadd(WS4),
        xadd(EFFECTS),
        xadd(EVENTS),
        xadd(REVOKE),
        xadd(AUDIT),
        xadd(LIFE),
        ("XRANGE", CMD, "-", "+"),
        ("XREAD", "STREAMS", REVOKE, "0"),
        ("DEL", LIFE),
        ("XDEL", CMD, "1-1"),
        ("FLUSHALL",),
        ("KEYS", "*"),
        # inspecting never changes anything: no lease taken, no client killed
        ("SET", LEASE, "me"),
        ("DEL", LEASE),
        ("PEXPIRE", LEASE, "1"),
        ("ZADD", MEMBERS, "1", "me"),
        ("GET", f"{P}alluse.lanes"),
        ("CLIENT", "KILL", "ID", "1"),
        ("ACL", "LOAD"),
        ("ACL", "LIST"),
        ("CONFIG", "GET", "*"),
        ("MONITOR",),
    ],
    "console": [
        xadd(CMD),
        xadd(QRY),
        xadd(OP_CMD),
        ("XRANGE", outcomes("operator"), "-", "+"),
        ("XRANGE", f"{P}alluse.reply.operator.q1", "-", "+"),
        xadd(WS4),
        xadd(EFFECTS),
        xadd(EVENTS),
        xadd(LIFE),
        ("XRANGE", f"{CMD}.dlq", "-", "+"),
        ("XDEL", f"{CMD}.dlq", "1-1"),
        ("XRANGE", CMD, "-", "+"),
        ("XRANGE", HEADS, "-", "+"),
        ("XREAD", "STREAMS", EVENTS, "0"),
        ("DEL", LIFE),
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("GET", LEASE),
        ("CLIENT", "LIST"),
    ],
    "lifecycle": [
        xadd(LIFE),
        ("XDEL", LIFE, "1-1"),
        ("XTRIM", LIFE, "MAXLEN", "0"),
        ("DEL", LIFE),
        ("XRANGE", CMD, "-", "+"),
        ("XREAD", "STREAMS", EVENTS, "0"),
        xadd(WS4),
    ],
}


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with acl_redis(
        tmp_path_factory.mktemp("acl"), P, passwords(), ("engine-a", "engine-b")
    ) as found:
        yield found


@pytest.mark.parametrize("user", list(ALLOWED))
def test_each_user_may_do_what_its_role_needs(urls: dict[str, str], user: str) -> None:
    client = redis.Redis.from_url(urls[user])
    for command in ALLOWED[user]:
        try:
            client.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except redis.exceptions.NoPermissionError as exc:
            pytest.fail(f"{user} refused {command}: {exc}")
    client.close()


@pytest.mark.parametrize("user", list(REFUSED))
def test_each_user_is_refused_outside_its_role(urls: dict[str, str], user: str) -> None:
    client = redis.Redis.from_url(urls[user])
    for command in REFUSED[user]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py
    client.close()


async def test_the_integration_service_writes_effects_straight_into_their_partitions(
    urls: dict[str, str],
) -> None:
    """As its forwarder does (one Lua step, partitions.DIRECT), under its own user; the
    account service's user then finds each in its partition, with an id of the one sequence.
    A step that names a lease or a commands' partition is refused whole."""
    placement = Placement.of(Streams(P), EFFECTS, 16)
    integration = aredis.Redis.from_url(urls["integration"])
    account = aredis.Redis.from_url(urls["account"])
    try:
        durable = Durability(mode="off")
        await account.set(placement.count_key, 16)  # its router says how many it reads
        await integration.xtrim(EFFECTS, maxlen=0)
        await integration.xadd(EFFECTS, {"subject": "acct-0"})  # waits to be routed
        assert not await write_placed(integration, durable, placement, [{"subject": "acct-1"}])
        assert await integration.xtrim(EFFECTS, maxlen=0) == 2  # so went behind it
        signed = [{"subject": f"acct-{n}", "n": str(n)} for n in range(3)]
        assert await write_placed(integration, durable, placement, signed)
        for fields in signed:
            part = placement.parts[placement.partition({b"subject": fields["subject"].encode()})]
            rows = await entries(account, part)
            assert text_fields(rows[-1][1]) == fields
        assert await account.get(placement.sequence)
        with pytest.raises(redis.exceptions.NoPermissionError):
            await integration.eval(
                DIRECT, 4, EFFECTS, EFF_SEQ, EFF_COUNT, EFF_ROUTER, 16, 1, 2, "x", "y"
            )
        with pytest.raises(redis.exceptions.NoPermissionError):
            await integration.eval(
                DIRECT, 4, EFFECTS, CMD_SEQ, EFF_COUNT, CMD_P0, 16, 1, 2, "x", "y"
            )
    finally:
        await integration.aclose()
        await account.aclose()


def test_the_default_user_and_wrong_passwords_get_nothing(urls: dict[str, str]) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(urls["anonymous"]).ping()
    wrong = urls["account"].replace("account:", "account:x")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(wrong).ping()


def test_the_acl_file_holds_no_password(tmp_path: Path) -> None:
    from services.security.redis_acl import acl_file

    env = passwords()
    text = acl_file(env, P)
    assert not any(pw in text for pw in env.values())
    assert "user default off" in text
    with pytest.raises(KeyError, match="ALLUSE_REDIS_PASSWORD_CONSOLE"):
        acl_file({k: v for k, v in env.items() if "CONSOLE" not in k}, P)


def test_no_user_may_load_or_change_the_acl_so_rotation_restarts_redis(
    urls: dict[str, str],
) -> None:
    """docs/operators/deploy.md rotates a password by a new file and a Redis restart: no user
    may run ACL LOAD/SETUSER (whoever could would hold every user's rights)."""
    from services.security.redis_acl import acl_file

    assert "+acl" not in acl_file(passwords(), P) and "+@admin" not in acl_file(passwords(), P)
    for user in ALLOWED:
        client = redis.Redis.from_url(urls[user])
        for command in (("ACL", "LOAD"), ("ACL", "SETUSER", user, "+@all"), ("CONFIG", "REWRITE")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        client.close()


def test_the_acl_admin_provisions_client_users_and_touches_nothing_else(tmp_path: Path) -> None:
    """ALLUSE_REDIS_ADMIN_URL's user (in the file only when ALLUSE_REDIS_PASSWORD_ACLADMIN is
    set): ACL SETUSER/GETUSER/DELUSER and CLIENT KILL for `alluse security create-client` and
    its rotations; no key, no ACL LOAD/SAVE, no server change."""
    from services.security import redis_acl

    assert ACL_ADMIN not in redis_acl.acl_file(passwords(), P)
    with pytest.raises(KeyError, match="ALLUSE_REDIS_PASSWORD_ACLADMIN"):
        redis_acl.acl_file({**passwords(), "ALLUSE_REDIS_PASSWORD_ACLADMIN": "short"}, P)
    with acl_redis(tmp_path, P, passwords(), admin=True) as found:
        admin = redis.Redis.from_url(found[ACL_ADMIN])
        rules = redis_acl.client_rules("engine-c", P)
        admin.execute_command("ACL", "SETUSER", "client-engine-c", "on", ">pw-engine-c", *rules)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        assert admin.execute_command("ACL", "GETUSER", "client-engine-c")  # type: ignore[no-untyped-call]  # unannotated in redis-py
        client = redis.Redis.from_url(
            found["anonymous"].replace("//", "//client-engine-c:pw-engine-c@")
        )
        client.execute_command(*xadd(lane(WS4, "engine-c")))  # type: ignore[no-untyped-call]  # unannotated in redis-py
        client.close()
        admin.execute_command("CLIENT", "KILL", "USER", "client-engine-c")  # type: ignore[no-untyped-call]  # unannotated in redis-py
        admin.execute_command("ACL", "DELUSER", "client-engine-c")  # type: ignore[no-untyped-call]  # unannotated in redis-py
        for command in (
            ("ACL", "LOAD"),
            ("ACL", "SAVE"),
            ("ACL", "LIST"),
            ("CONFIG", "SET", "appendonly", "no"),
            ("XADD", WS4, "*", "id", "e-1"),
            ("XRANGE", CMD, "-", "+"),
            ("GET", LEASE),
            ("KEYS", "*"),
            ("FLUSHALL",),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                admin.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        admin.close()
