"""Composition helpers every service's app.py uses: clients, relay, health and metrics over HTTP."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvicorn
from faststream.redis import RedisBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from shared.infra.runtime import metrics as gauges
from shared.infra.runtime import tracing
from shared.infra.runtime.db import create_pool
from shared.infra.runtime.redisclient import broker as redis_broker
from shared.infra.runtime.redisclient import connect
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.durability import Durability
from shared.infra.stream.lanes import LaneRouter
from shared.infra.stream.outbox import Relay
from shared.infra.stream.partitions import Partitioned
from shared.infra.stream.retention import Janitor, Retained
from shared.infra.stream.wire import use_hiredis_packing
from shared.infra.trust.keys import KeySet
from shared.infra.trust.revocations import Revocations
from shared.infra.trust.signing import EntrySigner

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The live resources of one service process, created at start and closed at stop."""

    settings: Settings
    redis: Redis
    pool: asyncpg.Pool
    broker: RedisBroker
    relay: Relay
    signer: EntrySigner  # this service's identity: it signs every entry the service writes
    keys: KeySet  # the published keys: access tokens' and the services'
    consumers: list[StreamConsumer] = field(default_factory=list)
    ordered: list[Partitioned] = field(default_factory=list)  # per-account order kept
    # Extra facts for /readyz's body (e.g. when each upstream was last heard); never gate it.
    details: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    # Services that verify tokens follow revocations; replayed before the first message is read.
    revocations: Revocations | None = None
    # Streams this service trims by age besides its consumers' own (e.g. the lifecycle stream).
    retained: list[Retained] = field(default_factory=list)
    found: list[Callable[[], Awaitable[list[Retained]]]] = field(default_factory=list)
    # Fan client lanes into consumer-group streams (queries, WS2, WS4): shared/infra/stream/lanes.py.
    routers: list[LaneRouter] = field(default_factory=list)

    def janitor(self) -> Janitor:
        kept = [*self.retained, *(k for c in self.consumers for k in c.retained())]
        kept += [k for o in self.ordered for k in o.retained()]
        s = self.settings
        return Janitor(
            self.redis, self.pool, kept, s.dedup_window, s.retention_interval, self.found
        )

    async def ready(self) -> dict[str, str]:
        status = {}
        try:
            await self.redis.ping()
            status["redis"] = "ok"
        except Exception as exc:
            status["redis"] = f"unreachable: {type(exc).__name__}"
        try:
            await self.pool.fetchval("SELECT 1")
            status["postgres"] = "ok"
        except Exception as exc:
            status["postgres"] = f"unreachable: {type(exc).__name__}"
        if status["redis"] == "ok":  # can published events be made durable? (else kept)
            durability = self.relay.durability
            with contextlib.suppress(Exception):
                await durability.ready(self.redis)
            status["redis_durability"] = durability.problem or "ok"
        return status


def health_routes(rt: Runtime) -> list[BaseRoute]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        status = await rt.ready()
        ok = all(v == "ok" for v in status.values())
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable", **status}
        for detail in rt.details:
            body.update(detail())
        return JSONResponse(body, 200 if ok else 503)

    async def metrics(_: Request) -> Response:
        # Read at scrape time: what Prometheus sees is as fresh as its scrape.
        ready = all(v == "ok" for v in (await rt.ready()).values())
        gauges.READY.labels(rt.relay.name).set(1 if ready else 0)
        with contextlib.suppress(Exception):  # an unreachable database shows as not ready
            await rt.relay.observe()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


class _QuietServer(uvicorn.Server):
    """The service owns SIGINT/SIGTERM (graceful stop of consumers first), not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_until_stopped(
    rt: Runtime,
    routes: Sequence[BaseRoute] = (),
    loops: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> None:
    """Every service's way to run: until SIGINT or SIGTERM, with its own periodic `loops`
    (schedulers, trimming); then stop reading, finish the batch in hand, and close."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(rt, routes):
        log.info("started", extra={"consumer": rt.settings.consumer, "port": rt.settings.http_port})
        tasks = [asyncio.create_task(run(), name=run.__name__) for run in loops]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped")


