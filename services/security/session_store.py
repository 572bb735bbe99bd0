"""The security service's SQL for refresh-token families (sessions) and revoked token ids."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from services.security.store import Conn, Row


async def insert_refresh(
    conn: Conn,
    *,
    token_hash: str,
    family: uuid.UUID,
    user_id: uuid.UUID,
    access_jti: str,
    access_expires: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family, user_id, access_jti, access_expires,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        token_hash,
        family,
        user_id,
        access_jti,
        access_expires,
        expires_at,
    )


async def refresh(conn: Conn, *, token_hash: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT token_hash, family, user_id, expires_at, spent_at, revoked_at"
        " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )


async def spend(conn: Conn, *, token_hash: str) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1", token_hash
    )


async def revoke_families(
    conn: Conn, *, family: uuid.UUID | None = None, user_id: uuid.UUID | None = None
) -> list[Row]:
    """Revoke one family or all of a user's; the access tokens still alive beside them."""
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL"
        " AND (family = $1 OR user_id = $2)",
        family,
        user_id,
    )
    return await conn.fetch(
        "SELECT access_jti, access_expires FROM refresh_tokens"
        " WHERE (family = $1 OR user_id = $2) AND access_expires > now()",
        family,
        user_id,
    )


async def sessions(conn: Conn, *, username: str | None) -> list[Row]:
    return await conn.fetch(
        "SELECT r.family, u.username, min(r.issued_at) AS started, max(r.issued_at) AS last_used,"
        " max(r.expires_at) AS expires FROM refresh_tokens r JOIN users u ON u.id = r.user_id"
        " WHERE r.revoked_at IS NULL AND r.spent_at IS NULL AND r.expires_at > now()"
        " AND ($1::text IS NULL OR u.username = $1) GROUP BY r.family, u.username ORDER BY started",
        username,
    )


async def revoke_jtis(conn: Conn, *, jtis: Sequence[tuple[str, datetime]]) -> None:
    await conn.executemany(
        "INSERT INTO revoked_jtis (jti, until) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING", jtis
    )


async def families_beyond(conn: Conn, *, user_id: uuid.UUID, keep: int) -> list[uuid.UUID]:
    """The user's live refresh families beyond its `keep` most recently used: each a session
    (a sign-in and its refreshes), the oldest to end first."""
    rows = await conn.fetch(
        "SELECT family FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL"
        " AND spent_at IS NULL AND expires_at > now()"
        " GROUP BY family ORDER BY max(issued_at) DESC OFFSET $2",
        user_id,
        keep,
    )
    return [r["family"] for r in rows]
