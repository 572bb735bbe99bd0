"""Property: whatever a producer writes to any stream the platform reads, no service falls over,
every valid command beside it gets its outcome, and every bad entry is answered (an event
naming it) or dead-lettered with a reason. Account, integration and security services run
in-process on real Redis and PostgreSQL; hypothesis writes the entries."""

import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    ACCOUNT_QUERIES,
    AUDIT,
    WS2_EVENTS,
    WS4_EVENTS,
)
from shared.infra.runtime.settings import Settings
from tests.support.platform import Platform
from tests.support.platform import platform as running_platform
from tests.support.streams import ce, encodable, entries
from tests.support.tokens import Signer
from tests.support.waiting import until

INBOUND = [
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_QUERIES,
    ACCOUNT_EVENTS,
    WS2_EVENTS,
    WS4_EVENTS,
    AUDIT,
]
TYPES = [
    "alluse.account.deposit",
    "alluse.account.create",
    "alluse.system.initialize",
    "alluse.effect.trade_filled",
    "alluse.effect.account_valuation",
    "alluse.query.account",
    "alluse.account.balance_changed",
    "ws2.week.classified",
    "ws4.trade.filled",
    "ws4.market.quote",
    "alluse.audit.recorded",
]
ATTRS = [
    b"specversion",
    b"id",
    b"source",
    b"type",
    b"time",
    b"subject",
    b"authorization",
    b"datacontenttype",
    b"data",
]


@pytest.fixture
async def platform(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Platform]:
    async with running_platform(settings, redis, signer) as p:
        yield p


# -- what a careless or hostile producer writes ------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
data_texts = st.one_of(
    json_values.map(json.dumps),  # any JSON: wrong types, arrays, scalars
    st.fixed_dictionaries(
        {"amount": json_values, "account_id": json_values, "action": json_values}
    ).map(json.dumps),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),  # deep
    st.integers(1, 5_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1_000, 300_000).map(lambda n: json.dumps({"amount": "9" * n})),  # huge
    st.text(max_size=50),  # not JSON
)
data_values: st.SearchStrategy[bytes] = st.one_of(
    data_texts.map(str.encode),
    st.binary(min_size=1, max_size=60),  # bytes, often not UTF-8
)


@st.composite
def bad_entries(draw: st.DrawFn, box: str) -> dict[bytes, bytes]:
    if draw(st.booleans()):  # an arbitrary field map
        keys = st.sampled_from(ATTRS) | st.binary(min_size=1, max_size=12)
        return draw(st.dictionaries(keys, st.binary(max_size=80), min_size=1, max_size=8))
    fields: dict[bytes, bytes] = {  # a near-valid CloudEvent with something wrong in it
        b"specversion": b"1.0",
        b"id": uuid.uuid4().hex.encode(),
        b"source": b"tests/fuzz",
        b"type": draw(st.sampled_from(TYPES)).encode(),
        b"time": datetime.now(UTC).isoformat().encode(),
        b"replyto": box.encode(),
        b"data": draw(data_values),
    }
    if draw(st.booleans()):
        fields[draw(st.sampled_from(ATTRS))] = draw(st.binary(max_size=40))
    return fields


def valid_deposit(p: Platform) -> dict[str, str]:
    bearer = p.client.signer.bearer("admin")
    return ce("alluse.account.deposit", {"amount": "1.00"}, authorization=bearer, subject=p.account)


# -- what became of each entry -------------------------------------------------------------------


Key = tuple[bytes, bytes]  # (stream, entry id): ids repeat across streams written in one MULTI


async def verdicts(p: Platform, written: dict[Key, dict[Any, Any]]) -> dict[Key, list[str]]:
    """Entry id -> what answered it, scanning every stream of the run: dead letters (with their
    reason) and events caused by (or republishing) the entry, outside the inbound streams."""
    ids = {_text(f.get(b"id", f.get("id", b""))): e for e, f in written.items()}
    inbound = {p.client.s.key(name).encode() for name in INBOUND}
    found: dict[Key, list[str]] = {}
    async for key in p.redis.scan_iter(match=f"{p.prefix}*", _type="STREAM"):
        for _, fields in await entries(p.redis, key):
            entry = (fields.get(b"dlq_stream", b""), fields.get(b"dlq_entry_id", b""))
            if entry in written and b"dlq_reason" in fields:
                found.setdefault(entry, []).append(f"dead: {fields[b'dlq_reason'].decode()}")
            elif key not in inbound:
                causes = {ids.get(_text(fields.get(a, b""))) for a in (b"causationid", b"id")}
                for cause in (c for c in causes if c is not None):
                    found.setdefault(cause, []).append(
                        f"{_text(fields.get(b'type'))} on {_text(key)}"
                    )
    return found


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def all_answered(
    p: Platform, written: dict[Key, dict[Any, Any]], good: list[Key]
) -> dict[Key, list[str]]:
    """Waits until every bad entry has a verdict and every good one its lifecycle event."""
    lifecycle = f"alluse.account.balance_changed on {p.client.s.key(ACCOUNT_LIFECYCLE)}"

    def missing(found: dict[Key, list[str]]) -> dict[Key, Any]:
        gone = [e for e in written if e not in found]
        gone += [e for e in good if lifecycle not in found.get(e, [])]
        return {e: (written[e], found.get(e)) for e in gone}

    return await until(
        lambda: verdicts(p, written),
        lambda found: not missing(found),
        timeout=30,
        what="an outcome or dead letter for every entry",
    )


@settings(
    max_examples=int(os.environ.get("ALLUSE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking re-runs the platform: slow
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_entry_on_any_inbound_stream_hurts_another(platform: Platform, data: Any) -> None:
    p = platform
    stream = p.client.s.key(data.draw(st.sampled_from(INBOUND), label="stream"))
    box = f"{p.prefix}fuzz.replies"
    bad = data.draw(st.lists(bad_entries(box), min_size=1, max_size=6), label="bad entries")
    good = [valid_deposit(p) for _ in range(2)]
    pipe = p.redis.pipeline(transaction=True)  # one MULTI: the service reads them as one batch
    pipe.xadd(p.client.s.key(ACCOUNT_COMMANDS), encodable(good[0]))
    for fields in bad:
        pipe.xadd(stream, encodable(fields))
    pipe.xadd(p.client.s.key(ACCOUNT_COMMANDS), encodable(good[1]))
    commands = p.client.s.key(ACCOUNT_COMMANDS).encode()
    keys = [(commands, i) for i in [*await pipe.execute()]]
    keys[1:-1] = [(stream.encode(), i) for _, i in keys[1:-1]]
    written = dict(zip(keys, [good[0], *bad, good[1]], strict=True))
    found = await all_answered(p, written, [keys[0], keys[-1]])
    for verdict in (v for vs in found.values() for v in vs if v.startswith("dead: ")):
        assert len(verdict) > len("dead: ")  # every dead letter says why
    for rt in p.runtimes:  # every service still up and ready
        status = await rt.ready()
        assert set(status.values()) == {"ok"}, status
