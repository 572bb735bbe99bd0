"""`python -m services.security admin ...`: the security service's own administration.

`alluse security ...` runs this as a process, so the operator CLI needs none of the service's
modules. Results go to stdout as one JSON document (the CLI renders it as a table or passes
the JSON on), refusals to stderr; the exit codes are those of `alluse`."""

import argparse
import contextlib
import getpass
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.security import app, audit, audit_store, crypto, heads, redis_users
from services.security.admin import Admin
from services.security.domain import SecurityError
from services.security.settings import SecuritySettings
from shared.contracts.streams import AUDIT_HEADS
from shared.contracts.trust import SECURITY
from shared.infra.runtime.db import create_pool
from shared.infra.runtime.redisclient import connect
from shared.infra.stream.outbox import Relay
from shared.infra.trust.keys import KeySet, KeysUnavailable
from shared.infra.trust.signing import EntrySigner

OK, REJECTED, USAGE, UNAVAILABLE = 0, 1, 2, 3  # as `alluse` documents them
Command = Callable[[Admin, argparse.Namespace], Awaitable[Any]]
ROLES = ["admin", "operator", "trading_engine", "viewer", "auditor"]
TOOL_ACTIONS = ("dlq.",)  # what record-audit may write: never a security.* record


class Refused(Exception):
    """A result that is also a refusal: printed, then exit code 1."""

    def __init__(self, result: Any) -> None:
        self.result = result


@contextlib.asynccontextmanager
async def _admin() -> AsyncIterator[Admin]:
    settings = SecuritySettings()
    fernet = app.fernet_from(settings)
    await app.prepare_database(settings)
    pool = await create_pool(settings.database_url, app.SCHEMA, max_size=2)
    await audit.seal(pool)
    redis = connect(settings.redis_url)
    try:
        yield Admin(pool, settings, fernet, actor=f"cli:{getpass.getuser()}")
        # Publish revocations now rather than when the service's relay next looks; only with
        # the service's own key (ALLUSE_SIGNING_KEY): readers ignore what it did not sign.
        if settings.signing_key.get_secret_value():
            sign = EntrySigner.from_settings(settings, SECURITY).sign_many
            with contextlib.suppress(Exception):
                await Relay(pool, redis, name=app.SCHEMA, sign=sign).publish_once()
    finally:
        await redis.aclose()
        await pool.close()


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


async def run(command: Command, args: argparse.Namespace) -> int:
    try:
        async with _admin() as admin:
            result = await command(admin, args)
    except Refused as refused:
        print(json.dumps(refused.result, default=str))
        return REJECTED
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        return _error(f"configuration: {msg} (set DATABASE_URL, REDIS_URL)", USAGE)
    except crypto.KeyConfigError as exc:
        return _error(str(exc), USAGE)
    except SecurityError as exc:
        return _error(exc.description, REJECTED)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        return _error(f"cannot read {exc.filename}: {exc.strerror}", USAGE)
    except (OSError, asyncpg.PostgresConnectionError) as exc:
        return _error(f"database unreachable: {exc}", UNAVAILABLE)
    if result is not None:
        print(json.dumps(result, default=str))
    return OK


def _password(args: argparse.Namespace) -> str:
    """From --password-file (or '-' for stdin) or a prompt; never from argv."""
    if source := args.password_file:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        return text.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SecurityError("the two passwords differ")
    return first


async def create_user(admin: Admin, args: argparse.Namespace) -> Any:
    role = getattr(args, "role", "admin")
    uid = await admin.create_user(
        app.passwords_from(admin.settings),
        username=args.username,
        password=_password(args),
        role=role,
        email=args.email,
    )
    return {"user_id": str(uid), "username": args.username, "role": role}


def secret_shown(client_id: str, secret: str, **more: Any) -> dict[str, Any]:
    print("store the secret now: it is not kept and cannot be shown again", file=sys.stderr)
    return {"client_id": client_id, **more, "client_secret": secret}


async def create_client(admin: Admin, args: argparse.Namespace) -> Any:
    """The OAuth client, its lane and its Redis user (docs/lanes.md)."""
    redis_users.check_lane(args.client_id)
    secret = await admin.create_client(client_id=args.client_id, role=args.role)
    for portfolio in args.portfolio:
        await admin.grant(portfolio=portfolio, client_id=args.client_id)
    redis = await redis_users.RedisUsers(admin.settings).create(args.client_id)
    return secret_shown(args.client_id, secret, role=args.role, **redis)


async def grant(admin: Admin, args: argparse.Namespace) -> Any:
    held = await admin.grant(portfolio=args.portfolio, client_id=args.client, username=args.user)
    return {"client_id": args.client, "username": args.user, "portfolios": held}


