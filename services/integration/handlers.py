"""Thin handlers: upstream entry -> validated model -> store / effect / week.changed; account
events -> the public lifecycle stream. Each runs in the pipeline's transaction, in its own
savepoint; the stages before them (type, payload model) are the shared pipeline's, from the
dispatch tables here (`FromUpstream.routes()`, `republished()`)."""

from datetime import date

from pydantic import BaseModel, ConfigDict

from services.integration import store
from services.integration.unit import UpstreamUnit
from shared.contracts.envelope import CloudEvent, dumps, new_event
from shared.contracts.lifecycle import LIFECYCLE_TYPES, WeekChanged, dataschema
from shared.contracts.messages import WEEK_CHANGED
from shared.contracts.streams import (
    ACCOUNT_EFFECTS,
    ACCOUNT_LIFECYCLE,
    WS2_EVENTS,
    WS4_EVENTS,
    Streams,
)
from shared.contracts.trust import ORIGIN_TYPE, WRITER
from shared.contracts.upstream import (
    EFFECT_TYPES,
    AccountValuation,
    MarketQuote,
    OptionAssigned,
    OptionExpired,
    ProtocolValidated,
    TradeFilled,
    Upstream,
    WeekClassified,
)
from shared.infra.stream.lanes import Origin
from shared.infra.stream.pipeline import Route
from shared.infra.stream.unit import SqlUnit
from shared.infra.trust.scopes import SCOPE_FIELD, effect_scope

SOURCE = "alluse/integration"
# Upstream types the account service applies and answers on the writer's lane: their effect
# carries the lane and the upstream entry's stream and type (shared/infra/stream/lanes.py Origin).
DELEGATED = frozenset({"ws4.trade.filled", "ws4.option.assigned", "ws4.option.expired"})


class FromUpstream:
    """Handlers of the upstream streams, shape `(unit, payload)`; the message is `unit.cause`."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams

    def routes(self) -> dict[str, dict[str, Route]]:
        """The dispatch table of each upstream stream: which types it carries, and their handler."""
        return {
            WS2_EVENTS: {
                "ws2.week.classified": Route(WeekClassified, self.week_classified),
                "ws2.protocol.validated": Route(ProtocolValidated, self.forward),
            },
            WS4_EVENTS: {
                "ws4.trade.filled": Route(TradeFilled, self.forward),
                "ws4.option.assigned": Route(OptionAssigned, self.forward),
                "ws4.option.expired": Route(OptionExpired, self.forward),
                "ws4.account.valuation": Route(AccountValuation, self.forward),
                "ws4.market.quote": Route(MarketQuote, self.quote),
            },
        }

    async def forward(self, unit: UpstreamUnit, model: Upstream) -> None:
        """The same entry, re-typed for the account service (`effect`)."""
        ev = _cause(unit)
        week = await unit.week_type_on(business_day(ev, model)) if tagged(model) else None
        unit.publish(self.streams.key(ACCOUNT_EFFECTS), effect(ev, model, week))

    async def week_classified(self, unit: UpstreamUnit, week: WeekClassified) -> None:
        ev = _cause(unit)
        current = await store.latest_week(unit.db)
        await unit.record_week(
            week_start=week.week_start,
            week_type=week.week_type,
            confidence=week.confidence,
            source=ev.source,
            event_id=ev.id,
        )
        if current is not None and week.week_start < current["week_start"]:
            return  # a late classification of a past week: recorded, not announced
        data = WeekChanged(
            week_start=week.week_start.isoformat(),
            week_type=week.week_type,
            confidence=week.confidence,
            previous_week_type=current["week_type"] if current else None,
        )
        fields = new_event(
            WEEK_CHANGED,
            SOURCE,
            data.model_dump(mode="json"),
            cause=ev,
            dataschema=dataschema(WEEK_CHANGED),
        )
        unit.publish(self.streams.key(ACCOUNT_LIFECYCLE), fields)

    async def quote(self, unit: UpstreamUnit, q: MarketQuote) -> None:
        rest = q.model_dump(exclude={"symbol", "as_of"})
        source = _cause(unit).source
        await store.record_quote(unit.db, symbol=q.symbol, as_of=q.as_of, source=source, **rest)
        await self.forward(unit, q)  # recorded here, and it marks positions there


def effect(ev: CloudEvent, model: Upstream, week_type: str | None) -> dict[str, str]:
    """The effect of upstream entry `ev` (guarded, its payload `model`): same source and id, so
    the account service's inbox dedupes on the contract's idempotency key; causation and
    correlation carried as they are. `week_type`: that of its business day (`tagged`). A pure
    function of the entry and the week type, whichever way it is forwarded (here in the
    pipeline, or services/integration/forwarder.py): forwarded again, it is the same effect
    (the week type, looked up anew, is left out of its fingerprint: envelope.py)."""
    data = model.model_dump(mode="json")
    if tagged(model):
        data["week_type"] = week_type
    carried = {k: v for k in ("causationid", "correlationid") if (v := getattr(ev, k))}
    # The engine's verified writer and the type it sent, under this service's signature:
    # the account service keys the effect (and its fill id) by that engine, and names the
    # sent type when it refuses it.
    carried |= {WRITER: ev.writer, ORIGIN_TYPE: ev.type}
    if isinstance(ev.origin, Origin) and ev.type in DELEGATED:
        carried |= ev.origin.carried()
    fields = new_event(
        EFFECT_TYPES[ev.type],
        ev.source,
        data,
        subject=getattr(model, "account_id", None),
        event_id=ev.id,
        time=ev.time.isoformat(),
        **carried,
    )
    # The engine's verified scope: the account service knows the account's portfolio.
    fields[SCOPE_FIELD] = effect_scope(ev)
    return fields


def tagged(model: Upstream) -> bool:
    """Whether the effect carries the week type looked up here: all but a WS2 verdict that
    names its own."""
    return not (isinstance(model, ProtocolValidated) and model.week_type)


def business_day(ev: CloudEvent, model: Upstream) -> date:
    """The day whose week type tags the effect: when the fill or valuation happened."""
    if isinstance(model, TradeFilled):
        return model.filled_at.date()
    if isinstance(model, AccountValuation | MarketQuote):
        return model.as_of.date()
    return ev.time.date()


def _cause(unit: SqlUnit) -> CloudEvent:
    assert unit.cause is not None  # set for every message the pipeline hands over
    return unit.cause


class AsItIs(BaseModel):
    """An account event's data, republished as it is: read, not interpreted."""

    model_config = ConfigDict(extra="allow")


def republished(streams: Streams) -> dict[str, Route]:
    """The dispatch table of the account service's events: every type of the lifecycle contract
    goes, as it is, to the public stream: same id, source, type, subject, causation and
    correlation, plus the versioned `dataschema` of its type. Another type is refused."""
    lifecycle = streams.key(ACCOUNT_LIFECYCLE)

    async def republish(unit: SqlUnit, _: AsItIs) -> None:
        ev = _cause(unit)
        fields = {
            "specversion": "1.0",
            "id": ev.id,
            "source": ev.source,
            "type": ev.type,
            "time": ev.time.isoformat(),
            "datacontenttype": "application/json",
        }
        optional = {
            "subject": ev.subject,
            "causationid": ev.causationid,
            "correlationid": ev.correlationid,
            "dataschema": dataschema(ev.type),
        }
        fields |= {k: v for k, v in optional.items() if v}
        fields["data"] = dumps(ev.data)
        unit.publish(lifecycle, fields)

    return {event_type: Route(AsItIs, republish) for event_type in LIFECYCLE_TYPES}
