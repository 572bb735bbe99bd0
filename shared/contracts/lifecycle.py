"""The `data` of each event on the public `alluse.account.lifecycle` stream, version 1.

The services build every lifecycle event as one of these models, so an event is checked where
it is made; its wire `data` is the model's JSON (`wire_data`). Models allow extra fields when
read: adding a field is a compatible change within a version; removing or retyping one needs a
new version (a new `dataschema` URI). Amounts are decimal strings on the wire."""

from decimal import Decimal
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from shared.contracts.money import LIMIT, _as_string, parse_money
from shared.contracts.upstream import Ratio, WeekType, _decimal_string


def _amount(value: Any) -> Decimal:
    """A Decimal from the service that states it, or a string read back from the wire: either
    way, what goes on the wire is its string, held to the wire's own rule (canonical, cents).
    Only a Decimal object is taken as is, never a JSON number: read with the standard parser
    (the JSON Schema is what consumers check), a number is a float and is refused."""
    if isinstance(value, Decimal):
        # Whole to cents: exactly the Decimals whose str() is canonical (no exponent), checked
        # without spelling and parsing it again (every event states a few amounts).
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -2 <= exponent <= 0 and abs(value) < LIMIT:
            return value
        return parse_money(str(value))  # refused, with the wire's own words
    return parse_money(value)


Amount = Annotated[Decimal, BeforeValidator(_amount), _as_string, _decimal_string(2)]

SCHEMA_BASE = "https://schemas.alluse.dev/lifecycle"


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class AccountSnapshot(Payload):
    id: str
    portfolio_id: str
    type: str = Field(description="generation | revenue | compounding")
    status: str
    name: str
    balance: Amount
    cash_buffer: Amount
    available: Amount
    contributed_capital: Amount | None = Field(
        default=None, description="funding plus deposits less withdrawals: the buffer's base"
    )
    baseline: Amount | None = Field(default=None, description="the fork baseline (Gen-Acc)")
    config: dict[str, Any] | None = Field(default=None, description="the account's settings")


class TransactionRecord(Payload):
    id: str
    type: str = Field(
        description="deposit | withdrawal | trade_premium (options) | trade_assignment"
        " | trade_shares (shares bought or sold by a fill) | fee | reinvestment | fork_transfer"
        " | merge_transfer | cash_buffer_adjustment"
    )
    amount: Amount = Field(description="signed: credits positive, debits negative")
    description: str | None = None
    week_type: WeekType | None = None
    balance_after: Amount | None = None
    reference: str | None = None
    created_at: str | None = Field(default=None, description="business time, RFC 3339")


class SystemInitialized(Payload):
    portfolio_id: str
    accounts: list[AccountSnapshot]
    total_capital: Amount | None = None
    template: str | None = None
    strategy: str | None = None
    risk_level: str | None = Field(default=None, description="low | medium | high")
    cash_buffer_total: Amount | None = None
    available_total: Amount | None = None


class AccountCreated(Payload):
    account: AccountSnapshot


class AccountUpdated(Payload):
    account_id: str
    changes: dict[str, Any] = Field(default_factory=dict, description="field -> new value")
    account: AccountSnapshot | None = Field(default=None, description="the account after it")


class AccountStatusChanged(Payload):
    account_id: str
    from_status: str
    to_status: str
    reason: str | None = None


class BalanceChanged(Payload):
    account_id: str
    transaction: TransactionRecord
    balance: Amount
    available: Amount
    cash_buffer: Amount


class AccountClosed(Payload):
    account_id: str
    reason: str | None = None
    final_balance: Amount | None = None


class ForkEligible(Payload):
    account_id: str
    portfolio_id: str
    balance: Amount
    baseline: Amount = Field(
        description="the capital the Gen-Acc was funded with, or its post-fork balance"
    )
    surplus: Amount
    fork_threshold: Amount


class AccountForked(Payload):
    account_id: str = Field(description="the Gen-Acc whose surplus seeded the fork")
    portfolio_id: str
    child_portfolio_id: str
    child_accounts: dict[str, str] = Field(
        description="account type -> id of the child's new accounts"
    )
    surplus: Amount
    to_generation: Amount
    to_compounding: Amount
    parent_balance: Amount = Field(description="the parent Gen-Acc after the fork: its baseline")
    automatic: bool
    at: str = Field(description="business time, RFC 3339")


class AccountMerged(Payload):
    portfolio_id: str = Field(description="the child portfolio folded back")
    target_portfolio_id: str
    target_account_id: str = Field(description="the parent portfolio's Com-Acc")
    total: Amount
    accounts: list[str] = Field(description="the child accounts, now merged")
    automatic: bool
    at: str = Field(description="business time, RFC 3339")


class AccountReinvested(Payload):
    account_id: str
    quarter: str = Field(description="e.g. 2026-Q4")
    net_income: Amount
    contracts_amount: Amount
    leaps_amount: Amount
    period_start: str
    period_end: str


class ReinvestmentCompleted(Payload):
    quarter: str
    reinvested: int
    already_reinvested: int


class ConfigUpdated(Payload):
    growth: dict[str, Any]
    templates: dict[str, Any] = Field(description="the template catalog after the change")
    strategies: dict[str, Any] = Field(description="the strategy catalog after the change")
    changes: dict[str, Any]
    account_type: str | None = None
    accounts_updated: int


class ProtocolViolation(Payload):
    account_id: str
    trade_ref: str | None = None
    violations: list[str] = Field(
        description="each breach, prefixed by its rule: entry_day, delta, week_type, or WS2's own text"
    )
    source: str = Field(description="platform (our checks on the fill) or ws2 (a WS2 verdict)")
    week_type: WeekType | None = None
    violation_count: int = Field(description="the account's violations so far")
    adherence_score: Ratio = Field(description="100 less 5 per violation, never below 0")


