"""A superuser rewrites the audit table and re-chains it, or drops its tail; `verify-audit` names
the rewrite and the rows dropped, against heads the security service signed; a head anyone
else wrote is reported as forged, never as a broken chain."""

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from services.security import audit, audit_store, console, crypto, heads
from services.security.chain import link_hash
from services.security.console import OK, REJECTED
from services.security.console_parser import build_parser
from shared.contracts.streams import AUDIT_HEADS
from shared.infra.runtime.db import create_pool
from shared.infra.runtime.settings import Settings
from tests.integration.test_security_store import AUDIT_KEY, KEY
from tests.support.streams import xadd
from tests.support.tokens import Signer


@pytest.fixture
async def pool(
    settings: Settings, own_database: str, monkeypatch: pytest.MonkeyPatch, signer: Signer
) -> AsyncIterator[asyncpg.Pool]:
    """A database of the test's own (its chain is rewritten), six records made by the CLI."""
    for var, value in {
        "DATABASE_URL": own_database,
        "REDIS_URL": settings.redis_url,
        "ALLUSE_STREAM_PREFIX": settings.stream_prefix,
        "ALLUSE_ENCRYPTION_KEYS": KEY,
        "ALLUSE_AUDIT_KEYS": AUDIT_KEY,
        "ALLUSE_JWKS_URL": signer.jwks_url,  # the security service's key, for the heads
    }.items():
        monkeypatch.setenv(var, value)
    for i in range(6):
        assert await cli("create-client", "--client-id", f"engine-{i}") == OK
    pool = await create_pool(own_database, "security")
    yield pool
    await pool.close()


