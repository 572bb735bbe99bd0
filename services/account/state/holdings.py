"""Position moves written into their history and announced (`position_changed`): the one way
fills, assignments, expirations, reversals and merges change what an account holds; and the
positions a merge carries into its target."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.account.domain.growth import Carried, carry
from services.account.domain.marks import positions_value
from services.account.domain.money import ZERO
from services.account.domain.positions import Move
from services.account.handlers.valuation import revalue, wound_up
from services.account.state.port import Unit
from shared.contracts import lifecycle as e


async def record(
    uow: Unit,
    account_id: UUID,
    moves: list[Move],
    transaction_id: int | None,
    cause: str,
    ref: str | None,
) -> None:
    await uow.move(account_id, moves, transaction_id=transaction_id, cause=cause, reference=ref)
    for m in moves:
        c, after = m.contract, m.after
        uow.emit(
            e.PositionChanged(
                account_id=str(account_id),
                contract=c.key,
                symbol=c.symbol,
                kind=c.option_type or "shares",
                strike=_s(c.strike),
                expiration=_s(c.expiration),
                multiplier=c.multiplier,
                change=m.quantity,
                cost_change=m.cost,
                quantity=after.quantity,
                cost=after.cost,
                cause=cause,
                reference=ref,
                transaction_id=_s(transaction_id),
            ),
            subject=str(account_id),
        )


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Handover:
    """What one merged account carries into the target, and its value at the marks."""

    account_id: UUID
    carried: Carried
    value: Decimal


async def plan_handovers(uow: Unit, account_ids: list[UUID], target_id: UUID) -> list[Handover]:
    """Each merged account's positions as they will arrive in the target (refused before any
    write when the target holds the other side of a contract: merge_blocked)."""
    await uow.account(target_id)  # locked before its positions are read
    target = dict((await uow.valued(target_id)).holdings)
    out = []
    for account_id in account_ids:
        marks = await uow.marks(account_id)
        carried = carry([m.holding for m in marks], target)
        target = carried.target
        out.append(Handover(account_id, carried, positions_value(marks)))
    return out


async def hand_over(
    uow: Unit,
    handovers: list[Handover],
    *,
    target_id: UUID,
    transactions: dict[UUID, int],
    ref: str,
) -> None:
    """The positions leave the merged accounts and arrive in the target, each move dated now
    (as-of answers stay right on both sides) and announced; the value they carry is a flow on
    both sides, never a loss or a gain."""
    for h in handovers:
        await record(
            uow, h.account_id, list(h.carried.out), transactions.get(h.account_id), "merge", ref
        )
        await record(
            uow, target_id, list(h.carried.into), transactions.get(target_id), "merge", ref
        )
        await wound_up(uow, h.account_id, carried=h.value)
    await revalue(uow, target_id, carried=sum((h.value for h in handovers), start=ZERO))
