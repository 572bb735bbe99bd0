"""Forks and merges (docs/rules.md sections 4-5): automatic after balance changes, and on operator
command.

Each fork and each merge is a handful of writes in the command's savepoint, so it happens
entirely or not at all. An automatic fork runs in a nested one (`uow.attempt()`): if it fails,
the balance change that triggered it still books, and the next change tries again.
"""

import logging
from dataclasses import replace
from decimal import Decimal
from uuid import UUID, uuid4

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    TransactionType,
)
from services.account.domain.errors import UnknownPortfolio
from services.account.domain.growth import (
    ForkCollateralLocked,
    ForkCoolingPeriod,
    ForkDailyLimit,
    MergeBlocked,
    NotAChildPortfolio,
    check_fork_guards,
    funding,
    is_fork_eligible,
    merge_due,
    needs_watch,
    plan_fork,
    plan_merge,
    surplus,
)
from services.account.domain.positions import collateral
from services.account.domain.settings import GrowthSettings
from services.account.handlers.events import snapshot
from services.account.state.holdings import hand_over, plan_handovers
from services.account.state.port import PortfolioRow, Unit
from services.account.state.store.accounts import to_account
from shared.contracts import account as c
from shared.contracts import lifecycle as e

log = logging.getLogger(__name__)


async def after_balance_change(uow: Unit, account: Account) -> None:
    """Watch a balance change: merge a child portfolio that is due, fork an eligible Gen-Acc.

    Runs after the change was booked, so it never rejects; a blocked fork waits for later.
    Nothing to do unless the domain says the change may cause one (`needs_watch`); handlers.book
    asks first, so a plain deposit does not come here at all.
    """
    _, row = await uow.account(account.id)
    child, flagged = row.parent_id is not None, row.fork_eligible
    if not needs_watch(account, in_child_portfolio=child, flagged_eligible=flagged):
        return
    portfolio = await uow.accounts.get_portfolio(portfolio_id=account.portfolio_id)
    assert portfolio is not None
    if portfolio.parent_id is not None and await _merge(uow, portfolio, automatic=True):
        return
    if account.type is not AccountType.GENERATION:
        return
    eligible = is_fork_eligible(account)
    if await uow.accounts.flag_fork_eligible(account_id=account.id, eligible=eligible) and eligible:
        uow.emit(
            e.ForkEligible(
                account_id=str(account.id),
                portfolio_id=str(account.portfolio_id),
                balance=account.balance,
                baseline=account.baseline,
                surplus=surplus(account),
                fork_threshold=account.config.fork_threshold,
            ),
            subject=str(account.id),
        )
    settings = await uow.growth.growth_settings() if eligible else None
    if settings is None or not settings.auto_fork:
        return
    try:
        async with uow.attempt():  # the fork is all or nothing on its own
            await _fork(uow, account, portfolio, settings, automatic=True)
    except (ForkCoolingPeriod, ForkDailyLimit, ForkCollateralLocked) as blocked:
        log.info("automatic fork of %s waits: %s", account.id, blocked.message)
    except Exception:
        log.exception("automatic fork of %s failed; retried at its next balance change", account.id)


async def fork(uow: Unit, p: c.ForkAccount) -> None:
    account, _ = await uow.account(p.account_id)
    portfolio = await uow.accounts.get_portfolio(portfolio_id=account.portfolio_id)
    assert portfolio is not None
    settings = await uow.growth.growth_settings()
    await _fork(uow, account, portfolio, settings, automatic=False)


async def merge(uow: Unit, p: c.MergePortfolio) -> None:
    portfolio = await uow.accounts.get_portfolio(portfolio_id=p.portfolio_id, lock=True)
    if portfolio is None:
        raise UnknownPortfolio(f"no portfolio {p.portfolio_id}")
    if portfolio.parent_id is None:
        raise NotAChildPortfolio(f"portfolio {p.portfolio_id} is a root: it has nowhere to merge")
    await _merge(uow, portfolio, automatic=False)