async def scopes(admin: Admin, args: argparse.Namespace) -> Any:
    return await admin.scopes(client_id=args.client, username=args.user)


async def client_status(admin: Admin, args: argparse.Namespace) -> Any:
    await admin.set_client_status(client_id=args.client_id, status=args.status)
    users = redis_users.RedisUsers(admin.settings)
    redis = await users.switch(args.client_id, on=args.status == "active")
    return {"client_id": args.client_id, "status": args.status, **redis}


async def rotate_client(admin: Admin, args: argparse.Namespace) -> Any:
    secret = await admin.rotate_client_secret(client_id=args.client_id)
    redis = await redis_users.RedisUsers(admin.settings).rotate(args.client_id)
    return secret_shown(args.client_id, secret, **redis)


async def set_role(admin: Admin, args: argparse.Namespace) -> Any:
    await admin.set_role(username=args.username, role=args.role)


async def set_status(admin: Admin, args: argparse.Namespace) -> Any:
    await admin.set_status(username=args.username, status=args.status)


async def rotate_signing(admin: Admin, _: argparse.Namespace) -> Any:
    return {"kid": await admin.rotate_signing_key()}


async def rotate_encryption(admin: Admin, _: argparse.Namespace) -> Any:
    return {"re_encrypted": await admin.rotate_encryption()}


async def verify_audit(admin: Admin, args: argparse.Namespace) -> Any:
    """Against the heads still on the heads stream and any given with --head (from the log)."""
    redis = connect(admin.settings.redis_url)
    try:
        keys = KeySet.from_url(admin.settings.jwks_url)  # the security service's own key
        stream = admin.settings.streams.key(AUDIT_HEADS)
        published, forged = await heads.published(redis, stream, keys)
    except KeysUnavailable:
        raise Refused(
            {
                "status": "unverifiable",
                "problem": "the JWKS cannot be fetched"
                f" from {admin.settings.jwks_url}: head signatures cannot be checked",
            }
        ) from None
    finally:
        await redis.aclose()
    checked, broken = await audit.verify(admin.pool, [*published, *args.head])
    found: dict[str, Any] = {"records": checked, "heads": len(published)}
    if forged:  # someone else wrote onto the heads stream: never a verdict on the chain
        found["forged_heads"] = [{"entry": f.published, "problem": f.problem} for f in forged]
    if broken is not None:
        raise Refused(
            {"status": "broken", "first_broken_seq": broken.seq, "problem": broken.problem, **found}
        )
    if forged:
        raise Refused({"status": "forged_heads", "chain": "intact", **found})
    return {"status": "intact", **found}


async def audit_query(admin: Admin, args: argparse.Namespace) -> Any:
    async with admin.pool.acquire() as conn:
        rows = await audit_store.query_audit(
            conn,
            actor=args.user,
            subject=args.account,
            action=args.type,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    columns = ("seq", "occurred_at", "action", "actor", "subject", "details")
    return [{c: r[c] for c in columns} for r in rows]


async def record_audit(admin: Admin, _: argparse.Namespace) -> Any:
    """Records of what an operator's tool did outside this service (DLQ re-drives and drops),
    a JSON list on stdin, appended in one transaction before the tool acts on them."""
    try:
        records = json.loads(sys.stdin.read())
    except ValueError:
        records = None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and str(r.get("action", "")).startswith(TOOL_ACTIONS) for r in records
    ):
        raise SecurityError(
            f"stdin must be a JSON list of records, actions starting {TOOL_ACTIONS}"
        )
    async with admin.pool.acquire() as conn, conn.transaction():
        for r in records:
            subject = None if r.get("subject") is None else str(r["subject"])
            await audit.append(
                conn,
                action=r["action"],
                actor=f"{r.get('actor')} ({admin.actor})",
                subject=subject,
                details=r.get("details") or {},
                source=str(r.get("source") or admin.actor),
            )
    return {"recorded": len(records)}


async def sessions(admin: Admin, args: argparse.Namespace) -> Any:
    return await admin.sessions(username=args.username)


async def revoke(admin: Admin, args: argparse.Namespace) -> Any:
    if args.portfolio is not None:
        if args.user is None and args.client is None:
            raise SecurityError("--portfolio takes back a grant of a --client or a --user")
        held = await admin.revoke_grant(
            portfolio=args.portfolio, client_id=args.client, username=args.user
        )
        return {"client_id": args.client, "username": args.user, "portfolios": held}
    if args.client is not None:
        raise SecurityError("--client needs --portfolio (disable-client cuts a client off)")
    await admin.revoke(username=args.user, family=args.family, jti=args.jti)