async def cli(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    return await console.run(args.command, args)


async def rewrite(pool: asyncpg.Pool, seq: int, key: bytes | None, keyed: bool = True) -> None:
    """As a superuser can: trigger off, change record `seq`, re-chain every later record and
    audit_head with `key` (None: plain SHA-256 without a key id), trigger on."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change")
        await conn.execute("UPDATE audit_records SET actor = 'someone else' WHERE seq = $1", seq)
        rows = await audit_store.audit_rows(conn, after=0, limit=1000)
        prev = rows[seq - 2]["hash"] if seq > 1 else "0" * 64
        for row in rows[seq - 1 :]:
            record = {k: v for k, v in audit.record_of(row).items() if k != "key_id"}
            if keyed:
                record["key_id"] = row["key_id"]
            h = link_hash(prev, record, key)
            await conn.execute(
                "UPDATE audit_records SET prev_hash = $2, hash = $3, key_id = $4 WHERE seq = $1",
                row["seq"],
                prev,
                h,
                record.get("key_id"),
            )
            prev = h
        await conn.execute("UPDATE audit_head SET hash = $1", prev)
        await conn.execute("ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_change")


async def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = await cli("verify-audit", *argv)
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("key", "keyed", "problem"),
    [(b"g" * 32, True, "modified"), (None, False, "no key id")],
    ids=["guessed-key", "unkeyed-sha256"],
)
async def test_a_rechained_table_fails_and_the_rewritten_record_is_named(
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
    key: bytes | None,
    keyed: bool,
    problem: str,
) -> None:
    assert (await verify(capsys))[1] == {"status": "intact", "records": 6, "heads": 0}
    await rewrite(pool, 3, key, keyed)
    code, out = await verify(capsys)
    assert code == REJECTED and out["status"] == "broken" and out["first_broken_seq"] == 3
    assert problem in str(out["problem"])


async def test_a_table_rechained_with_the_key_fails_against_a_head_published_before(
    pool: asyncpg.Pool, settings: Settings, capsys: pytest.CaptureFixture[str], signer: Signer
) -> None:
    redis = Redis.from_url(settings.redis_url)
    stream = settings.streams.key(AUDIT_HEADS)
    assert await heads.publish(pool, redis, stream, 0, signer.services["security"].sign) == 6
    async with pool.acquire() as conn:
        logged = f"6:{(await audit_store.audit_head(conn, lock=False))['hash']}"
    await rewrite(pool, 2, audit.keys().keys[audit.keys().primary])
    code, out = await verify(capsys)
    assert code == REJECTED and out["first_broken_seq"] == 1
    assert "records 1 to 6 were rewritten" in str(out["problem"])
    # The same from a head copied out of the log, once the stream has been emptied.
    await redis.delete(stream)
    code, out = await verify(capsys)
    assert (code, out["status"]) == (OK, "intact")  # the key alone cannot tell
    code, out = await verify(capsys, "--head", logged)
    assert code == REJECTED and "records 1 to 6 were rewritten" in str(out["problem"])
    await redis.aclose()


async def test_a_new_audit_key_keys_new_records_and_the_old_one_still_verifies_its_own(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    new = crypto.gen_key()
    monkeypatch.setenv("ALLUSE_AUDIT_KEYS", f"{new},{AUDIT_KEY}")  # rotated: the new key first
    assert await cli("create-client", "--client-id", "engine-after-rotation") == OK
    async with pool.acquire() as conn:
        ids = [r["key_id"] for r in await audit_store.audit_rows(conn, after=0, limit=100)]
    old_id, new_id = crypto.load_audit_keys(AUDIT_KEY).primary, crypto.load_audit_keys(new).primary
    assert ids == [old_id] * 6 + [new_id]
    assert (await verify(capsys))[1] == {"status": "intact", "records": 7, "heads": 0}
    monkeypatch.setenv("ALLUSE_AUDIT_KEYS", new)  # the old key dropped too early
    code, out = await verify(capsys)
    assert code == REJECTED and out["first_broken_seq"] == 1
    assert "not one of ALLUSE_AUDIT_KEYS" in str(out["problem"])


async def test_a_forged_head_is_reported_as_forged_and_the_intact_chain_as_intact(
    pool: asyncpg.Pool, settings: Settings, capsys: pytest.CaptureFixture[str], signer: Signer
) -> None:
    redis = Redis.from_url(settings.redis_url)
    stream = settings.streams.key(AUDIT_HEADS)
    assert await heads.publish(pool, redis, stream, 0, signer.services["security"].sign) == 6
    lie = {"seq": "3", "hash": "f" * 64, "time": "2026-12-01T00:00:00+00:00"}
    await redis.xadd(stream, lie)  # type: ignore[arg-type]  # anyone with write access
    await xadd(redis, stream, signer.sign("account", {**lie, "seq": "9"}))
    code, out = await verify(capsys)
    assert code == REJECTED, out
    assert (out["status"], out["chain"], out["records"], out["heads"]) == (
        "forged_heads",
        "intact",
        6,
        1,
    )
    problems = [f["problem"] for f in out["forged_heads"]]  # type: ignore[attr-defined]
    assert problems == [
        "entry carries no service signature",
        "signed by the account service, not security",
    ]
    await redis.aclose()


async def test_rows_dropped_after_a_signed_head_are_reported_as_dropped(
    pool: asyncpg.Pool, settings: Settings, capsys: pytest.CaptureFixture[str], signer: Signer
) -> None:
    redis = Redis.from_url(settings.redis_url)
    stream = settings.streams.key(AUDIT_HEADS)
    assert await heads.publish(pool, redis, stream, 0, signer.services["security"].sign) == 6
    await drop_tail(pool, after=4)
    code, out = await verify(capsys)
    assert code == REJECTED and out["status"] == "broken" and out["first_broken_seq"] == 5
    assert "records 5 to 6 were dropped" in str(out["problem"])
    await redis.aclose()


async def drop_tail(pool: asyncpg.Pool, *, after: int) -> None:
    """As a superuser can: the records after `after` deleted, the head set back to it."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change")
        await conn.execute("DELETE FROM audit_records WHERE seq > $1", after)
        kept = await conn.fetchval("SELECT hash FROM audit_records WHERE seq = $1", after)
        await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", after, kept)
        await conn.execute("ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_change")


async def test_the_running_service_sees_a_dropped_tail_even_with_the_heads_stream_deleted(
    pool: asyncpg.Pool, settings: Settings, signer: Signer
) -> None:
    redis = Redis.from_url(settings.redis_url)
    stream, pinned = settings.streams.key(AUDIT_HEADS), []  # type: ignore[var-annotated]
    await heads.publish(pool, redis, stream, 0, signer.services["security"].sign, pinned)
    await redis.delete(stream)
    await drop_tail(pool, after=3)
    _, broken = await audit.verify(pool, pinned)  # what its periodic check runs
    assert broken is not None and "records 4 to 6 were dropped" in broken.problem
    await redis.aclose()
