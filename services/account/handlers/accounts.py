"""Thin command handlers: load (locked) -> pure domain decision -> unit of work -> events.

Every handler has one shape, `(uow, payload) -> None`, and reaches state only through `uow`.
"""

from dataclasses import asdict, replace
from decimal import Decimal
from uuid import UUID, uuid4

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    Allocation,
    BalanceChange,
    apply_overrides,
    check_new_account,
    decide_close,
    decide_deposit,
    decide_status_change,
    decide_withdrawal,
    ensure_open,
    plan_initialization,
)
from services.account.domain.growth import needs_watch
from services.account.handlers import growth
from services.account.handlers.events import snapshot
from services.account.state.port import LedgerRow, Unit
from shared.contracts import account as c
from shared.contracts import lifecycle as e


async def initialize(uow: Unit, p: c.InitializeSystem) -> None:
    shares = p.allocation or {}
    custom = (
        Allocation(**{t.value: shares.get(t.value, Decimal(0)) for t in AccountType})
        if shares
        else None
    )
    settings = await uow.growth.growth_settings()  # the run-time catalog
    plan = plan_initialization(
        p.total_capital,
        p.template,
        p.strategy,
        custom,
        cash_buffer_pct=p.cash_buffer_pct,
        risk_profile=p.risk_profile,
        catalog=settings.catalog,
    )
    portfolio_id = uuid4()
    risk = {k: str(v) for k, v in asdict(plan.risk_profile).items()}
    uow.add_portfolio(
        portfolio_id=portfolio_id,
        name=p.name or "ALL-USE portfolio",
        template=plan.template,
        strategy=plan.strategy,
        risk=risk,
    )
    created = []
    for planned in plan.accounts:
        account = _new_account(portfolio_id, planned.type, planned.initial_balance, planned.config)
        row = uow.add_account(account, name=f"{p.name or 'ALL-USE'} {planned.type.value}")
        created.append(snapshot(account, row.name))
    uow.emit(
        e.SystemInitialized(
            portfolio_id=str(portfolio_id),
            total_capital=plan.total_capital,
            template=plan.template,
            strategy=plan.strategy,
            risk_level=plan.risk_level.value,
            cash_buffer_total=plan.total_buffer,
            available_total=plan.total_available,
            accounts=created,
        )
    )
    for snap in created:
        uow.emit(e.AccountCreated(account=snap), subject=snap.id)


async def create(uow: Unit, p: c.CreateAccount) -> None:
    account_type = AccountType(p.type)
    portfolio_id = p.portfolio_id or uuid4()
    held = (
        set()
        if p.portfolio_id is None
        else await uow.accounts.portfolio_types(portfolio_id=portfolio_id)
    )
    check_new_account(account_type, p.initial_balance, portfolio=str(portfolio_id), held=held)
    config = apply_overrides(AccountConfig.for_type(account_type), p.config)
    if p.portfolio_id is None:
        uow.add_portfolio(portfolio_id=portfolio_id, name=p.name or "portfolio")
    account = _new_account(portfolio_id, account_type, p.initial_balance, config)
    row = uow.add_account(account, name=p.name or p.type)
    uow.emit(e.AccountCreated(account=snapshot(account, row.name)), subject=str(account.id))


async def update(uow: Unit, p: c.UpdateAccount) -> None:
    account, row = await uow.account(p.account_id)
    ensure_open(account)
    config = apply_overrides(account.config, p.config)
    name = p.name if p.name is not None else row.name
    await uow.accounts.update_account(account_id=account.id, name=name, config=config)
    changes = {"name": p.name, "config": p.config} if p.name is not None else {"config": p.config}
    after = snapshot(replace(account, config=config), name)
    uow.emit(
        e.AccountUpdated(account_id=str(account.id), changes=changes, account=after),
        subject=str(account.id),
    )


async def deposit(uow: Unit, p: c.MoveMoney) -> None:
    account, _ = await uow.account(p.account_id)
    effect = decide_deposit(account, p.amount)
    await book(uow, effect, description=p.description or "deposit", reference=p.reference)


async def withdraw(uow: Unit, p: c.MoveMoney) -> None:
    account, _ = await uow.account(p.account_id)
    effect = decide_withdrawal(account, p.amount)
    await book(uow, effect, description=p.description or "withdrawal", reference=p.reference)


async def book(
    uow: Unit,
    effect: BalanceChange,
    *,
    description: str,
    reference: str | None = None,
    week_type: str | None = None,
) -> tuple[Account, LedgerRow]:
    """Write one balance change, announce it, and watch for a fork or merge it may cause;
    returns the account after it and its ledger row."""
    after, tx = uow.book(effect, description=description, reference=reference, week_type=week_type)
    uow.balance_changed(after, tx)
    _, row = await uow.account(after.id)
    child, flagged = row.parent_id is not None, row.fork_eligible
    if needs_watch(after, in_child_portfolio=child, flagged_eligible=flagged):
        await growth.after_balance_change(uow, after)
    return after, tx


async def set_status(uow: Unit, p: c.SetStatus) -> None:
    account, _ = await uow.account(p.account_id)
    await _move(uow, account, decide_status_change(account, AccountStatus(p.status)), p.reason)


async def close(uow: Unit, p: c.CloseAccount) -> None:
    account, _ = await uow.account(p.account_id)
    await _move(uow, account, decide_close(account), p.reason)


async def _move(uow: Unit, account: Account, to: AccountStatus, reason: str) -> None:
    await uow.accounts.set_status(account_id=account.id, status=to)
    subject = str(account.id)
    uow.emit(
        e.AccountStatusChanged(
            account_id=subject, from_status=account.status.value, to_status=to.value, reason=reason
        ),
        subject=subject,
    )
    if to is AccountStatus.CLOSED:
        uow.emit(e.AccountClosed(account_id=subject, reason=reason), subject=subject)


def _new_account(
    portfolio_id: UUID, account_type: AccountType, balance: Decimal, config: AccountConfig
) -> Account:
    return Account(
        id=uuid4(),
        portfolio_id=portfolio_id,
        type=account_type,
        status=AccountStatus.ACTIVE,
        balance=balance,
        contributed_capital=balance,
        baseline=balance,
        config=config,
    )
