"""Roles, permissions (docs/rules.md section 10) and the permission each message type needs."""

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
    Role.TRADING_ENGINE: frozenset(
        {P.READ_ACCOUNT, P.UPDATE_BALANCE, P.VIEW_TRANSACTIONS, P.PUBLISH_UPSTREAM}
    ),
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
