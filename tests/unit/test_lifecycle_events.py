"""Events typed at the source: every lifecycle event the account service announces is built as
its contract model (shared/contracts/lifecycle.py), and only a model reaches the wire."""

import ast
import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.account.domain import AccountType
from services.account.handlers import events
from services.account.state.store.ledger import LedgerRow
from services.account.state.uow import AccountUnit
from shared.contracts import lifecycle as e
from shared.contracts.messages import COMMAND_REJECTED, WEEK_CHANGED
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
