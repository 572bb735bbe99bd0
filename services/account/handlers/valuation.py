"""docs/rules.md section 11: an account's value from its own marks, watched for drawdown, and the
broker's valuation compared with it."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.account.domain.marks import Marked, compare_valuation, mark_all, positions_value
from services.account.domain.money import ZERO
from services.account.domain.trading import watch_drawdown
from services.account.handlers.effects import QuoteEffect, ValuationEffect, uuid_of
from services.account.state.port import Unit
from services.account.state.repositories import PositionStore
from shared.contracts import lifecycle as e


async def marked(
    positions: PositionStore, *, account_id: UUID, at: datetime | None = None
) -> list[Marked]:
    """The account's positions (as of `at`, if given) at the latest quotes (as of `at`)."""
    if at is None:
        return mark_all(*await positions.marked_holdings(account_id=account_id))
    held = await positions.holdings_at(account_id=account_id, at=at)
    if not held:
        return []
    quotes = await positions.quotes(symbols=[h.contract.key for h in held], at=at)
    return mark_all(held, quotes)


async def revalue(
    uow: Unit,
    account_id: UUID,
    *,
    broker: Decimal | None = None,
    carried: Decimal = ZERO,
    by_quote: bool = False,
) -> tuple[Decimal, Decimal]:
    """Record the account's value now (cash + marked positions) and announce a drawdown
    beyond its maximum once per crossing; returns (cash, positions value). `carried`: the
    value of positions a merge brought in, a flow like the cash that came with them."""
    account, _ = await uow.account(account_id)
    cash = account.balance  # as booked: a fork or merge in the same command moved it too
    state = await uow.valued(account_id)
    positions = positions_value(await uow.marks(account_id))
    dd = watch_drawdown(
        balance=cash,
        positions_value=positions,
        peak=state.peak + state.flows + carried,
        was_breached=state.breached,
        max_drawdown_pct=account.config.max_drawdown_pct,
    )
    uow.save_value(
        account_id,
        cash=cash,
        positions=positions,
        broker=broker,
        peak=dd.peak_value,
        drawdown_pct=dd.drawdown_pct,
        breached=dd.breached,
        flow=carried,
        by_quote=by_quote,
    )
    if dd.newly_breached:
        uow.emit(
            e.DrawdownBreached(
                account_id=str(account_id),
                drawdown_pct=dd.drawdown_pct,
                max_drawdown_pct=account.config.max_drawdown_pct,
                total_value=dd.total_value,
                peak_value=dd.peak_value,
                cash=cash,
                positions_value=positions,
                as_of=uow.at.isoformat(),
            ),
            subject=str(account_id),
        )
    return cash, positions


async def wound_up(uow: Unit, account_id: UUID, *, carried: Decimal) -> None:
    """A merged account holds nothing and watches no drawdown; its last value point records
    the positions' value that left it, as a flow."""
    account, _ = await uow.account(account_id)
    await uow.valued(account_id)
    uow.save_value(
        account_id,
        cash=account.balance,
        positions=ZERO,
        peak=ZERO,
        drawdown_pct=ZERO,
        breached=False,
        flow=-carried,
    )


async def market_quote(uow: Unit, p: QuoteEffect) -> None:
    """Recorded for marks, and the accounts holding the instrument revalued at once (their
    drawdown watched), at most `quote_revalue_limit` of them, those valued longest ago first;
    the rest at their next event. Locked in id order, as a batch locks its accounts."""
    settings = await uow.growth.growth_settings()
    await uow.position_store.save_quote(
        symbol=p.symbol,
        bid=p.bid,
        ask=p.ask,
        last=p.last,
        as_of=p.as_of,
        retention_days=settings.quote_retention_days,
    )
    if not settings.quote_revalue_limit:
        return
    limit = settings.quote_revalue_limit
    held = sorted(await uow.position_store.holders(contract=p.symbol, limit=limit))
    await uow.position_store.drop_quote_points(account_ids=held)  # the day keeps its last one
    for account_id in held:
        await revalue(uow, account_id, by_quote=True)


async def account_valuation(uow: Unit, p: ValuationEffect) -> None:
    """The broker's figure, kept beside our own marks; a difference beyond the tolerance
    setting is announced (the reconciliation a trader would otherwise do by hand)."""
    account_id = uuid_of(p.account_id)
    broker = p.positions_market_value
    cash, own = await revalue(uow, account_id, broker=broker)
    tolerance = (await uow.growth.growth_settings()).valuation_tolerance_pct
    found = compare_valuation(own=own, broker=broker, value=cash + own, tolerance_pct=tolerance)
    if found is not None:
        uow.emit(
            e.ValuationMismatch(
                account_id=str(account_id),
                own_positions_value=found.own,
                broker_positions_value=found.broker,
                difference=found.difference,
                tolerance=found.tolerance,
                tolerance_pct=tolerance,
                cash=cash,
                as_of=p.as_of.isoformat(),
            ),
            subject=str(account_id),
        )


def view(marks: list[Marked]) -> list[dict[str, Any]]:
    """PositionStore as consumers see them; money as strings."""
    return [
        {
            "contract": m.holding.contract.key,
            "symbol": m.holding.contract.symbol,
            "kind": m.holding.contract.option_type or "shares",
            "strike": _price(m.holding.contract.strike),
            "expiration": _s(m.holding.contract.expiration),
            "quantity": m.holding.quantity,
            "multiplier": m.holding.contract.multiplier,
            "cost": str(m.holding.cost),
            "mark": _price(m.price),
            "market_value": str(m.value),
        }
        for m in marks
    ]


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _price(value: Decimal | None) -> str | None:
    """A price as people write it: cents, or as many places as it really has (up to 4)."""
    if value is None:
        return None
    cents = value.quantize(Decimal("0.01"))
    return str(cents if cents == value else value.quantize(Decimal("0.0001")).normalize())
