"""The integration service republishes the account service's events straight to the lifecycle
stream: written and acknowledged within the batch's own handling (no inbox or outbox row, no
relay round), the entry as the account service wrote it, re-signed by the integration service.
Whatever the pipeline would refuse still goes through it; while Redis cannot confirm
durability, every event waits in the outbox as before."""

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.integration.app import build
from shared.contracts.envelope import new_event
from shared.contracts.lifecycle import dataschema
from shared.contracts.streams import ACCOUNT_EVENTS, ACCOUNT_LIFECYCLE
from shared.infra.runtime.service import Runtime
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.trust.signing import signer_of, text_fields
from tests.conftest import as_service
from tests.support.streams import entries, read_group
from tests.support.tokens import Signer


async def service(settings: Settings, signer: Signer, **update: str) -> Runtime:
    own = as_service(settings, signer, "integration").model_copy(update=update)
    rt = await build(own, schema=f"integration_{uuid.uuid4().hex[:8]}")
    for consumer in rt.consumers:
        await consumer.ensure_group()
    return rt


@pytest.fixture
async def svc(settings: Settings, signer: Signer) -> AsyncIterator[Runtime]:
    rt = await service(settings, signer)
    yield rt
    await rt.pool.close()
    await rt.redis.aclose()


def events_consumer(rt: Runtime) -> StreamConsumer:
    (found,) = [c for c in rt.consumers if c.stream.endswith(ACCOUNT_EVENTS)]
    return found


async def handle_new(rt: Runtime) -> None:
    """One read of the account events as the service reads them, handled: no relay round."""
    consumer = events_consumer(rt)
    await consumer.handle(
        await read_group(rt.redis, consumer.group, "svc-1", consumer.stream, count=50)
    )


def balance_changed(account: str, n: int) -> dict[str, str]:
    data = {
        "account_id": account,
        "balance": f"{n}.10",
        "available": "0.00",
        "cash_buffer": "0.00",
        "transaction": {"id": str(n), "type": "deposit", "amount": "1.10"},
    }
    return new_event(
        "alluse.account.balance_changed",
        "alluse/account-service",
        data,
        subject=account,
        causationid=f"cmd-{n}",
        correlationid="corr",
    )


async def test_honest_events_go_straight_to_lifecycle_and_forged_ones_are_refused(
    svc: Runtime, redis: Redis, settings: Settings, signer: Signer
) -> None:
    s, account = settings.streams, str(uuid.uuid4())
    honest = [signer.sign("account", balance_changed(account, n)) for n in range(3)]
    forged = signer.sign("integration", balance_changed(account, 99))  # not the owner's key
    for fields in [honest[0], forged, *honest[1:]]:
        await redis.xadd(s.key(ACCOUNT_EVENTS), fields)  # type: ignore[arg-type]
    await handle_new(svc)  # no relay round: what is on the lifecycle stream was written here

    lifecycle = [text_fields(f) for _, f in await entries(redis, s.key(ACCOUNT_LIFECYCLE))]
    assert [e["id"] for e in lifecycle] == [e["id"] for e in honest]
    for out, original in zip(lifecycle, honest, strict=True):
        assert out["data"] == original["data"]  # the account service's bytes, not re-encoded
        same = ("source", "type", "time", "subject", "causationid", "correlationid")
        assert {k: out[k] for k in same} == {k: original[k] for k in same}
        assert out["dataschema"] == dataschema("alluse.account.balance_changed")
        assert await signer_of(svc.keys, out) == "integration"
    consumer = events_consumer(svc)
    pending = await redis.xpending(consumer.stream, consumer.group)
    assert pending["pending"] == 0  # every entry acknowledged, the forged one with its refusal
    known = await svc.pool.fetchval(
        "SELECT count(*) FROM inbox WHERE id = ANY($1::text[])", [e["id"] for e in honest]
    )
    assert known == 0  # republishing keeps no inbox row

    await svc.relay.publish_once()  # the refusal went the pipeline's way: through the outbox
    after = [text_fields(f) for _, f in await entries(redis, s.key(ACCOUNT_LIFECYCLE))]
    refusals = [e for e in after if e["type"] == "alluse.command.rejected"]
    assert [json.loads(e["data"])["command_id"] for e in refusals] == [forged["id"]]
    assert forged["id"] not in {e["id"] for e in after}


async def test_events_wait_in_the_outbox_while_redis_cannot_confirm_durability(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    aof = await redis.config_get("appendonly")
    if aof.get("appendonly") != "no":
        pytest.skip("needs the test Redis with AOF off")
    rt = await service(settings, signer, redis_durability="required")
    try:
        s, account = settings.streams, str(uuid.uuid4())
        event = signer.sign("account", balance_changed(account, 1))
        await redis.xadd(s.key(ACCOUNT_EVENTS), event)  # type: ignore[arg-type]
        await handle_new(rt)
        assert await redis.xlen(s.key(ACCOUNT_LIFECYCLE)) == 0
        kept = await rt.pool.fetch("SELECT fields FROM outbox")
        assert [json.loads(r["fields"])["id"] for r in kept] == [event["id"]]
    finally:
        await rt.pool.close()
        await rt.redis.aclose()
