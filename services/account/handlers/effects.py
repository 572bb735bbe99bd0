"""Effects of upstream trading events, forwarded by the integration service (docs/rules.md sections
8-9): their payloads, WS2's verdicts, and the protocol violations every effect may record.

The money moves as it moved at the broker; protocol breaches are recorded and announced,
never a reason to drop the money (fills, assignments, expirations: services/account/handlers/trades.py;
quotes and valuations: services/account/handlers/valuation.py).
"""

from typing import Any
from uuid import UUID

from services.account.domain import UnknownAccount, adherence_score
from services.account.state.port import Unit
from shared.contracts import lifecycle as e
from shared.contracts import upstream as u


class TradeEffect(u.TradeFilled):
    week_type: u.WeekType | None = None


class AssignmentEffect(u.OptionAssigned):
    week_type: u.WeekType | None = None


class ValuationEffect(u.AccountValuation):
    week_type: u.WeekType | None = None


class ValidationEffect(u.ProtocolValidated):
    pass


class ExpirationEffect(u.OptionExpired):
    week_type: u.WeekType | None = None


class QuoteEffect(u.MarketQuote):
    week_type: u.WeekType | None = None


async def protocol_validated(uow: Unit, p: ValidationEffect) -> None:
    account, _ = await uow.account(uuid_of(p.account_id))
    if not p.compliant:
        details = list(p.violations) or ["non-compliant"]
        await violations(uow, account.id, p.trade_ref, details, p.week_type, "ws2")


async def violations(
    uow: Unit, account_id: UUID, ref: str, details: list[str], week_type: str | None, source: str
) -> None:
    count = await uow.violations(
        account_id, ref=ref, details=details, week_type=week_type, source=source
    )
    uow.emit(
        e.ProtocolViolation(
            account_id=str(account_id),
            trade_ref=ref,
            violations=details,
            week_type=week_type,
            source=source,
            violation_count=count,
            adherence_score=adherence_score(count),
        ),
        subject=str(account_id),
    )


def fingerprint(p: Any) -> str:
    return str(p.model_dump_json(exclude={"week_type"}))


def uuid_of(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise UnknownAccount(f"no account {value}", subject=value) from None
