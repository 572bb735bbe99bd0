"""The contract owns the words (shared/contracts/vocabulary.py): the domain, the payloads, the
console and the CLI take them from there, and what each states cannot drift from it."""

from typing import get_args

from services.account import domain
from services.cli.arguments import TYPES
from services.console import forms, pages, views
from shared.contracts import account as c
from shared.contracts import lifecycle
from shared.contracts.vocabulary import (
    SETTABLE_STATUSES,
    AccountStatus,
    AccountType,
    Refusal,
    TransactionType,
)


def test_the_domain_speaks_the_contracts_words() -> None:
    assert domain.AccountType is AccountType
    assert domain.AccountStatus is AccountStatus
    assert domain.TransactionType is TransactionType


def test_every_refusal_of_the_account_service_is_a_contract_code_and_every_code_is_used() -> None:
    assert set(domain.rejection_codes()) == set(Refusal)


def test_the_payloads_literals_are_the_vocabularys() -> None:
    assert get_args(c.AccountTypeName) == tuple(AccountType)
    assert get_args(c.SetStatus.model_fields["status"].annotation) == SETTABLE_STATUSES
    assert AccountStatus.MERGED not in SETTABLE_STATUSES  # the platform's own to set


def test_the_lifecycle_contract_describes_every_word() -> None:
    described = lifecycle.TransactionRecord.model_fields["type"].description or ""
    assert all(t.value in described for t in TransactionType)
    described = lifecycle.AccountSnapshot.model_fields["type"].description or ""
    assert all(t.value in described for t in AccountType)


def test_the_console_and_the_cli_offer_the_contracts_words() -> None:
    assert tuple(TransactionType) == pages.TX_TYPES
    assert forms.STATUSES == SETTABLE_STATUSES
    assert set(views.TYPE_ORDER) == set(views.SHORT) == set(AccountType)
    assert set(TYPES.values()) == set(AccountType) and set(TYPES) == {"gen", "rev", "com"}
