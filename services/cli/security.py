"""`alluse security ...`: operator commands working directly on the security schema."""

import argparse
import contextlib
import getpass
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError
from redis.asyncio import Redis

from services.cli.output import OK, REJECTED, UNAVAILABLE, USAGE, emit, fail
from services.security import app, audit, crypto, store
from services.security.admin import Admin
from services.security.domain import SecurityError
from services.security.settings import SecuritySettings
from shared.infra.db import create_pool, migrate
from shared.infra.outbox import Relay

Command = Callable[[Admin, argparse.Namespace], Awaitable[int]]


@contextlib.asynccontextmanager
async def _admin() -> AsyncIterator[Admin]:
    settings = SecuritySettings()
    fernet = app.fernet_from(settings)
    await migrate(settings.database_url, app.SCHEMA, app.MIGRATIONS)
    pool = await create_pool(settings.database_url, app.SCHEMA, max_size=2)
    redis = Redis.from_url(settings.redis_url)
    try:
        yield Admin(pool, settings, fernet, actor=f"cli:{getpass.getuser()}")
        # Publish revocations now rather than when the service's relay next looks.
        with contextlib.suppress(Exception):
            await Relay(pool, redis, name=app.SCHEMA).publish_once()
    finally:
        await redis.aclose()
        await pool.close()


def _run(command: Command) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def run(args: argparse.Namespace) -> int:
        try:
            async with _admin() as admin:
                return await command(admin, args)
        except ValidationError as exc:
            return fail(
                f"configuration: {exc.errors()[0]['msg']} (set DATABASE_URL, REDIS_URL)", USAGE
            )
        except crypto.KeyConfigError as exc:
            return fail(str(exc), USAGE)
        except SecurityError as exc:
            return fail(exc.description, REJECTED)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            return fail(f"cannot read {exc.filename}: {exc.strerror}", USAGE)
        except (OSError, asyncpg.PostgresConnectionError) as exc:
            return fail(f"database unreachable: {exc}", UNAVAILABLE)

    return run


def _password(args: argparse.Namespace) -> str:
    """From --password-file (or '-' for stdin) or a prompt; never from argv."""
    if source := args.password_file:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        return text.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SecurityError("the two passwords differ")
    return first


async def _create_user(admin: Admin, args: argparse.Namespace) -> int:
    role = getattr(args, "role", "admin")
    uid = await admin.create_user(
        app.passwords_from(admin.settings),
        username=args.username,
        password=_password(args),
        role=role,
        email=args.email,
    )
    emit(args, {"user_id": str(uid), "username": args.username, "role": role})
    return OK


async def _create_client(admin: Admin, args: argparse.Namespace) -> int:
    secret = await admin.create_client(client_id=args.client_id, role=args.role)
    emit(args, {"client_id": args.client_id, "role": args.role, "client_secret": secret})
    print("store the secret now: it is not kept and cannot be shown again", file=sys.stderr)
    return OK


async def _set_role(admin: Admin, args: argparse.Namespace) -> int:
    await admin.set_role(username=args.username, role=args.role)
    return OK


async def _set_status(admin: Admin, args: argparse.Namespace) -> int:
    await admin.set_status(username=args.username, status=args.status)
    return OK


async def _rotate_signing(admin: Admin, args: argparse.Namespace) -> int:
    emit(args, {"kid": await admin.rotate_signing_key()})
    return OK


async def _rotate_encryption(admin: Admin, args: argparse.Namespace) -> int:
    emit(args, {"re_encrypted": await admin.rotate_encryption()})
    return OK


async def _verify(admin: Admin, args: argparse.Namespace) -> int:
    checked, broken = await audit.verify(admin.pool)
    if broken is not None:
        emit(args, {"status": "broken", "first_broken_seq": broken.seq, "problem": broken.problem})
        return REJECTED
    emit(args, {"status": "intact", "records": checked})
    return OK


