"""The trust checks at their edges, without servers: entry signatures made and verified, the
published key's exact shape, and the freshness bounds to the millisecond. Written against the
mutants `make mutate` found alive (docs/testing.md): each test here fails if one of them is put
back."""

import asyncio
import hashlib
import time
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest

from shared.contracts.trust import GROUP, SIGNATURE, SIGNED_AT
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.guards import SKEW, fresh
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import (
    EntrySigner,
    IdentityError,
    b64,
    new_seed,
    service_jwk,
    signer_of,
    unb64,
)

NOW_MS = 1_800_000_000_000  # the reader's clock, fixed: the bounds are checked exactly
WINDOW = timedelta(days=7)


def keys_of(*signers: EntrySigner) -> KeySet:
    """A JWKS holding the signers' published keys, as the security service serves it."""

    async def fetch() -> dict[str, Any]:
        return {"keys": [s.jwk() for s in signers]}

    return KeySet(fetch)


def verified_by(keys: KeySet, entries: list[dict[str, str]]) -> list[str]:
    async def check() -> list[str]:
        return [await signer_of(keys, e) for e in entries]

    return asyncio.run(check())


def test_entries_signed_in_several_groups_each_verify_as_their_service() -> None:
    signer = EntrySigner.from_seed("account", new_seed())
    entries = signer.sign_many([{"id": str(i), "data": "{}"} for i in range(2 * GROUP + 3)])
    assert [e["id"] for e in entries] == [str(i) for i in range(2 * GROUP + 3)]
    assert verified_by(keys_of(signer), entries) == ["account"] * (2 * GROUP + 3)
    signatures = {e[SIGNATURE].split(".")[1] for e in entries}
    assert len(signatures) == 3  # one Ed25519 signature per group of GROUP entries


def test_a_changed_field_or_another_service_s_key_is_refused() -> None:
    signer, other = (EntrySigner.from_seed(s, new_seed()) for s in ("account", "integration"))
    (entry,) = signer.sign_many([{"id": "1", "amount": "5.00"}])
    with pytest.raises(Rejected) as caught:
        verified_by(keys_of(signer), [{**entry, "amount": "500.00"}])
    assert caught.value.reason == "signature does not match the entry"
    with pytest.raises(Rejected):  # a key the JWKS does not publish proves nothing
        verified_by(keys_of(other), [entry])


def test_the_published_key_has_exactly_the_jwk_fields_verifiers_read() -> None:
    signer = EntrySigner.from_seed("account", new_seed())
    digest = hashlib.sha256(unb64(signer.public)).hexdigest()[:12]
    assert service_jwk("account", signer.public) == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": signer.public,
        "kid": f"account-{digest}",
        "alg": "EdDSA",
        "use": "sig",
        "service": "account",
    }
    assert signer.kid == f"account-{digest}" and signer.service == "account"


@pytest.mark.parametrize("size", range(7))
def test_base64url_has_no_padding_and_reads_back(size: int) -> None:
    raw = bytes(range(250, 250 - size, -1))
    assert "=" not in b64(raw) and unb64(b64(raw)) == raw


def test_an_unusable_seed_stops_the_service_naming_it() -> None:
    with pytest.raises(IdentityError) as caught:
        EntrySigner.from_seed("integration", "not a key")
    assert str(caught.value).startswith("the integration service's signing key is not valid")


def signed(at_ms: int) -> dict[str, str]:
    return {SIGNED_AT: str(at_ms)}


def refusal(fields: dict[str, str]) -> str:
    clock = patch("shared.infra.trust.guards.time.time", return_value=NOW_MS / 1000)
    with clock, pytest.raises(Rejected) as caught:
        fresh(fields, WINDOW)
    assert caught.value.code == "unauthorized"
    return caught.value.reason


def accepted(fields: dict[str, str]) -> None:
    with patch("shared.infra.trust.guards.time.time", return_value=NOW_MS / 1000):
        fresh(fields, WINDOW)


def test_freshness_takes_the_window_and_the_skew_inclusively() -> None:
    window_ms = int(WINDOW.total_seconds() * 1000)
    skew_ms = int(SKEW.total_seconds() * 1000)
    accepted(signed(NOW_MS - window_ms))  # exactly as old as the window
    assert "beyond the deduplication window" in refusal(signed(NOW_MS - window_ms - 1))
    accepted(signed(NOW_MS + skew_ms))  # exactly as far ahead as a clock may run
    assert refusal(signed(NOW_MS + skew_ms + 1)) == (
        "signed in the future (signer's clock ahead by > 5 min)"
    )


def test_a_signing_time_is_up_to_15_digits_of_milliseconds() -> None:
    assert "future" in refusal({SIGNED_AT: "9" * 15})  # read as a time (far ahead)
    no_time = "entry carries no signing time (signed_at)"
    assert refusal({SIGNED_AT: "9" * 16}) == no_time
    assert refusal({}) == no_time and refusal({SIGNED_AT: "\uff11\uff12"}) == no_time  # wide digits


def test_the_real_clock_is_read() -> None:
    fresh({SIGNED_AT: str(int(time.time() * 1000))}, WINDOW)
