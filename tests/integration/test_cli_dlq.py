"""`alluse dlq`: dead letters listed by reason, shown, re-driven once the cause is fixed, dropped.

The account service runs in-process with the production setting of 5 deliveries before an
entry is given up on; re-drives and drops land in the security service's audit chain.
"""

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from services.account.app import build
from services.cli.__main__ import main
from services.security import app as security_app
from services.security import audit, crypto
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    AUDIT,
    WS2_EVENTS,
)
from shared.infra.runtime.db import connection, create_pool, migrate
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import dead_letter_fields
from shared.infra.trust.signing import b64, letter_bytes
from tests.integration.test_integration_service import fill
from tests.support.account import Client
from tests.support.streams import ce, decoded, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until


@dataclass
class Ops:
    rt: Runtime
    client: Client
    capsys: pytest.CaptureFixture[str]

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    async def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async with connection(self.rt.pool) as conn:
            return [dict(r) for r in await conn.fetch(query, *args)]

    async def execute(self, statements: str) -> None:
        async with connection(self.rt.pool) as conn:
            await conn.execute(statements)


@pytest.fixture
async def ops(
    settings: Settings,
    redis: Redis,
    signer: Signer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> AsyncIterator[Ops]:
    await migrate(settings.database_url, security_app.SCHEMA, security_app.MIGRATIONS)
    token_file = tmp_path / "token"
    token_file.write_text(signer.token("admin"))
    for name in ("ALLUSE_TOKEN", "ALLUSE_CLIENT_ID", "ALLUSE_CLIENT_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ALLUSE_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    # The run's one audit key: records in the shared chain must verify for every test.
    audit_key = os.environ.setdefault("ALLUSE_TEST_AUDIT_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("ALLUSE_AUDIT_KEYS", audit_key)
    monkeypatch.setenv("ALLUSE_STREAM_PREFIX", settings.stream_prefix)
    monkeypatch.setenv("ALLUSE_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("ALLUSE_JWKS_URL", signer.jwks_url)  # the letters' signatures checked
    rt = await build(settings.model_copy(update={"max_deliveries": 5, "reclaim_idle_ms": 200}))
    async with running(rt):
        yield Ops(rt, Client(redis, settings, signer), capsys)


async def audit_trail(settings: Settings) -> tuple[list[Any], int, Any]:
    """This test's DLQ records (its stream prefix is in their details), and the chain's check."""
    pool = await create_pool(settings.database_url, security_app.SCHEMA, max_size=1)
    try:
        async with connection(pool) as conn:
            trail = await conn.fetch(
                "SELECT action, actor, subject, details FROM audit_records"
                " WHERE action LIKE 'dlq.%' AND strpos(details::text, $1) > 0 ORDER BY seq",
                settings.stream_prefix,
            )
        audit.use_keys(crypto.load_audit_keys(os.environ["ALLUSE_AUDIT_KEYS"]))
        checked, broken = await audit.verify(pool)
    finally:
        await pool.close()
    return trail, checked, broken


async def dlq_length(redis: Redis, key: str, want: int) -> int:
    async def length() -> int:
        return int(await redis.xlen(key))

    return await until(length, lambda n: n >= want, timeout=20, what=key)


async def test_garbage_and_a_command_failed_5_times_are_redriven_once_the_cause_is_fixed(
    ops: Ops, redis: Redis, settings: Settings
) -> None:
    gen = (await ops.client.initialize())["generation"]["id"]
    commands, dlq = settings.streams.key(ACCOUNT_COMMANDS), settings.streams.dlq(ACCOUNT_COMMANDS)
    await xadd(redis, commands, {"hello": "world"})  # garbage: not a CloudEvent
    await ops.execute(
        "CREATE FUNCTION fail_tx() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'disk full (injected)'; END $$;"
        " CREATE TRIGGER fail_tx BEFORE INSERT ON transactions"
        " FOR EACH ROW EXECUTE FUNCTION fail_tx()"
    )
    deposit = ce(
        "alluse.account.deposit",
        {"account_id": gen, "amount": "10000.00"},
        subject=gen,
        authorization=ops.client.signer.bearer("operator"),
    )
    await xadd(redis, commands, deposit)
    assert await dlq_length(redis, dlq, 2) == 2

    code, out, _ = await ops("dlq", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and sorted(g["entries"] for g in listed["groups"]) == [1, 1]
    failed = next(e for e in listed["entries"] if e["id"] == deposit["id"])
    assert failed["deliveries"] == "5" and "failed 5 deliveries" in failed["reason"]
    garbage = next(e for e in listed["entries"] if e["id"] == "?")
    assert "missing field 'data'" in garbage["reason"]
    code, out, _ = await ops("dlq", "list", "--reason", "deliveries")
    assert code == 0 and "failed 5 deliveries" in out and "missing field" not in out
    assert out.splitlines()[0].split() == ["STREAM", "REASON", "ENTRIES"]
    code, out, _ = await ops("--json", "dlq", "show", failed["dlq_id"])
    shown = json.loads(out)
    assert shown["data"]["amount"] == "10000.00" and shown["authorization"] == "[redacted]"

    await ops.execute("DROP TRIGGER fail_tx ON transactions")  # the cause, fixed
    # The same dead letter twice (as a crash between dead-lettering and acknowledging leaves it):
    # re-driving both must still deposit once.
    copy = next(f for i, f in await entries(redis, dlq) if i.decode() == failed["dlq_id"])
    await xadd(redis, dlq, copy)
    code, out, err = await ops("dlq", "redrive", "--all", "--stream", "commands")
    assert code == 0, err
    assert out.count(deposit["id"]) == 2 and "1 entries are not CloudEvents" in out

    events = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), deposit["id"], want=2)
    assert [e["type"] for e in events] == ["alluse.account.balance_changed"] * 2
    assert events[0]["id"] == events[1]["id"]  # the second is the first's outcome, replayed
    rows = await ops.sql("SELECT amount FROM transactions WHERE command_id = $1", deposit["id"])
    assert rows == [{"amount": Decimal("10000.00")}]
    (acc,) = await ops.sql("SELECT balance FROM accounts WHERE id = $1", uuid.UUID(gen))
    assert acc["balance"] == Decimal("110000.00")

    code, out, _ = await ops("dlq", "drop", garbage["dlq_id"])
    assert code == 0 and garbage["dlq_id"] in out
    code, _, err = await ops("dlq", "redrive", garbage["dlq_id"])
    assert code == 1 and "no dead letter" in err
    code, out, _ = await ops("--json", "dlq", "list")
    assert json.loads(out) == {"groups": [], "entries": []}

    trail, checked, broken = await audit_trail(settings)
    assert [(r["action"], r["subject"]) for r in trail] == [
        ("dlq.redriven", gen),
        ("dlq.redriven", gen),
        ("dlq.dropped", None),
    ]
    assert all(r["actor"].startswith("user-admin (cli:") for r in trail)
    assert broken is None and checked >= 3


def letter(ops: Ops, service: str, stream: str, entry: dict[str, str], **extra: str) -> Any:
    """A dead letter as `service` writes it: the entry, why, the writer it verified, signed."""
    fields = dead_letter_fields(
        {k.encode(): v.encode() for k, v in entry.items()},
        reason="failed 5 deliveries",
        stream=stream,
        entry_id=b"1-1",
        deliveries=5,
        writer=extra.pop("writer", "client:eng"),
        refused_writer=extra.pop("refused", "") == "writer",
    )
    return ops.client.signer.services[service].sign_letter(fields)


async def test_a_fabricated_dead_letter_is_refused_and_books_nothing(
    ops: Ops, redis: Redis, settings: Settings
) -> None:
    gen = (await ops.client.initialize())["generation"]["id"]
    commands, dlq = settings.streams.key(ACCOUNT_COMMANDS), settings.streams.dlq(ACCOUNT_COMMANDS)
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    forged = ce("alluse.account.deposit", {"amount": "900000.00"}, subject=gen, time=week_ago)
    # As a dead letter reads, written by someone with write access to the DLQ: no signature,
    # then one copied from a real letter, then a real letter with the amount changed.
    real = letter(
        ops,
        "account",
        commands,
        {**forged, "data": '{"amount": "1.00"}'},
        writer="client:user-operator",
    )
    await xadd(
        redis,
        dlq,
        {
            **forged,
            "dlq_reason": "failed 5 deliveries",
            "dlq_stream": commands,
            "dlq_writer": "client:user-operator",
        },
    )
    await xadd(
        redis,
        dlq,
        {
            **forged,
            "dlq_stream": commands,
            "dlq_writer": "client:user-admin",
            "dlq_signature": real[b"dlq_signature"].decode(),
        },
    )
    await xadd(redis, dlq, {**real, b"data": b'{"amount": "900000.00"}'})
    # And one its service signed, but refused for who wrote it: never re-driven either.
    refused = letter(ops, "account", commands, forged, refused="writer")
    await xadd(redis, dlq, refused)

    code, out, err = await ops("dlq", "redrive", "--all")
    assert code == 1, (out, err)
    assert sum(line.startswith("refused ") for line in err.splitlines()) == 4
    assert "signature does not hold" in err
    assert "refused for who wrote it" in err
    assert await redis.xlen(dlq) == 4  # left for an operator to look at, and drop
    assert await redis.xlen(commands) == 0

    # Put on the commands stream by hand with an operator's token, the service refuses each
    # too: a letter is believed only with its signature, whoever re-drives it.
    for _, fields in await entries(redis, dlq):
        await xadd(
            redis,
            commands,
            {**fields, b"authorization": ops.client.signer.bearer("operator").encode()},
        )
    events = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), forged["id"], want=4)
    assert [e["type"] for e in events] == ["alluse.command.rejected"] * 4, events
    rows = await ops.sql("SELECT amount FROM transactions WHERE command_id = $1", forged["id"])
    assert rows == []
    trail, _, broken = await audit_trail(settings)
    assert [r["action"] for r in trail] == ["dlq.redrive_refused"] * 4 and broken is None


async def test_a_signed_letter_is_applied_as_its_writer_and_only_on_an_operators_token(
    ops: Ops, redis: Redis, settings: Settings
) -> None:
    gen = (await ops.client.initialize())["generation"]["id"]
    commands, events = settings.streams.key(ACCOUNT_COMMANDS), settings.streams.key(ACCOUNT_EVENTS)
    deposit = ce("alluse.account.deposit", {"amount": "12.00"}, subject=gen)
    signed = letter(ops, "account", commands, deposit, writer="client:user-original")
    viewer = {**signed, b"authorization": ops.client.signer.bearer("viewer").encode()}
    await xadd(redis, commands, viewer)
    (refusal,) = await outcomes(redis, events, deposit["id"])
    assert refusal["data"]["code"] == "forbidden", refusal
    operator = ops.client.signer.bearer("operator").encode()
    await xadd(redis, commands, {**signed, b"authorization": operator})
    done = await outcomes(redis, events, deposit["id"], want=2)
    assert done[1]["type"] == "alluse.account.balance_changed"
    # Applied as the writer the service verified, on the operator's authority: both audited.
    audit_stream = settings.streams.key(AUDIT)

    async def audited() -> list[dict[str, Any]]:
        records = [decoded(f) for _, f in await entries(redis, audit_stream)]
        return [
            r
            for r in records
            if r.get("causationid") == deposit["id"]
            and r["data"]["action"] == "alluse.account.deposit"
        ]

    (record,) = await until(audited, what="the re-driven deposit's audit record")
    assert record["data"]["actor"] == "user-original"
    assert record["data"]["details"]["redriven_by"] == "user-operator"


async def test_redrive_and_drop_refuse_to_act_unaudited(
    ops: Ops, redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = settings.streams.dlq(ACCOUNT_COMMANDS)
    lost = ce("alluse.account.deposit", {"account_id": str(uuid.uuid4()), "amount": "1.00"})
    await xadd(redis, dlq, {**lost, "dlq_reason": "failed 5 deliveries"})
    monkeypatch.delenv("DATABASE_URL")
    for action in ("redrive", "drop"):
        code, _, err = await ops("dlq", action, "--all")
        assert code == 2 and "not audited, so not done" in err and "DATABASE_URL" in err
    assert await redis.xlen(dlq) == 1
    assert await redis.xlen(settings.streams.key(ACCOUNT_COMMANDS)) == 0


async def test_a_redrive_redis_refuses_keeps_the_dead_letter_and_says_so_in_the_trail(
    ops: Ops, redis: Redis, settings: Settings
) -> None:
    dlq = settings.streams.dlq(WS2_EVENTS)
    await redis.set(settings.streams.key(WS2_EVENTS), "not a stream")  # XADD there fails
    week = ce("ws2.week.classified", {"week_start": "2026-11-23", "week_type": "P-EW"})
    await xadd(redis, dlq, letter(ops, "integration", settings.streams.key(WS2_EVENTS), week))
    code, _, err = await ops("dlq", "redrive", "--all", "--stream", "ws2")
    assert code == 3 and "it stays in the DLQ" in err and "WRONGTYPE" in err
    assert await redis.xlen(dlq) == 1
    trail, _, broken = await audit_trail(settings)
    assert [r["action"] for r in trail] == ["dlq.redriven", "dlq.redrive_failed"]
    assert "WRONGTYPE" in str(trail[1]["details"]) and broken is None


async def test_a_signed_effect_is_redriven_with_its_signature_and_applied_once(
    ops: Ops, redis: Redis, settings: Settings
) -> None:
    gen = (await ops.client.initialize())["generation"]["id"]
    await ops.execute(
        "CREATE FUNCTION fail_fill() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'disk full (injected)'; END $$;"
        " CREATE TRIGGER fail_fill BEFORE INSERT ON transactions"
        " FOR EACH ROW EXECUTE FUNCTION fail_fill()"
    )
    effect = ce("alluse.effect.trade_filled", fill(gen), source="ws4/gateway-1", subject=gen)
    signed = ops.client.signer.sign("integration", effect)  # as the integration service writes
    await xadd(redis, settings.streams.key(ACCOUNT_EFFECTS), signed)
    assert await dlq_length(redis, settings.streams.dlq(ACCOUNT_EFFECTS), 1) == 1
    await ops.execute("DROP TRIGGER fail_fill ON transactions")

    # Only the integration service may write effects: the operator's token only authorizes the
    # re-drive; the effect is applied as the writer the account service signed into the letter.
    code, out, err = await ops("dlq", "redrive", "--all", "--stream", "effects")
    assert code == 0 and effect["id"] in out, err
    events = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), effect["id"], want=2)
    assert [e["type"] for e in events].count("alluse.account.balance_changed") == 1
    assert await redis.xlen(settings.streams.dlq(ACCOUNT_EFFECTS)) == 0


