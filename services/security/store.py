"""Every SQL statement of the security service (schema `security`), keyword arguments only."""

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.security.keys import ALG, NewKey

if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:  # the stubs are generic, the runtime classes are not
    Conn = asyncpg.Connection | PoolConnectionProxy
Row = asyncpg.Record
# The f-strings below only splice these constants and fixed clauses; values are always $n.
USER = "id, username, email_enc, password_hash, role, status, failed_logins, locked_until"


async def insert_user(
    conn: Conn, *, username: str, email_enc: str | None, password_hash: str, role: str
) -> uuid.UUID | None:
    """The new user's id, or None when the username is taken."""
    uid = uuid.uuid4()
    done = await conn.fetchval(
        "INSERT INTO users (id, username, email_enc, password_hash, role)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (username) DO NOTHING RETURNING id",
        uid,
        username,
        email_enc,
        password_hash,
        role,
    )
    return uid if done else None


async def user(conn: Conn, *, username: str, lock: bool = False) -> Row | None:
    sql = f"SELECT {USER} FROM users WHERE username = $1" + (" FOR UPDATE" if lock else "")
    return await conn.fetchrow(sql, username)


async def user_by_id(conn: Conn, *, user_id: uuid.UUID, lock: bool = False) -> Row | None:
    sql = f"SELECT {USER} FROM users WHERE id = $1" + (" FOR UPDATE" if lock else "")
    return await conn.fetchrow(sql, user_id)


async def update_login(
    conn: Conn,
    *,
    user_id: uuid.UUID,
    failed: int,
    status: str,
    locked_until: datetime | None,
    password_hash: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE users SET failed_logins = $2, status = $3, locked_until = $4,"
        " password_hash = coalesce($5, password_hash), updated_at = now() WHERE id = $1",
        user_id,
        failed,
        status,
        locked_until,
        password_hash,
    )


async def set_role(conn: Conn, *, username: str, role: str) -> uuid.UUID | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE users SET role = $2, updated_at = now() WHERE username = $1 RETURNING id",
        username,
        role,
    )


async def set_status(conn: Conn, *, username: str, status: str) -> uuid.UUID | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE users SET status = $2, failed_logins = 0, locked_until = NULL, updated_at = now()"
        " WHERE username = $1 RETURNING id",
        username,
        status,
    )


async def emails(conn: Conn) -> list[Row]:
    return await conn.fetch(
        "SELECT id, email_enc FROM users WHERE email_enc IS NOT NULL FOR UPDATE"
    )


async def update_email(conn: Conn, *, user_id: uuid.UUID, email_enc: str) -> None:
    await conn.execute("UPDATE users SET email_enc = $2 WHERE id = $1", user_id, email_enc)


async def insert_client(conn: Conn, *, client_id: str, secret_hash: str, role: str) -> bool:
    done = await conn.fetchval(
        "INSERT INTO clients (client_id, secret_hash, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (client_id) DO NOTHING RETURNING true",
        client_id,
        secret_hash,
        role,
    )
    return bool(done)


async def set_client_status(conn: Conn, *, client_id: str, status: str) -> bool:
    done = await conn.fetchval(
        "UPDATE clients SET status = $2 WHERE client_id = $1 RETURNING true", client_id, status
    )
    return bool(done)


async def set_client_secret(conn: Conn, *, client_id: str, secret_hash: str) -> bool:
    done = await conn.fetchval(
        "UPDATE clients SET secret_hash = $2 WHERE client_id = $1 RETURNING true",
        client_id,
        secret_hash,
    )
    return bool(done)


async def client(conn: Conn, *, client_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT client_id, secret_hash, role, status FROM clients WHERE client_id = $1", client_id
    )


async def active_key(conn: Conn) -> Row | None:
    return await conn.fetchrow("SELECT kid, private_enc FROM signing_keys WHERE retired_at IS NULL")


async def add_key(conn: Conn, *, key: NewKey, retire_expires: datetime | None) -> None:
    """Retire the signing key (kept in the JWKS until `retire_expires`) and add the new one."""
    if retire_expires is not None:
        await conn.execute(
            "UPDATE signing_keys SET retired_at = now(), expires_at = $1 WHERE retired_at IS NULL",
            retire_expires,
        )
    await conn.execute(
        "INSERT INTO signing_keys (kid, alg, private_enc, public_jwk)"
        " VALUES ($1, $2, $3, $4::jsonb)",
        key.kid,
        ALG,
        key.private_enc,
        json.dumps(key.public_jwk),
    )


async def public_keys(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT public_jwk FROM signing_keys WHERE expires_at IS NULL OR expires_at > now()"
        " ORDER BY created_at DESC"
    )
    return [json.loads(r["public_jwk"]) for r in rows]


async def private_keys(conn: Conn) -> list[Row]:
    return await conn.fetch("SELECT kid, private_enc FROM signing_keys FOR UPDATE")


async def update_private_key(conn: Conn, *, kid: str, private_enc: str) -> None:
    await conn.execute("UPDATE signing_keys SET private_enc = $2 WHERE kid = $1", kid, private_enc)


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


async def outbox(conn: Conn, *, stream: str, fields: dict[str, str]) -> None:
    """Published by the relay after commit: the revocation exists only if the change does."""
    await conn.execute(
        "INSERT INTO outbox (stream, fields) VALUES ($1, $2::jsonb)", stream, json.dumps(fields)
    )


AUDIT_COLUMNS = "seq, event_id, occurred_at, source, action, actor, subject, details, cause, key_id"


async def audit_head(conn: Conn, *, lock: bool) -> Row:
    """The chain's last (seq, hash); FOR UPDATE serialises appenders until they commit."""
    sql = "SELECT seq, hash FROM audit_head" + (" FOR UPDATE" if lock else "")
    row = await conn.fetchrow(sql)
    assert row is not None, "migration 001 inserts the head row"
    return row


async def append_audit(conn: Conn, *, record: dict[str, Any], prev_hash: str, hash_: str) -> None:
    await conn.execute(
        f"INSERT INTO audit_records ({AUDIT_COLUMNS}, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        record["seq"],
        record["event_id"],
        datetime.fromisoformat(record["time"]),
        record["source"],
        record["action"],
        record["actor"],
        record["subject"],
        record["details"],
        record["cause"],
        record["key_id"],
        prev_hash,
        hash_,
    )
    await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", record["seq"], hash_)


async def last_audit_unkeyed(conn: Conn) -> bool:
    return bool(
        await conn.fetchval("SELECT key_id IS NULL FROM audit_records ORDER BY seq DESC LIMIT 1")
    )


async def audit_rows(conn: Conn, *, after: int, limit: int) -> list[Row]:
    return await conn.fetch(
        f"SELECT {AUDIT_COLUMNS}, prev_hash, hash FROM audit_records WHERE seq > $1"
        " ORDER BY seq LIMIT $2",
        after,
        limit,
    )


async def query_audit(
    conn: Conn,
    *,
    actor: str | None,
    subject: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Row]:
    return await conn.fetch(
        f"SELECT {AUDIT_COLUMNS} FROM audit_records WHERE ($1::text IS NULL OR actor = $1)"
        " AND ($2::text IS NULL OR subject = $2) AND ($3::text IS NULL OR action = $3)"
        " AND ($4::timestamptz IS NULL OR occurred_at >= $4)"
        " AND ($5::timestamptz IS NULL OR occurred_at < $5) ORDER BY seq DESC LIMIT $6",
        actor,
        subject,
        action,
        since,
        until,
        limit,
    )