async def _fork(
    uow: Unit,
    parent: Account,
    portfolio: PortfolioRow,
    settings: GrowthSettings,
    *,
    automatic: bool,
) -> None:
    command_id = uow.command_id
    plan = plan_fork(
        parent,
        settings,
        collateral=collateral(await uow.position_store.holdings(account_id=parent.id)),
    )
    await uow.accounts.get_portfolio(
        portfolio_id=portfolio.root_id, lock=True
    )  # one tree's forks in turn
    last, recent = await uow.growth.fork_times(account_id=parent.id, root_id=portfolio.root_id)
    check_fork_guards(
        now=await uow.ledger.effective_now(),
        last_fork_of_account=last,
        tree_fork_times=recent,
        settings=settings,
    )
    com_config = await _sibling_config(uow, portfolio.id, AccountType.COMPOUNDING, parent.config)
    # Every check passed: from here on, only writes.
    child = uuid4()
    uow.add_portfolio(
        portfolio_id=child,
        name=f"{portfolio.name} / fork {str(child)[:8]}",
        template=portfolio.template,
        strategy=portfolio.strategy,
        risk=portfolio.risk,
        parent=portfolio,
    )
    after, tx = uow.book(
        plan.debit, description=f"fork: surplus to portfolio {child}", reference=str(child)
    )
    uow.balance_changed(after, tx)
    created = {}
    for account_type, amount, config in (
        (AccountType.GENERATION, plan.child_generation, parent.config),
        (AccountType.COMPOUNDING, plan.child_compounding, com_config),
    ):
        empty = Account(
            id=uuid4(),
            portfolio_id=child,
            type=account_type,
            status=AccountStatus.ACTIVE,
            balance=Decimal("0.00"),
            contributed_capital=Decimal("0.00"),
            baseline=Decimal("0.00"),
            config=config,
        )
        name = f"fork {str(child)[:8]} {account_type.value}"
        row = uow.add_account(empty, name=name, parent_id=portfolio.id)
        credit = funding(empty, TransactionType.FORK_TRANSFER, amount)
        funded, tx = uow.book(
            credit, description=f"fork from account {parent.id}", reference=str(parent.id)
        )
        uow.emit(e.AccountCreated(account=snapshot(funded, row.name)), subject=str(funded.id))
        uow.balance_changed(funded, tx)
        created[account_type.value] = str(funded.id)
    await uow.accounts.flag_fork_eligible(account_id=parent.id, eligible=False)
    at = await uow.growth.insert_fork(
        child=child,
        parent_account=parent,
        root_id=portfolio.root_id,
        plan=plan,
        automatic=automatic,
        command_id=command_id,
    )
    uow.emit(
        e.AccountForked(
            account_id=str(parent.id),
            portfolio_id=str(parent.portfolio_id),
            child_portfolio_id=str(child),
            child_accounts=created,
            surplus=plan.surplus,
            to_generation=plan.child_generation,
            to_compounding=plan.child_compounding,
            parent_balance=parent.baseline,
            automatic=automatic,
            at=at.isoformat(),
        ),
        subject=str(parent.id),
    )


async def _merge(uow: Unit, portfolio: PortfolioRow, *, automatic: bool) -> bool:
    """Fold the child portfolio into its nearest live ancestor's Com-Acc; False if not due."""
    command_id = uow.command_id
    accounts = await uow.accounts.lock_portfolio_accounts(portfolio_id=portfolio.id)
    live = [a for a in accounts if a.status is not AccountStatus.MERGED]
    if automatic and not merge_due(live):
        return False
    target_id = await uow.growth.merge_target(portfolio_id=portfolio.id)
    try:
        if not live:
            raise MergeBlocked(f"portfolio {portfolio.id} is merged already")
        if target_id is None:
            raise MergeBlocked(f"no ancestor of {portfolio.id} has a live Com-Acc")
        plan = plan_merge(live)
        handovers = await plan_handovers(uow, [a.id for a in live], target_id)
    except MergeBlocked as exc:
        if automatic:
            log.warning("automatic merge of %s blocked: %s", portfolio.id, exc.message)
            return False
        raise
    target, _ = await uow.account(target_id)
    for account in live:
        await uow.account(account.id)  # locked above; booked through the unit below
    # Every check passed: from here on, only writes.
    txs = {}
    for debit in plan.debits:
        after, tx = uow.book(
            debit, description=f"merge into account {target.id}", reference=str(target.id)
        )
        uow.balance_changed(after, tx)
        txs[after.id] = tx.id
    if plan.total:
        credit = funding(target, TransactionType.MERGE_TRANSFER, plan.total)
        after, tx = uow.book(
            credit,
            description=f"merge of portfolio {portfolio.id}",
            reference=str(portfolio.id),
        )
        uow.balance_changed(after, tx)
        txs[after.id] = tx.id
    # The positions go with the cash: shares with their cost basis, open options.
    await hand_over(uow, handovers, target_id=target.id, transactions=txs, ref=str(portfolio.id))
    for account, status in zip(live, plan.statuses, strict=True):
        await uow.accounts.set_status(account_id=account.id, status=status)
        uow.emit(
            e.AccountStatusChanged(
                account_id=str(account.id),
                from_status=account.status.value,
                to_status=status.value,
                reason="merged into the parent portfolio",
            ),
            subject=str(account.id),
        )
    at = await uow.growth.insert_merge(
        child=portfolio.id,
        target=target,
        total=plan.total,
        automatic=automatic,
        command_id=command_id,
    )
    uow.emit(
        e.AccountMerged(
            portfolio_id=str(portfolio.id),
            target_portfolio_id=str(target.portfolio_id),
            target_account_id=str(target.id),
            total=plan.total,
            accounts=[str(a.id) for a in live],
            automatic=automatic,
            at=at.isoformat(),
        ),
        subject=str(portfolio.id),
    )
    return True


async def _sibling_config(
    uow: Unit, portfolio_id: UUID, account_type: AccountType, fallback: AccountConfig
) -> AccountConfig:
    """The parent portfolio's account of that type passes its configuration on to the child's."""
    for row in await uow.accounts.tree_accounts(portfolio_ids=[portfolio_id]):
        if row["type"] == account_type.value:
            return to_account(row).config
    base = AccountConfig.for_type(account_type)
    return replace(
        base, fork_threshold=fallback.fork_threshold, merge_threshold=fallback.merge_threshold
    )
