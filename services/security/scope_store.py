"""The security service's SQL for portfolio grants (the `portfolios` claim of a token)."""

from services.security.store import Conn
from shared.contracts.permissions import WHOLE_PLATFORM, WHOLE_PLATFORM_ROLES


async def claim(conn: Conn, *, role: str, user: bool, sub: str) -> list[str]:
    """The `portfolios` claim of a token issued now: the whole platform for admins and
    operators, otherwise the holder's grants (none: an empty list, which holds nothing)."""
    if role in WHOLE_PLATFORM_ROLES:
        return [WHOLE_PLATFORM]
    found = await grants(conn, kind="user" if user else "client", grantee=sub)
    return [WHOLE_PLATFORM] if WHOLE_PLATFORM in found else found


async def grants(conn: Conn, *, kind: str, grantee: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT portfolio FROM portfolio_grants WHERE grantee_kind = $1 AND grantee = $2"
        " ORDER BY portfolio",
        kind,
        grantee,
    )
    return [str(r["portfolio"]) for r in rows]


async def add(conn: Conn, *, kind: str, grantee: str, portfolio: str) -> bool:
    """False when the grant existed already."""
    status = await conn.execute(
        "INSERT INTO portfolio_grants (grantee_kind, grantee, portfolio) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        kind,
        grantee,
        portfolio,
    )
    return status.endswith(" 1")


async def remove(conn: Conn, *, kind: str, grantee: str, portfolio: str) -> bool:
    status = await conn.execute(
        "DELETE FROM portfolio_grants WHERE grantee_kind = $1 AND grantee = $2 AND portfolio = $3",
        kind,
        grantee,
        portfolio,
    )
    return status.endswith(" 1")


async def count(conn: Conn, *, kind: str, grantee: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM portfolio_grants WHERE grantee_kind = $1 AND grantee = $2",
            kind,
            grantee,
        )
    )