async def _audit(admin: Admin, args: argparse.Namespace) -> int:
    async with admin.pool.acquire() as conn:
        rows = await store.query_audit(
            conn,
            actor=args.user,
            subject=args.account,
            action=args.type,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    emit(
        args,
        [dict(r) for r in rows],
        ["seq", "occurred_at", "action", "actor", "subject", "details"],
    )
    return OK


async def _sessions(admin: Admin, args: argparse.Namespace) -> int:
    rows = await admin.sessions(username=args.username)
    emit(args, rows, ["family", "username", "started", "last_used", "expires"])
    return OK


async def _revoke(admin: Admin, args: argparse.Namespace) -> int:
    await admin.revoke(username=args.user, family=args.family, jti=args.jti)
    return OK


async def _gen_key(args: argparse.Namespace) -> int:
    print(crypto.gen_key())
    return OK


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "security",
        help="users, clients, keys and the audit trail",
        description="Operate the security service's schema directly (DATABASE_URL, REDIS_URL,"
        " ALLUSE_ENCRYPTION_KEYS); migrations are applied first.",
    )
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, command: Command, help_: str) -> argparse.ArgumentParser:
        # No abbreviations: `--password X` must not pass for `--password-file X`.
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_, description=help_, allow_abbrev=False
        )
        p.set_defaults(func=_run(command))
        return p

    def user_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--username", required=True)
        p.add_argument("--email", help="stored encrypted")
        p.add_argument("--password-file", help="read the password from this file ('-': stdin)")

    user_args(
        add("create-admin", _create_user, "create an admin (password from a prompt or a file)")
    )
    p = add("create-user", _create_user, "create a user (password from a prompt or a file)")
    user_args(p)
    p.add_argument(
        "--role",
        required=True,
        choices=["admin", "operator", "trading_engine", "viewer", "auditor"],
    )
    p = add("create-client", _create_client, "create a machine client; prints its secret once")
    p.add_argument("--client-id", required=True)
    p.add_argument("--role", default="trading_engine")
    p = add("set-role", _set_role, "change a user's role (its live tokens are revoked)")
    p.add_argument("username")
    p.add_argument("role")
    p = add("unlock", _set_status, "unlock a user locked by failed logins")
    p.add_argument("username")
    p.set_defaults(status="active")
    p = add("set-status", _set_status, "lock, disable, delete or re-activate a user")
    p.add_argument("username")
    p.add_argument("status", choices=["active", "locked", "disabled", "deleted"])
    add(
        "rotate-signing-key",
        _rotate_signing,
        "sign with a new key; old keys stay in the JWKS until their tokens expire",
    )
    add(
        "rotate-encryption-key",
        _rotate_encryption,
        "re-encrypt every encrypted value under the first ALLUSE_ENCRYPTION_KEYS key",
    )
    add("verify-audit", _verify, "check the audit hash chain; names the first broken link")
    p = add("audit", _audit, "query audit records")
    p.add_argument("--user", help="actor (a user id, client id, or cli:<name>)")
    p.add_argument("--account", help="subject (an account id, user id, ...)")
    p.add_argument("--type", help="action, e.g. security.login.failed")
    p.add_argument("--since", type=datetime.fromisoformat, help="ISO time, inclusive")
    p.add_argument("--until", type=datetime.fromisoformat, help="ISO time, exclusive")
    p.add_argument("--limit", type=int, default=100)
    p = add("sessions", _sessions, "list live refresh-token families")
    p.add_argument("--username")
    p = add("revoke", _revoke, "revoke a user's tokens, a refresh family, or one access token")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="username")
    who.add_argument("--family", type=uuid.UUID)
    who.add_argument("--jti")
    g = sub.add_parser(
        "gen-key",
        help="print a new Fernet key for ALLUSE_ENCRYPTION_KEYS",
        description="print a new Fernet key for ALLUSE_ENCRYPTION_KEYS",
    )
    g.set_defaults(func=_gen_key)
