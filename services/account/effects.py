"""Effects of upstream trading events, forwarded by the integration service (sections 8-9).

The money moves as it moved at the broker; protocol breaches are recorded and announced,
never a reason to drop the money.
"""

from typing import Any
from uuid import UUID

from services.account import store
from services.account.domain import (
    Account,
    TransactionType,
    UnknownAccount,
    adherence_score,
    change,
    ensure_active,
)
from services.account.domain.trading import (
    assignment_amount,
    fill_amount,
    first_application,
    protocol_breaches,
    watch_drawdown,
)
from services.account.handlers import book
from services.account.uow import AccountUnit
from shared.contracts import upstream as u


class TradeEffect(u.TradeFilled):
    week_type: u.WeekType | None = None


class AssignmentEffect(u.OptionAssigned):
    week_type: u.WeekType | None = None


class ValuationEffect(u.AccountValuation):
    week_type: u.WeekType | None = None


class ValidationEffect(u.ProtocolValidated):
    pass


async def _book(
    uow: AccountUnit,
    *,
    kind: str,
    ref: str,
    account_id: str,
    amount: Any,
    tx_type: TransactionType,
    description: str,
    week_type: str | None,
    fingerprint: str,
) -> Account | None:
    """Apply a broker movement once per reference; None when it was applied already."""
    account, _ = await uow.account(_uuid(account_id))
    ensure_active(account)
    effect = change(account, tx_type, amount)
    claim = await store.claim_ref(
        uow.db, kind=kind, ref_id=ref, account_id=account.id, fingerprint=fingerprint
    )
    if not first_application(claim, kind=kind, ref=ref):
        return None
    return await book(uow, effect, description=description, reference=ref, week_type=week_type)


async def trade_filled(uow: AccountUnit, p: TradeEffect) -> None:
    amount = fill_amount(
        side=p.side,
        quantity=p.quantity,
        price=p.price,
        multiplier=p.multiplier,
        commission=p.commission,
    )
    tx_type = (
        TransactionType.TRADE_PREMIUM
        if p.instrument_type == "option"
        else TransactionType.TRADE_ASSIGNMENT
    )
    what = f"{p.side} {p.quantity} {p.symbol} {p.option_type or ''} {p.strike or ''} @ {p.price}".replace(
        "  ", " "
    )
    account = await _book(
        uow, kind="fill", ref=p.fill_id, account_id=p.account_id, amount=amount, tx_type=tx_type,
        description=f"{what}, commission {p.commission}", week_type=p.week_type, fingerprint=_fp(p),
    )  # fmt: skip
    if account is None or p.instrument_type != "option":
        return
    breaches = protocol_breaches(
        account.config, side=p.side, filled_at=p.filled_at, delta=p.delta, week_type=p.week_type
    )
    if breaches:
        await _violations(uow, account.id, p.fill_id, breaches, p.week_type, "platform")


async def option_assigned(uow: AccountUnit, p: AssignmentEffect) -> None:
    amount = assignment_amount(
        option_type=p.option_type, strike=p.strike, contracts=p.contracts, multiplier=p.multiplier
    )
    await _book(
        uow, kind="assignment", ref=p.assignment_id, account_id=p.account_id, amount=amount,
        tx_type=TransactionType.TRADE_ASSIGNMENT, week_type=p.week_type, fingerprint=_fp(p),
        description=f"{p.option_type} assignment {p.contracts} x {p.symbol} @ {p.strike}",
    )  # fmt: skip


async def protocol_validated(uow: AccountUnit, p: ValidationEffect) -> None:
    account, _ = await uow.account(_uuid(p.account_id))
    if not p.compliant:
        details = list(p.violations) or ["non-compliant"]
        await _violations(uow, account.id, p.trade_ref, details, p.week_type, "ws2")


async def account_valuation(uow: AccountUnit, p: ValuationEffect) -> None:
    account, _ = await uow.account(_uuid(p.account_id))
    state = await store.drawdown_state(uow.db, account_id=account.id)
    dd = watch_drawdown(
        balance=account.balance, positions_value=p.positions_market_value, peak=state["peak_value"],
        was_breached=state["drawdown_breached"], max_drawdown_pct=account.config.max_drawdown_pct,
    )  # fmt: skip
    await store.save_valuation(
        uow.db, account_id=account.id, positions_value=p.positions_market_value, peak=dd.peak_value,
        drawdown_pct=dd.drawdown_pct, breached=dd.breached, as_of=p.as_of,
    )  # fmt: skip
    if dd.newly_breached:
        uow.emit("alluse.account.drawdown_breached", {
            "account_id": str(account.id), "drawdown_pct": str(dd.drawdown_pct),
            "max_drawdown_pct": str(account.config.max_drawdown_pct), "total_value": str(dd.total_value),
            "peak_value": str(dd.peak_value), "as_of": p.as_of.isoformat(),
        }, subject=str(account.id))  # fmt: skip


async def _violations(uow: AccountUnit, account_id: UUID, ref: str, details: list[str],
                      week_type: str | None, source: str) -> None:  # fmt: skip
    count = await store.record_violations(
        uow.db,
        account_id=account_id,
        trade_ref=ref,
        details=details,
        week_type=week_type,
        source=source,
    )
    uow.emit("alluse.account.protocol_violation", {
        "account_id": str(account_id), "trade_ref": ref, "violations": details, "week_type": week_type,
        "source": source, "violation_count": count, "adherence_score": str(adherence_score(count)),
    }, subject=str(account_id))  # fmt: skip


def _fp(p: Any) -> str:
    return str(p.model_dump_json(exclude={"week_type"}))


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise UnknownAccount(f"no account {value}", subject=value) from None
