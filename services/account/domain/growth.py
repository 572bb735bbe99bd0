"""docs/rules.md sections 4-5: fork eligibility, the fork plan, its guards, and the merge decision.
Pure.

A fork moves a Gen-Acc's whole surplus (balance - baseline) into a new child portfolio's
Gen-Acc and Com-Acc; a merge folds a child portfolio's whole balance into an ancestor's
Com-Acc. Both are described here as balance changes; the store writes them in one
transaction, so each happens entirely or not at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from shared.contracts.vocabulary import Refusal

from .decisions import decide_status_change
from .enums import AccountStatus, AccountType, TransactionType
from .errors import AccountError
from .ledger import BalanceChange, change
from .model import Account
from .money import ZERO, to_cents
from .positions import Holding, Move
from .settings import GrowthSettings


class NotForkEligible(AccountError):
    code = Refusal.NOT_FORK_ELIGIBLE


class ForkCoolingPeriod(AccountError):
    code = Refusal.FORK_COOLING_PERIOD


class ForkDailyLimit(AccountError):
    code = Refusal.FORK_DAILY_LIMIT


class ForkCollateralLocked(AccountError):
    """The surplus is cash that open short puts hold as collateral: the fork waits for them."""

    code = Refusal.FORK_COLLATERAL_LOCKED


class NotAChildPortfolio(AccountError):
    code = Refusal.NOT_A_CHILD_PORTFOLIO


class MergeBlocked(AccountError):
    code = Refusal.MERGE_BLOCKED


def surplus(account: Account) -> Decimal:
    return account.balance - account.baseline


def is_fork_eligible(account: Account) -> bool:
    """Gen-Acc only, active, and `balance - baseline >= fork_threshold`."""
    return (
        account.rules.can_fork
        and account.status is AccountStatus.ACTIVE
        and surplus(account) >= account.config.fork_threshold
    )


def needs_watch(account: Account, *, in_child_portfolio: bool, flagged_eligible: bool) -> bool:
    """Whether a balance change may merge or fork: False lets the hot path skip all SQL.

    A child portfolio may have reached its merge threshold; a Gen-Acc may have crossed its
    fork threshold (either way: the flag records the crossing).
    """
    if in_child_portfolio:
        return True
    generation = account.type is AccountType.GENERATION
    return generation and (is_fork_eligible(account) or flagged_eligible)


def check_fork_guards(
    *,
    now: datetime,
    last_fork_of_account: datetime | None,
    tree_fork_times: Sequence[datetime],
    settings: GrowthSettings,
) -> None:
    """One fork per account per cooling period; at most `daily_fork_limit` per tree a day.

    A fork recorded at or after `now` (a clock behind another replica's) counts as recent:
    a caller can only ever be blocked more, never less, by an earlier clock.
    """
    cooling = timedelta(hours=settings.cooling_period_hours)
    if last_fork_of_account is not None and last_fork_of_account > now - cooling:
        raise ForkCoolingPeriod(
            f"last fork at {last_fork_of_account.isoformat()}; "
            f"one fork per {settings.cooling_period_hours} h"
        )
    day_ago = now - timedelta(hours=24)
    if sum(1 for t in tree_fork_times if t > day_ago) >= settings.daily_fork_limit:
        raise ForkDailyLimit(f"{settings.daily_fork_limit} forks in this tree in the last 24 h")


@dataclass(frozen=True, slots=True)
class ForkPlan:
    surplus: Decimal
    debit: BalanceChange  # the parent Gen-Acc back to its baseline
    child_generation: Decimal
    child_compounding: Decimal


def plan_fork(parent: Account, settings: GrowthSettings, *, collateral: Decimal) -> ForkPlan:
    """The whole surplus out; `fork_split_pct` of it to the child Gen-Acc, the rest to its Com-Acc.

    Only cash free of collateral may leave: when the open short puts secure more than the
    baseline the parent returns to (`collateral`, see positions.collateral), the whole fork
    waits (a part of the surplus is never forked: the parent always returns to its baseline).
    """
    if not is_fork_eligible(parent):
        raise NotForkEligible(
            f"account {parent.id} ({parent.type.value}, {parent.status.value}) has a surplus of "
            f"{surplus(parent)}, fork threshold {parent.config.fork_threshold}"
        )
    amount = surplus(parent)
    if collateral > parent.balance - amount:
        raise ForkCollateralLocked(
            f"account {parent.id}: short puts secure {collateral} of its {parent.balance} cash;"
            f" forking the surplus of {amount} would leave {parent.balance - amount}"
        )
    to_gen = to_cents(amount * settings.fork_split_pct / 100)
    return ForkPlan(
        surplus=amount,
        debit=change(parent, TransactionType.FORK_TRANSFER, -amount),
        child_generation=to_gen,
        child_compounding=amount - to_gen,
    )


def funding(account: Account, tx_type: TransactionType, amount: Decimal) -> BalanceChange:
    """Capital moved into an account by a fork or merge: contributed, and not surplus to fork."""
    effect = change(account, tx_type, amount)
    return replace(effect, baseline_after=account.baseline + amount)


@dataclass(frozen=True, slots=True)
class MergePlan:
    total: Decimal
    debits: tuple[BalanceChange, ...]  # each child account emptied
    statuses: tuple[AccountStatus, ...]  # each child account's final status (merged)


def merge_due(accounts: Sequence[Account]) -> bool:
    """A child portfolio merges once its total balance reaches the merge threshold."""
    live = [a for a in accounts if a.status is not AccountStatus.MERGED]
    if not live:
        return False
    threshold = min(a.config.merge_threshold for a in live)
    return sum((a.balance for a in live), start=ZERO) >= threshold


def plan_merge(accounts: Sequence[Account]) -> MergePlan:
    """Empty every child account into the target; each moves active -> merging -> merged."""
    statuses = []
    for a in accounts:
        try:
            merging = decide_status_change(a, AccountStatus.MERGING, by_system=True)
            statuses.append(
                decide_status_change(
                    replace(a, status=merging), AccountStatus.MERGED, by_system=True
                )
            )
        except AccountError as exc:
            raise MergeBlocked(exc.message) from None
    debits = tuple(
        change(a, TransactionType.MERGE_TRANSFER, -a.balance) for a in accounts if a.balance
    )
    total = sum((a.balance for a in accounts), start=ZERO)
    return MergePlan(total=total, debits=debits, statuses=tuple(statuses))


@dataclass(frozen=True, slots=True)
class Carried:
    """A merged account's positions leaving it, and arriving in the target."""

    out: tuple[Move, ...]
    into: tuple[Move, ...]
    target: dict[str, Holding]  # the target's holdings after them, by contract key


def carry(held: Sequence[Holding], target: Mapping[str, Holding]) -> Carried:
    """A merge carries every position as it is (quantity and cost basis) into the target,
    whose own position in the same contract grows by it. The target holding the opposite
    side of a contract would net what neither closed: refused (merge_blocked)."""
    after = dict(target)
    out, into = [], []
    for h in held:
        if not h.quantity:
            continue
        key = h.contract.key
        there = after.get(key, Holding(h.contract))
        if there.quantity and (there.quantity > 0) != (h.quantity > 0):
            raise MergeBlocked(
                f"{h.contract.describe()}: the target holds {there.quantity}, the merged"
                f" account {h.quantity}; close one side first"
            )
        out.append(Move(h.contract, -h.quantity, -h.cost, Holding(h.contract)))
        grown = Holding(there.contract, there.quantity + h.quantity, there.cost + h.cost)
        into.append(Move(h.contract, h.quantity, h.cost, grown))
        after[key] = grown
    return Carried(tuple(out), tuple(into), after)
