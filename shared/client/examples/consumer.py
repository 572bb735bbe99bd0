"""An example consumer of the lifecycle stream: every event once, verified and valid, in SQLite.

    python shared/client/examples/consumer.py

Each verified event is written to the table `received` of ALLUSE_DB in the same transaction as
its (source, id) de-duplication key, so a crash at any point leaves both or neither; entries
that fail verification land in `refused`. Kill it (even with kill -9) and start it again with
the same ALLUSE_CONSUMER: it carries on where it stopped; another member takes over what a
member that never comes back left pending, after ALLUSE_CLAIM_IDLE_MS.

Settings (environment): ALLUSE_REDIS_URL (or REDIS_URL), ALLUSE_STREAM_PREFIX, ALLUSE_JWKS_URL,
ALLUSE_GROUP (default example), ALLUSE_CONSUMER (default consumer-1), ALLUSE_DB (default lifecycle.db),
ALLUSE_CLAIM_IDLE_MS (default 60000), ALLUSE_HANDLER_DELAY_MS (default 0: a slow handler).
"""

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import Mapping

from redis.asyncio import Redis

from alluse_client import LIFECYCLE, Consumer, Event, KeySet, SchemaSet, SqliteStore, Streams
from alluse_client.consumer import Invalid

SECURITY = "http://127.0.0.1:8081"
TABLES = """
CREATE TABLE IF NOT EXISTS received (entry_id TEXT, source TEXT, id TEXT, type TEXT,
                                     signer TEXT, data TEXT);
CREATE TABLE IF NOT EXISTS refused (entry_id TEXT, type TEXT, why TEXT);
"""


async def main() -> None:
    env = os.environ
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = SqliteStore(env.get("ALLUSE_DB", "lifecycle.db"))
    store.db.executescript(TABLES)
    delay = int(env.get("ALLUSE_HANDLER_DELAY_MS", "0")) / 1000

    async def handle(event: Event) -> None:
        await asyncio.sleep(delay)

        def write(db: sqlite3.Connection) -> None:
            row = (
                event.entry_id,
                event.source,
                event.id,
                event.type,
                event.signer,
                event.fields["data"],
            )
            db.execute("INSERT INTO received VALUES (?, ?, ?, ?, ?, ?)", row)

        await store.apply(event.source, event.id, write)

    async def refused(entry_id: str, fields: Mapping[str, str], why: Invalid) -> None:
        logging.warning("refused %s: %s", entry_id, why)
        store.db.execute(
            "INSERT INTO refused VALUES (?, ?, ?)", (entry_id, fields.get("type"), str(why))
        )

    redis = Redis.from_url(
        env.get("ALLUSE_REDIS_URL") or env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    consumer = Consumer(
        redis,
        Streams(env.get("ALLUSE_STREAM_PREFIX", "")).key(LIFECYCLE),
        group=env.get("ALLUSE_GROUP", "example"),
        name=env.get("ALLUSE_CONSUMER", "consumer-1"),
        keys=KeySet.from_url(env.get("ALLUSE_JWKS_URL", f"{SECURITY}/.well-known/jwks.json")),
        store=store,
        schemas=SchemaSet.bundled(),
        on_invalid=refused,
        claim_idle_ms=int(env.get("ALLUSE_CLAIM_IDLE_MS", "60000")),
        claim_every=0.2,
    )
    logging.info("consuming %s as %s/%s", consumer.stream, consumer.group, consumer.name)
    print(json.dumps({"consuming": consumer.stream}), flush=True)
    await consumer.run(handle)


if __name__ == "__main__":
    asyncio.run(main())
