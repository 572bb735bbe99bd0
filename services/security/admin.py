"""Operator actions behind `alluse security ...`; each audited in its own transaction."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography.fernet import MultiFernet

from services.security import (
    audit,
    crypto,
    domain,
    keys,
    revocation,
    scope_store,
    session_store,
    store,
    tokens,
)
from services.security.domain import InvalidRequest, NotFound
from services.security.passwords import Passwords
from services.security.settings import SecuritySettings
from shared.contracts.permissions import MAX_GRANTS, WHOLE_PLATFORM, Scope


class Admin:
    def __init__(
        self, pool: asyncpg.Pool, settings: SecuritySettings, fernet: MultiFernet, actor: str
    ) -> None:
        self.pool, self.settings, self.fernet, self.actor = pool, settings, fernet, actor

    async def create_user(
        self, passwords: Passwords, *, username: str, password: str, role: str, email: str | None
    ) -> uuid.UUID:
        domain.check_text("username", username, domain.USERNAME_MAX)
        domain.check_role(role)
        domain.check_password(password)
        if email is not None:
            domain.check_text("email", email, domain.EMAIL_MAX)
        phc = await asyncio.to_thread(passwords.hash, password)
        async with self.pool.acquire() as conn, conn.transaction():
            uid = await store.insert_user(
                conn,
                username=username,
                email_enc=crypto.encrypt(self.fernet, email),
                password_hash=phc,
                role=role,
            )
            if uid is None:
                raise InvalidRequest(f"username '{username[:50]}' is taken")
            await audit.append(
                conn,
                action="security.user.created",
                actor=self.actor,
                subject=str(uid),
                details={"username": username, "role": role},
            )
        return uid

    async def create_client(self, *, client_id: str, role: str) -> str:
        """The client's secret: shown once, stored only as a hash."""
        domain.check_text("client_id", client_id, domain.USERNAME_MAX)
        domain.check_role(role)
        secret = tokens.new_opaque()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.insert_client(
                conn, client_id=client_id, secret_hash=tokens.digest(secret), role=role
            ):
                raise InvalidRequest(f"client '{client_id[:50]}' exists")
            await audit.append(
                conn,
                action="security.client.created",
                actor=self.actor,
                subject=client_id,
                details={"role": role},
            )
        return secret

    async def set_client_status(self, *, client_id: str, status: str) -> None:
        """Disable a machine client (its live tokens are refused within a second) or enable it."""
        if status not in ("active", "disabled"):
            raise InvalidRequest(f"unknown client status '{status[:50]}'")
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.set_client_status(conn, client_id=client_id, status=status):
                raise NotFound(f"no client '{client_id[:50]}'")
            if status == "disabled":
                await revocation.revoke_subject(conn, s, client_id, s.access_token_ttl)
            action = (
                "security.client.disabled" if status == "disabled" else "security.client.enabled"
            )
            await audit.append(conn, action=action, actor=self.actor, subject=client_id)

    async def rotate_client_secret(self, *, client_id: str) -> str:
        """A new secret, shown once; the old one stops working and its live tokens are revoked."""
        secret, s = tokens.new_opaque(), self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.set_client_secret(
                conn, client_id=client_id, secret_hash=tokens.digest(secret)
            ):
                raise NotFound(f"no client '{client_id[:50]}'")
            await revocation.revoke_subject(conn, s, client_id, s.access_token_ttl)
            await audit.append(
                conn, action="security.client.secret_rotated", actor=self.actor, subject=client_id
            )
        return secret

    async def set_role(self, *, username: str, role: str) -> None:
        domain.check_role(role)
        async with self.pool.acquire() as conn, conn.transaction():
            uid = await store.set_role(conn, username=username, role=role)
            if uid is None:
                raise NotFound(f"no user '{username[:50]}'")
            # Tokens carry the role: those issued before must not outlive the change.
            await revocation.revoke_user(conn, self.settings, uid, self.settings.access_token_ttl)
            await audit.append(
                conn,
                action="security.user.role_set",
                actor=self.actor,
                subject=str(uid),
                details={"role": role},
            )

    async def set_status(self, *, username: str, status: str) -> None:
        """active (also unlocks), locked (until an admin unlocks), disabled or deleted."""
        if status not in ("active", "locked", "disabled", "deleted"):
            raise InvalidRequest(f"unknown status '{status[:50]}'")
        async with self.pool.acquire() as conn, conn.transaction():
            uid = await store.set_status(conn, username=username, status=status)
            if uid is None:
                raise NotFound(f"no user '{username[:50]}'")
            if status != "active":
                await revocation.revoke_user(
                    conn, self.settings, uid, self.settings.access_token_ttl
                )
            await audit.append(
                conn, action=f"security.user.{status}", actor=self.actor, subject=str(uid)
            )

    async def revoke(
        self,
        *,
        username: str | None = None,
        family: uuid.UUID | None = None,
        jti: str | None = None,
    ) -> None:
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            if username is not None:
                u = await store.user(conn, username=username)
                if u is None:
                    raise NotFound(f"no user '{username[:50]}'")
                await revocation.revoke_user(conn, s, u["id"], s.access_token_ttl)
                subject, details = str(u["id"]), {"scope": "user"}
            elif family is not None:
                n = await revocation.revoke_family(conn, s, family)
                subject, details = None, {"family": str(family), "access_tokens": str(n)}
            elif jti is not None:
                domain.check_text("jti", jti, 200)
                until = datetime.now(UTC) + timedelta(seconds=s.access_token_ttl + 60)
                await revocation.revoke_jtis(conn, s, [(jti, until)])
                subject, details = None, {"jti": jti}
            else:
                raise InvalidRequest("name a user, a family or a jti")
            await audit.append(
                conn,
                action="security.token.revoked",
                actor=self.actor,
                subject=subject,
                details=details,
            )

    async def grant(
        self, *, portfolio: str, client_id: str | None = None, username: str | None = None
    ) -> list[str]:
        """Give a client or a user a portfolio (or `*`, the whole platform); its next token
        carries it. Returns the grantee's portfolios."""
        portfolio = _portfolio(portfolio)
        async with self.pool.acquire() as conn, conn.transaction():
            kind, grantee, _ = await self._grantee(conn, client_id, username)
            if await scope_store.count(conn, kind=kind, grantee=grantee) >= MAX_GRANTS:
                raise InvalidRequest(f"at most {MAX_GRANTS} portfolios per grantee")
            if await scope_store.add(conn, kind=kind, grantee=grantee, portfolio=portfolio):
                await audit.append(
                    conn,
                    action="security.scope.granted",
                    actor=self.actor,
                    subject=grantee,
                    details={"grantee_kind": kind, "portfolio": portfolio},
                )
            return await scope_store.grants(conn, kind=kind, grantee=grantee)

    async def revoke_grant(
        self, *, portfolio: str, client_id: str | None = None, username: str | None = None
    ) -> list[str]:
        """Take a portfolio back. The grantee's live tokens are revoked at once, since they
        carry the old scope; its next token (a refresh, a new client login) has the new one."""
        portfolio = _portfolio(portfolio)
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            kind, grantee, _ = await self._grantee(conn, client_id, username)
            if not await scope_store.remove(conn, kind=kind, grantee=grantee, portfolio=portfolio):
                raise NotFound(f"{kind} holds no grant of '{portfolio}'")
            await revocation.revoke_subject(conn, s, grantee, s.access_token_ttl)
            await audit.append(
                conn,
                action="security.scope.revoked",
                actor=self.actor,
                subject=grantee,
                details={"grantee_kind": kind, "portfolio": portfolio},
            )
            return await scope_store.grants(conn, kind=kind, grantee=grantee)

    async def scopes(self, *, client_id: str | None = None, username: str | None = None) -> Any:
        async with self.pool.acquire() as conn:
            kind, grantee, role = await self._grantee(conn, client_id, username)
            found = await scope_store.grants(conn, kind=kind, grantee=grantee)
        whole = Scope.of(role, found).whole
        return {
            "grantee": grantee,
            "kind": kind,
            "role": role,
            "portfolios": [WHOLE_PLATFORM] if whole else found,
        }

    async def _grantee(
        self, conn: store.Conn, client_id: str | None, username: str | None
    ) -> tuple[str, str, str]:
        """(kind, grantee as tokens name it, role): a client by its id, a user by its id."""
        if client_id is not None:
            c = await store.client(conn, client_id=client_id)
            if c is None:
                raise NotFound(f"no client '{client_id[:50]}'")
            return "client", client_id, str(c["role"])
        if username is not None:
            u = await store.user(conn, username=username)
            if u is None:
                raise NotFound(f"no user '{username[:50]}'")
            return "user", str(u["id"]), str(u["role"])
        raise InvalidRequest("name a client or a user")

    async def sessions(self, *, username: str | None) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            return [dict(r) for r in await session_store.sessions(conn, username=username)]

    async def ensure_signing_key(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            if await store.active_key(conn) is None:
                await self._add_key(conn, retire=False)

    async def rotate_signing_key(self) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            return await self._add_key(conn, retire=True)

    async def _add_key(self, conn: store.Conn, *, retire: bool) -> str:
        new = keys.new_signing_key(self.fernet)
        # The old public key stays published until its last token (and clock leeway) expires.
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.access_token_ttl + 60)
        await store.add_key(conn, key=new, retire_expires=expires if retire else None)
        await audit.append(
            conn, action="security.signing_key.added", actor=self.actor, subject=new.kid
        )
        return new.kid

    async def rotate_encryption(self) -> int:
        """Re-encrypt every encrypted column under the primary key; returns values rewritten."""
        n = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await store.emails(conn):
                await store.update_email(
                    conn, user_id=row["id"], email_enc=crypto.rotate(self.fernet, row["email_enc"])
                )
                n += 1
            for row in await store.private_keys(conn):
                await store.update_private_key(
                    conn, kid=row["kid"], private_enc=crypto.rotate(self.fernet, row["private_enc"])
                )
                n += 1
            await audit.append(
                conn, action="security.encryption.rotated", actor=self.actor, details={"values": n}
            )
        return n


def _portfolio(text: str) -> str:
    """A portfolio id (canonical, lower case) or `*`."""
    if text == WHOLE_PLATFORM:
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidRequest(f"'{text[:50]}' is neither a portfolio id nor '*'") from None
