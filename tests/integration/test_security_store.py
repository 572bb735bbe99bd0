"""The audit chain, encryption at rest and the operator commands, on real PostgreSQL and Redis."""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis as redis_sync
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from redis.asyncio import Redis

from services.security import app, audit, audit_store, console, crypto, store
from services.security.admin import Admin
from services.security.console import OK, REJECTED, USAGE
from services.security.console_parser import build_parser
from services.security.domain import InvalidRequest
from services.security.passwords import Passwords
from services.security.settings import SecuritySettings
from shared.contracts.streams import ACL_ADMIN, AUDIT
from shared.infra.runtime.db import create_pool, migrate
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.messaging import Entry
from shared.infra.stream.pipeline import Pipeline
from shared.infra.trust.audit import audit_event
from tests.support.acl import acl_redis
from tests.support.acl import passwords as acl_passwords
from tests.support.streams import read_group, xadd
from tests.support.waiting import until

KEY = os.environ.setdefault("ALLUSE_TEST_ENCRYPTION_KEY", Fernet.generate_key().decode())
AUDIT_KEY = os.environ.setdefault("ALLUSE_TEST_AUDIT_KEY", Fernet.generate_key().decode())
PASSWORD = "Correct-Horse-9!"
FAST = Passwords(memory_kib=8192, time_cost=1, parallelism=1)  # tests of storage, not of cost


Private = tuple[asyncpg.Pool, SecuritySettings, str]  # pool, settings, schema


@pytest.fixture
async def private(settings: Settings) -> AsyncIterator[Private]:
    """A schema of this test's own, so tampering and key rotation touch nobody else."""
    schema = f"security_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, app.MIGRATIONS)
    pool = await create_pool(settings.database_url, schema)
    sec = SecuritySettings(
        **{**settings.model_dump(), "encryption_keys": KEY, "audit_keys": AUDIT_KEY}
    )
    app.fernet_from(sec)  # takes the audit keys into use
    yield pool, sec, schema
    await pool.close()


async def _records(pool: asyncpg.Pool, n: int) -> None:
    async with pool.acquire() as conn:
        for i in range(n):
            async with conn.transaction():
                await audit.append(conn, action="test.happened", actor=f"u{i}", details={"i": i})


def audit_pipeline(pool: asyncpg.Pool, settings: Settings) -> Pipeline:
    """The security service's pipeline of the audit stream, on `pool`."""
    return Pipeline(
        pool,
        audit.on_audit_event,
        source=audit.SOURCE,
        reject_stream=settings.streams.dlq(AUDIT),
        unit=audit.AuditUnit.within(settings.dedup_window),
    )


