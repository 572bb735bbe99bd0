"""Fills, assignments and expirations from WS4 (docs/rules.md sections 9 and 11): cash and positions
move together, in the command's savepoint (a refusal leaves nothing behind). Protocol breaches,
position sizing among them, are recorded and announced."""

from typing import Any

from services.account.domain import Account, TransactionType, change, ensure_active
from services.account.domain.marks import positions_value, sizing_breach
from services.account.domain.positions import (
    Contract,
    Holding,
    Move,
    PositionNotOpen,
    assign,
    expire,
    fill_moves,
    shares,
    short_option,
)
from services.account.domain.trading import (
    assignment_amount,
    fill_amount,
    first_application,
    protocol_breaches,
)
from services.account.handlers import growth
from services.account.handlers.effects import (
    AssignmentEffect,
    ExpirationEffect,
    TradeEffect,
    fingerprint,
    uuid_of,
    violations,
)
from services.account.handlers.valuation import revalue
from services.account.state.holdings import record
from services.account.state.port import Unit


async def _fresh(uow: Unit, account: Account, kind: str, ref: str, fp: object) -> bool:
    """Claim a fill, assignment or expiration id: False when it was applied already (same
    figures); other figures under it are a conflict. A later refusal rolls the claim back."""
    claim = await uow.claim((kind, ref), fingerprint=fingerprint(fp), account_id=account.id)
    return first_application(claim, kind=kind, ref=ref)


async def _open(uow: Unit, account_id: str) -> Account:
    account, _ = await uow.account(uuid_of(account_id))
    ensure_active(account)
    return account


async def trade_filled(uow: Unit, p: TradeEffect) -> None:
    account = await _open(uow, p.account_id)
    if not await _fresh(uow, account, "fill", p.fill_id, p):
        return
    if p.instrument_type == "option":
        assert p.option_type is not None and p.strike is not None
        contract = Contract(p.symbol, p.option_type, p.strike, p.expiration, p.multiplier)
    else:
        contract = shares(p.symbol)
    held = (await uow.valued(account.id)).holdings.get(contract.key, Holding(contract))
    moved = fill_moves(held, side=p.side, quantity=p.quantity, price=p.price)
    breaches = protocol_breaches(
        account.config, side=p.side, filled_at=p.filled_at, delta=p.delta, week_type=p.week_type
    )
    if p.side == "sell_to_open" and p.option_type == "put":
        value = account.balance + positions_value(await uow.marks(account.id))
        sized = sizing_breach(
            value=value,
            sizing_pct=account.config.position_sizing_pct,
            strike=contract.strike or p.price,
            contracts=p.quantity,
            multiplier=p.multiplier,
        )
        breaches += [sized] if sized else []
    amount = fill_amount(
        side=p.side,
        quantity=p.quantity,
        price=p.price,
        multiplier=p.multiplier,
        commission=p.commission,
    )
    what = f"{p.side} {p.quantity} {contract.describe()} @ {p.price}, commission {p.commission}"
    kind = TransactionType.TRADE_PREMIUM if contract.is_option else TransactionType.TRADE_SHARES
    await _apply(
        uow,
        account,
        [moved],
        kind=kind,
        amount=amount,
        what=what,
        ref=p.fill_id,
        week_type=p.week_type,
        cause="fill",
    )
    if breaches:
        await violations(uow, account.id, p.fill_id, breaches, p.week_type, "platform")


async def option_assigned(uow: Unit, p: AssignmentEffect) -> None:
    account = await _open(uow, p.account_id)
    if not await _fresh(uow, account, "assignment", p.assignment_id, p):
        return
    held = (await uow.valued(account.id)).holdings
    option = short_option(
        held.values(),
        symbol=p.symbol,
        option_type=p.option_type,
        strike=p.strike,
        expiration=p.expiration,
    )
    if option is None:
        series = f" {p.expiration}" if p.expiration else ""
        raise PositionNotOpen(f"no short {p.symbol}{series} {p.strike} {p.option_type} to assign")
    stock = held.get(shares(p.symbol).key, Holding(shares(p.symbol)))
    done = assign(option, stock, p.contracts)
    amount = assignment_amount(
        option_type=p.option_type,
        strike=p.strike,
        contracts=p.contracts,
        multiplier=option.contract.multiplier,
    )
    what = f"{p.option_type} assignment {p.contracts} x {option.contract.describe()}"
    await _apply(
        uow,
        account,
        [done.option, done.stock],
        kind=TransactionType.TRADE_ASSIGNMENT,
        amount=amount,
        what=what,
        ref=p.assignment_id,
        week_type=p.week_type,
        cause="assignment",
    )
    if done.short_stock:
        breach = f"short_stock: a {p.symbol} call assigned without the shares to deliver"
        await violations(uow, account.id, p.assignment_id, [breach], p.week_type, "platform")


async def option_expired(uow: Unit, p: ExpirationEffect) -> None:
    account = await _open(uow, p.account_id)
    if not await _fresh(uow, account, "expiration", p.expiration_id, p):
        return
    key = Contract(p.symbol, p.option_type, p.strike, p.expiration, 100).key
    held = (await uow.valued(account.id)).holdings.get(key)
    if held is None:
        raise PositionNotOpen(f"no {p.symbol} {p.expiration} {p.strike} {p.option_type} open")
    moved = expire(held, p.contracts)
    await record(uow, account.id, [moved], None, "expiration", p.expiration_id)
    await growth.after_balance_change(uow, account)  # the collateral it freed: a fork may go
    await revalue(uow, account.id)


async def _apply(
    uow: Unit,
    account: Account,
    moves: list[Move],
    *,
    kind: TransactionType,
    amount: Any,
    what: str,
    ref: str,
    week_type: str | None,
    cause: str,
) -> None:
    """Book the cash, move the positions, watch for a fork or merge, record the value:
    together. The positions move before the watch, so a fork sees the collateral of a put
    sold in this very fill."""
    after, tx = uow.book(
        change(account, kind, amount), description=what, reference=ref, week_type=week_type
    )
    uow.balance_changed(after, tx)
    await record(uow, account.id, moves, tx.id, cause, ref)
    await growth.after_balance_change(uow, after)
    await revalue(uow, account.id)
