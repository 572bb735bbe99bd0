"""A token's portfolio scope from its role and claim (shared/contracts/permissions.py):
admins and operators hold everything, every other role what its claim lists, and a missing
or malformed claim nothing."""

import uuid

import pytest

from shared.contracts.permissions import ROLE_PERMISSIONS, Permission, Role, Scope

A, B = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_admins_and_operators_hold_the_whole_platform_whatever_the_claim(role: str) -> None:
    for claim in (None, [], [A], "nonsense"):
        assert Scope.of(role, claim).whole


@pytest.mark.parametrize("role", ["trading_engine", "viewer", "auditor"])
def test_other_roles_hold_what_the_claim_lists_and_nothing_without_it(role: str) -> None:
    assert Scope.of(role, ["*"]).whole
    assert Scope.of(role, [A.upper(), "not-a-portfolio"]).portfolios == {A}
    for claim in (None, [], "*", [1, 2], {"a": A}):
        scope = Scope.of(role, claim)
        assert not scope.whole and not scope.covers([A, B])


def test_a_scope_covers_a_portfolio_when_it_or_an_ancestor_is_granted() -> None:
    scope = Scope([A])
    assert scope.covers([str(uuid.uuid4()), A])  # a child of A: A is among its ancestors
    assert not scope.covers([B])


def test_the_scope_travels_as_text_and_back() -> None:
    assert Scope.parse(Scope([B, A]).text()).portfolios == {A, B}
    assert Scope.parse("*").whole and Scope(whole=True).text() == "*"
    assert not Scope.parse("").whole and Scope.parse("").portfolios == frozenset()


def test_a_trading_engine_publishes_and_reads_but_moves_no_money() -> None:
    engine = ROLE_PERMISSIONS[Role.TRADING_ENGINE]
    assert engine == {Permission.READ_ACCOUNT, Permission.PUBLISH_UPSTREAM}