async def _tamper(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """As a superuser can: bypass the append-only trigger, change history, restore the trigger."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_change")


async def test_audit_records_refuse_update_and_delete(private: Private) -> None:
    pool, _, _ = private
    await _records(pool, 1)
    for sql in (
        "UPDATE audit_records SET actor = 'x'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(sql)
    assert await audit.verify(pool) == (1, None)


async def test_modified_audit_row_is_named_as_the_first_broken_link(private: Private) -> None:
    pool, _, _ = private
    await _records(pool, 5)
    assert await audit.verify(pool) == (5, None)
    await _tamper(pool, "UPDATE audit_records SET details = '{\"i\":99}' WHERE seq = 3")
    await _tamper(pool, "UPDATE audit_records SET actor = 'someone else' WHERE seq = 4")
    _, broken = await audit.verify(pool)
    assert broken is not None and broken.seq == 3 and "modified" in broken.problem


async def test_deleted_audit_row_is_named(private: Private) -> None:
    pool, _, _ = private
    await _records(pool, 5)
    await _tamper(pool, "DELETE FROM audit_records WHERE seq = 2")
    _, broken = await audit.verify(pool)
    assert broken is not None and broken.seq == 2 and "missing" in broken.problem


async def test_deleted_last_audit_row_is_named(private: Private) -> None:
    pool, _, _ = private
    await _records(pool, 3)
    await _tamper(pool, "DELETE FROM audit_records WHERE seq = 3")
    _, broken = await audit.verify(pool)
    assert broken is not None and broken.seq == 3


async def test_concurrent_appends_keep_one_unbroken_chain(private: Private) -> None:
    pool, _, _ = private
    await asyncio.gather(*(_records(pool, 10) for _ in range(5)))
    assert await audit.verify(pool) == (50, None)


async def test_audit_events_from_other_services_are_stored_once(
    private: Private, settings: Settings, redis: Redis
) -> None:
    pool, _, _ = private
    pipeline = audit_pipeline(pool, settings)
    consumer = StreamConsumer(
        redis=redis,
        settings=settings,
        stream=settings.streams.key(AUDIT),
        group="security-audit",
        process=pipeline.process,
    )
    await consumer.ensure_group()
    stream, fields = audit_event(
        settings.streams,
        source="alluse/account",
        action="command.denied",
        actor="user-1",
        subject="acct-9",
        details={"code": "forbidden", "password": "p"},
    )
    await xadd(redis, stream, fields)
    await xadd(redis, stream, fields)  # re-delivered: still one record
    await consumer.handle(await read_group(redis, consumer.group, "c1", consumer.stream, count=10))
    async with pool.acquire() as conn:
        rows = await audit_store.query_audit(
            conn, actor=None, subject="acct-9", action=None, since=None, until=None, limit=10
        )
    assert len(rows) == 1 and rows[0]["source"] == "alluse/account"
    assert json.loads(rows[0]["details"]) == {"code": "forbidden", "password": "[redacted]"}
    assert await audit.verify(pool) == (1, None)

    # A batch of records: chained together, in the order they were written, each once.
    actors = [f"user-{i}" for i in range(2, 7)]
    for actor in actors:
        stream, fields = audit_event(
            settings.streams, source="alluse/account", action="account.created", actor=actor
        )
        await xadd(redis, stream, fields)
    got = await read_group(redis, consumer.group, "c1", consumer.stream, count=10)
    assert len(got) == len(actors)
    await consumer.handle(got)
    async with pool.acquire() as conn:
        rows = await audit_store.query_audit(
            conn,
            actor=None,
            subject=None,
            action="account.created",
            since=None,
            until=None,
            limit=10,
        )
    assert sorted((r["seq"], r["actor"]) for r in rows) == list(enumerate(actors, start=2))
    assert await audit.verify(pool) == (6, None)


async def test_a_batch_of_records_costs_the_chain_two_statements(
    private: Private, settings: Settings, redis: Redis
) -> None:
    """The head, locked, with which of the batch's records the chain holds; then the records'
    rows and the head moved, in the statement that writes the batch's inbox rows."""
    _, _, schema = private
    sent: list[str] = []

    async def logged(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda q: sent.append(q.query))

    pool = await asyncpg.create_pool(
        settings.database_url, server_settings={"search_path": schema}, init=logged
    )
    pipeline = audit_pipeline(pool, settings)
    batch: list[Entry] = []
    for actor in ("user-1", "user-2", "user-3"):
        _, fields = audit_event(
            settings.streams, source="alluse/account", action="account.created", actor=actor
        )
        batch.append(
            (f"0-{len(batch) + 1}".encode(), {k.encode(): v.encode() for k, v in fields.items()})
        )
    try:
        out = await pipeline.process(batch)
        assert sorted(out.ack) == [i for i, _ in batch]
        chain = [q for q in sent if "audit_" in q]
        assert len(chain) == 2, chain
        assert "FOR UPDATE" in chain[0]
        assert "INSERT INTO audit_records" in chain[1] and "INSERT INTO inbox" in chain[1]
        assert await audit.verify(pool) == (3, None)
    finally:
        await pool.close()


async def test_an_appender_that_waited_for_the_head_sees_what_its_holder_chained(
    private: Private,
) -> None:
    """Read with the locked head, the records a batch already holds are as of the lock: an
    appender that waited for it does not chain again a record its holder just chained."""
    pool, sec, _ = private
    record = audit.entry(action="account.created", actor="user-1", source="alluse/account")
    window = sec.dedup_window
    holder = await pool.acquire()
    waiter = await pool.acquire()
    try:
        held = holder.transaction()
        await held.start()
        assert await audit.chain(holder, [record], once_within=window) == 1
        waiting = waiter.transaction()
        await waiting.start()
        second = asyncio.create_task(audit.chain(waiter, [record], once_within=window))
        blocked = "SELECT $1::int = ANY(pg_blocking_pids($2))"
        pids = (holder.get_server_pid(), waiter.get_server_pid())
        await until(lambda: pool.fetchval(blocked, *pids), what="the waiter blocked on the head")
        await held.commit()
        assert await second == 1  # nothing added: the record is the holder's
        await waiting.commit()
    finally:
        await pool.release(holder)
        await pool.release(waiter)
    assert await pool.fetchval("SELECT count(*) FROM audit_records") == 1
    assert await audit.verify(pool) == (1, None)


async def test_encrypted_values_survive_a_restart_and_rotation_reencrypts(private: Private) -> None:
    pool, sec, _ = private
    admin = Admin(pool, sec, crypto.load_fernet(KEY), actor="tests")
    await admin.ensure_signing_key()
    await admin.create_user(
        FAST, username="ann", password=PASSWORD, role="viewer", email="ann@example.com"
    )
    async with pool.acquire() as conn:
        stored = (await store.user(conn, username="ann"))["email_enc"]  # type: ignore[index]
    assert "ann@example.com" not in stored
    assert (
        crypto.decrypt(crypto.load_fernet(KEY), stored) == "ann@example.com"
    )  # a new process, same keys
    new = Fernet.generate_key().decode()
    rotated = Admin(pool, sec, crypto.load_fernet(f"{new},{KEY}"), actor="tests")
    assert await rotated.rotate_encryption() == 2  # the email and the signing key
    async with pool.acquire() as conn:
        stored = (await store.user(conn, username="ann"))["email_enc"]  # type: ignore[index]
        private_key = (await store.active_key(conn))["private_enc"]  # type: ignore[index]
    assert crypto.decrypt(crypto.load_fernet(new), stored) == "ann@example.com"
    assert crypto.load_fernet(new).decrypt(private_key.encode())
    with pytest.raises(InvalidToken):
        MultiFernet([Fernet(KEY)]).decrypt(stored.encode())


async def test_hostile_text_in_admin_fields_is_refused_or_stored_verbatim(private: Private) -> None:
    pool, sec, _ = private
    admin = Admin(pool, sec, crypto.load_fernet(KEY), actor="tests")
    huge = "A" * 1_000_000
    for kwargs in ({"username": huge}, {"email": huge}, {"password": huge}):
        args: dict[str, Any] = {
            "username": "bob",
            "password": PASSWORD,
            "role": "viewer",
            "email": None,
            **kwargs,
        }
        with pytest.raises(InvalidRequest):
            await admin.create_user(FAST, **args)
    with pytest.raises(InvalidRequest):
        await admin.create_client(client_id=huge, role="trading_engine")
    with pytest.raises(InvalidRequest):
        await admin.revoke(jti=huge)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
        rows = await audit_store.query_audit(
            conn,
            actor="'; DELETE FROM users; --",
            subject=huge,
            action=None,
            since=None,
            until=None,
            limit=5,
        )
    assert rows == []


async def test_missing_encryption_keys_stop_the_service_before_it_starts(
    settings: Settings,
) -> None:
    sec = SecuritySettings(**{**settings.model_dump(), "encryption_keys": ""})
    with pytest.raises(crypto.KeyConfigError, match="alluse security gen-key"):
        await app.build(sec)


async def test_missing_audit_keys_stop_the_service_before_it_starts(settings: Settings) -> None:
    sec = SecuritySettings(**{**settings.model_dump(), "encryption_keys": KEY, "audit_keys": ""})
    with pytest.raises(crypto.KeyConfigError, match="ALLUSE_AUDIT_KEYS is not set"):
        await app.build(sec)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var, value in {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ALLUSE_STREAM_PREFIX": settings.stream_prefix,
        "ALLUSE_ENCRYPTION_KEYS": KEY,
        "ALLUSE_AUDIT_KEYS": AUDIT_KEY,
    }.items():
        monkeypatch.setenv(var, value)
    return settings


async def cli(*argv: str) -> int:
    """`alluse security ARGV`, as the security service's admin entry point runs it."""
    args = build_parser().parse_args(argv)
    return await console.run(args.command, args)


def test_password_is_never_an_argument() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["create-admin", "--username", "x", "--password", PASSWORD])


