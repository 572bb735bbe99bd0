"""Property: random deposits, fills, withdrawals, forks and merges keep every invariant.

An in-memory ledger driven by the same pure decisions the service uses: money is conserved
(sum of balances == capital + net trading income), each balance equals its ledger, and no
withdrawal ever eats into the cash buffer.
"""

import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from services.account.domain import (
    Account,
    AccountConfig,
    AccountError,
    AccountStatus,
    AccountType,
    BalanceChange,
    TransactionType,
    apply_change,
    change,
    decide_deposit,
    decide_withdrawal,
)
from services.account.domain.growth import (
    funding,
    is_fork_eligible,
    merge_due,
    plan_fork,
    plan_merge,
)
from services.account.domain.settings import DEFAULT_SETTINGS

D = Decimal
TYPES = (AccountType.GENERATION, AccountType.REVENUE, AccountType.COMPOUNDING)


def config(t: AccountType) -> AccountConfig:
    return AccountConfig.for_type(t, fork_threshold=D(500), merge_threshold=D(1200))


@dataclass
class Book:
    accounts: dict[UUID, Account] = field(default_factory=dict)
    ledger: dict[UUID, list[Decimal]] = field(default_factory=dict)
    parent: dict[UUID, UUID | None] = field(default_factory=dict)
    capital: Decimal = Decimal(0)
    income: Decimal = Decimal(0)
    forks: int = 0
    merges: int = 0

    def open(self, portfolio: UUID, t: AccountType, amount: Decimal) -> Account:
        a = Account(
            uuid.uuid4(),
            portfolio,
            t,
            AccountStatus.ACTIVE,
            D("0.00"),
            D("0.00"),
            D("0.00"),
            config(t),
        )
        self.accounts[a.id], self.ledger[a.id] = a, []
        if amount:
            self.write(funding(a, TransactionType.FORK_TRANSFER, amount))
        return self.accounts[a.id]

    def write(self, effect: BalanceChange) -> None:
        self.ledger[effect.account_id].append(effect.amount)
        self.accounts[effect.account_id] = apply_change(self.accounts[effect.account_id], effect)

    def live(self, portfolio: UUID) -> list[Account]:
        return sorted(
            (
                a
                for a in self.accounts.values()
                if a.portfolio_id == portfolio and a.status is not AccountStatus.MERGED
            ),
            key=lambda a: a.type,
        )

    def fork(self, gen: Account) -> None:
        plan = plan_fork(gen, DEFAULT_SETTINGS, collateral=D(0))
        child = uuid.uuid4()
        self.parent[child] = gen.portfolio_id
        self.write(plan.debit)
        self.open(child, AccountType.GENERATION, plan.child_generation)
        self.open(child, AccountType.COMPOUNDING, plan.child_compounding)
        self.forks += 1

    def merge(self, portfolio: UUID) -> None:
        up = self.parent[portfolio]
        while up is not None and not [
            a for a in self.live(up) if a.type is AccountType.COMPOUNDING
        ]:
            up = self.parent[up]
        if up is None:
            return
        target = next(a for a in self.live(up) if a.type is AccountType.COMPOUNDING)
        live = self.live(portfolio)
        plan = plan_merge(live)
        for d in plan.debits:
            self.write(d)
        self.write(funding(target, TransactionType.MERGE_TRANSFER, plan.total))
        for a, s in zip(live, plan.statuses, strict=True):
            self.accounts[a.id] = replace(self.accounts[a.id], status=s)
        self.merges += 1

    def after(self, a: Account) -> None:
        """What the service does after every balance change."""
        if self.parent[a.portfolio_id] is not None and merge_due(self.live(a.portfolio_id)):
            self.merge(a.portfolio_id)
        elif is_fork_eligible(self.accounts[a.id]):
            self.fork(self.accounts[a.id])


ops = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "fill", "fork", "merge"]),
        st.integers(min_value=0, max_value=50),
        st.integers(min_value=-40000, max_value=90000).map(lambda c: D(c) / 100),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_growth_invariants_hold_over_random_sequences(
    steps: list[tuple[str, int, Decimal]],
) -> None:
    book = Book()
    root = uuid.uuid4()
    book.parent[root] = None
    for t, amount in zip(TYPES, (D("1000.00"), D("750.00"), D("750.00")), strict=True):
        book.open(root, t, amount)
    book.capital = D("2500.00")
    for op, pick, amount in steps:
        live = [a for a in book.accounts.values() if a.status is AccountStatus.ACTIVE]
        a = live[pick % len(live)]
        try:
            if op == "deposit" and amount > 0:
                book.write(decide_deposit(a, amount))
                book.capital += amount
            elif op == "withdraw" and amount > 0:
                book.write(decide_withdrawal(a, amount))
                book.capital -= amount
                assert book.accounts[a.id].balance >= book.accounts[a.id].cash_buffer
            elif op == "fill" and amount:
                book.write(change(a, TransactionType.TRADE_PREMIUM, amount))
                book.income += amount
            elif op == "fork":
                book.fork(a)
            elif op == "merge" and book.parent[a.portfolio_id] is not None:
                book.merge(a.portfolio_id)
            else:
                continue
        except AccountError:
            continue  # refused as the service would refuse it: nothing was written
        book.after(book.accounts[a.id])
        total = sum((x.balance for x in book.accounts.values()), start=D(0))
        assert total == book.capital + book.income  # nothing created or lost
        for x in book.accounts.values():
            assert x.balance == sum(book.ledger[x.id], start=D(0))  # balance == ledger
            assert x.available >= 0
            if x.status is AccountStatus.MERGED:
                assert x.balance == 0
