"""Audit records folded into batch entries, and read back by the security service: each record
of a batch is the record it would have been alone."""

import orjson
import pytest

from services.security import audit
from shared.contracts.envelope import LIMITS, CloudEvent, decode, new_event
from shared.contracts.messages import AUDIT_BATCH
from shared.contracts.streams import Streams
from shared.infra.stream.messaging import Emit, Rejected
from shared.infra.trust import audit as records
from shared.infra.trust.audit import BATCH_BYTES, ENVELOPE_BYTES, audit_event, batched

STREAMS = Streams("p.")


def made(n: int, *, source: str = "alluse/account-service", big: int = 0) -> list[Emit]:
    """`n` records, each about a command of its own, as a pipeline makes them."""
    out = []
    for i in range(n):
        command = decode(
            {
                k.encode(): v.encode()
                for k, v in new_event("alluse.account.deposit", "ops", {"i": i}).items()
            }
        )
        out.append(
            audit_event(
                STREAMS,
                source=source,
                action=command.type,
                actor=f"user-{i}",
                subject=f"acct-{i}",
                details={"n": i, "pad": "x" * big, "password": "p"},
                cause=command,
            )
        )
    return out


def event(fields: dict[str, str]) -> CloudEvent:
    return decode({k.encode(): v.encode() for k, v in fields.items()})


def test_a_record_alone_stays_as_it_is() -> None:
    (one,) = made(1)
    assert batched([one]) == [one]
    assert batched([]) == []


def test_each_record_of_a_batch_is_the_record_it_would_have_been_alone() -> None:
    alone = made(5)
    ((stream, fields),) = batched(alone)
    assert stream == "p.alluse.audit" and fields["type"] == AUDIT_BATCH
    assert fields["source"] == "alluse/account-service"
    from_batch = audit.batch_entries(event(fields))
    assert from_batch == [audit.record_entry(event(f)) for _, f in alone]
    assert json_of(from_batch[0]["details"])["password"] == "[redacted]"


def json_of(text: str) -> dict[str, object]:
    loaded = orjson.loads(text)
    assert isinstance(loaded, dict)
    return loaded


def test_batches_keep_each_source_apart_and_their_size_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mixed = [*made(3), *made(2, source="alluse/integration")]
    got = batched(mixed)
    assert [(f["source"], len(orjson.loads(f["data"])["records"])) for _, f in got] == [
        ("alluse/account-service", 3),
        ("alluse/integration", 2),
    ]
    monkeypatch.setattr(records, "BATCH_RECORDS", 4)
    assert [len(orjson.loads(f["data"])["records"]) for _, f in batched(made(9))] == [4, 4, 1]
    big = batched(made(5, big=40_000))  # about BATCH_BYTES (96 KiB) per entry
    assert [len(orjson.loads(f["data"])["records"]) for _, f in big] == [2, 2, 1]
    assert all(len(f["data"]) < 128 * 1024 for _, f in big)


WIDE = "\U0001d11e"  # 𝄞: one character, four bytes in UTF-8


def from_wide_clients(n: int) -> list[Emit]:
    """Records of `n` commands whose source and id are as long as allowed, in 4-byte
    characters, each echoed as the pipeline echoes them: in the record's details and causes."""
    out = []
    for i in range(n):
        sent = new_event(
            "alluse.account.deposit", WIDE * 500, {"i": i}, event_id=f"{i:04}" + WIDE * 196
        )
        command = decode({k.encode(): v.encode() for k, v in sent.items()})
        details = {"message_type": command.type, "message_id": command.id, "source": command.source}
        out.append(
            audit_event(
                STREAMS,
                source="alluse/account-service",
                action=command.type,
                actor="pipeline",
                subject=f"acct-{i}",
                details=details,
                cause=command,
            )
        )
    return out


def entry_bytes(fields: dict[str, str]) -> int:
    """An entry's size as the reader's limit counts it: its field names and values in UTF-8."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in fields.items())


def test_batches_of_records_with_wide_characters_stay_under_the_entry_limit() -> None:
    alone = from_wide_clients(300)  # about 4.8 KB each: 1.4 MB of records
    got = batched(alone)
    assert len(got) > 1 and all(f["type"] == AUDIT_BATCH for _, f in got)
    assert all(entry_bytes(f) <= BATCH_BYTES + ENVELOPE_BYTES <= LIMITS.entry_bytes for _, f in got)
    read = [r for _, f in got for r in audit.batch_entries(event(f))]  # each entry readable
    assert read == [audit.record_entry(event(f)) for _, f in alone]


def test_a_record_too_large_to_share_an_entry_goes_alone_in_its_place() -> None:
    small, large = made(4), made(1, big=BATCH_BYTES)
    got = batched([*small[:2], *large, *small[2:]])
    assert [f["type"] for _, f in got] == [AUDIT_BATCH, large[0][1]["type"], AUDIT_BATCH]
    assert got[1] == large[0]
    firsts = [r["id"] for r in orjson.loads(got[0][1]["data"])["records"]]
    assert firsts == [f["id"] for _, f in small[:2]]


def test_the_same_records_make_the_same_batch_entry_and_others_another() -> None:
    alone = made(3)
    (first,) = batched(alone)
    (again,) = batched(alone)
    (other,) = batched(alone[1:] + made(1))
    assert again[1]["id"] == first[1]["id"] and again[1]["data"] == first[1]["data"]
    assert other[1]["id"] != first[1]["id"]


def test_a_batch_with_one_unreadable_record_is_refused_whole() -> None:
    (_, fields) = batched(made(2))[0]
    data = orjson.loads(fields["data"])
    data["records"][1].pop("actor")
    data["records"][0]["time"] = "yesterday"
    with pytest.raises(Rejected) as refused:
        audit.batch_entries(event({**fields, "data": orjson.dumps(data).decode()}))
    assert refused.value.code == "invalid_audit_record"
    assert "records.0.time" in refused.value.reason
    assert "records.1.actor" in refused.value.reason
    empty = {**fields, "data": '{"records": []}'}
    with pytest.raises(Rejected):
        audit.batch_entries(event(empty))
