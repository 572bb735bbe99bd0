"""Audit records per batch, on real Redis and PostgreSQL: a service's batch of commands leaves
one signed `alluse.audit.batch`, and the security service chains each record on its own, once,
however often and in whichever batch it comes."""

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from services.security import app, audit
from services.security.audit_reader import AuditConsumer
from services.security.settings import SecuritySettings
from shared.contracts.envelope import LIMITS, new_event
from shared.contracts.messages import AUDIT_BATCH, AUDIT_RECORDED, COMMAND_REJECTED
from shared.contracts.streams import AUDIT
from shared.infra.runtime.db import create_pool, migrate
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.messaging import Entry, Outcome
from shared.infra.stream.outbox import Relay
from shared.infra.stream.pipeline import Dispatch, Pipeline, Route
from shared.infra.stream.retention import prune_inbox
from shared.infra.stream.unit import SqlUnit
from shared.infra.trust.guards import signed_by
from shared.infra.trust.keys import KeySet
from tests.integration.test_security_store import AUDIT_KEY, KEY, _tamper
from tests.support.barriers import inbox_outcome
from tests.support.streams import decoded, entries, read_group, xadd
from tests.support.tokens import Signer

SOURCE = "alluse/account-service"  # the emitter writes as the account service, signs as it
EVENTS = "toy.events"