@contextlib.asynccontextmanager
async def running(
    rt: Runtime, routes: Sequence[BaseRoute] = ()
) -> AsyncIterator[uvicorn.Server | None]:
    """Start consumers, reclaimers, the relay and (if a port is set) the HTTP server."""
    readers: list[StreamConsumer | Partitioned] = [*rt.consumers, *rt.ordered]
    for reader in readers:
        reader.signer = rt.signer  # each dead letter under the service's own signature
    for consumer in rt.consumers:
        await consumer.ensure_group()
        consumer.register(rt.broker)
    followers = [await rt.revocations.start()] if rt.revocations else []
    await rt.broker.start()
    relay = asyncio.create_task(rt.relay.run(), name="relay")
    tasks = [*followers, relay]
    tasks.append(asyncio.create_task(rt.janitor().run(), name="retention"))
    ordered = [asyncio.create_task(o.run(), name=f"ordered {o.stream}") for o in rt.ordered]
    tasks += ordered
    routers = [asyncio.create_task(r.run(), name=f"lanes {r.move.name}") for r in rt.routers]
    tasks += routers
    tasks += [
        asyncio.create_task(c.reclaim_forever(), name=f"reclaim {c.stream}") for c in rt.consumers
    ]
    server = None
    if rt.settings.http_port:
        app = Starlette(routes=[*health_routes(rt), *routes])
        config = uvicorn.Config(
            app, host=rt.settings.http_host, port=rt.settings.http_port, log_config=None
        )
        server = _QuietServer(config)
        tasks.append(asyncio.create_task(server.serve(), name="http"))
    try:
        yield server
    finally:
        await rt.broker.stop()  # stop reading first; the batch in hand completes
        for o in rt.ordered:
            o.stopped = True
        for r in rt.routers:
            r.stopped = True
        if ordered:  # their batch in hand completes too, and their leases go back
            await asyncio.wait(ordered, timeout=10)
        if server is not None:
            server.should_exit = True  # let uvicorn finish its lifespan rather than cancel it
            await asyncio.wait([tasks[-1]], timeout=5)
        rt.relay.stopped = True  # its rounds in flight are confirmed and its lock given back
        rt.relay.wake.set()
        await asyncio.wait([relay], timeout=5)
        with contextlib.suppress(Exception):  # what the last batch committed goes out now
            await rt.relay.publish_once()
        for consumer in rt.consumers:
            consumer.stopped = True
            if consumer.reader is not None:
                tasks.append(consumer.reader)
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=5)
        for task in stuck:  # never hang a shutdown on a loop that missed its cancellation
            log.warning("task %s did not stop in time", task.get_name())
        await rt.pool.close()
        await rt.redis.aclose()


def key_set(settings: Settings) -> KeySet:
    return KeySet.from_url(
        settings.jwks_url,
        refresh=settings.jwks_refresh_seconds,
        grace=settings.jwks_grace_seconds,
    )


async def open_runtime(
    settings: Settings, *, schema: str, service: str | None = None, keys: KeySet | None = None
) -> Runtime:
    """`service` names the identity (default: the schema); `keys` default to the JWKS URL's."""
    tracing.setup(service or schema)  # OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set
    if settings.lanes == "open":
        log.warning(
            "ALLUSE_LANES=open: entries written straight to the shared streams are taken too;"
            " only for a Redis without the ACL file and a single trusted writer (docs/lanes.md)"
        )
    signer = EntrySigner.from_settings(settings, service or schema)  # first: no key, no start
    use_hiredis_packing()
    redis = connect(settings.redis_url)
    pool = await create_pool(settings.database_url, schema)
    # FastStream's per-message logging is noise at our rates; our metrics and logs say more.
    # No dependency injection: each consumer's handler takes its batch's entries as decoded
    # (consumer.py); FastDepends would resolve its arguments per batch in a worker thread.
    broker = redis_broker(
        settings.redis_url,
        logger=logging.getLogger("alluse.broker"),
        log_level=logging.DEBUG,
        apply_types=False,
    )
    logging.getLogger("alluse.broker").setLevel(logging.WARNING)
    durability = Durability(settings.redis_durability, settings.redis_durability_timeout_ms)
    relay = Relay(pool, redis, name=schema, sign=signer.sign_many, durability=durability)
    return Runtime(settings, redis, pool, broker, relay, signer, keys or key_set(settings))
