"""What the account service's events say: accounts and ledger rows as consumers see them, built
as the lifecycle contract's models (shared/contracts/lifecycle.py), so each is checked here."""

import functools
from typing import Any

from services.account.domain import Account, config_to_dict
from services.account.state.store.ledger import LedgerRow
from shared.contracts import lifecycle as e

SOURCE = "alluse/account-service"


# Read-only and shared: accounts have few distinct configurations.
_config = functools.lru_cache(maxsize=1024)(config_to_dict)


def snapshot(account: Account, name: str) -> e.AccountSnapshot:
    """An account as consumers see it."""
    return e.AccountSnapshot(
        id=str(account.id),
        portfolio_id=str(account.portfolio_id),
        type=account.type.value,
        status=account.status.value,
        name=name,
        balance=account.balance,
        cash_buffer=account.cash_buffer,
        available=account.available,
        contributed_capital=account.contributed_capital,
        baseline=account.baseline,
        config=_config(account.config),
    )


def account_view(account: Account, name: str) -> dict[str, Any]:
    """The same account in a query's answer: the snapshot's JSON."""
    return snapshot(account, name).model_dump(mode="json")


def transaction(tx: LedgerRow) -> e.TransactionRecord:
    return e.TransactionRecord(
        id=str(tx.id),
        type=tx.type,
        amount=tx.amount,
        balance_after=tx.balance_after,
        description=tx.description,
        reference=tx.reference,
        week_type=tx.week_type,
        created_at=tx.created_at.isoformat(),
    )


def balance_changed(account: Account, tx: LedgerRow) -> e.BalanceChanged:
    return e.BalanceChanged(
        account_id=str(account.id),
        transaction=transaction(tx),
        balance=account.balance,
        available=account.available,
        cash_buffer=account.cash_buffer,
    )
