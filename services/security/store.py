"""Every SQL statement of the security service (schema `security`), keyword arguments only."""

import json
import uuid
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


async def outbox(conn: Conn, *, stream: str, fields: dict[str, str]) -> None:
    """Published by the relay after commit: the revocation exists only if the change does."""
    await conn.execute(
        "INSERT INTO outbox (stream, fields) VALUES ($1, $2)", stream, json.dumps(fields)
    )
