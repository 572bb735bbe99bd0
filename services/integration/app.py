"""Composition root of the integration service: pipelines, consumers and health from settings."""

import logging
from datetime import timedelta
from pathlib import Path

from services.integration import handlers
from services.integration.forwarder import Forwarder
from services.integration.health import Upstreams
from services.integration.republisher import Republisher
from services.integration.unit import UpstreamUnit
from shared.contracts.streams import (
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    REVOCATIONS,
)
from shared.contracts.trust import ACCOUNT, INTEGRATION
from shared.infra.runtime import logs
from shared.infra.runtime.db import migrate
from shared.infra.runtime.service import Runtime, open_runtime, serve_until_stopped
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.lanes import LaneOutcomes, Registry, lane_router
from shared.infra.stream.messaging import Guard, Handler
from shared.infra.stream.partitions import Placement
from shared.infra.stream.pipeline import Dispatch, Pipeline
from shared.infra.stream.retention import Retained
from shared.infra.trust.auth import Verifier
from shared.infra.trust.guards import bearer, redrivable, signed_by
from shared.infra.trust.revocations import Revocations
from shared.infra.trust.scopes import whole_platform

SCHEMA = "integration"
GROUP = "integration"
MIGRATIONS = Path(__file__).parent / "migrations"
PLATFORM_WIDE = frozenset({"ws2.week.classified", "ws4.market.quote"})
log = logging.getLogger(__name__)


async def build(settings: Settings, *, schema: str = SCHEMA) -> Runtime:
    await migrate(settings.database_url, schema, MIGRATIONS)
    rt = await open_runtime(settings, schema=schema, service=INTEGRATION)
    streams, seen = settings.streams, Upstreams()
    rt.revocations = Revocations(rt.redis, streams.key(REVOCATIONS), keys=rt.keys)
    verifier = Verifier(
        rt.keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        is_revoked=rt.revocations.is_revoked,
    )
    # Upstream entries: a trading_engine's (or an admin's) token, bound to its lane; a week's
    # classification and a quote reach every portfolio, so they need the whole platform's scope
    # (docs/scopes.md).
    tables = handlers.FromUpstream(streams).routes()
    lanes = Registry(rt.redis, streams)
    # Upstream streams belong to their producers, and the account service's events are read
    # by operators' tools for outcomes too: all trimmed by age, never deleted on republishing.
    upstream = settings.upstream_retention
    routes: list[tuple[str, Handler, Guard, timedelta | None]] = [
        (
            stream,
            Dispatch(table, streams, handlers.SOURCE, subject_is_account=False, heard=seen.heard),
            whole_platform(
                bearer(verifier, lanes=settings.lanes, stream=streams.key(stream), registry=lanes),
                PLATFORM_WIDE,
            ),
            upstream,
        )
        for stream, table in tables.items()
    ]
    events = settings.account_events_retention
    own = signed_by(rt.keys, ACCOUNT, settings.dedup_window)
    republish = Dispatch(
        handlers.republished(streams), streams, handlers.SOURCE, subject_is_account=False
    )
    routes.append((ACCOUNT_EVENTS, republish, own, events))
    for stream, handler, guard, retention in routes:
        # Each stream also takes back its own signed dead letters, re-driven by an operator.
        letters = redrivable(
            guard,
            keys=rt.keys,
            verifier=verifier,
            service=INTEGRATION,
            stream=streams.key(stream),
            window=settings.dedup_window,
        )
        # Fills, assignments and expirations are answered by the account service, which
        # applies them (their effect carries the lane); the rest are decided here.
        outcomes = (
            LaneOutcomes(streams, stream, delegated=handlers.DELEGATED)
            if stream in tables
            else None
        )
        pipeline = Pipeline(
            rt.pool,
            handler,
            source=handlers.SOURCE,
            reject_stream=streams.key(ACCOUNT_LIFECYCLE),
            limits=settings.limits,
            guard=letters,
            streams=streams,
            unit=UpstreamUnit.open,
            outcomes=outcomes,
        )
        process = pipeline.process
        forwarded = {t: r for t, r in tables.get(stream, {}).items() if t in handlers.DELEGATED}
        if forwarded:  # straight to the account service; the rest as above
            # Every entry with a `dlq_` field goes to the pipeline, which checks re-driven
            # letters: the forwarder takes the guard beneath that check.
            process = Forwarder(
                redis=rt.redis,
                pool=rt.pool,
                guard=guard,
                routes=forwarded,
                stream=stream,
                effects=Placement.of(streams, streams.key(ACCOUNT_EFFECTS), settings.partitions),
                sign=rt.signer.sign_many,
                durability=rt.relay.durability,
                source=handlers.SOURCE,
                otherwise=pipeline.process,
                heard=seen.heard,
                limits=settings.limits,
            ).process
        if stream == ACCOUNT_EVENTS:  # straight to the lifecycle stream; the rest as above
            process = Republisher(
                redis=rt.redis,
                keys=rt.keys,
                window=settings.dedup_window,
                sign=rt.signer.sign_many,
                durability=rt.relay.durability,
                lifecycle=streams.key(ACCOUNT_LIFECYCLE),
                source=handlers.SOURCE,
                otherwise=pipeline.process,
                limits=settings.limits,
            ).process
        consumer = StreamConsumer(
            redis=rt.redis,
            settings=settings,
            stream=streams.key(stream),
            group=GROUP,
            process=process,
            after=rt.relay.wake.set,  # publish what was just committed without waiting
            delete_applied=retention is None,
            retention=retention,
        )
        rt.consumers.append(consumer)
        if stream in tables:
            rt.routers.append(lane_router(rt.redis, settings, stream, consumer))
    rt.retained.append(Retained(streams.key(ACCOUNT_LIFECYCLE), settings.lifecycle_retention))
    rt.details.append(seen.report)
    return rt


async def main() -> None:
    settings = Settings()
    logs.setup(settings.log_level, "integration")
    await serve_until_stopped(await build(settings))
