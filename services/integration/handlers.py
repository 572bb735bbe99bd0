"""Thin handlers: upstream entry -> validated model -> store / effect / week.changed; account
events -> the public lifecycle stream. Each runs inside the Pipeline's transaction."""

from datetime import date

from pydantic import ValidationError

from services.integration import store
from services.integration.health import Upstreams
from shared.contracts.envelope import CloudEvent, dumps, explain, new_event
from shared.contracts.lifecycle import LIFECYCLE_TYPES, WeekChanged, dataschema
from shared.contracts.streams import (
    ACCOUNT_EFFECTS,
    ACCOUNT_LIFECYCLE,
    WS2_EVENTS,
    WS4_EVENTS,
    Streams,
)
from shared.contracts.upstream import (
    EFFECT_TYPES,
    UPSTREAM_TYPES,
    AccountValuation,
    MarketQuote,
    ProtocolValidated,
    TradeFilled,
    Upstream,
    WeekClassified,
)
from shared.infra.messaging import Emit, Handler, Rejected
from shared.infra.unit import Sql, SqlUnit

SOURCE = "alluse/integration"
WEEK_CHANGED = "alluse.week.changed"
STREAM_TYPES = {
    WS2_EVENTS: ("ws2.week.classified", "ws2.protocol.validated"),
    WS4_EVENTS: (
        "ws4.trade.filled", "ws4.option.assigned", "ws4.account.valuation", "ws4.market.quote",
    ),
}  # fmt: skip


def parse(ev: CloudEvent, allowed: tuple[str, ...]) -> Upstream:
    if ev.type not in allowed:
        raise Rejected("unknown_type", f"'{ev.type}' is not one of {', '.join(allowed)}")
    try:
        model = UPSTREAM_TYPES[ev.type].model_validate(ev.data)
    except ValidationError as exc:
        raise Rejected("invalid_payload", explain(exc), subject=ev.subject) from None
    except Exception as exc:  # a validator's own error (e.g. decimal.Overflow) is this entry's
        reason = f"unreadable payload ({type(exc).__name__})"
        raise Rejected("invalid_payload", reason, subject=ev.subject) from None
    account = getattr(model, "account_id", None)
    if ev.subject and account and ev.subject != account:
        raise Rejected("invalid_payload", "subject and data.account_id name different accounts")
    return model


def business_day(ev: CloudEvent, model: Upstream) -> date:
    """The day whose week type tags the effect: when the fill or valuation happened."""
    if isinstance(model, TradeFilled):
        return model.filled_at.date()
    if isinstance(model, AccountValuation):
        return model.as_of.date()
    return ev.time.date()


async def effect(conn: Sql, ev: CloudEvent, model: Upstream, streams: Streams) -> Emit:
    """The same entry, re-typed for the account service: same source and id, so its inbox
    dedupes on the contract's idempotency key; causation and correlation carried as they are."""
    data = model.model_dump(mode="json")
    if not (isinstance(model, ProtocolValidated) and model.week_type):
        data["week_type"] = await store.week_type_on(conn, day=business_day(ev, model))
    carried = {k: v for k in ("causationid", "correlationid") if (v := getattr(ev, k))}
    fields = new_event(
        EFFECT_TYPES[ev.type],
        ev.source,
        data,
        subject=getattr(model, "account_id", None),
        event_id=ev.id,
        time=ev.time.isoformat(),
        **carried,
    )
    return (streams.key(ACCOUNT_EFFECTS), fields)


async def week_classified(
    conn: Sql, ev: CloudEvent, week: WeekClassified, streams: Streams
) -> list[Emit]:
    current = await store.latest_week(conn)
    await store.record_week(
        conn,
        week_start=week.week_start,
        week_type=week.week_type,
        confidence=week.confidence,
        source=ev.source,
        event_id=ev.id,
    )
    if current is not None and week.week_start < current["week_start"]:
        return []  # a late classification of a past week: recorded, not announced
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
    return [(streams.key(ACCOUNT_LIFECYCLE), fields)]


def upstream(streams: Streams, stream: str, seen: Upstreams) -> Handler:
    allowed = STREAM_TYPES[stream]

    async def handle(unit: SqlUnit, ev: CloudEvent) -> list[Emit]:
        seen.heard(ev.source)
        model, conn = parse(ev, allowed), unit.db
        if isinstance(model, WeekClassified):
            return await week_classified(conn, ev, model, streams)
        if isinstance(model, MarketQuote):
            quote = model.model_dump(exclude={"symbol", "as_of"})
            await store.record_quote(
                conn, symbol=model.symbol, as_of=model.as_of, source=ev.source, **quote
            )
            return []
        return [await effect(conn, ev, model, streams)]

    return handle


def republish(streams: Streams) -> Handler:
    """An account-service event, as it is, on the public stream: same id, source, type,
    subject, causation and correlation; plus the versioned `dataschema` of its type."""
    lifecycle = streams.key(ACCOUNT_LIFECYCLE)

    async def handle(_: SqlUnit, ev: CloudEvent) -> list[Emit]:
        fields = {
            "specversion": "1.0",
            "id": ev.id,
            "source": ev.source,
            "type": ev.type,
            "time": ev.time.isoformat(),
            "datacontenttype": "application/json",
        }
        schema = dataschema(ev.type) if ev.type in LIFECYCLE_TYPES else ev.dataschema
        optional = {
            "subject": ev.subject,
            "causationid": ev.causationid,
            "correlationid": ev.correlationid,
            "dataschema": schema,
        }
        fields |= {k: v for k, v in optional.items() if v}
        fields["data"] = dumps(ev.data)
        return [(lifecycle, fields)]

    return handle
