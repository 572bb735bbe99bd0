"""Sessions at the security service are capped per user and evicted per user (issue 18,
finding 6): one user signing in again and again ends only its own oldest sessions."""

from shared.infra.stream.messaging import Rejected
from shared.infra.trust.auth import Verifier
from tests.integration.test_security_clients import verifier  # noqa: F401 - fixture
from tests.integration.test_security_http import Svc, svc  # noqa: F401 - the fixture
from tests.support.waiting import until


async def test_a_viewer_signing_in_again_and_again_never_ends_the_operators_session(
    svc: Svc,  # noqa: F811
    verifier: Verifier,  # noqa: F811
) -> None:
    cap = svc.settings.max_sessions_per_user
    operator, _ = await svc.user("operator")
    ops = (await svc.login(operator)).json()
    viewer, _ = await svc.user("viewer")
    first = (await svc.login(viewer)).json()
    for _ in range(cap + 2):
        assert (await svc.login(viewer)).status_code == 200
    assert len(await svc.admin.sessions(username=viewer)) == cap
    assert len(await svc.admin.sessions(username=operator)) == 1

    async def ended() -> bool:  # the evicted session's access token goes with it
        try:
            await verifier.principal(f"Bearer {first['access_token']}")
        except Rejected as r:
            return "revoked" in r.reason
        return False

    await until(ended)
    assert (await verifier.principal(f"Bearer {ops['access_token']}")).role == "operator"
    again = await svc.http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": ops["refresh_token"]}
    )
    assert again.status_code == 200  # the operator's session lives on
    gone = await svc.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert gone.status_code == 400
    assert await svc.audits("security.session.evicted") == 3
