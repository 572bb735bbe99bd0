"""The port handlers are written against: what a unit of work offers them, and nothing more.

`AccountUnit` (uow.py, on PostgreSQL) and the in-memory `FakeUnit` of the handler tests both
implement it, and mypy holds each to it: a method a handler starts to use, or a signature that
changes, fails the type check of whichever unit does not follow. The contract tests
(tests/integration/test_unit_contract.py) run the same scenarios against both, so the fake also
behaves as the real unit does where handlers can tell.

The repositories are the store's statements on the unit's connection (repositories.py); their
protocols mirror the store functions' signatures, without the connection.
"""

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    BalanceChange,
    TransactionType,
)
from services.account.domain.growth import ForkPlan
from services.account.domain.marks import Marked, Quote
from services.account.domain.positions import Holding, Move
from services.account.domain.reinvest import Allocation as ReinvestAllocation
from services.account.domain.reinvest import Period
from services.account.domain.reversal import Entry
from services.account.domain.settings import GrowthSettings
from services.account.state.batch_positions import Valued
from services.account.state.store.accounts import AccountRow, PortfolioRow
from services.account.state.store.ledger import LedgerRow
from shared.contracts.lifecycle import Payload

Row = dict[str, Any]
__all__ = ["AccountRow", "LedgerRow", "PortfolioRow", "Row", "Unit"]


class AccountsPort(Protocol):
    async def portfolio_types(self, *, portfolio_id: UUID) -> set[str] | None: ...
    async def update_account(
        self, *, account_id: UUID, name: str, config: AccountConfig
    ) -> None: ...
    async def set_status(self, *, account_id: UUID, status: AccountStatus) -> None: ...
    async def flag_fork_eligible(self, *, account_id: UUID, eligible: bool) -> bool: ...
    async def get_portfolio(
        self, *, portfolio_id: UUID, lock: bool = False
    ) -> PortfolioRow | None: ...
    async def lock_portfolio_accounts(self, *, portfolio_id: UUID) -> list[Account]: ...
    async def lock_live_accounts(self, *, account_type: str | None) -> list[Row]: ...
    async def get_account(self, *, account_id: UUID) -> Row | None: ...
    async def tree_accounts(self, *, portfolio_ids: list[UUID]) -> list[Row]: ...


class LedgerPort(Protocol):
    async def effective_now(self) -> datetime: ...


class GrowthPort(Protocol):
    async def growth_settings(self) -> GrowthSettings: ...
    async def save_growth_settings(self, *, settings: GrowthSettings, command_id: str) -> None: ...
    async def fork_times(
        self, *, account_id: UUID, root_id: UUID
    ) -> tuple[datetime | None, list[datetime]]: ...
    async def insert_fork(
        self,
        *,
        child: UUID,
        parent_account: Account,
        root_id: UUID,
        plan: ForkPlan,
        automatic: bool,
        command_id: str,
    ) -> datetime: ...
    async def merge_target(self, *, portfolio_id: UUID) -> UUID | None: ...
    async def insert_merge(
        self, *, child: UUID, target: Account, total: Decimal, automatic: bool, command_id: str
    ) -> datetime: ...
    async def reinvesting_accounts(self) -> list[UUID]: ...
    async def trading_rows(
        self, *, account_id: UUID, start: datetime, end: datetime
    ) -> list[tuple[TransactionType, Decimal]]: ...
    async def insert_reinvestment(
        self,
        *,
        account_id: UUID,
        period: Period,
        allocation: ReinvestAllocation,
        contracts_pct: Decimal,
        command_id: str,
    ) -> bool: ...
    async def reinvestment_done(self, *, account_id: UUID, quarter: str) -> bool: ...


class PositionStorePort(Protocol):
    async def marked_holdings(
        self, *, account_id: UUID
    ) -> tuple[list[Holding], dict[str, Quote]]: ...
    async def holdings(self, *, account_id: UUID) -> list[Holding]: ...
    async def quotes(
        self, *, symbols: list[str], at: datetime | None = None
    ) -> dict[str, Quote]: ...
    async def save_quote(
        self,
        *,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        last: Decimal,
        as_of: datetime,
        retention_days: int,
    ) -> None: ...
    async def holders(self, *, contract: str, limit: int) -> list[UUID]: ...
    async def drop_quote_points(self, *, account_ids: list[UUID]) -> None: ...
    async def entry(self, *, transaction_id: int) -> tuple[UUID, Entry] | None: ...
    async def moves_of(self, *, transaction_id: int) -> list[tuple[Holding, Move]]: ...
    async def mark_reversal(self, *, transaction_id: int, reverses: int, reason: str) -> None: ...
    async def holdings_at(self, *, account_id: UUID, at: datetime) -> list[Holding]: ...


class Unit(Protocol):
    """One batch's door to state, as handlers see it (uow.py says what each promise means)."""

    at: datetime  # the business time of the command in hand

    @property
    def accounts(self) -> AccountsPort: ...
    @property
    def ledger(self) -> LedgerPort: ...
    @property
    def growth(self) -> GrowthPort: ...
    @property
    def position_store(self) -> PositionStorePort: ...
    @property
    def command_id(self) -> str: ...

    def attempt(self) -> AbstractAsyncContextManager[None]: ...

    # Accounts and the ledger
    async def account(self, account_id: UUID) -> tuple[Account, AccountRow]: ...
    def add_portfolio(
        self,
        *,
        portfolio_id: UUID,
        name: str,
        parent: PortfolioRow | None = None,
        template: str | None = None,
        strategy: str | None = None,
        risk: dict[str, Any] | None = None,
    ) -> None: ...
    def add_account(
        self, account: Account, *, name: str, parent_id: UUID | None = None
    ) -> AccountRow: ...
    def book(
        self,
        effect: BalanceChange,
        *,
        description: str,
        reference: str | None = None,
        week_type: str | None = None,
    ) -> tuple[Account, LedgerRow]: ...

    # Positions and value (section 11)
    async def valued(self, account_id: UUID) -> Valued: ...
    async def marks(self, account_id: UUID) -> list[Marked]: ...
    async def claim(self, ref: tuple[str, str], *, fingerprint: str, account_id: UUID) -> str: ...
    async def move(
        self,
        account_id: UUID,
        moves: list[Move],
        *,
        transaction_id: int | None,
        cause: str,
        reference: str | None,
    ) -> None: ...
    def save_value(
        self,
        account_id: UUID,
        *,
        cash: Decimal,
        positions: Decimal,
        peak: Decimal,
        drawdown_pct: Decimal,
        breached: bool,
        broker: Decimal | None = None,
        flow: Decimal = ...,
        by_quote: bool = False,
    ) -> None: ...
    async def violations(
        self,
        account_id: UUID,
        *,
        ref: str | None,
        details: list[str],
        week_type: str | None,
        source: str,
    ) -> int: ...

    # Events
    def emit(self, event: Payload, *, subject: str | None = None) -> None: ...
    def balance_changed(self, account: Account, tx: LedgerRow) -> None: ...