async def test_a_letter_older_than_the_deduplication_window_is_not_redriven(
    ops: Ops, redis: Redis, settings: Settings
) -> None:
    """The inbox may have forgotten its entry by then: applied again, it would book twice."""
    commands, dlq = settings.streams.key(ACCOUNT_COMMANDS), settings.streams.dlq(ACCOUNT_COMMANDS)
    deposit = ce("alluse.account.deposit", {"amount": "5.00"}, subject=str(uuid.uuid4()))
    service = ops.client.signer.services["account"]
    fields = dead_letter_fields(
        {k.encode(): v.encode() for k, v in deposit.items()},
        reason="failed 5 deliveries",
        stream=commands,
        entry_id=b"1-1",
        deliveries=5,
        writer="client:user-operator",
    )
    fields[b"dlq_signed_at"] = str(int((time.time() - 8 * 86400) * 1000)).encode()  # 8 days
    signature = b64(service.key.sign(letter_bytes(fields)))
    await xadd(redis, dlq, {**fields, b"dlq_signature": f"{service.kid}.{signature}".encode()})
    code, _, err = await ops("dlq", "redrive", "--all")
    assert code == 1 and "deduplication window" in err, err
    assert await redis.xlen(commands) == 0 and await redis.xlen(dlq) == 1