class DrawdownBreached(Payload):
    account_id: str
    drawdown_pct: Ratio
    max_drawdown_pct: Ratio
    total_value: Amount | None = None
    peak_value: Amount | None = None
    cash: Amount | None = None
    positions_value: Amount | None = None
    as_of: str | None = Field(default=None, description="business time, RFC 3339")


class PositionChanged(Payload):
    account_id: str
    contract: str = Field(description="the ticker for shares, the OCC option symbol for an option")
    symbol: str
    kind: str = Field(description="put | call | shares")
    strike: str | None = None
    expiration: str | None = Field(default=None, description="date, YYYY-MM-DD")
    multiplier: int
    change: int = Field(description="signed change of the quantity (short is negative)")
    cost_change: Amount
    quantity: int = Field(description="contracts or shares held after the change, signed")
    cost: Amount = Field(description="signed cost basis of what is still open")
    cause: str = Field(description="fill | assignment | expiration | reversal | merge")
    reference: str | None = Field(default=None, description="the fill, assignment or expiration id")
    transaction_id: str | None = Field(
        default=None, description="the ledger row booked with it; none for an expiration"
    )


class ValuationMismatch(Payload):
    account_id: str
    own_positions_value: Amount = Field(description="the platform's own marks")
    broker_positions_value: Amount = Field(description="WS4's ws4.account.valuation figure")
    difference: Amount = Field(description="broker less own")
    tolerance: Amount
    tolerance_pct: Ratio | None = Field(default=None, description="the setting it came from")
    cash: Amount | None = None
    as_of: str


class AccountReversed(Payload):
    account_id: str
    transaction_id: str = Field(description="the new, opposite ledger row")
    reverses: str = Field(description="the ledger row it reverses")
    type: str
    amount: Amount
    reason: str
    balance: Amount
    positions_undone: int | None = Field(default=None, description="position moves undone")


class WeekChanged(Payload):
    week_start: str = Field(description="date, YYYY-MM-DD")
    week_type: WeekType
    confidence: Ratio
    previous_week_type: WeekType | None = None


class CommandRejected(Payload):
    code: str = Field(description="machine-readable, e.g. invalid_payload, unknown_account")
    reason: str
    command_type: str
    command_id: str


LIFECYCLE_TYPES: dict[str, type[Payload]] = {
    "alluse.system.initialized": SystemInitialized,
    "alluse.account.created": AccountCreated,
    "alluse.account.updated": AccountUpdated,
    "alluse.account.status_changed": AccountStatusChanged,
    "alluse.account.balance_changed": BalanceChanged,
    "alluse.account.closed": AccountClosed,
    "alluse.account.fork_eligible": ForkEligible,
    "alluse.account.forked": AccountForked,
    "alluse.account.merged": AccountMerged,
    "alluse.account.reinvested": AccountReinvested,
    "alluse.account.reinvestment_completed": ReinvestmentCompleted,
    "alluse.config.updated": ConfigUpdated,
    "alluse.account.protocol_violation": ProtocolViolation,
    "alluse.account.drawdown_breached": DrawdownBreached,
    "alluse.account.position_changed": PositionChanged,
    "alluse.account.valuation_mismatch": ValuationMismatch,
    "alluse.account.reversed": AccountReversed,
    "alluse.week.changed": WeekChanged,
    "alluse.command.rejected": CommandRejected,
}
VERSION = 1
EVENT_TYPES: dict[type[Payload], str] = {model: name for name, model in LIFECYCLE_TYPES.items()}


def wire_data(event: Payload) -> tuple[str, dict[str, Any]]:
    """An event's type and its `data` as JSON values: the fields its maker set, money as
    strings. Refuses anything but a lifecycle model, and fields the contract does not name (at
    the source, an extra field is a misspelt one)."""
    if type(event) not in EVENT_TYPES:
        raise TypeError(f"a lifecycle event is one of the contract's models, not {type(event)}")
    extra = sorted(_extras(event))
    if extra:
        raise ValueError(f"{type(event).__name__} has no field {', '.join(extra)}")
    return EVENT_TYPES[type(event)], event.model_dump(mode="json", exclude_unset=True)


def _extras(model: BaseModel) -> set[str]:
    """Names no model declares, at any depth (an account snapshot inside an event too)."""
    found = set(model.__pydantic_extra__ or ())
    for name in _NESTED.get(type(model), ()):
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found |= {f"{name}.{x}" for x in _extras(item)}
    return found


def _holds_models(annotation: Any) -> bool:
    """Whether a field's type is a model, or a list or optional of one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_models(arg) for arg in get_args(annotation))


# The fields that hold models, per event and model inside one: where `_extras` has to look.
_MODELS: list[type[Payload]] = [*EVENT_TYPES, AccountSnapshot, TransactionRecord]
_NESTED: dict[type[BaseModel], tuple[str, ...]] = {
    model: tuple(n for n, f in model.model_fields.items() if _holds_models(f.annotation))
    for model in _MODELS
}


def dataschema(event_type: str) -> str:
    """The CloudEvents `dataschema` of a lifecycle type: its versioned JSON Schema's URI."""
    return f"{SCHEMA_BASE}/{event_type}/{VERSION}.json"


def json_schema(event_type: str) -> dict[str, Any]:
    schema = LIFECYCLE_TYPES[event_type].model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": dataschema(event_type),
        **schema,
    }
