"""Roles, permissions (docs/rules.md section 10), the permission each message type needs, and
portfolio scopes (docs/scopes.md)."""

import uuid
from collections.abc import Iterable
from enum import StrEnum

from shared.contracts.upstream import UPSTREAM_TYPES


class Permission(StrEnum):
    READ_ACCOUNT = "read_account"
    WRITE_ACCOUNT = "write_account"
    DELETE_ACCOUNT = "delete_account"
    UPDATE_BALANCE = "update_balance"
    VIEW_TRANSACTIONS = "view_transactions"
    MANAGE_ACCOUNTS = "manage_accounts"
    SYSTEM_ADMIN = "system_admin"
    AUDIT_ACCESS = "audit_access"
    PUBLISH_UPSTREAM = "publish_upstream"  # ws2.* / ws4.* entries: trading engines' own feeds


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    TRADING_ENGINE = "trading_engine"
    VIEWER = "viewer"
    AUDITOR = "auditor"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {
            P.READ_ACCOUNT,
            P.WRITE_ACCOUNT,
            P.DELETE_ACCOUNT,
            P.UPDATE_BALANCE,
            P.VIEW_TRANSACTIONS,
            P.MANAGE_ACCOUNTS,
        }
    ),
    # An engine publishes what happened at the broker (fills, assignments, expirations,
    # valuations, quotes, verdicts) and reads the accounts it trades; moving money by command
    # (deposits, withdrawals) is an operator's act, never an engine's.
    Role.TRADING_ENGINE: frozenset({P.READ_ACCOUNT, P.PUBLISH_UPSTREAM}),
    Role.VIEWER: frozenset({P.READ_ACCOUNT, P.VIEW_TRANSACTIONS}),
    Role.AUDITOR: frozenset({P.READ_ACCOUNT, P.VIEW_TRANSACTIONS, P.AUDIT_ACCESS}),
}

REQUIRED: dict[str, Permission] = {
    "alluse.system.initialize": P.MANAGE_ACCOUNTS,
    "alluse.account.create": P.WRITE_ACCOUNT,
    "alluse.account.update": P.WRITE_ACCOUNT,
    "alluse.account.deposit": P.UPDATE_BALANCE,
    "alluse.account.withdraw": P.UPDATE_BALANCE,
    "alluse.account.set_status": P.MANAGE_ACCOUNTS,
    "alluse.account.close": P.DELETE_ACCOUNT,
    "alluse.account.fork": P.MANAGE_ACCOUNTS,
    "alluse.account.merge": P.MANAGE_ACCOUNTS,
    "alluse.account.reinvest": P.MANAGE_ACCOUNTS,
    "alluse.config.update": P.SYSTEM_ADMIN,
    "alluse.account.reverse": P.MANAGE_ACCOUNTS,  # corrections: operators and admins
    "alluse.query.account": P.READ_ACCOUNT,
    "alluse.query.accounts": P.READ_ACCOUNT,
    "alluse.query.history": P.VIEW_TRANSACTIONS,
    "alluse.query.summary": P.READ_ACCOUNT,
    "alluse.query.integrity": P.VIEW_TRANSACTIONS,  # it recomputes balances from the ledger
    "alluse.query.metrics": P.READ_ACCOUNT,
    "alluse.query.tree": P.READ_ACCOUNT,
    "alluse.query.positions": P.READ_ACCOUNT,
    "alluse.query.as_of": P.VIEW_TRANSACTIONS,  # rebuilt from the ledger
    **dict.fromkeys(UPSTREAM_TYPES, P.PUBLISH_UPSTREAM),
}


def allows(role: str, permission: Permission) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


# Portfolio scopes. A token names the portfolios its holder may act on and read in the claim
# `portfolios`: a list of portfolio ids, or ["*"] for the whole platform. Admins and operators
# hold the whole platform by their role, whatever the claim says; any other role holds only
# what its claim lists, and a token without the claim holds nothing (fail closed).
PORTFOLIOS_CLAIM = "portfolios"
WHOLE_PLATFORM = "*"
WHOLE_PLATFORM_ROLES = frozenset({Role.ADMIN.value, Role.OPERATOR.value})
MAX_GRANTS = 100  # portfolios one grantee may be given: they all ride in every token


class Scope:
    """What a verified principal may touch: every portfolio (`whole`), or those listed.

    A grant of a portfolio also covers the portfolios forked from it (its descendants): the
    account service resolves an account to its portfolio and that portfolio's ancestors.
    """

    __slots__ = ("portfolios", "whole")

    def __init__(self, portfolios: Iterable[str] = (), *, whole: bool = False) -> None:
        self.whole = whole
        self.portfolios = frozenset() if whole else frozenset(portfolios)

    @classmethod
    def of(cls, role: str, claim: object) -> "Scope":
        if role in WHOLE_PLATFORM_ROLES:
            return cls(whole=True)
        if not isinstance(claim, list) or not all(isinstance(p, str) for p in claim):
            return cls()  # absent or malformed: nothing
        if WHOLE_PLATFORM in claim:
            return cls(whole=True)
        return cls(p.lower() for p in claim if _is_uuid(p))

    def covers(self, portfolios: Iterable[str]) -> bool:
        """Whether any of `portfolios` (a portfolio and its ancestors) is in scope."""
        return self.whole or not self.portfolios.isdisjoint(str(p).lower() for p in portfolios)

    def text(self) -> str:
        """The scope as one field value: `*`, or the portfolio ids joined by commas."""
        return WHOLE_PLATFORM if self.whole else ",".join(sorted(self.portfolios))

    @classmethod
    def parse(cls, text: str) -> "Scope":
        if text == WHOLE_PLATFORM:
            return cls(whole=True)
        return cls(p for p in text.split(",") if _is_uuid(p))

    def __repr__(self) -> str:
        return f"Scope({self.text()!r})"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36
