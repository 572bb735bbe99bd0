"""In-memory repositories of the fake unit of work: the statements of services/account/store and
position_store, under the same names and keywords, on state the fake unit keeps."""

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from services.account.domain import Account, AccountConfig, AccountStatus, TransactionType
from services.account.domain.marks import Quote
from services.account.domain.positions import Holding, Move
from services.account.domain.reversal import Entry
from services.account.domain.settings import GrowthSettings
from services.account.state.store.accounts import AccountRow, PortfolioRow, config_json

if TYPE_CHECKING:
    from tests.support.fake_unit import FakeUnit

Row = dict[str, Any]
LIVE = {AccountStatus.ACTIVE, AccountStatus.INACTIVE, AccountStatus.SUSPENDED}


def account_row(account: Account, row: AccountRow) -> Row:
    """An account as store.reads returns it (what store.accounts.to_account reads back)."""
    return {
        "id": account.id,
        "portfolio_id": account.portfolio_id,
        "type": account.type.value,
        "status": account.status.value,
        "name": row.name,
        "balance": account.balance,
        "contributed": account.contributed_capital,
        "baseline": account.baseline,
        "config": config_json(account.config),
    }


class Repository:
    def __init__(self, unit: "FakeUnit") -> None:
        self.u = unit


class Accounts(Repository):
    async def portfolio_types(self, *, portfolio_id: UUID) -> set[str] | None:
        return self.u.portfolios.get(portfolio_id)

    async def update_account(self, *, account_id: UUID, name: str, config: AccountConfig) -> None:
        self.u.set_account(account_id, config=config)
        account, row = self.u.stored[account_id]
        self.u.stored[account_id] = (account, replace(row, name=name))

    async def set_status(self, *, account_id: UUID, status: AccountStatus) -> None:
        self.u.set_account(account_id, status=status)

    async def flag_fork_eligible(self, *, account_id: UUID, eligible: bool) -> bool:
        account, row = self.u.stored[account_id]
        self.u.stored[account_id] = (account, replace(row, fork_eligible=eligible))
        return row.fork_eligible != eligible

    async def get_portfolio(self, *, portfolio_id: UUID, lock: bool = False) -> PortfolioRow | None:
        return self.u.portfolio_rows.get(portfolio_id)

    async def lock_portfolio_accounts(self, *, portfolio_id: UUID) -> list[Account]:
        return [a for a, _ in self.u.stored.values() if a.portfolio_id == portfolio_id]

    async def lock_live_accounts(self, *, account_type: str | None) -> list[Row]:
        return [
            {"id": a.id, **account_row(a, r)}
            for a, r in self.u.stored.values()
            if a.status in LIVE and account_type in (None, a.type.value)
        ]

    async def get_account(self, *, account_id: UUID) -> Row | None:
        found = self.u.stored.get(account_id)
        return None if found is None else account_row(*found)

    async def tree_accounts(self, *, portfolio_ids: list[UUID]) -> list[Row]:
        return [
            account_row(a, r) for a, r in self.u.stored.values() if a.portfolio_id in portfolio_ids
        ]


class Ledger(Repository):
    async def effective_now(self) -> datetime:
        return self.u.at


