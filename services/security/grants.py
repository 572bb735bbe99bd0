"""The OAuth 2.0 grants: password, client_credentials, refresh_token; and RFC 7009 revocation.

Each runs in one transaction that also writes its audit record; a refusal commits its audit
record (and a failed-login count) first, then raises."""

import asyncio
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
from cryptography.fernet import MultiFernet

from services.security import (
    audit,
    domain,
    keys,
    metrics,
    revocation,
    scope_store,
    session_store,
    store,
    tokens,
)
from services.security.domain import InvalidClient, InvalidGrant
from services.security.failures import Unauthenticated
from services.security.passwords import Passwords
from services.security.settings import SecuritySettings

# One answer for an unknown name, a wrong password and a locked user: nobody learns from it
# which names exist or which are locked.
BAD_LOGIN = "invalid username or password"


class Authority:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: SecuritySettings,
        fernet: MultiFernet,
        passwords: Passwords,
    ) -> None:
        self.pool, self.settings, self.passwords = pool, settings, passwords
        self.keys = keys.KeyCache(fernet)
        self.failures = Unauthenticated(pool)  # failures no principal can be held to

    async def _issue(
        self,
        conn: store.Conn,
        *,
        sub: str,
        role: str,
        user_id: uuid.UUID | None = None,
        family: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        s, now = self.settings, time.time()
        row = await store.active_key(conn)
        if row is None:
            raise RuntimeError(
                "no signing key: run the service once or `alluse security rotate-signing-key`"
            )
        claims = tokens.access_claims(
            issuer=s.jwt_issuer,
            audience=s.jwt_audience,
            sub=sub,
            role=role,
            now=now,
            ttl=s.access_token_ttl,
            portfolios=await scope_store.claim(conn, role=role, user=user_id is not None, sub=sub),
        )
        body: dict[str, Any] = {
            "access_token": tokens.sign(
                self.keys.private(row["kid"], row["private_enc"]), row["kid"], claims
            ),
            "token_type": "Bearer",
            "expires_in": s.access_token_ttl,
        }
        if user_id is not None:
            refresh = tokens.new_opaque()
            await session_store.insert_refresh(
                conn,
                token_hash=tokens.digest(refresh),
                family=family or uuid.uuid4(),
                user_id=user_id,
                access_jti=claims["jti"],
                access_expires=datetime.fromtimestamp(claims["exp"], UTC),
                expires_at=datetime.fromtimestamp(int(now) + s.refresh_token_ttl, UTC),
            )
            body["refresh_token"] = refresh
            if family is None:  # a new sign-in: the user's oldest sessions beyond the cap end
                await self._evict(conn, user_id)
        await audit.append(
            conn,
            action="security.token.issued",
            actor=sub,
            details={"jti": claims["jti"], "role": role, "portfolios": claims["portfolios"]},
        )
        return body

    async def _evict(self, conn: store.Conn, user_id: uuid.UUID) -> None:
        """Sessions are capped per user and evicted per user: one user signing in again and
        again ends only its own oldest sessions (their access tokens with them)."""
        keep = self.settings.max_sessions_per_user
        for old in await session_store.families_beyond(conn, user_id=user_id, keep=keep):
            n = await revocation.revoke_family(conn, self.settings, old)
            await audit.append(
                conn,
                action="security.session.evicted",
                actor="security",
                subject=str(user_id),
                details={"family": str(old), "access_tokens": n, "cap": keep},
            )

    async def password(self, username: str, password: str) -> dict[str, Any]:
        domain.check_text("username", username, domain.USERNAME_MAX)
        domain.check_text("password", password, domain.PASSWORD_MAX)
        async with self.pool.acquire() as conn, conn.transaction():
            u = await store.user(conn, username=username, lock=True)
            now = datetime.now(UTC)
            if u is None or u["status"] in ("disabled", "deleted"):
                await asyncio.to_thread(self.passwords.decoy, password)
                reason = "unknown user" if u is None else f"user {u['status']}"
            elif domain.is_locked(u["status"], u["locked_until"], now):
                await asyncio.to_thread(self.passwords.decoy, password)
                reason = "user locked"
            elif not await asyncio.to_thread(self.passwords.verify, u["password_hash"], password):
                reason = "wrong password"
                await self._failed(conn, u, now)
            else:
                rehash = None
                if self.passwords.needs_rehash(u["password_hash"]):
                    rehash = await asyncio.to_thread(self.passwords.hash, password)
                await store.update_login(
                    conn,
                    user_id=u["id"],
                    failed=0,
                    status="active",
                    locked_until=None,
                    password_hash=rehash,
                )
                await audit.append(
                    conn,
                    action="security.login.succeeded",
                    actor=str(u["id"]),
                    details={"username": username, "rehashed": rehash is not None},
                )
                metrics.LOGINS.labels("password", "succeeded").inc()
                return await self._issue(conn, sub=str(u["id"]), role=u["role"], user_id=u["id"])
            if u is None:  # no principal: counted, audited with the others of its interval
                self.failures.note("password", "unknown_user")
            else:
                await audit.append(
                    conn,
                    action="security.login.failed",
                    actor=str(u["id"]),
                    details={"username": username[: domain.USERNAME_MAX], "reason": reason},
                )
        metrics.LOGINS.labels("password", "failed").inc()
        raise InvalidGrant(BAD_LOGIN)

    async def _failed(self, conn: store.Conn, u: asyncpg.Record, now: datetime) -> None:
        s = self.settings
        failed = (
            0 if u["status"] == "locked" else u["failed_logins"]
        )  # an expired lock starts afresh
        failed, until = domain.after_failure(
            failed,
            now=now,
            max_failures=s.max_failed_logins,
            lock_for=timedelta(seconds=s.lockout_seconds),
        )
        status = "locked" if until else "active"
        await store.update_login(
            conn, user_id=u["id"], failed=failed, status=status, locked_until=until
        )
        # The lock throttles new logins only: anyone can fail five times with a name, so it
        # must not log the real user out (their live tokens and refresh tokens stay good).
        if until is not None:
            metrics.LOCKOUTS.inc()
            await audit.append(
                conn,
                action="security.user.locked",
                actor="security",
                subject=str(u["id"]),
                details={"failed_logins": failed, "until": until.isoformat()},
            )

    async def client(self, client_id: str, secret: str) -> dict[str, Any]:
        domain.check_text("client_id", client_id, domain.USERNAME_MAX)
        domain.check_text("client_secret", secret, domain.TOKEN_MAX)
        async with self.pool.acquire() as conn, conn.transaction():
            c = await store.client(conn, client_id=client_id)
            ok = c is not None and hmac.compare_digest(c["secret_hash"], tokens.digest(secret))
            if c is not None and ok and c["status"] == "active":
                metrics.LOGINS.labels("client_credentials", "succeeded").inc()
                return await self._issue(conn, sub=client_id, role=c["role"])
            if c is None:  # no principal: counted, audited with the others of its interval
                self.failures.note("client_credentials", "unknown_client")
            else:
                await audit.append(
                    conn,
                    action="security.client.failed",
                    actor=client_id[: domain.USERNAME_MAX],
                    details={"reason": "wrong secret" if not ok else "disabled"},
                )
        metrics.LOGINS.labels("client_credentials", "failed").inc()
        raise InvalidClient("client authentication failed")

    async def refresh(self, token: str) -> dict[str, Any]:
        domain.check_text("refresh_token", token, domain.TOKEN_MAX)
        async with self.pool.acquire() as conn, conn.transaction():
            r = await session_store.refresh(conn, token_hash=tokens.digest(token))
            u = None if r is None else await store.user_by_id(conn, user_id=r["user_id"])
            now = datetime.now(UTC)
            if r is None or u is None:
                action, actor, reason = (
                    "security.refresh.refused",
                    "anonymous",
                    "unknown refresh token",
                )
            elif r["spent_at"] is not None and r["revoked_at"] is None:
                revoked = await revocation.revoke_family(conn, self.settings, r["family"])
                action, actor, reason = (
                    "security.refresh.reused",
                    str(u["id"]),
                    "refresh token reused",
                )
                await audit.append(
                    conn,
                    action="security.family.revoked",
                    actor="security",
                    subject=str(u["id"]),
                    details={"family": str(r["family"]), "access_tokens": revoked},
                )
            elif r["revoked_at"] is not None or r["expires_at"] <= now:
                action, actor, reason = (
                    "security.refresh.refused",
                    str(u["id"]),
                    "refresh token revoked or expired",
                )
            elif not domain.may_refresh(u["status"], u["locked_until"]):
                action, actor, reason = (
                    "security.refresh.refused",
                    str(u["id"]),
                    f"user {u['status']}",
                )
            else:
                await session_store.spend(conn, token_hash=r["token_hash"])
                return await self._issue(
                    conn, sub=str(u["id"]), role=u["role"], user_id=u["id"], family=r["family"]
                )
            if r is None:  # no principal: counted, audited with the others of its interval
                self.failures.note("refresh_token", "unknown_refresh_token")
            else:
                await audit.append(conn, action=action, actor=actor, details={"reason": reason})
        raise InvalidGrant(reason)

    async def revoke(self, token: str) -> None:
        """RFC 7009: the answer is the same whether or not the token was valid."""
        domain.check_text("token", token, domain.TOKEN_MAX)
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            if token.count(".") == 2:
                try:
                    jwks = {"keys": await store.public_keys(conn)}
                    claims = tokens.verify_own(
                        token, jwks, issuer=s.jwt_issuer, audience=s.jwt_audience
                    )
                except jwt.InvalidTokenError as exc:
                    await audit.append(
                        conn,
                        action="security.revoke.refused",
                        actor="anonymous",
                        details={"reason": str(exc)[:200]},
                    )
                    return
                until = datetime.fromtimestamp(claims["exp"], UTC)
                await revocation.revoke_jtis(conn, s, [(claims["jti"], until)])
                await audit.append(
                    conn,
                    action="security.token.revoked",
                    actor=claims["sub"],
                    details={"jti": claims["jti"]},
                )
                return
            r = await session_store.refresh(conn, token_hash=tokens.digest(token))
            if r is None:
                await audit.append(
                    conn,
                    action="security.revoke.refused",
                    actor="anonymous",
                    details={"reason": "unknown token"},
                )
                return
            n = await revocation.revoke_family(conn, s, r["family"])
            await audit.append(
                conn,
                action="security.family.revoked",
                actor=str(r["user_id"]),
                details={"family": str(r["family"]), "access_tokens": n},
            )
