"""The unit of work's contract, run against both units that implement the handlers' port:
the real one on PostgreSQL (services/account/state/uow.py) and the in-memory fake the handler tests
use (tests/support/fake_unit.py). A promise handlers rely on that the fake kept differently from
the real unit would make the handler tests prove nothing; here it fails on one side."""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any, Protocol, cast

import asyncpg
import pytest

from services.account import app
from services.account.domain import (
    Account,
    AccountError,
    AccountType,
    decide_deposit,
    decide_withdrawal,
)
from services.account.state.port import Unit
from services.account.state.uow import AccountUnit
from shared.contracts.envelope import decode
from shared.contracts.lifecycle import LIFECYCLE_TYPES
from shared.contracts.streams import Streams
from shared.infra.runtime.bulk import Statements
from shared.infra.runtime.db import create_pool, migrate
from shared.infra.runtime.settings import Settings
from tests.support.fake_unit import FakeUnit, an_account
from tests.support.streams import ce

D = Decimal
Event = tuple[str, dict[str, Any]]


class Harness(Protocol):
    """How a contract test gets a unit holding `accounts`, runs one command, reads its events."""

    async def unit(self, *accounts: Account) -> Unit: ...
    def command(self, unit: Unit) -> AbstractAsyncContextManager[None]: ...
    def events(self, unit: Unit) -> list[Event]: ...


def command_event() -> Any:
    fields = ce("test.command", {})
    return decode({k.encode(): v.encode() for k, v in fields.items()})


class Real:
    """AccountUnit in a transaction of its own, rolled back after the test."""

    def __init__(self, conn: asyncpg.Connection, streams: Streams) -> None:
        self.conn, self.streams = conn, streams

    async def unit(self, *accounts: Account) -> Unit:
        seed = await AccountUnit.start(self.conn, [], self.streams)
        async with seed.command(command_event()):
            for account in accounts:
                seed.add_portfolio(portfolio_id=account.portfolio_id, name="portfolio")
                seed.add_account(account, name=account.type.value)
        writes = Statements()
        await seed.flush(writes)
        await writes.send(self.conn)
        # A unit of a later batch: what it knows of the accounts it reads from the database.
        return await AccountUnit.start(self.conn, [], self.streams)

    def command(self, unit: Unit) -> AbstractAsyncContextManager[None]:
        return cast(AccountUnit, unit).command(command_event())

    def events(self, unit: Unit) -> list[Event]:
        return [(f["type"], json.loads(f["data"])) for _, f in cast(AccountUnit, unit).events]


class Fake:
    async def unit(self, *accounts: Account) -> Unit:
        return FakeUnit(*accounts)

    def command(self, unit: Unit) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # the fake has no batch: every call is the command

    def events(self, unit: Unit) -> list[Event]:
        return list(cast(FakeUnit, unit).events)


@pytest.fixture(params=["fake", "real"])
async def harness(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Harness]:
    if request.param == "fake":
        yield Fake()
        return
    schema = f"contract_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, app.MIGRATIONS)
    pool = await create_pool(settings.database_url, schema)
    try:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                yield Real(cast(asyncpg.Connection, conn), settings.streams)
            finally:
                await tx.rollback()
    finally:
        await pool.close()
        admin = await asyncpg.connect(settings.database_url)
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def test_an_account_is_found_with_its_row_and_an_unknown_one_is_refused(
    harness: Harness,
) -> None:
    held = an_account(balance="250.00")
    uow = await harness.unit(held)
    async with harness.command(uow):
        found, row = await uow.account(held.id)
        assert (found.id, found.balance, found.type) == (held.id, D("250.00"), held.type)
        assert row.name == held.type.value
        with pytest.raises(AccountError) as caught:
            await uow.account(uuid.uuid4())
    assert caught.value.code == "unknown_account"