def test_gen_key_prints_a_fernet_key(capsys: pytest.CaptureFixture[str]) -> None:
    from services.security.console_parser import main

    assert main(["gen-key"]) == OK
    Fernet(capsys.readouterr().out.strip())


async def test_cli_manages_users_clients_sessions_and_audit(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"op-{uuid.uuid4().hex[:8]}"
    weak, good = tmp_path / "weak", tmp_path / "good"
    weak.write_text("password\n")
    good.write_text(PASSWORD + "\n")
    assert (
        await cli(
            "create-user", "--username", name, "--role", "operator", "--password-file", str(weak)
        )
        == REJECTED
    )
    assert "password needs" in capsys.readouterr().err
    assert (
        await cli(
            "create-user", "--username", name, "--role", "operator", "--password-file", str(good)
        )
        == OK
    )
    assert (
        await cli(
            "create-user", "--username", name, "--role", "operator", "--password-file", str(good)
        )
        == REJECTED
    )
    assert await cli("set-role", name, "viewer") == OK
    assert await cli("set-status", name, "locked") == OK
    assert await cli("unlock", name) == OK
    assert await cli("set-role", "nobody-" + name, "viewer") == REJECTED
    capsys.readouterr()
    assert await cli("create-client", "--client-id", f"engine-{name}") == OK
    out = json.loads(capsys.readouterr().out)
    assert out["role"] == "trading_engine" and len(out["client_secret"]) >= 40
    assert await cli("rotate-client-secret", f"engine-{name}") == OK
    assert json.loads(capsys.readouterr().out)["client_secret"] != out["client_secret"]
    assert await cli("disable-client", f"engine-{name}") == OK
    assert await cli("enable-client", f"engine-{name}") == OK
    assert await cli("disable-client", f"nobody-{name}") == REJECTED
    assert "no client" in capsys.readouterr().err
    assert await cli("sessions", "--username", name) == OK
    assert await cli("revoke", "--user", name) == OK
    assert await cli("rotate-signing-key") == OK
    capsys.readouterr()
    assert await cli("audit", "--type", "security.user.role_set") == OK
    assert any(r["action"] == "security.user.role_set" for r in json.loads(capsys.readouterr().out))
    assert await cli("verify-audit") == OK
    assert json.loads(capsys.readouterr().out)["status"] == "intact"


async def test_cli_without_keys_says_how_to_make_one(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ALLUSE_ENCRYPTION_KEYS")
    assert await cli("verify-audit") == USAGE
    assert "alluse security gen-key" in capsys.readouterr().err


async def test_a_clients_redis_user_is_provisioned_rotated_and_cut_off_with_it(
    env: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a Valkey running the generated ACL file: create-client gives the client a Redis user
    that writes only its own lane (on the running server and in the file), registers the lane;
    rotate-client-secret changes its password; disable-client cuts it off."""
    prefix = env.stream_prefix
    with acl_redis(tmp_path / "redis", prefix, acl_passwords(), admin=True) as urls:
        monkeypatch.setenv("REDIS_URL", urls["security"])
        monkeypatch.setenv("ALLUSE_REDIS_ADMIN_URL", urls[ACL_ADMIN])
        monkeypatch.setenv("ALLUSE_REDIS_ACL_FILE", urls["acl-file"])
        name = f"engine-{uuid.uuid4().hex[:6]}"
        capsys.readouterr()
        assert await cli("create-client", "--client-id", name) == OK
        out = json.loads(capsys.readouterr().out)
        assert out["lane"] == name and out["redis_user"] == f"client-{name}"
        port = urls["security"].rsplit(":", 1)[1]
        url = f"redis://client-{name}:{out['redis_password']}@127.0.0.1:{port}"
        s = env.streams
        own = redis_sync.Redis.from_url(url)
        own.xadd(s.lane("ws4.market.events", name), {"x": "y"})
        with pytest.raises(redis_sync.exceptions.NoPermissionError):
            own.xadd(s.key("ws4.market.events"), {"x": "y"})
        with pytest.raises(redis_sync.exceptions.NoPermissionError):
            own.xadd(s.lane("ws4.market.events", "other"), {"x": "y"})
        own.close()
        security = redis_sync.Redis.from_url(urls["security"])
        assert name.encode() in security.smembers(s.lanes)
        security.close()
        # The generated ACL admin did all of it, and may touch no key.
        admin = redis_sync.Redis.from_url(urls[ACL_ADMIN])
        with pytest.raises(redis_sync.exceptions.NoPermissionError):
            admin.sismember(s.lanes, name)
        assert f"user client-{name} on #" in acl_text(urls["acl-file"])
        assert out["redis_password"] not in acl_text(urls["acl-file"])
        assert await cli("create-client", "--client-id", "Not A Lane") == REJECTED
        assert await cli("rotate-client-secret", name) == OK
        rotated = json.loads(capsys.readouterr().out)
        with pytest.raises(redis_sync.exceptions.AuthenticationError):
            redis_sync.Redis.from_url(url).ping()
        new_url = url.replace(out["redis_password"], rotated["redis_password"])
        assert redis_sync.Redis.from_url(new_url).ping()
        assert await cli("disable-client", name) == OK
        with pytest.raises(redis_sync.exceptions.AuthenticationError):
            redis_sync.Redis.from_url(new_url).ping()
        assert f"user client-{name} off #" in acl_text(urls["acl-file"])
        admin.close()


def acl_text(path: str) -> str:
    return Path(path).read_text()
