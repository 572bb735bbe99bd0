"""The account service's domain events, collected per command for the outbox."""

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

from services.account.domain import Account, config_to_dict
from shared.contracts.envelope import CloudEvent, new_event
from shared.contracts.streams import ACCOUNT_EVENTS, Streams
from shared.infra.messaging import Emit

SOURCE = "alluse/account-service"
_NS = uuid.UUID("6f1c5b8e-2d1e-4c7a-9b57-0a4f3c2e9d10")


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


@dataclass
class Out:
    """Events one command causes. Ids derive from the command's key, so they are stable."""

    cause: CloudEvent
    streams: Streams
    events: list[Emit] = field(default_factory=list)

    def emit(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        subject: str | None = None,
        stream: str = ACCOUNT_EVENTS,
    ) -> None:
        event_id = uuid.uuid5(_NS, f"{self.cause.source}|{self.cause.id}|{len(self.events)}")
        fields = new_event(
            type_, SOURCE, data, subject=subject, cause=self.cause, event_id=str(event_id)
        )
        self.events.append((self.streams.key(stream), fields))

    def balance_changed(self, account: Account, tx: dict[str, Any]) -> None:
        data = {
            "account_id": str(account.id),
            "transaction": transaction(tx),
            "balance": str(account.balance),
            "available": str(account.available),
            "cash_buffer": str(account.cash_buffer),
        }
        self.emit("alluse.account.balance_changed", data, subject=str(account.id))
