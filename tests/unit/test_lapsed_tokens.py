"""A lapsed token (genuine, but expired or revoked) proves who wrote an entry only for a type
its role may send: a redelivery of what it applied is then answered as its duplicate
(docs/lanes.md). A role that could never send that type proves no writer: it is refused as
any invalid token, without the permission check being skipped."""

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contracts.envelope import CloudEvent, decode
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.auth import Lapsed, Verifier
from shared.infra.trust.guards import bearer
from shared.infra.trust.keys import KeySet

ISSUER, AUDIENCE = "alluse-security", "alluse"
KEY, KID = Ed25519PrivateKey.generate(), "tokens-1"
FILL = "ws4.trade.filled"


def verifier(revoked: frozenset[str] = frozenset()) -> Verifier:
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(KEY.public_key()))
    jwk.update(kid=KID, use="sig", alg="EdDSA")

    async def fetch() -> dict[str, Any]:
        return {"keys": [jwk]}

    return Verifier(
        KeySet(fetch),
        issuer=ISSUER,
        audience=AUDIENCE,
        is_revoked=lambda claims: claims["jti"] in revoked,
    )


def token(role: str, *, expired: bool = False, jti: str = "") -> str:
    now = int(time.time()) - (3600 if expired else 0)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"client-{role}",
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": jti or uuid.uuid4().hex,
    }
    return "Bearer " + jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": KID})


def fill(authorization: str) -> tuple[CloudEvent, dict[bytes, bytes]]:
    fields = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "ws4/engine-a",
        "type": FILL,
        "time": "2026-11-26T14:02:11Z",
        "datacontenttype": "application/json",
        "authorization": authorization,
        "data": "{}",
    }
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    return decode(raw), raw


def refusal(authorization: str, revoked: frozenset[str] = frozenset()) -> tuple[Rejected, str]:
    """What the guard says of a fill under this token, and the writer it recognised."""
    ev, raw = fill(authorization)
    guard = bearer(verifier(revoked))

    async def guarded() -> None:
        await guard(ev, raw)

    with pytest.raises(Rejected) as caught:
        asyncio.run(guarded())
    return caught.value, ev.writer


def test_an_expired_token_of_a_role_that_may_send_the_type_still_names_its_writer() -> None:
    refused, writer = refusal(token("trading_engine", expired=True))
    assert isinstance(refused, Lapsed)
    assert refused.code == "unauthorized" and "expired" in refused.reason
    assert writer == "client:client-trading_engine"


@pytest.mark.parametrize("role", ["viewer", "no-such-role"])
def test_an_expired_token_of_a_role_that_could_never_send_it_is_refused_naming_no_writer(
    role: str,
) -> None:
    refused, writer = refusal(token(role, expired=True))
    assert not isinstance(refused, Lapsed)
    assert refused.code == "unauthorized" and "expired" in refused.reason  # as ever
    assert writer == ""


def test_a_revoked_token_is_a_lapsed_writer_only_for_what_its_role_may_send() -> None:
    engine, viewer = uuid.uuid4().hex, uuid.uuid4().hex
    revoked = frozenset({engine, viewer})
    refused, writer = refusal(token("trading_engine", jti=engine), revoked)
    assert isinstance(refused, Lapsed) and writer == "client:client-trading_engine"
    refused, writer = refusal(token("viewer", jti=viewer), revoked)
    assert not isinstance(refused, Lapsed) and writer == ""
    assert (refused.code, refused.reason) == ("unauthorized", "token has been revoked")
