"""Thin command handlers: load (locked) -> pure domain decision -> store -> events."""

from dataclasses import asdict, replace
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.account import growth, store
from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    Allocation,
    BalanceChange,
    apply_overrides,
    decide_close,
    decide_deposit,
    decide_status_change,
    decide_withdrawal,
    ensure_active,
    plan_initialization,
)
from services.account.events import Out, snapshot
from services.account.unit import Batch
from shared.contracts import account as c
from shared.infra.messaging import Rejected


async def locked(conn: asyncpg.Connection, account_id: UUID) -> tuple[Account, dict[str, Any]]:
    found = await store.lock_account(conn, account_id=account_id)
    if found is None:
        raise Rejected("unknown_account", f"no account {account_id}", subject=str(account_id))
    return found


async def initialize(batch: Batch, p: c.InitializeSystem, out: Out) -> None:
    shares = p.allocation or {}
    custom = (
        Allocation(**{t.value: shares.get(t.value, Decimal(0)) for t in AccountType})
        if shares
        else None
    )
    settings = await store.growth_settings(await batch.sql())  # the run-time catalog
    plan = plan_initialization(
        p.total_capital, p.template, p.strategy, custom,
        cash_buffer_pct=p.cash_buffer_pct, risk_profile=p.risk_profile, catalog=settings.catalog,
    )  # fmt: skip
    portfolio_id = uuid4()
    risk = {k: str(v) for k, v in asdict(plan.risk_profile).items()}
    batch.new_portfolio(
        portfolio_id=portfolio_id, name=p.name or "ALL-USE portfolio",
        template=plan.template, strategy=plan.strategy, risk=risk,
    )  # fmt: skip
    created = []
    for planned in plan.accounts:
        account = _new_account(portfolio_id, planned.type, planned.initial_balance, planned.config)
        row = batch.new_account(account, name=f"{p.name or 'ALL-USE'} {planned.type.value}")
        created.append(snapshot(account, row))
    out.emit("alluse.system.initialized", {
        "portfolio_id": str(portfolio_id), "total_capital": str(plan.total_capital),
        "template": plan.template, "strategy": plan.strategy, "risk_level": plan.risk_level.value,
        "cash_buffer_total": str(plan.total_buffer), "available_total": str(plan.total_available),
        "accounts": created,
    })  # fmt: skip
    for snap in created:
        out.emit("alluse.account.created", {"account": snap}, subject=snap["id"])


async def create(batch: Batch, p: c.CreateAccount, out: Out) -> None:
    if p.initial_balance < 0:
        raise Rejected("invalid_amount", "initial_balance must not be negative")
    account_type = AccountType(p.type)
    config = apply_overrides(AccountConfig.for_type(account_type), p.config)
    portfolio_id = p.portfolio_id or uuid4()
    if p.portfolio_id is None:
        batch.new_portfolio(portfolio_id=portfolio_id, name=p.name or "portfolio")
    else:
        held = await store.portfolio_types(await batch.sql(), portfolio_id=portfolio_id)
        if held is None:
            raise Rejected("unknown_portfolio", f"no portfolio {portfolio_id}")
        if p.type in held:
            raise Rejected(
                "account_type_exists", f"portfolio {portfolio_id} already has a {p.type} account"
            )
    account = _new_account(portfolio_id, account_type, p.initial_balance, config)
    row = batch.new_account(account, name=p.name or p.type)
    out.emit("alluse.account.created", {"account": snapshot(account, row)}, subject=str(account.id))


async def update(conn: asyncpg.Connection, p: c.UpdateAccount, out: Out) -> None:
    account, row = await locked(conn, p.account_id)
    if account.status in (AccountStatus.CLOSED, AccountStatus.MERGED):
        ensure_active(account)
    config = apply_overrides(account.config, p.config)
    name = p.name if p.name is not None else row["name"]
    await store.update_account(conn, account_id=account.id, name=name, config=config)
    changes = {"name": p.name, "config": p.config} if p.name is not None else {"config": p.config}
    updated = replace(account, config=config)
    out.emit(
        "alluse.account.updated",
        {
            "account_id": str(account.id),
            "account": snapshot(updated, {**row, "name": name}),
            "changes": changes,
        },
        subject=str(account.id),
    )


async def deposit(batch: Batch, p: c.MoveMoney, out: Out) -> None:
    account, _ = await batch.locked(p.account_id)
    effect = decide_deposit(account, p.amount)
    await book(batch, effect, out, description=p.description or "deposit", reference=p.reference)


async def withdraw(batch: Batch, p: c.MoveMoney, out: Out) -> None:
    account, _ = await batch.locked(p.account_id)
    effect = decide_withdrawal(account, p.amount)
    await book(batch, effect, out, description=p.description or "withdrawal", reference=p.reference)


async def book(
    batch: Batch, effect: BalanceChange, out: Out, *, description: str,
    reference: str | None = None, week_type: str | None = None,
) -> Account:  # fmt: skip
    """Write one balance change, announce it, and watch for a fork or merge it may cause."""
    after, tx = batch.change(
        effect, description=description, reference=reference, week_type=week_type
    )
    out.balance_changed(after, tx)
    if growth.needs_watch(after, batch.accounts[after.id][1]):
        await growth.after_balance_change(await batch.sql(), after, out)
        batch.forget()  # a fork or merge wrote by SQL of its own
    return after


async def set_status(conn: asyncpg.Connection, p: c.SetStatus, out: Out) -> None:
    account, _ = await locked(conn, p.account_id)
    await _move(
        conn, account, decide_status_change(account, AccountStatus(p.status)), p.reason, out
    )


async def close(conn: asyncpg.Connection, p: c.CloseAccount, out: Out) -> None:
    account, _ = await locked(conn, p.account_id)
    await _move(conn, account, decide_close(account), p.reason, out)


async def _move(
    conn: asyncpg.Connection, account: Account, to: AccountStatus, reason: str, out: Out
) -> None:
    await store.set_status(conn, account_id=account.id, status=to)
    subject = str(account.id)
    out.emit(
        "alluse.account.status_changed",
        {
            "account_id": subject,
            "from_status": account.status.value,
            "to_status": to.value,
            "reason": reason,
        },
        subject=subject,
    )
    if to is AccountStatus.CLOSED:
        out.emit(
            "alluse.account.closed", {"account_id": subject, "reason": reason}, subject=subject
        )


def _new_account(
    portfolio_id: UUID, account_type: AccountType, balance: Any, config: AccountConfig
) -> Account:
    return Account(
        id=uuid4(), portfolio_id=portfolio_id, type=account_type, status=AccountStatus.ACTIVE,
        balance=balance, contributed_capital=balance, baseline=balance, config=config,
    )  # fmt: skip
