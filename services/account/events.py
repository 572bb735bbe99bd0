"""What the account service's events say: accounts and ledger rows as consumers see them."""

import functools
from typing import Any

from services.account.domain import Account, config_to_dict

SOURCE = "alluse/account-service"


# Read-only and shared: accounts have few distinct configurations.
_config = functools.lru_cache(maxsize=1024)(config_to_dict)


def snapshot(account: Account, row: dict[str, Any]) -> dict[str, Any]:
    """An account as consumers see it; money as strings."""
    return {
        "id": str(account.id),
        "portfolio_id": str(account.portfolio_id),
        "type": account.type.value,
        "status": account.status.value,
        "name": row["name"],
        "balance": str(account.balance),
        "cash_buffer": str(account.cash_buffer),
        "available": str(account.available),
        "contributed_capital": str(account.contributed_capital),
        "baseline": str(account.baseline),
        "config": _config(account.config),
    }


def transaction(tx: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(tx["id"]),
        "type": tx["type"],
        "amount": str(tx["amount"]),
        "balance_after": str(tx["balance_after"]),
        "description": tx["description"],
        "reference": tx["reference"],
        "week_type": tx["week_type"],
        "created_at": tx["created_at"].isoformat(),
    }


def balance_changed(account: Account, tx: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": str(account.id),
        "transaction": transaction(tx),
        "balance": str(account.balance),
        "available": str(account.available),
        "cash_buffer": str(account.cash_buffer),
    }
