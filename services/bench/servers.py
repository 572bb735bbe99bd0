"""Which Redis and PostgreSQL to use, and a database of the bench's own on the latter."""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

from services.bench.report import progress
from shared.tooling import embedded

DATA_DIR = Path("var/bench")


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str, str]]:
    """(redis url, admin database url, description): REDIS_URL / DATABASE_URL, else embedded."""
    redis_url, pg_url = os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")
    kinds = []
    with contextlib.ExitStack() as stack:
        if not redis_url or not pg_url:
            data = DATA_DIR.resolve()
            data.mkdir(parents=True, exist_ok=True)
            data.chmod(0o755)  # the embedded PostgreSQL runs as its own system user
        if redis_url:
            kinds.append("Redis from REDIS_URL")
        else:
            progress("starting embedded Redis")
            redis_url = stack.enter_context(embedded.embedded_redis(DATA_DIR.resolve() / "redis"))
            kinds.append("embedded Redis (AOF on)")
        if pg_url:
            kinds.append("PostgreSQL from DATABASE_URL")
        else:
            progress("starting embedded PostgreSQL")
            pg_url = stack.enter_context(
                embedded.embedded_postgres(DATA_DIR.resolve() / "postgres")
            )
            kinds.append("embedded PostgreSQL")
        yield redis_url, pg_url, ", ".join(kinds)


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """A database created for this run (alluse_bench_<random>) and dropped at the end."""
    name = f"alluse_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, query = admin_url.partition("?")
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
