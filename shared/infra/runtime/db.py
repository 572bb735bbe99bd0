"""One asyncpg pool per service, confined to the service's own schema, and its migrations."""

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import asyncpg

log = logging.getLogger(__name__)
SHARED_MIGRATIONS = Path(__file__).parents[1] / "stream" / "migrations"  # the inbox and outbox


class PooledConnection(asyncpg.Connection):
    """A pool's connection, which knows whether it was lent as a `session`: only then may it
    hold state beyond its transactions (a session advisory lock, LISTEN, SET)."""

    __slots__ = ("session_state",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_state = False

    def keeps_session_state(self) -> None:
        self.session_state = True


async def _reset(conn: asyncpg.Connection) -> None:
    """On release, after asyncpg's own reset (an open transaction rolled back, its listeners
    dropped): the server's session state reset in full (advisory locks, cursors, LISTEN,
    settings) only on a connection lent as a `session`. The others take no session state
    (their SET is LOCAL, their locks end with their transaction), so they skip that round trip."""
    if isinstance(conn, PooledConnection) and conn.session_state:
        if query := conn.get_reset_query():
            await conn.execute(query)  # a failure here closes the connection (asyncpg)
        conn.session_state = False


async def create_pool(dsn: str, schema: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only `schema` (and pg_catalog) on their search path.
    Anything that leaves state on the session takes its connection from `session`."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"alluse-{schema}"},
        connection_class=PooledConnection,
        reset=_reset,
    )
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection, typed as the Connection it proxies. It must leave no session state
    behind: it is not reset on release (see `session`)."""
    async with pool.acquire() as proxy:
        yield cast(asyncpg.Connection, proxy)


@contextlib.asynccontextmanager
async def session(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection that may keep session state (a session advisory lock, LISTEN):
    marked before it is handed out, so that however its user ends, even cancelled before its
    own clean-up, its release resets the session in full. (A pool not made by `create_pool`
    resets every connection in full anyway.)"""
    async with connection(pool) as conn:
        mark = getattr(conn, "keeps_session_state", None)  # the proxy passes it on
        if mark is not None:
            mark()
        yield conn


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection inside one transaction: committed on exit, rolled back on error."""
    async with connection(pool) as conn, conn.transaction():
        yield conn


def _lock_key(schema: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"migrate:{schema}".encode()).digest()[:8], "big", signed=True
    )


async def migrate(
    dsn: str,
    schema: str,
    service_dir: Path,
    *,
    runtime_role: str | None = None,
    append_only: Sequence[str] = (),
) -> list[str]:
    """Apply the shared and the service's numbered .sql files once, under an advisory lock.

    Run as the schema's owner (never a superuser); with `runtime_role`, then grant that role
    what a running service needs (see `grant_runtime`). A role with nothing left to apply runs
    no DDL, so a runtime role may call this too.
    """
    dirs: Sequence[Path] = (SHARED_MIGRATIONS, service_dir)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        # Checked first: CREATE ... IF NOT EXISTS still needs the privilege to create.
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {_ident(schema)}")
        await conn.execute(f"SET search_path TO {_ident(schema)}")
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            await conn.execute(
                "CREATE TABLE schema_migrations"
                " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for path in (p for d in dirs for p in sorted(d.glob("*.sql"))):
            name = f"{path.parent.parent.name}/{path.name}"
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
            log.info("migration applied", extra={"schema": schema, "migration": name})
        if runtime_role:
            await grant_runtime(conn, schema, runtime_role, append_only)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
        await conn.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def grant_runtime(
    conn: asyncpg.Connection, schema: str, role: str, append_only: Sequence[str]
) -> None:
    """`role` may read and write the schema's rows but not change its shape; the tables in
    `append_only` it may only read and insert into. Idempotent: run after every migration."""
    r, s = _ident(role), _ident(schema)
    await conn.execute(f"GRANT USAGE ON SCHEMA {s} TO {r}")
    await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}")
    await conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}")
    await conn.execute(f"REVOKE INSERT, UPDATE, DELETE ON {s}.schema_migrations FROM {r}")
    for table in append_only:
        await conn.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {s}.{_ident(table)} FROM {r}")


def migrate_and_exit(
    argv: Sequence[str], schema: str, service_dir: Path, append_only: Sequence[str] = ()
) -> None:
    """`python -m services.<name> migrate`: apply the migrations, print them, exit (a deploy Job).

    Services also migrate at start (under the same lock); a Job lets a rollout do it first.
    """
    if list(argv[1:2]) != ["migrate"]:
        return
    import asyncio
    import os
    import sys

    dsn = os.environ.get("DATABASE_URL") or os.environ.get("ALLUSE_DATABASE_URL")
    if not dsn:
        sys.exit("DATABASE_URL is not set")
    # As the schema's owner; ALLUSE_DATABASE_RUNTIME_ROLE names the role the service runs as.
    runtime = os.environ.get("ALLUSE_DATABASE_RUNTIME_ROLE") or None
    applied = asyncio.run(
        migrate(dsn, schema, service_dir, runtime_role=runtime, append_only=append_only)
    )
    print(f"{schema}: {len(applied)} migration(s) applied" + "".join(f"\n  {n}" for n in applied))
    sys.exit(0)
