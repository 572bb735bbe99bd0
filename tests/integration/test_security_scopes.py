"""Portfolio grants at the security service: `alluse security grant | revoke --portfolio` as an
operator runs them, the `portfolios` claim of the tokens it then issues, and a revoked grant's
live tokens refused (docs/scopes.md)."""

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from services.security.console import OK, REJECTED
from shared.contracts.permissions import Scope
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.auth import Verifier
from tests.integration.test_security_clients import token, verifier  # noqa: F401 - fixture
from tests.integration.test_security_http import Svc, svc  # noqa: F401 - the fixture
from tests.integration.test_security_store import cli, env  # noqa: F401 - fixture
from tests.support.waiting import until


def claims(access: str) -> dict[str, Any]:
    return dict(jwt.decode(access, options={"verify_signature": False}))


@pytest.fixture
async def engine(svc: Svc) -> AsyncIterator[tuple[str, str]]:  # noqa: F811
    cid = f"engine-{uuid.uuid4().hex[:8]}"
    yield cid, await svc.admin.create_client(client_id=cid, role="trading_engine")


async def test_a_client_gets_the_portfolios_granted_to_it_and_nothing_without(
    svc: Svc,  # noqa: F811
    env: Settings,  # noqa: F811
    engine: tuple[str, str],
    verifier: Verifier,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cid, secret = engine
    bare = (await token(svc, cid, secret)).json()["access_token"]
    assert claims(bare)["portfolios"] == []  # no grant: no portfolio (fail closed)
    assert (await verifier.principal(f"Bearer {bare}")).scope.portfolios == frozenset()

    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert await cli("grant", "--client", cid, "--portfolio", a) == OK
    assert await cli("grant", "--client", cid, "--portfolio", b.upper()) == OK  # canonical case
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["portfolios"] == sorted([a, b])
    assert await cli("grant", "--client", cid, "--portfolio", "not-a-portfolio") == REJECTED
    assert await cli("grant", "--client", "nobody-" + cid, "--portfolio", a) == REJECTED
    live = (await token(svc, cid, secret)).json()["access_token"]
    assert sorted(claims(live)["portfolios"]) == sorted([a, b])
    scope = (await verifier.principal(f"Bearer {live}")).scope
    assert not scope.whole and scope.portfolios == {a, b}

    assert await cli("revoke", "--client", cid, "--portfolio", b) == OK

    async def revoked() -> bool:
        try:
            await verifier.principal(f"Bearer {live}")
        except Rejected as r:
            return "revoked" in r.reason
        return False

    await until(revoked)  # the old scope does not outlive the revocation
    after = (await token(svc, cid, secret)).json()["access_token"]
    assert claims(after)["portfolios"] == [a]
    assert await cli("revoke", "--client", cid, "--portfolio", b) == REJECTED  # held no more
    assert await cli("revoke", "--client", cid) == REJECTED  # disable-client cuts a client off
    capsys.readouterr()
    assert await cli("scopes", "--client", cid) == OK
    held = json.loads(capsys.readouterr().out)
    assert held == {"grantee": cid, "kind": "client", "role": "trading_engine", "portfolios": [a]}

    async with svc.admin.pool.acquire() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_records WHERE subject = $1 ORDER BY seq", cid
            )
        ]
    assert actions.count("security.scope.granted") == 2
    assert actions.count("security.scope.revoked") == 1


async def test_the_whole_platform_is_granted_as_star_and_held_by_operators_by_role(
    svc: Svc,  # noqa: F811
    engine: tuple[str, str],
) -> None:
    cid, secret = engine
    await svc.admin.grant(client_id=cid, portfolio="*")
    assert claims((await token(svc, cid, secret)).json()["access_token"])["portfolios"] == ["*"]
    name, _ = await svc.user("operator")
    operator = (await svc.login(name)).json()["access_token"]
    assert claims(operator)["portfolios"] == ["*"]
    viewer, _ = await svc.user("viewer")
    a = str(uuid.uuid4())
    await svc.admin.grant(username=viewer, portfolio=a)
    assert claims((await svc.login(viewer)).json()["access_token"])["portfolios"] == [a]
    assert Scope.of("operator", []).whole and not Scope.of("viewer", None).covers([a])


async def test_a_client_created_with_a_portfolio_holds_it_from_its_first_token(
    svc: Svc,  # noqa: F811
    env: Settings,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As `make run` and the bench create their engines: `--portfolio '*'` at creation."""
    cid = f"engine-{uuid.uuid4().hex[:8]}"
    created = ("create-client", "--client-id", cid, "--role", "trading_engine")
    assert await cli(*created, "--portfolio", "*") == OK
    secret = json.loads(capsys.readouterr().out)["client_secret"]
    first = (await token(svc, cid, secret)).json()["access_token"]
    assert claims(first)["portfolios"] == ["*"]