async def test_a_booking_returns_the_account_after_it_and_its_ledger_row(
    harness: Harness,
) -> None:
    held = an_account(balance="100.00")
    uow = await harness.unit(held)
    async with harness.command(uow):
        account, _ = await uow.account(held.id)
        after, tx = uow.book(
            decide_deposit(account, D("25.50")), description="deposit", reference="ref-1"
        )
        assert after.balance == D("125.50")
        assert (tx.type, tx.amount, tx.balance_after) == (
            "deposit",
            D("25.50"),
            D("125.50"),
        )
        assert (tx.description, tx.reference, tx.week_type) == ("deposit", "ref-1", None)
        assert isinstance(tx.id, int)
        again, _ = await uow.account(held.id)  # the unit answers with the booking applied
        assert again.balance == D("125.50")


async def test_balance_changed_is_the_published_event_of_the_booking(harness: Harness) -> None:
    held = an_account(balance="100.00")
    uow = await harness.unit(held)
    async with harness.command(uow):
        account, _ = await uow.account(held.id)
        after, tx = uow.book(decide_withdrawal(account, D("10.00")), description="withdrawal")
        uow.balance_changed(after, tx)
        ((kind, data),) = harness.events(uow)
    assert kind == "alluse.account.balance_changed"
    LIFECYCLE_TYPES[kind].model_validate(data)
    assert (data["account_id"], data["balance"]) == (str(held.id), "90.00")
    assert data["available"] == str(after.available) and data["cash_buffer"] == str(
        after.cash_buffer
    )
    booked = data["transaction"]
    assert (booked["id"], booked["type"], booked["amount"]) == (
        str(tx.id),
        "withdrawal",
        "-10.00",
    )
    assert (booked["balance_after"], booked["description"]) == ("90.00", "withdrawal")


async def test_a_failed_attempt_leaves_nothing_of_its_own_and_keeps_what_came_before(
    harness: Harness,
) -> None:
    held = an_account(balance="100.00")
    uow = await harness.unit(held)
    async with harness.command(uow):
        account, _ = await uow.account(held.id)
        after, tx = uow.book(decide_deposit(account, D("1.00")), description="kept")
        uow.balance_changed(after, tx)
        with pytest.raises(RuntimeError):
            async with uow.attempt():
                inside, _ = await uow.account(held.id)
                moved, tx2 = uow.book(decide_deposit(inside, D("50.00")), description="dropped")
                uow.balance_changed(moved, tx2)
                raise RuntimeError("the step fails")
        account, _ = await uow.account(held.id)
        assert account.balance == D("101.00")
        assert [d["transaction"]["description"] for _, d in harness.events(uow)] == ["kept"]


async def test_new_portfolios_and_accounts_are_found_at_once(harness: Harness) -> None:
    uow = await harness.unit()
    fresh = an_account(AccountType.GENERATION, balance="500.00")
    async with harness.command(uow):
        uow.add_portfolio(portfolio_id=fresh.portfolio_id, name="new")
        row = uow.add_account(fresh, name="mine")
        assert row.name == "mine"
        found, found_row = await uow.account(fresh.id)
        assert (found.balance, found_row.name) == (D("500.00"), "mine")
        types = await uow.accounts.portfolio_types(portfolio_id=fresh.portfolio_id)
        assert types == {"generation"}


async def test_a_broker_reference_is_new_once_then_duplicate_or_conflict(harness: Harness) -> None:
    held = an_account()
    uow = await harness.unit(held)
    async with harness.command(uow):
        await uow.account(held.id)
        claims = [
            await uow.claim(("fill", "f-1"), fingerprint=fp, account_id=held.id)
            for fp in ("a", "a", "b")
        ]
    assert claims == ["new", "duplicate", "conflict"]


async def test_a_renamed_account_reads_back_renamed(harness: Harness) -> None:
    held = an_account()
    uow = await harness.unit(held)
    async with harness.command(uow):
        await uow.account(held.id)
        await uow.accounts.update_account(account_id=held.id, name="renamed", config=held.config)
        row = await uow.accounts.get_account(account_id=held.id)
    assert row is not None and row["name"] == "renamed"
