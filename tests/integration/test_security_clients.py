"""Machine clients disabled, enabled and given a new secret, through the running service."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.infra.stream.messaging import Rejected
from shared.infra.trust.auth import Verifier
from tests.integration.test_security_http import Svc, svc  # noqa: F401 - the fixture
from tests.support.waiting import until


@pytest.fixture
async def verifier(svc: Svc) -> AsyncIterator[Verifier]:  # noqa: F811
    """A verifier following the revocation stream, as every service's is."""
    revocations = svc.revocations()
    task = await revocations.start()
    yield svc.verifier(revocations)
    task.cancel()


async def token(svc: Svc, cid: str, secret: str) -> httpx.Response:  # noqa: F811
    data = {"grant_type": "client_credentials"}
    return await svc.http.post("/oauth/token", data=data, auth=(cid, secret))


async def audited(svc: Svc, action: str, cid: str) -> int:  # noqa: F811
    async with svc.admin.pool.acquire() as conn:
        sql = "SELECT count(*) FROM audit_records WHERE action = $1 AND subject = $2"
        return int(await conn.fetchval(sql, action, cid))


async def refused(verifier: Verifier, access: str) -> bool:
    try:
        await verifier.principal(f"Bearer {access}")
    except Rejected as r:
        return "revoked" in r.reason
    return False


async def test_disabled_client_cannot_log_in_and_its_tokens_are_refused(
    svc: Svc,  # noqa: F811
    verifier: Verifier,
) -> None:
    cid = f"engine-{uuid.uuid4().hex[:8]}"
    secret = await svc.admin.create_client(client_id=cid, role="trading_engine")
    live = (await token(svc, cid, secret)).json()["access_token"]
    assert (await verifier.principal(f"Bearer {live}")).subject == cid
    await svc.admin.set_client_status(client_id=cid, status="disabled")

    async def revoked() -> bool:
        return await refused(verifier, live)

    await until(revoked)
    r = await token(svc, cid, secret)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert await audited(svc, "security.client.disabled", cid) == 1
    await svc.admin.set_client_status(client_id=cid, status="active")
    again = (await token(svc, cid, secret)).json()["access_token"]
    assert (await verifier.principal(f"Bearer {again}")).subject == cid
    assert await refused(verifier, live)  # enabling does not bring old tokens back
    assert await audited(svc, "security.client.enabled", cid) == 1


async def test_rotated_client_secret_replaces_the_old_one_and_revokes_its_tokens(
    svc: Svc,  # noqa: F811
    verifier: Verifier,
) -> None:
    cid = f"engine-{uuid.uuid4().hex[:8]}"
    old = await svc.admin.create_client(client_id=cid, role="trading_engine")
    live = (await token(svc, cid, old)).json()["access_token"]
    new = await svc.admin.rotate_client_secret(client_id=cid)
    assert new != old
    fresh = (await token(svc, cid, new)).json()["access_token"]  # at once, same second

    async def revoked() -> bool:
        return await refused(verifier, live)

    await until(revoked)
    r = await token(svc, cid, old)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert (await verifier.principal(f"Bearer {fresh}")).subject == cid
    assert await audited(svc, "security.client.secret_rotated", cid) == 1
