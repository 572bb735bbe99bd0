"""Composition root of the account service: settings -> clients -> consumers -> run."""

from functools import partial
from pathlib import Path

from services.account.handlers.events import SOURCE
from services.account.handlers.reinvestment import Clock, ReinvestmentScheduler
from services.account.handlers.router import COMMANDS, EFFECTS, query_answerer
from services.account.handlers.scopes import scoped
from services.account.state.uow import AccountUnit
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    ACCOUNT_QUERIES,
    REVOCATIONS,
)
from shared.contracts.trust import ACCOUNT, INTEGRATION
from shared.infra.runtime import logs
from shared.infra.runtime.db import migrate
from shared.infra.runtime.service import Runtime, open_runtime, serve_until_stopped
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.lanes import LaneOutcomes, Registry, lane_router
from shared.infra.stream.limits import Buckets, limited
from shared.infra.stream.messaging import Guard
from shared.infra.stream.partitions import Partitioned
from shared.infra.stream.pipeline import Dispatch, Pipeline, Route
from shared.infra.stream.replies import Replier, query_cost
from shared.infra.stream.retention import Retained
from shared.infra.trust.auth import Verifier
from shared.infra.trust.guards import bearer, redrivable, signed_by
from shared.infra.trust.revocations import Revocations
from shared.infra.trust.scopes import carrying_scope

SCHEMA = "account"
GROUP = "account-service"
MIGRATIONS = Path(__file__).parent / "migrations"


async def build(settings: Settings) -> Runtime:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    rt = await open_runtime(settings, schema=SCHEMA, service=ACCOUNT)
    s = settings.streams
    rt.revocations = Revocations(rt.redis, s.key(REVOCATIONS), keys=rt.keys)
    verifier = Verifier(
        rt.keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        is_revoked=rt.revocations.is_revoked,
    )
    # Each stream also takes back its own signed dead letters, re-driven by an operator.
    letters = partial(
        redrivable, keys=rt.keys, verifier=verifier, service=ACCOUNT, window=settings.dedup_window
    )
    # Each client's commands pass its own bucket (docs/scopes.md, "Limits").
    buckets = Buckets(settings.rate_commands_per_second, settings.rate_commands_burst)
    registry = Registry(rt.redis, s)
    laned = bearer(
        verifier,
        backdate=settings.backdate_limit,
        lanes=settings.lanes,
        stream=s.key(ACCOUNT_COMMANDS),
        registry=registry,
    )
    clients = scoped(limited(laned, buckets), rt.pool)
    pipeline = _pipeline(
        rt,
        COMMANDS,
        letters(clients, stream=s.key(ACCOUNT_COMMANDS)),
        outcomes=LaneOutcomes(s, ACCOUNT_COMMANDS),
    )
    integration = signed_by(rt.keys, INTEGRATION, settings.dedup_window)
    # An effect carries the engine's verified scope, checked where accounts are known.
    engines = scoped(carrying_scope(integration), rt.pool)
    effects = _pipeline(
        rt,
        EFFECTS,
        letters(engines, stream=s.key(ACCOUNT_EFFECTS)),
        outcomes=LaneOutcomes(s, ACCOUNT_EFFECTS, carried=True),
    )
    replier = Replier(
        rt.pool,
        rt.redis,
        query_answerer(s, SOURCE),
        SOURCE,
        s,
        settings.limits,
        verifier,
        rt.signer.sign,
        buckets=Buckets(settings.rate_queries_per_second, settings.rate_queries_burst),
        sign_many=rt.signer.sign_many,
        replies_per_client=settings.replies_per_client,
        reply_ttl=settings.reply_ttl_seconds,
        lanes=settings.lanes,
        registry=registry,
    )
    # The platform's own input streams: each entry is deleted once its outcome is committed.
    # Commands and effects are applied in order per account, however many replicas run.
    rt.ordered = [
        Partitioned(
            redis=rt.redis,
            settings=settings,
            stream=s.key(name),
            process=p.process,
            after=rt.relay.wake.set,
            laned=name == ACCOUNT_COMMANDS,  # clients' lanes fanned in; effects have none
        )
        for name, p in ((ACCOUNT_COMMANDS, pipeline), (ACCOUNT_EFFECTS, effects))
    ]
    queries = StreamConsumer(
        redis=rt.redis,
        settings=settings,
        stream=s.key(ACCOUNT_QUERIES),
        group=GROUP,
        process=replier.process,
        delete_applied=True,
    )
    rt.consumers = [queries]
    # A machine client's queries beyond its rate wait in its own lane (docs/scopes.md).
    rate = Buckets(settings.rate_queries_per_second, settings.rate_queries_burst)
    rt.routers = [
        lane_router(rt.redis, settings, ACCOUNT_QUERIES, queries, buckets=rate, cost=query_cost)
    ]
    rt.found.append(partial(outcome_streams, rt))
    return rt


async def outcome_streams(rt: Runtime) -> list[Retained]:
    """Every lane's outcome stream, kept for settings.outcome_retention."""
    s = rt.settings.streams
    names = await Registry(rt.redis, s).names()
    return [Retained(s.outcomes(lane), rt.settings.outcome_retention) for lane in names]


def reinvestment_scheduler(rt: Runtime, *, clock: Clock | None = None) -> ReinvestmentScheduler:
    """Quarterly reinvestment, sent through the exactly-once pipeline like any command."""
    table = {"alluse.account.reinvest": COMMANDS["alluse.account.reinvest"]}
    # Made here: nobody to prove. Its key (`reinvest:<quarter>`) lives under the writer
    # platform:reinvestment-scheduler, which no entry on any stream can be bound to.
    pipeline = _pipeline(rt, table, None, platform="reinvestment-scheduler")
    return ReinvestmentScheduler(pipeline, rt.pool, clock=clock, after=rt.relay.wake.set)


def _pipeline(
    rt: Runtime,
    table: dict[str, Route],
    guard: Guard | None,
    *,
    platform: str = "account",
    outcomes: LaneOutcomes | None = None,
) -> Pipeline:
    """Exactly-once processing of the service's messages, one unit of work per batch.

    Commands carry a token, effects the integration service's signature (`guard`); the
    scheduler's own commands are made here.
    """
    streams = rt.settings.streams
    return Pipeline(
        rt.pool,
        Dispatch(table, streams, SOURCE, audited=True),
        source=SOURCE,
        reject_stream=streams.key(ACCOUNT_EVENTS),
        opens=partial(AccountUnit.opened, streams=streams),
        limits=rt.settings.limits,
        guard=guard,
        streams=streams,
        platform=platform,
        outcomes=outcomes,
    )


async def main() -> None:
    settings = Settings()
    logs.setup(settings.log_level, "account")
    rt = await build(settings)
    await serve_until_stopped(rt, loops=[reinvestment_scheduler(rt).run])
