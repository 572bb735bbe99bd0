"""Revoking inside a transaction: the database rows, and the stream entry every verifier follows."""

import time
import uuid
from collections.abc import Sequence
from datetime import datetime

from services.security import session_store, store
from shared.contracts.streams import REVOCATIONS
from shared.contracts.trust import REVOKED
from shared.infra.runtime.settings import Settings


async def revoke_jtis(
    conn: store.Conn, settings: Settings, jtis: Sequence[tuple[str, datetime]]
) -> None:
    """Refuse these access tokens everywhere until they would have expired anyway."""
    await session_store.revoke_jtis(conn, jtis=jtis)
    for jti, until in jtis:
        fields = {"type": REVOKED, "kind": "jti", "value": jti, "until": f"{until.timestamp():.3f}"}
        await store.outbox(conn, stream=settings.streams.key(REVOCATIONS), fields=fields)


async def revoke_family(conn: store.Conn, settings: Settings, family: uuid.UUID) -> int:
    alive = await session_store.revoke_families(conn, family=family)
    await revoke_jtis(conn, settings, [(r["access_jti"], r["access_expires"]) for r in alive])
    return len(alive)


async def revoke_user(
    conn: store.Conn, settings: Settings, user_id: uuid.UUID, access_ttl: int
) -> None:
    """Every refresh family of the user, and every access token issued to it until now."""
    await session_store.revoke_families(conn, user_id=user_id)
    await revoke_subject(conn, settings, str(user_id), access_ttl)


async def revoke_subject(conn: store.Conn, settings: Settings, sub: str, access_ttl: int) -> None:
    """Every access token issued to `sub` (a user id or a client id) until now."""
    now = time.time()
    fields = {
        "type": REVOKED,
        "kind": "user",
        "value": sub,
        "at": f"{now:.3f}",
        "until": f"{now + access_ttl + 60:.3f}",
    }
    await store.outbox(conn, stream=settings.streams.key(REVOCATIONS), fields=fields)
