"""Effects of upstream trading events, forwarded by the integration service (sections 8-9).

The money moves as it moved at the broker; protocol breaches are recorded and announced,
never a reason to drop the money.
"""

from typing import Any
from uuid import UUID

import asyncpg

from services.account import store
from services.account.domain import (
    Account,
    TransactionType,
    adherence_score,
    change,
    ensure_active,
)
from services.account.domain.trading import (
    assignment_amount,
    fill_amount,
    protocol_breaches,
    watch_drawdown,
)
from services.account.events import Out
from services.account.handlers import book, locked
from services.account.unit import Batch
from shared.contracts import upstream as u
from shared.infra.messaging import Rejected


class TradeEffect(u.TradeFilled):
    week_type: u.WeekType | None = None


class AssignmentEffect(u.OptionAssigned):
    week_type: u.WeekType | None = None


class ValuationEffect(u.AccountValuation):
    week_type: u.WeekType | None = None


class ValidationEffect(u.ProtocolValidated):
    pass


async def _book(
    batch: Batch,
    out: Out,
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
    account, _ = await batch.locked(_uuid(account_id))
    ensure_active(account)
    effect = change(account, tx_type, amount)
    claim = await store.claim_ref(
        batch.conn, kind=kind, ref_id=ref, account_id=account.id, fingerprint=fingerprint
    )
    if claim == "conflict":
        raise Rejected(
            "fill_conflict",
            f"{kind} {ref} was already applied with other figures",
            subject=account_id,
        )
    if claim == "duplicate":
        return None
    return await book(
        batch, effect, out, description=description, reference=ref, week_type=week_type
    )


async def trade_filled(batch: Batch, p: TradeEffect, out: Out) -> None:
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
        batch, out, kind="fill", ref=p.fill_id, account_id=p.account_id, amount=amount, tx_type=tx_type,
        description=f"{what}, commission {p.commission}", week_type=p.week_type, fingerprint=_fp(p),
    )  # fmt: skip
    if account is None or p.instrument_type != "option":
        return
    breaches = protocol_breaches(
        account.config, side=p.side, filled_at=p.filled_at, delta=p.delta, week_type=p.week_type
    )
    if breaches:
        await _violations(
            await batch.sql(), out, account.id, p.fill_id, breaches, p.week_type, "platform"
        )


async def option_assigned(batch: Batch, p: AssignmentEffect, out: Out) -> None:
    amount = assignment_amount(
        option_type=p.option_type, strike=p.strike, contracts=p.contracts, multiplier=p.multiplier
    )
    await _book(
        batch, out, kind="assignment", ref=p.assignment_id, account_id=p.account_id, amount=amount,
        tx_type=TransactionType.TRADE_ASSIGNMENT, week_type=p.week_type, fingerprint=_fp(p),
        description=f"{p.option_type} assignment {p.contracts} x {p.symbol} @ {p.strike}",
    )  # fmt: skip


async def protocol_validated(conn: asyncpg.Connection, p: ValidationEffect, out: Out) -> None:
    account, _ = await locked(conn, _uuid(p.account_id))
    if not p.compliant:
        await _violations(
            conn,
            out,
            account.id,
            p.trade_ref,
            list(p.violations) or ["non-compliant"],
            p.week_type,
            "ws2",
        )


async def account_valuation(conn: asyncpg.Connection, p: ValuationEffect, out: Out) -> None:
    account, _ = await locked(conn, _uuid(p.account_id))
    state = await store.drawdown_state(conn, account_id=account.id)
    dd = watch_drawdown(
        balance=account.balance, positions_value=p.positions_market_value, peak=state["peak_value"],
        was_breached=state["drawdown_breached"], max_drawdown_pct=account.config.max_drawdown_pct,
    )  # fmt: skip
    await store.save_valuation(
        conn, account_id=account.id, positions_value=p.positions_market_value, peak=dd.peak_value,
        drawdown_pct=dd.drawdown_pct, breached=dd.breached, as_of=p.as_of,
    )  # fmt: skip
    if dd.newly_breached:
        out.emit("alluse.account.drawdown_breached", {
            "account_id": str(account.id), "drawdown_pct": str(dd.drawdown_pct),
            "max_drawdown_pct": str(account.config.max_drawdown_pct), "total_value": str(dd.total_value),
            "peak_value": str(dd.peak_value), "as_of": p.as_of.isoformat(),
        }, subject=str(account.id))  # fmt: skip


async def _violations(
    conn: asyncpg.Connection,
    out: Out,
    account_id: Any,
    ref: str,
    details: list[str],
    week_type: str | None,
    source: str,
) -> None:
    count = await store.record_violations(
        conn,
        account_id=account_id,
        trade_ref=ref,
        details=details,
        week_type=week_type,
        source=source,
    )
    out.emit("alluse.account.protocol_violation", {
        "account_id": str(account_id), "trade_ref": ref, "violations": details, "week_type": week_type,
        "source": source, "violation_count": count, "adherence_score": str(adherence_score(count)),
    }, subject=str(account_id))  # fmt: skip


def _fp(p: Any) -> str:
    return str(p.model_dump_json(exclude={"week_type"}))


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise Rejected("unknown_account", f"no account {value}", subject=value) from None
