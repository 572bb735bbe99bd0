"""The keyed audit chain, pure: HMAC links, key ids, unkeyed re-chains and published heads."""

from collections.abc import Sequence

import pytest

from services.security import crypto
from services.security.chain import GENESIS, Broken, ChainCheck, Head, link_hash

KEY, OTHER = b"k" * 32, b"o" * 32
KEYS = {"k1": KEY}
Row = tuple[dict[str, object], str, str]


def chain(n: int, key: bytes | None = KEY, key_id: str | None = "k1") -> list[Row]:
    rows: list[Row] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        record: dict[str, object] = {"seq": seq, "action": "a", "details": "{}"}
        if key_id is not None:
            record["key_id"] = key_id
        h = link_hash(prev, record, key)
        rows.append((record, prev, h))
        prev = h
    return rows


def rechain(rows: list[Row], start: int, key: bytes | None, key_id: str | None) -> list[Row]:
    """What someone able to write the table does: re-hash every record from `start` on."""
    out, prev = rows[: start - 1], rows[start - 2][2] if start > 1 else GENESIS
    for record, _, _ in rows[start - 1 :]:
        record = {k: v for k, v in record.items() if k != "key_id"}
        if key_id is not None:
            record["key_id"] = key_id
        h = link_hash(prev, record, key)
        out.append((record, prev, h))
        prev = h
    return out


def check(
    rows: list[Row], heads: Sequence[Head] = (), keys: dict[str, bytes] = KEYS
) -> Broken | None:
    c = ChainCheck(keys, heads)
    for record, prev, h in rows:
        c.feed(record, prev, h)
    last_seq = rows[-1][0]["seq"] if rows else 0
    assert isinstance(last_seq, int)
    return c.finish(last_seq, rows[-1][2] if rows else GENESIS)


def test_intact_keyed_chain_verifies() -> None:
    assert check(chain(5)) is None


def test_modified_record_is_the_first_broken_link() -> None:
    rows = chain(5)
    rows[2][0]["action"] = "b"
    broken = check(rows)
    assert broken is not None and broken.seq == 3 and "modified" in broken.problem


def test_deleted_record_is_named() -> None:
    rows = chain(5)
    del rows[1]
    broken = check(rows)
    assert broken is not None and broken.seq == 2 and "missing" in broken.problem


def test_rechained_without_the_key_names_the_rewritten_record() -> None:
    rows = chain(6)
    rows[2][0]["action"] = "rewritten"
    broken = check(rechain(rows, 3, OTHER, "k1"))
    assert broken is not None and broken.seq == 3 and "modified" in broken.problem


def test_rechained_as_plain_sha256_names_the_first_unkeyed_record() -> None:
    rows = chain(6)
    rows[3][0]["action"] = "rewritten"
    broken = check(rechain(rows, 4, None, None))
    assert broken is not None and broken.seq == 4 and "no key id" in broken.problem


def test_a_table_rechained_entirely_unkeyed_is_broken() -> None:
    broken = check(rechain(chain(4), 1, None, None))
    assert broken is not None and broken.seq == 1 and "no record is keyed" in broken.problem


def test_unkeyed_records_before_the_first_keyed_one_are_accepted() -> None:
    rows = rechain(chain(5, key=None, key_id=None), 4, KEY, "k1")  # keys came with record 4
    assert check(rows) is None


def test_records_keyed_with_a_retired_key_verify_while_it_is_configured() -> None:
    rows = chain(3, key=OTHER, key_id="k0")
    assert check(rows, keys={"k1": KEY, "k0": OTHER}) is None
    broken = check(rows)
    assert (
        broken is not None and broken.seq == 1 and "not one of ALLUSE_AUDIT_KEYS" in broken.problem
    )


def test_a_chain_rewritten_with_the_key_fails_against_a_head_published_before() -> None:
    rows = chain(8)
    heads = [Head(2, rows[1][2], "t1"), Head(5, rows[4][2], "t2"), Head(8, rows[7][2], "t3")]
    rows[3][0]["action"] = "rewritten"
    forged = rechain(rows, 4, KEY, "k1")
    assert check(forged) is None  # the key alone no longer tells
    broken = check(forged, heads)
    assert broken is not None and broken.seq == 3
    assert "records 3 to 5 were rewritten" in broken.problem and "t2" in broken.problem


def test_a_truncated_chain_fails_against_a_published_head() -> None:
    rows = chain(5)
    broken = check(rows[:3], [Head(5, rows[4][2], "t9")])
    assert broken is not None and broken.seq == 4 and "t9" in broken.problem


def test_audit_keys_are_required_and_named_by_a_digest() -> None:
    with pytest.raises(crypto.KeyConfigError, match="ALLUSE_AUDIT_KEYS is not set"):
        crypto.load_audit_keys("")
    with pytest.raises(crypto.KeyConfigError, match="not 32 bytes"):
        crypto.load_audit_keys("short")
    new, old = crypto.gen_key(), crypto.gen_key()
    ring = crypto.load_audit_keys(f"{new}, {old}")
    assert len(ring.keys) == 2 and ring.primary == next(iter(ring.keys))
    assert new not in ring.primary and ring.primary == crypto.load_audit_keys(new).primary
