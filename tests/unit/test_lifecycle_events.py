"""Events typed at the source: every lifecycle event the account service announces is built as
its contract model (shared/contracts/lifecycle.py), and only a model reaches the wire."""

import ast
import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4, uuid5

import pytest
from pydantic import ValidationError

from services.account.domain import Account, AccountConfig, AccountStatus, AccountType
from services.account.handlers import events
from services.account.state.store.ledger import LedgerRow
from services.account.state.uow import _NS, AccountUnit, event_id
from shared.contracts import lifecycle as e
from shared.contracts.envelope import decode, new_event
from shared.contracts.messages import COMMAND_REJECTED, WEEK_CHANGED
from shared.contracts.streams import Streams
from shared.contracts.upstream import WeekClassified
from tests.support.fake_unit import FakeUnit, an_account

ACCOUNT = Path(__file__).resolve().parents[2] / "services" / "account"
# Announced by others: the pipeline refuses commands, the integration service classifies weeks.
NOT_THE_ACCOUNT_SERVICES = {COMMAND_REJECTED, WEEK_CHANGED}


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _model_built(call: ast.Call) -> str | None:
    """The lifecycle model a call constructs (`e.Model(...)`), if it is one."""
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "e"
        and func.attr in e.__dict__
    ):
        model = e.__dict__[func.attr]
        if isinstance(model, type) and model in e.EVENT_TYPES:
            return func.attr
    return None


