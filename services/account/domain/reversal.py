"""docs/rules.md section 11: corrections never edit history. A transaction is reversed by a new,
opposite entry that names it, with a reason, once; the position moves it caused are undone with
it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from shared.contracts.vocabulary import Refusal

from .decisions import ensure_active
from .enums import TransactionType
from .errors import AccountError, InsufficientFunds
from .ledger import BalanceChange, change
from .model import Account
from .money import ZERO
from .positions import Holding, Move, PositionNotOpen

TRANSFERS = frozenset({TransactionType.FORK_TRANSFER, TransactionType.MERGE_TRANSFER})


class UnknownTransaction(AccountError):
    code = Refusal.UNKNOWN_TRANSACTION


class AlreadyReversed(AccountError):
    code = Refusal.ALREADY_REVERSED


class ReversalNotReversible(AccountError):
    code = Refusal.REVERSAL_NOT_REVERSIBLE


class TransferNotReversible(AccountError):
    code = Refusal.TRANSFER_NOT_REVERSIBLE


class NoHistory(AccountError):
    """An as-of time before the account's first transaction: it held nothing yet."""

    code = Refusal.NO_HISTORY


@dataclass(frozen=True, slots=True)
class Entry:
    """The ledger row to reverse, as the store found it."""

    id: int
    type: TransactionType
    amount: Decimal
    reverses: int | None  # set when the row is itself a reversal
    reversed_by: int | None  # set when the row was reversed already


def decide_reversal(account: Account, entry: Entry) -> BalanceChange:
    """The opposite entry of `entry`, of the same type (so contributed capital and the fork
    baseline move back as they moved), refused when the rules forbid it."""
    if entry.reverses is not None:
        raise ReversalNotReversible(
            f"transaction {entry.id} reverses {entry.reverses}; book a new entry instead"
        )
    if entry.reversed_by is not None:
        raise AlreadyReversed(f"transaction {entry.id} was reversed by {entry.reversed_by}")
    if entry.type in TRANSFERS:
        raise TransferNotReversible(
            f"transaction {entry.id} is a {entry.type.value}: forks and merges are not undone"
            " by a correction"
        )
    ensure_active(account)
    effect = change(account, entry.type, -entry.amount)
    if effect.balance_after < 0:
        raise InsufficientFunds(
            f"reversing {entry.id} ({entry.amount}) would leave cash at {effect.balance_after}"
        )
    return effect


def undo_moves(done: Sequence[tuple[Holding, Move]]) -> list[Move]:
    """The opposite of each (position now, move then): the position must still be on the side
    the move touched, so undoing what was closed since (put shares later called away, an
    opening whose position expired) is refused as position_not_open."""
    out = []
    for held, m in done:
        before = m.after.quantity - m.quantity
        side = before or m.quantity
        left = held.quantity - m.quantity
        if left and (left > 0) != (side > 0):
            raise PositionNotOpen(
                f"{m.contract.describe()} is {held.quantity} now; undoing {m.quantity} would"
                " open what was never held"
            )
        cost = ZERO if left == 0 else held.cost - m.cost
        out.append(Move(m.contract, -m.quantity, cost - held.cost, Holding(m.contract, left, cost)))
    return out
