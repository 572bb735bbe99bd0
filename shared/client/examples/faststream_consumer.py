"""An example FastStream application consuming the lifecycle stream with the crash-safe recipe.

    python shared/client/examples/faststream_consumer.py

The same settings and tables as examples/consumer.py (ALLUSE_DB, ALLUSE_GROUP default
faststream-example, ALLUSE_CONSUMER, ALLUSE_CLAIM_IDLE_MS, ...): each verified event once in
`received`. After a kill -9 the entries it had not acknowledged are claimed again once idle
for ALLUSE_CLAIM_IDLE_MS.
"""

import asyncio
import os
import sqlite3

from faststream import FastStream
from faststream.redis import RedisBroker

from alluse_client import LIFECYCLE, Event, KeySet, SchemaSet, SqliteStore, Streams
from alluse_client.faststream import LifecycleSubscription

SECURITY = "http://127.0.0.1:8081"
env = os.environ
broker = RedisBroker(
    env.get("ALLUSE_REDIS_URL") or env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
)
app = FastStream(broker)
store = SqliteStore(env.get("ALLUSE_DB", "lifecycle.db"))
store.db.execute(
    "CREATE TABLE IF NOT EXISTS received (entry_id TEXT, source TEXT, id TEXT, type TEXT,"
    " signer TEXT, data TEXT)"
)
lifecycle = LifecycleSubscription(
    stream=Streams(env.get("ALLUSE_STREAM_PREFIX", "")).key(LIFECYCLE),
    group=env.get("ALLUSE_GROUP", "faststream-example"),
    consumer=env.get("ALLUSE_CONSUMER", "faststream-1"),
    keys=KeySet.from_url(env.get("ALLUSE_JWKS_URL", f"{SECURITY}/.well-known/jwks.json")),
    store=store,
    schemas=SchemaSet.bundled(),
    claim_idle_ms=int(env.get("ALLUSE_CLAIM_IDLE_MS", "60000")),
    polling_ms=100,
)
delay = int(env.get("ALLUSE_HANDLER_DELAY_MS", "0")) / 1000


@lifecycle.subscribe(app)
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


if __name__ == "__main__":
    asyncio.run(app.run())