def test_every_event_the_account_service_announces_is_built_from_its_contract_model() -> None:
    built: set[str] = set()
    for path in sorted(ACCOUNT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for call in _calls(tree):
            if (name := _model_built(call)) is not None:
                built.add(e.EVENT_TYPES[e.__dict__[name]])
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "emit" and call.args:
                first = call.args[0]
                where = f"{path.name}:{call.lineno}"
                # A model constructed in place, or a builder of services/account/handlers/events.py.
                assert isinstance(first, ast.Call), f"{where} emits something not built here"
                assert _model_built(first) is not None or (
                    isinstance(first.func, ast.Attribute)
                    and isinstance(first.func.value, ast.Name)
                    and first.func.value.id == "events"
                ), f"{where} emits {ast.unparse(first)[:60]}, not a contract model"
    assert built == set(e.LIFECYCLE_TYPES) - NOT_THE_ACCOUNT_SERVICES


def test_the_emit_helper_refuses_anything_but_a_contract_model() -> None:
    with pytest.raises(TypeError):
        e.wire_data(cast(Any, {"account_id": "a", "reason": "r"}))
    with pytest.raises(TypeError):  # a contract model, but not a lifecycle one
        e.wire_data(
            cast(Any, WeekClassified(week_start="2026-01-05", week_type="P-EW", confidence=1))
        )
    with pytest.raises(ValueError, match="reasn"):  # at the source, an extra field is a typo
        e.wire_data(e.AccountClosed(account_id="a", reasn="r"))
    snap = events.snapshot(an_account(AccountType.REVENUE), "r")
    with pytest.raises(ValueError, match=r"account\.colour"):
        e.wire_data(e.AccountCreated(account=snap.model_copy(update={"colour": "red"})))


def test_both_units_refuse_a_dict() -> None:
    with pytest.raises(TypeError):
        FakeUnit().emit(cast(Any, {"account_id": "a"}))
    # Refused before the unit looks at anything of its own: no connection is needed.
    unit = object.__new__(AccountUnit)
    with pytest.raises(TypeError):
        unit.emit(cast(Any, {"account_id": "a"}))


def test_money_is_checked_where_it_is_stated_and_travels_as_a_string() -> None:
    with pytest.raises(ValidationError):  # more than cents: refused here, not by a consumer
        e.AccountClosed(account_id="a", final_balance=D("1.005"))
    for odd in ("1E+2", "NaN", "-0.001"):  # not cents, or no plain decimal string
        with pytest.raises(ValidationError):
            e.AccountClosed(account_id="a", final_balance=D(odd))
    with pytest.raises(ValidationError):  # a float is never money
        e.AccountClosed(account_id="a", final_balance=cast(Any, 1.5))
    kind, data = e.wire_data(e.AccountClosed(account_id="a", final_balance=D("12.50")))
    assert (kind, data) == ("alluse.account.closed", {"account_id": "a", "final_balance": "12.50"})
    # What the wire carries reads back into the same model.
    assert e.AccountClosed.model_validate_json(json.dumps(data)).final_balance == D("12.50")


def test_the_wire_data_holds_the_fields_the_maker_set_as_before() -> None:
    account = an_account(AccountType.GENERATION, balance="100.00")
    tx = LedgerRow(
        7,
        "deposit",
        D("100.00"),
        D("100.00"),
        "initial funding",
        None,
        None,
        datetime(2026, 1, 5, tzinfo=UTC),
    )
    kind, data = e.wire_data(events.balance_changed(account, tx))
    assert kind == "alluse.account.balance_changed"
    assert data == {
        "account_id": str(account.id),
        "transaction": {
            "id": "7",
            "type": "deposit",
            "amount": "100.00",
            "balance_after": "100.00",
            "description": "initial funding",
            "reference": None,
            "week_type": None,
            "created_at": "2026-01-05T00:00:00+00:00",
        },
        "balance": str(account.balance),
        "available": str(account.available),
        "cash_buffer": str(account.cash_buffer),
    }
    # A field left unset stays off the wire, as the dicts before left it.
    _, closed = e.wire_data(e.AccountClosed(account_id=str(uuid4()), reason="done"))
    assert set(closed) == {"account_id", "reason"}


def _fill_events() -> list[tuple[str, dict[str, str]]]:
    """A fill's balance_changed and position_changed, emitted by the account service's unit."""
    account_id = UUID("0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d")
    account = Account(
        id=account_id,
        portfolio_id=UUID("1c2d3e4f-5061-4728-9394-a5b6c7d8e9f0"),
        type=AccountType.GENERATION,
        status=AccountStatus.ACTIVE,
        balance=D("100129.35"),
        contributed_capital=D("100000.00"),
        baseline=D("100000.00"),
        config=AccountConfig.for_type(AccountType.GENERATION),
    )
    tx = LedgerRow(
        1042,
        "trade_premium",
        D("129.35"),
        D("100129.35"),
        'sell_to_open 1 SPY 400P "Prämie" ✓',
        "fill-7781",
        "P-EW",
        datetime(2026, 12, 7, 15, 30, 1, 250000, tzinfo=UTC),
    )
    effect = new_event(
        "alluse.effect.trade_filled",
        "alluse/integration-service",
        {"fill_id": "fill-7781"},
        subject=str(account_id),
        event_id="eff-1",
    )
    cause = decode({k.encode(): v.encode() for k, v in effect.items()})
    cause.verified_as("integration", "service", vouched="ws4")
    unit = object.__new__(AccountUnit)  # emit() needs no connection
    unit.streams, unit.cause, unit.events = Streams(""), cause, []
    unit.balance_changed(account, tx)
    unit.emit(
        e.PositionChanged(
            account_id=str(account_id),
            contract="SPY   261214P00400000",
            symbol="SPY",
            kind="put",
            strike="400",
            expiration="2026-12-14",
            multiplier=100,
            change=-1,
            cost_change=D("-130.00"),
            quantity=-3,
            cost=D("-390.00"),
            cause="fill",
            reference="fill-7781",
            transaction_id="1042",
        ),
        subject=str(account_id),
    )
    return unit.events


def test_a_fills_events_keep_their_bytes() -> None:
    """Ids and data as the service wrote them before its emit path was made cheaper (signed,
    stored in inbox outcomes, compared by readers): pinned byte for byte."""
    (bc_stream, bc), (pc_stream, pc) = _fill_events()
    assert bc_stream == pc_stream == "alluse.internal.account.events"
    common = {
        "specversion": "1.0",
        "source": "alluse/account-service",
        "datacontenttype": "application/json",
        "subject": "0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d",
        "causationid": "eff-1",
        "correlationid": "eff-1",
    }
    assert datetime.fromisoformat(bc.pop("time")).tzinfo is not None
    assert datetime.fromisoformat(pc.pop("time")).tzinfo is not None
    assert bc == {
        **common,
        "id": "efd679fa-fd72-53e5-8207-f1e1428042e8",
        "type": "alluse.account.balance_changed",
        "data": '{"account_id":"0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d","available":"95129.35",'
        '"balance":"100129.35","cash_buffer":"5000.00","transaction":{"amount":"129.35",'
        '"balance_after":"100129.35","created_at":"2026-12-07T15:30:01.250000+00:00",'
        '"description":"sell_to_open 1 SPY 400P \\"Prämie\\" ✓","id":"1042",'
        '"reference":"fill-7781","type":"trade_premium","week_type":"P-EW"}}',
    }
    assert pc == {
        **common,
        "id": "0b02a92c-f723-5a4f-b881-7cee8ed906ea",
        "type": "alluse.account.position_changed",
        "data": '{"account_id":"0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d","cause":"fill",'
        '"change":-1,"contract":"SPY   261214P00400000","cost":"-390.00","cost_change":"-130.00",'
        '"expiration":"2026-12-14","kind":"put","multiplier":100,"quantity":-3,'
        '"reference":"fill-7781","strike":"400","symbol":"SPY","transaction_id":"1042"}',
    }
    # The ids are the uuid5 of the cause's whole key and the event's place in the outcome.
    key = "service:integration/ws4|alluse/integration-service|eff-1"
    assert [bc["id"], pc["id"]] == [str(uuid5(_NS, f"{key}|{i}")) for i in (0, 1)]


@pytest.mark.parametrize(
    "key",
    ["", "a", "client:user-1|cli|cmd-1|0", "service:x/ws4|s|" + "é✓😀" * 40 + "|12", "k" * 1000],
)
def test_event_ids_are_uuid5(key: str) -> None:
    assert event_id(key) == str(uuid5(_NS, key))
    assert UUID(event_id(key)).version == 5