class Growth(Repository):
    async def growth_settings(self) -> GrowthSettings:
        return self.u.settings

    async def save_growth_settings(self, *, settings: GrowthSettings, command_id: str) -> None:
        self.u.settings = settings
        self.u.saved_settings.append(command_id)

    async def fork_times(
        self, *, account_id: UUID, root_id: UUID
    ) -> tuple[datetime | None, list[datetime]]:
        mine = [f["at"] for f in self.u.forks if f["parent"] == account_id]
        return (max(mine) if mine else None), [
            f["at"] for f in self.u.forks if f["root"] == root_id
        ]

    async def insert_fork(
        self,
        *,
        child: UUID,
        parent_account: Account,
        root_id: UUID,
        plan: Any,
        automatic: bool,
        command_id: str,
    ) -> datetime:
        self.u.forks.append(
            {
                "child": child,
                "parent": parent_account.id,
                "root": root_id,
                "plan": plan,
                "automatic": automatic,
                "at": self.u.at,
            }
        )
        return self.u.at

    async def merge_target(self, *, portfolio_id: UUID) -> UUID | None:
        """The Com-Acc of the nearest ancestor portfolio that has a live one."""
        parent = self.u.portfolio_rows[portfolio_id].parent_id
        while parent is not None:
            for a, _ in self.u.stored.values():
                if a.portfolio_id == parent and a.type.value == "compounding" and a.status in LIVE:
                    return a.id
            parent = self.u.portfolio_rows[parent].parent_id
        return None

    async def insert_merge(
        self, *, child: UUID, target: Account, total: Decimal, automatic: bool, command_id: str
    ) -> datetime:
        self.u.merges.append({"child": child, "target": target.id, "total": total})
        return self.u.at

    async def reinvesting_accounts(self) -> list[UUID]:
        return [
            a.id
            for a, _ in self.u.stored.values()
            if a.status in LIVE and a.type.value == "revenue"
        ]

    async def trading_rows(
        self, *, account_id: UUID, start: datetime, end: datetime
    ) -> list[tuple[TransactionType, Decimal]]:
        return [
            (TransactionType(t["type"]), t["amount"])
            for t in self.u.transactions
            if t["account_id"] == account_id and start <= t["created_at"] < end
        ]

    async def insert_reinvestment(
        self,
        *,
        account_id: UUID,
        period: Any,
        allocation: Any,
        contracts_pct: Decimal,
        command_id: str,
    ) -> bool:
        key = (account_id, period.quarter)
        if key in self.u.reinvested:
            return False
        self.u.reinvested[key] = {"allocation": allocation, "command_id": command_id}
        return True

    async def reinvestment_done(self, *, account_id: UUID, quarter: str) -> bool:
        return (account_id, quarter) in self.u.reinvested


class PositionStore(Repository):
    async def marked_holdings(self, *, account_id: UUID) -> tuple[list[Holding], dict[str, Quote]]:
        held = [h for (a, _), h in self.u.holdings.items() if a == account_id]
        marks = {
            h.contract.key: self.u.quotes[h.contract.key]
            for h in held
            if h.contract.key in self.u.quotes
        }
        return held, marks

    async def holdings(self, *, account_id: UUID) -> list[Holding]:
        return [h for (a, _), h in self.u.holdings.items() if a == account_id]

    async def quotes(self, *, symbols: list[str], at: datetime | None = None) -> dict[str, Quote]:
        return {s: self.u.quotes[s] for s in symbols if s in self.u.quotes}

    async def save_quote(
        self,
        *,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        last: Decimal,
        as_of: datetime,
        retention_days: int,
    ) -> None:
        self.u.quotes[symbol] = Quote(bid, ask, last)

    async def holders(self, *, contract: str, limit: int) -> list[UUID]:
        return sorted({a for (a, k), h in self.u.holdings.items() if k == contract and h.quantity})[
            :limit
        ]

    async def drop_quote_points(self, *, account_ids: list[UUID]) -> None:
        pass  # the fake keeps each account's last value only

    async def entry(self, *, transaction_id: int) -> tuple[UUID, Entry] | None:
        for t in self.u.transactions:
            if t["id"] == transaction_id:
                reverses = next(
                    (o for o, r in self.u.reversals.items() if r == transaction_id), None
                )
                entry = Entry(
                    transaction_id,
                    TransactionType(t["type"]),
                    t["amount"],
                    reverses,
                    self.u.reversals.get(transaction_id),
                )
                return t["account_id"], entry
        return None

    async def moves_of(self, *, transaction_id: int) -> list[tuple[Holding, Move]]:
        out = []
        for tx, _, m in self.u.moves:
            if tx == transaction_id:
                account = next(t["account_id"] for t in self.u.transactions if t["id"] == tx)
                now = self.u.holdings.get((account, m.contract.key), Holding(m.contract))
                out.append((now, m))
        return out

    async def mark_reversal(self, *, transaction_id: int, reverses: int, reason: str) -> None:
        self.u.reversals[reverses] = transaction_id

    async def holdings_at(self, *, account_id: UUID, at: datetime) -> list[Holding]:
        return (await self.marked_holdings(account_id=account_id))[0]