class Add(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: Decimal


@dataclass
class Audited:
    """A toy service that audits every command it applies, and a security service's audit
    consumer on a chain of its own."""

    settings: Settings
    redis: Redis
    commands: StreamConsumer  # the toy service's
    relay: Relay  # the toy service's outbox, signed as the account service
    security: StreamConsumer  # the security service's audit consumer
    security_relay: Relay  # its outbox: its refusals
    chain: asyncpg.Pool
    toy: asyncpg.Pool
    schema: str  # the toy service's

    async def apply(self, *command_ids: str, source: str = "tests") -> None:
        """The toy service reads `command_ids` in one batch, applies them and publishes."""
        for cid in command_ids:
            add = new_event("toy.add", source, {"n": "1.00"}, event_id=cid)
            await xadd(self.redis, self.commands.stream, add)
        got = await read_group(self.redis, "toy", "svc-1", self.commands.stream, count=100)
        assert len(got) == len(command_ids)
        await self.commands.handle(got)
        await self.relay.publish_once()

    async def audit_entries(self) -> list[dict[str, Any]]:
        return [decoded(f) for _, f in await entries(self.redis, self.security.stream)]

    async def sent(self) -> list[dict[str, str]]:
        """The audit stream's entries as written: their fields, signature and all."""
        found = await entries(self.redis, self.security.stream)
        return [{k.decode(): v.decode() for k, v in f.items()} for _, f in found]

    async def chain_in(self) -> None:
        """The security service reads every audit entry not read yet, in one batch."""
        got = await read_group(self.redis, "security-audit", "sec-1", self.security.stream)
        await self.security.handle(got)
        await self.security_relay.publish_once()

    async def rows(self) -> list[asyncpg.Record]:
        return await self.chain.fetch(
            "SELECT seq, event_id, source, action, actor, cause FROM audit_records ORDER BY seq"
        )


@pytest.fixture
async def audited(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Audited]:
    toy_schema, sec_schema = f"toy_{uuid.uuid4().hex[:8]}", f"security_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, toy_schema, Path(__file__).parent / "toy_migrations")
    await migrate(settings.database_url, sec_schema, app.MIGRATIONS)
    toy = await create_pool(settings.database_url, toy_schema)
    chain = await create_pool(settings.database_url, sec_schema)
    keyed = {"encryption_keys": KEY, "audit_keys": AUDIT_KEY}
    app.fernet_from(SecuritySettings(**{**settings.model_dump(), **keyed}))  # the chain's keys
    streams = settings.streams

    async def add(unit: SqlUnit, cmd: Add) -> None:
        value = await unit.db.fetchval(
            "INSERT INTO counter VALUES ('c', $1) ON CONFLICT (name)"
            " DO UPDATE SET value = counter.value + $1 RETURNING value",
            cmd.n,
        )
        assert unit.cause is not None
        fields = new_event("toy.added", SOURCE, {"value": str(value)}, cause=unit.cause)
        unit.publish(streams.key(EVENTS), fields)

    emitter = Pipeline(
        toy,
        Dispatch({"toy.add": Route(Add, add)}, streams, SOURCE, audited=True),
        source=SOURCE,
        reject_stream=streams.key(EVENTS),
        streams=streams,
    )
    keys = KeySet.from_url(signer.jwks_url)
    security = Pipeline(
        chain,
        audit.on_audit_event,
        source=audit.SOURCE,
        reject_stream=streams.dlq(AUDIT),
        unit=audit.AuditUnit.within(settings.dedup_window),
        guard=signed_by(keys, None, settings.dedup_window),
        streams=streams,
    )

    def consumer(stream: str, group: str, pipeline: Pipeline) -> StreamConsumer:
        return StreamConsumer(
            redis=redis, settings=settings, stream=stream, group=group, process=pipeline.process
        )

    commands = consumer(streams.key("toy.commands"), "toy", emitter)
    security_consumer = consumer(streams.key(AUDIT), "security-audit", security)
    for c in (commands, security_consumer):
        await c.ensure_group()
    yield Audited(
        settings,
        redis,
        commands,
        Relay(toy, redis, name=toy_schema, sign=signer.services["account"].sign_many),
        security_consumer,
        Relay(chain, redis, name=sec_schema, sign=signer.services["security"].sign_many),
        chain,
        toy,
        toy_schema,
    )
    await toy.close()
    await chain.close()


def records_of(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return list(entry["data"]["records"])


async def test_a_batch_of_commands_is_one_signed_entry_and_one_chain_row_each(
    audited: Audited,
) -> None:
    ids = [f"c-{i}" for i in range(5)]
    await audited.apply(*ids)
    (entry,) = await audited.audit_entries()
    assert entry["type"] == AUDIT_BATCH and entry["source"] == SOURCE
    assert entry["signature"] and entry["signed_at"]  # signed once, for all its records
    records = records_of(entry)
    assert [r["causationid"] for r in records] == ids
    # As the toy service makes its commands itself (no guard), their actor is the platform's.
    assert all(r["action"] == "toy.add" and r["actor"] == "pipeline" for r in records)

    await audited.chain_in()
    rows = await audited.rows()
    assert [(r["seq"], r["cause"]) for r in rows] == list(enumerate(ids, start=1))
    assert [r["event_id"] for r in rows] == [r["id"] for r in records]
    assert {r["source"] for r in rows} == {SOURCE}
    assert await audit.verify(audited.chain) == (5, None)  # what verify-audit checks


async def test_a_record_that_comes_again_is_stored_once_in_whichever_batch(
    audited: Audited, signer: Signer
) -> None:
    await audited.apply("c-1", "c-2", "c-3")
    (first,) = await audited.sent()
    await audited.chain_in()
    assert len(await audited.rows()) == 3

    # The same batch again, and batches that overlap it and each other: the commands c-2 and
    # c-3 re-sent beside a new one (the service answers them again, with the same record ids),
    # then c-4 re-sent beside c-5; all read by the security service in one batch.
    await xadd(audited.redis, audited.security.stream, first)
    await audited.apply("c-2", "c-3", "c-4")
    await audited.apply("c-4", "c-5")
    again = (await audited.audit_entries())[1:]
    assert [[r["causationid"] for r in records_of(e)] for e in again] == [
        ["c-1", "c-2", "c-3"],
        ["c-2", "c-3", "c-4"],
        ["c-4", "c-5"],
    ]
    await audited.chain_in()
    rows = await audited.rows()
    assert [r["cause"] for r in rows] == ["c-1", "c-2", "c-3", "c-4", "c-5"]
    assert len({r["event_id"] for r in rows}) == 5
    assert await audit.verify(audited.chain) == (5, None)

    # The same record alone, as an `alluse.audit.recorded` (as the service keeps it in its
    # inbox for c-5), beside a record of its own: only the new one is chained.
    kept = await inbox_outcome(audited.settings.database_url, audited.schema, "tests", "c-5")
    (alone,) = [e for _, e in kept if e["type"] == AUDIT_RECORDED]
    other = {**alone, "id": "another-record", "causationid": "c-9"}
    for fields in (alone, other):
        text = {k: json.dumps(v) if k == "data" else v for k, v in fields.items()}
        await xadd(audited.redis, audited.security.stream, signer.sign("account", text))
    await audited.chain_in()
    assert [r["cause"] for r in await audited.rows()] == ["c-1", "c-2", "c-3", "c-4", "c-5", "c-9"]
    assert await audit.verify(audited.chain) == (6, None)


async def test_a_forged_or_unreadable_batch_is_refused_with_its_reason(
    audited: Audited, signer: Signer
) -> None:
    await audited.apply("c-1", "c-2")
    (real,) = await audited.sent()
    await audited.redis.delete(audited.security.stream)  # only the doctored copies remain
    await audited.security.ensure_group()
    data = json.loads(real["data"])
    forged_data = {"records": [{**r, "actor": "attacker"} for r in data["records"]]}
    plain = {k: v for k, v in real.items() if k not in ("signature", "signed_at")}
    unreadable = {"records": [{**data["records"][0], "id": "r-9"}, {"action": "x"}]}
    doctored = {
        "unsigned": {**plain, "data": json.dumps(data)},
        "altered": {**real, "data": json.dumps(forged_data)},
        "posing": signer.sign("integration", {**plain, "data": json.dumps(data)}),
        "unreadable": signer.sign(
            "account", {**plain, "id": "b-9", "data": json.dumps(unreadable)}
        ),
    }
    for fields in doctored.values():
        await xadd(audited.redis, audited.security.stream, fields)
    await audited.chain_in()

    assert await audited.rows() == []  # nothing of any of them is chained
    refused = [
        decoded(f)["data"]
        for _, f in await entries(audited.redis, audited.settings.streams.dlq(AUDIT))
        if f[b"type"] == COMMAND_REJECTED.encode()
    ]
    assert [(r["command_type"], r["code"]) for r in refused] == [
        (AUDIT_BATCH, "unauthorized"),
        (AUDIT_BATCH, "unauthorized"),
        (AUDIT_BATCH, "forbidden"),
        (AUDIT_BATCH, "invalid_audit_record"),
    ]
    assert "records.1.actor" in refused[3]["reason"]
    assert "only from the account service, not integration" in refused[2]["reason"]


WIDE = "\U0001d11e"  # 𝄞: one character, four bytes in UTF-8


async def test_commands_with_wide_sources_and_ids_leave_batches_under_the_limit_all_chained(
    audited: Audited,
) -> None:
    # The longest source and ids a client may send, in 4-byte characters, each echoed into
    # its command's audit record (details and causes): about 4.7 KB a record.
    ids = [f"{i:03}" + WIDE * 197 for i in range(100)]
    await audited.apply(*ids, source=WIDE * 500)
    sent = await audited.sent()
    assert len(sent) > 1 and {e["type"] for e in sent} == {AUDIT_BATCH}
    sizes = [sum(len(k.encode()) + len(v.encode()) for k, v in e.items()) for e in sent]
    assert max(sizes) <= LIMITS.entry_bytes  # what the security service reads, signature and all

    await audited.chain_in()
    assert [r["cause"] for r in await audited.rows()] == ids
    assert await audit.verify(audited.chain) == (100, None)
    assert await entries(audited.redis, audited.settings.streams.dlq(AUDIT)) == []


async def test_a_command_applied_again_after_the_window_is_audited_again_once(
    audited: Audited,
) -> None:
    await audited.apply("c-1", "c-2")
    await audited.chain_in()

    # A deduplication window later: both services' inboxes forget the keys, as their
    # janitors do, and the records chained then are that old (dated back, past the trigger).
    window = audited.settings.dedup_window
    for pool in (audited.toy, audited.chain):
        await pool.execute("UPDATE inbox SET applied_at = applied_at - $1::interval", window)
        await prune_inbox(pool, window)
    aged = "UPDATE audit_records SET occurred_at = occurred_at + $1::interval WHERE seq <= 2"
    await _tamper(audited.chain, aged, -window)

    # c-1 is sent again: applied again, its record (same id, made now) is chained again.
    await audited.apply("c-1", "c-3")
    await audited.chain_in()
    rows = await audited.rows()
    assert [r["cause"] for r in rows] == ["c-1", "c-2", "c-1", "c-3"]
    assert rows[2]["event_id"] == rows[0]["event_id"]

    # Within the window, c-1 and c-3 re-sent beside c-4 are answered again with the same
    # records, and the batch that carries them adds only c-4's.
    await audited.apply("c-1", "c-3", "c-4")
    await audited.chain_in()
    assert [r["cause"] for r in await audited.rows()] == ["c-1", "c-2", "c-1", "c-3", "c-4"]
    assert await audited.toy.fetchval("SELECT value FROM counter") == Decimal("5.00")  # c-1 twice
    await _tamper(audited.chain, aged, window)  # as they were chained: the chain holds
    assert await audit.verify(audited.chain) == (5, None)


async def test_a_small_batch_takes_along_the_audit_entries_behind_it_each_chained_once(
    audited: Audited,
) -> None:
    for cid in ("c-1", "c-2", "c-3"):  # three batches of the toy service: three entries
        await audited.apply(cid)
    batches: list[list[bytes]] = []

    async def process(got: Sequence[Entry]) -> Outcome:
        batches.append([entry_id for entry_id, _ in got])
        return await audited.security.process(got)

    security = AuditConsumer(
        linger=0.001,
        redis=audited.redis,
        settings=audited.settings,
        stream=audited.security.stream,
        group="security-audit",
        process=process,
    )
    consumer = audited.settings.consumer
    first = await read_group(audited.redis, "security-audit", consumer, security.stream, count=1)
    await security.handle(first)  # as the subscriber hands over what one read returned

    ids = [entry_id for entry_id, _ in await entries(audited.redis, security.stream)]
    assert batches == [ids]  # the two entries behind it went in the same batch, in order
    assert [r["cause"] for r in await audited.rows()] == ["c-1", "c-2", "c-3"]
    assert await audit.verify(audited.chain) == (3, None)
    pending = await audited.redis.xpending(security.stream, "security-audit")
    assert pending["pending"] == 0  # all three acknowledged with their batch
