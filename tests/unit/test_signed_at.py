"""A service's signature carries its signing time, and readers bound it: a replay of an entry
signed before the deduplication window is refused, whatever else is right about it."""

import time
from datetime import timedelta

import pytest

from shared.contracts.trust import SIGNED_AT
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.guards import fresh
from shared.infra.trust.signing import EntrySigner, new_seed

WEEK = timedelta(days=7)


def stamp(seconds_ago: float) -> dict[str, str]:
    return {SIGNED_AT: str(int((time.time() - seconds_ago) * 1000))}


def test_every_signed_entry_carries_its_signing_time() -> None:
    signer = EntrySigner.from_seed("account", new_seed())
    before = time.time() * 1000
    entries = signer.sign_many([{"id": str(i)} for i in range(70)])  # two signed groups
    assert all(before - 1 <= int(e[SIGNED_AT]) <= time.time() * 1000 + 1 for e in entries)


def test_recent_entries_are_fresh() -> None:
    fresh(stamp(0), WEEK)
    fresh(stamp(WEEK.total_seconds() - 60), WEEK)
    fresh(stamp(-60), WEEK)  # a signer's clock a minute ahead


@pytest.mark.parametrize(
    "fields, why",
    [
        (stamp(WEEK.total_seconds() + 60), "deduplication window"),
        (stamp(-3600), "future"),
        ({}, "no signing time"),
        ({SIGNED_AT: "soon"}, "no signing time"),
        ({SIGNED_AT: "-5"}, "no signing time"),
        ({SIGNED_AT: "٣٣٣"}, "no signing time"),  # digits, but not ASCII ones
        ({SIGNED_AT: "9" * 400}, "no signing time"),
    ],
)
def test_stale_future_or_missing_signing_times_are_unauthorized(
    fields: dict[str, str], why: str
) -> None:
    with pytest.raises(Rejected) as refused:
        fresh(fields, WEEK)
    assert refused.value.code == "unauthorized" and why in refused.value.reason
