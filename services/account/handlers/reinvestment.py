"""Quarterly reinvestment (docs/rules.md section 6) by command and by scheduler; run-time
configuration.

The scheduler sends itself the reinvest command through the same exactly-once pipeline
(deterministic id `reinvest:<quarter>`), and UNIQUE (account_id, quarter) makes a second run,
on this replica or another, allocate nothing.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.account.domain import ValidationFailed, apply_overrides
from services.account.domain.errors import Problem
from services.account.domain.reinvest import (
    allocate,
    check_reinvestable,
    latest_period,
    net_income,
    quarter_period,
)
from services.account.domain.settings import CATALOGS, apply_settings, settings_to_dict
from services.account.handlers.events import SOURCE
from services.account.state.port import Unit
from services.account.state.store.accounts import to_account
from services.account.state.store.growth import growth_settings
from shared.contracts import account as c
from shared.contracts import lifecycle as e
from shared.contracts.envelope import new_event
from shared.infra.runtime.db import connection
from shared.infra.stream.pipeline import Pipeline

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
SCHEDULER_SOURCE = f"{SOURCE}/scheduler"


async def reinvest(uow: Unit, p: c.Reinvest) -> None:
    settings = await uow.growth.growth_settings()
    now = await uow.ledger.effective_now()
    months = settings.reinvestment_months
    period = quarter_period(months, p.quarter, now) if p.quarter else latest_period(months, now)
    if p.account_id is not None:
        account, _ = await uow.account(p.account_id)
        already = await uow.growth.reinvestment_done(account_id=account.id, quarter=period.quarter)
        check_reinvestable(account, quarter=period.quarter, done=already)
        ids = [account.id]
    else:
        ids = await uow.growth.reinvesting_accounts()
    done = 0
    for account_id in ids:
        row = await uow.accounts.get_account(account_id=account_id)
        assert row is not None
        account = to_account(row)
        rows = await uow.growth.trading_rows(
            account_id=account_id, start=period.start, end=period.end
        )
        alloc = allocate(net_income(rows), account.config.contracts_pct)
        pct = account.config.contracts_pct
        if await uow.growth.insert_reinvestment(
            account_id=account_id,
            period=period,
            allocation=alloc,
            contracts_pct=pct,
            command_id=uow.command_id,
        ):
            done += 1
            uow.emit(
                e.AccountReinvested(
                    account_id=str(account_id),
                    quarter=period.quarter,
                    net_income=alloc.net_income,
                    contracts_amount=alloc.contracts,
                    leaps_amount=alloc.leaps,
                    period_start=period.start.isoformat(),
                    period_end=period.end.isoformat(),
                ),
                subject=str(account_id),
            )
    uow.emit(
        e.ReinvestmentCompleted(
            quarter=period.quarter, reinvested=done, already_reinvested=len(ids) - done
        )
    )


async def update_config(uow: Unit, p: c.UpdateConfig) -> None:
    """Validate everything first (growth policy and catalogs, then each live account's new
    config), then write."""
    problems = [
        Problem(f"growth.{name}", f"give {name} at the top level of the command")
        for name in CATALOGS
        if name in p.growth
    ]
    catalogs = {
        name: raw for name, raw in (("templates", p.templates), ("strategies", p.strategies)) if raw
    }
    growth = await uow.growth.growth_settings()
    try:
        growth = apply_settings(growth, {**p.growth, **catalogs})
    except ValidationFailed as exc:
        problems += [
            Problem(
                q.field if q.field.split(".")[0] in catalogs else f"growth.{q.field}", q.message
            )
            for q in exc.problems
        ]
    updated = []
    if p.accounts:
        for row in await uow.accounts.lock_live_accounts(account_type=p.account_type):
            account = to_account(row)
            try:
                updated.append((row, apply_overrides(account.config, p.accounts)))
            except ValidationFailed as exc:
                problems += [
                    Problem(
                        f"accounts.{q.field}", f"{q.message} ({account.type.value} {account.id})"
                    )
                    for q in exc.problems
                ]
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ValidationFailed(unique)
    await uow.growth.save_growth_settings(settings=growth, command_id=uow.command_id)
    for row, config in updated:
        await uow.accounts.update_account(account_id=row["id"], name=row["name"], config=config)
    effective = settings_to_dict(growth)
    uow.emit(
        e.ConfigUpdated(
            growth={k: v for k, v in effective.items() if k not in CATALOGS},
            templates=effective["templates"],
            strategies=effective["strategies"],
            changes={"growth": p.growth, "accounts": p.accounts, **catalogs},
            account_type=p.account_type,
            accounts_updated=len(updated),
        )
    )


class ReinvestmentScheduler:
    """Sends the reinvest command once per due period; `clock` is injectable for tests."""

    def __init__(
        self,
        pipeline: Pipeline,
        pool: asyncpg.Pool,
        *,
        clock: Clock | None = None,
        interval: float = 300.0,
        after: Callable[[], Any] | None = None,
    ) -> None:
        self.pipeline, self.pool, self.interval, self.after = pipeline, pool, interval, after
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.last: str | None = None

    async def tick(self) -> str | None:
        """Issue the latest due period's reinvestment if this process has not; its quarter, or None."""
        now = self.clock()
        async with connection(self.pool) as conn:
            settings = await growth_settings(conn)
        period = latest_period(settings.reinvestment_months, now)
        if period.quarter == self.last:
            return None
        fields = new_event(
            "alluse.account.reinvest",
            SCHEDULER_SOURCE,
            {"quarter": period.quarter},
            event_id=f"reinvest:{period.quarter}",
        )
        fields["time"] = now.isoformat()
        outcome = await self.pipeline.process(
            [(b"0-0", {k.encode(): v.encode() for k, v in fields.items()})]
        )
        if not outcome.ack:
            return None  # failed; the next tick tries again
        self.last = period.quarter
        if self.after is not None:
            self.after()
        return period.quarter

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("reinvestment scheduler tick failed")
            await asyncio.sleep(self.interval)
