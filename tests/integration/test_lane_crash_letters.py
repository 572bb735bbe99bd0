"""A lane entry that crashes every consumer it is delivered to, through the real account
service: once the group has delivered it `max_deliveries` times it is dead-lettered, and its
lane hears it (refused `dead_lettered`, signed by the account service), also when the
process that dead-letters it is not the one whose consumers died on it (after a restart)."""

import uuid
from typing import Any

from redis.asyncio import Redis

from services.account.app import GROUP, build
from shared.contracts.answers import ENTRY_REFUSED
from shared.contracts.streams import ACCOUNT_QUERIES
from shared.contracts.trust import ACCOUNT
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of, text_fields
from tests.support.streams import ce, decoded, entries, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

LANE = "engine-a"


async def test_an_entry_that_crashed_its_consumers_before_a_restart_is_refused_on_its_lane(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    s = settings.model_copy(
        update={"lanes": "required", "max_deliveries": 3, "reclaim_idle_ms": 200}
    )
    streams = s.streams
    await redis.sadd(streams.lanes, LANE)
    query = ce(
        "alluse.query.accounts",
        {},
        authorization=signer.bearer("trading_engine", sub=LANE),
        replyto=streams.replies(LANE) + uuid.uuid4().hex,
    )
    shared = streams.key(ACCOUNT_QUERIES)
    await xadd(redis, shared, {**query, "lane": LANE})  # as its router moved it
    # Delivered three times, to consumers of the group that died on it each time (a crash
    # leaves no trace but the group's own count): the process below has never seen it.
    await redis.xgroup_create(shared, GROUP, id="0", mkstream=True)
    got: Any = await redis.xreadgroup(GROUP, "died", {shared: ">"}, count=1)
    entry_id: bytes = got[0][1][0][0]
    await redis.xclaim(shared, GROUP, "died-again", 0, [entry_id], idle=60_000, retrycount=3)

    async with running(await build(s)):

        async def outcomes() -> list[tuple[bytes, dict[bytes, bytes]]]:
            return await entries(redis, streams.outcomes(LANE))

        ((_, raw),) = await until(outcomes, what=f"the outcome on {LANE}'s lane")
        letters = await entries(redis, f"{shared}.dlq")
        pending = (await redis.xpending(shared, GROUP))["pending"]
    outcome = decoded(raw)
    assert outcome["type"] == ENTRY_REFUSED
    assert outcome["data"]["code"] == "dead_lettered"
    assert outcome["data"]["reason"].startswith("failed 3 deliveries")
    ref = {k: outcome["data"][k] for k in ("stream", "type", "source", "id")}
    assert ref == {
        "stream": ACCOUNT_QUERIES,
        "type": query["type"],
        "source": query["source"],
        "id": query["id"],
    }
    assert await signer_of(KeySet.from_url(signer.jwks_url), text_fields(raw)) == ACCOUNT
    assert [f[b"id"].decode() for _, f in letters] == [query["id"]]
    assert pending == 0
