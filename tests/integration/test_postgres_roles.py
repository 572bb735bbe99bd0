"""PostgreSQL least privilege on the real server: deploy/postgres/init-roles.sh, then each
service migrates as its schema's owner (no superuser) and runs with only what it needs."""

import asyncio
import json
import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest

from services.account.app import MIGRATIONS as ACCOUNT_MIGRATIONS
from services.integration.app import MIGRATIONS as INTEGRATION_MIGRATIONS
from services.security import app, audit, crypto
from services.security.settings import SecuritySettings
from shared.infra.runtime.db import create_pool, migrate
from shared.infra.runtime.settings import Settings
from tests.conftest import fresh_database
from tests.integration.test_security_store import AUDIT_KEY, KEY

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "init-roles.sh"
ROLES = ("account", "integration", "security_owner", "security")


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:pw@{host}"))


def run_script(env: dict[str, str]) -> None:
    done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
async def roles(servers: tuple[str, str]) -> AsyncIterator[dict[str, str]]:
    """A database made as the compose init script makes it; each role's URL (names prefixed),
    the script's environment under "env", and under "closed" a database standing in for the
    server's maintenance database `postgres` (closed to the roles: this server is shared, so
    the real one stays as it is; `closed_by_default` checks the script names it)."""
    admin_url, prefix = servers[1], f"t{uuid.uuid4().hex[:8]}_"
    names = {r: prefix + r for r in ROLES}
    maintenance = f"alluse_maint_{uuid.uuid4().hex[:8]}"
    async with (
        fresh_database(admin_url, maintenance) as closed,
        fresh_database(admin_url, f"alluse_roles_{uuid.uuid4().hex[:8]}") as url,
    ):
        parts = urlsplit(url)
        env = {
            **os.environ,
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_DB": parts.path.lstrip("/"),
            "ALLUSE_DB_ROLE_PREFIX": prefix,
            "ALLUSE_DB_CLOSED_DATABASES": maintenance,
            "PGHOST": parts.hostname or parse_qs(parts.query).get("host", [""])[0],
            "PGPORT": str(parts.port or 5432),
            "PGPASSWORD": parts.password or "",
        }
        env |= {f"ALLUSE_DB_PASSWORD_{r.upper()}": secrets.token_hex(8) for r in ROLES}
        try:
            await asyncio.to_thread(run_script, env)
            yield {r: as_role(url, n) for r, n in names.items()} | {
                "superuser": url,
                "closed": closed,
                "env": json.dumps(env),
            }
        finally:
            conn = await asyncpg.connect(url)
            await conn.execute("DROP SCHEMA IF EXISTS account, integration, security CASCADE")
            await conn.close()
    conn = await asyncpg.connect(admin_url)
    for name in names.values():
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
    await conn.close()


async def test_service_roles_cannot_connect_to_the_maintenance_database(
    roles: dict[str, str],
) -> None:
    for role in ROLES:
        user = urlsplit(roles[role]).username or ""
        elsewhere = as_role(roles["closed"], user)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await asyncpg.connect(elsewhere)
        conn = await asyncpg.connect(roles[role])  # its own database still opens
        await conn.close()
    conn = await asyncpg.connect(roles["closed"])  # the superuser keeps it
    await conn.close()


def test_the_script_closes_the_servers_own_maintenance_databases_by_default() -> None:
    assert 'closed="${ALLUSE_DB_CLOSED_DATABASES:-postgres template1}"' in SCRIPT.read_text()


async def test_the_script_runs_again_without_harm_and_sets_the_new_passwords(
    roles: dict[str, str],
) -> None:
    """The Kubernetes Job runs it on every install and upgrade: a second run keeps the schemas
    and their owners, and gives each role the password it is given now."""
    env = json.loads(roles["env"]) | {"ALLUSE_DB_PASSWORD_ACCOUNT": "rotated-" + "x" * 16}
    prefix = env["ALLUSE_DB_ROLE_PREFIX"]
    conn = await asyncpg.connect(roles["superuser"])
    verifier = "SELECT rolpassword FROM pg_authid WHERE rolname = $1"
    before = {r: await conn.fetchval(verifier, prefix + r) for r in ROLES}
    await asyncio.to_thread(run_script, env)
    try:
        rows = await conn.fetch(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace"
            " WHERE nspname IN ('account', 'integration', 'security')"
        )
        owners = {str(r[0]): str(r[1]) for r in rows}
        assert owners == {
            "account": f"{prefix}account",
            "integration": f"{prefix}integration",
            "security": f"{prefix}security_owner",
        }
        after = {r: await conn.fetchval(verifier, prefix + r) for r in ROLES}
        # A fresh salt each time: every verifier changes, and the account's is for its new one.
        assert all(after[r] != before[r] for r in ROLES)
        assert after["account"].startswith("SCRAM-SHA-256$")
        supers = await conn.fetchval(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 AND rolsuper", f"{prefix}%"
        )
        assert supers == 0
    finally:
        await conn.close()


async def refused(url: str, schema: str, sql: str) -> str:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as err:
            await conn.execute(sql)
        return str(err.value)
    finally:
        await conn.close()


async def test_services_migrate_as_schema_owners_and_stay_in_their_own_schema(
    roles: dict[str, str], settings: Settings
) -> None:
    for role in ROLES:
        conn = await asyncpg.connect(roles[role])
        assert (
            await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
        await conn.close()
    assert await migrate(roles["account"], "account", ACCOUNT_MIGRATIONS)
    assert await migrate(roles["integration"], "integration", INTEGRATION_MIGRATIONS)
    sec = SecuritySettings(
        **{
            **settings.model_dump(),
            "database_url": roles["security"],
            "migration_database_url": roles["security_owner"],
            "encryption_keys": KEY,
            "audit_keys": AUDIT_KEY,
        }
    )
    await app.prepare_database(sec)  # as security_owner, granting the runtime role
    await app.prepare_database(sec.model_copy(update={"migration_database_url": ""}))  # as runtime
    for role, other in (
        ("account", "security"),
        ("integration", "account"),
        ("security", "account"),
    ):
        message = await refused(roles[role], role, f"SELECT * FROM {other}.schema_migrations")
        assert "permission denied for schema" in message
    message = await refused(roles["account"], "account", "CREATE SCHEMA intruder")
    assert "permission denied for database" in message


async def test_the_security_runtime_role_may_only_insert_and_select_audit_records(
    roles: dict[str, str], settings: Settings
) -> None:
    sec = SecuritySettings(
        **{
            **settings.model_dump(),
            "database_url": roles["security"],
            "migration_database_url": roles["security_owner"],
            "encryption_keys": KEY,
            "audit_keys": AUDIT_KEY,
        }
    )
    await app.prepare_database(sec)
    audit.use_keys(crypto.load_audit_keys(AUDIT_KEY))
    pool = await create_pool(roles["security"], "security")
    try:
        async with pool.acquire() as conn, conn.transaction():
            await audit.append(conn, action="test.happened", actor="u1")
            await audit.append(conn, action="test.happened", actor="u2")
        assert await audit.verify(pool) == (2, None)
    finally:
        await pool.close()
    runtime = roles["security"]
    for sql in (
        "UPDATE audit_records SET actor = 'x'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ):
        assert "permission denied for table audit_records" in await refused(
            runtime, "security", sql
        )
    for sql in (
        "ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change",
        "DROP TABLE audit_records",
        "DELETE FROM schema_migrations",
    ):
        await refused(runtime, "security", sql)
