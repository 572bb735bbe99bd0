"""The audit chain's pure rules: how a link is hashed and how a chain is checked. No I/O.

Each record's link is HMAC-SHA256 over the previous link and the record, under a key that
lives outside the database (ALLUSE_AUDIT_KEYS): whoever can rewrite rows cannot re-chain them.
Records written before the chain was keyed carry no key id and a plain SHA-256 link; they
are accepted only before the first keyed record. Heads published while the chain grew pin
it further: a chain rewritten even with the key no longer matches a head published before.
"""

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


# json.dumps with these arguments, its encoder made once rather than per record.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)


def canonical(record: Mapping[str, Any]) -> str:
    return _CANONICAL.encode(record)


def link_hash(prev_hash: str, record: Mapping[str, Any], key: bytes | None = None) -> str:
    """HMAC-SHA256 under `key` over the previous hash and the record's canonical JSON
    (SHA-256 without a key: records from before the chain was keyed)."""
    message = (prev_hash + canonical(record)).encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Broken:
    seq: int
    problem: str


@dataclass(frozen=True)
class Head:
    """(seq, hash) of the chain as published at `published` (stream entry id or 'given')."""

    seq: int
    hash: str
    published: str = "given"


class ChainCheck:
    """Feed rows in seq order; the first broken link is kept, later ones are not interesting."""

    def __init__(self, keys: Mapping[str, bytes], heads: Iterable[Head] = ()) -> None:
        self.keys = keys
        self.heads = sorted(heads, key=lambda h: h.seq)
        self.seq, self.hash, self.keyed = 0, GENESIS, False
        self.pinned = 0  # the last seq a published head confirmed
        self.broken: Broken | None = None

    def feed(self, record: Mapping[str, Any], prev_hash: str, stored_hash: str) -> Broken | None:
        seq = int(record["seq"])
        if self.broken is None:
            self.broken = self._link(seq, record, prev_hash, stored_hash) or self._pin(
                seq, stored_hash
            )
        self.seq, self.hash = seq, stored_hash
        return self.broken

    def _link(
        self, seq: int, record: Mapping[str, Any], prev_hash: str, stored_hash: str
    ) -> Broken | None:
        key_id = record.get("key_id")
        if seq != self.seq + 1:
            return Broken(self.seq + 1, f"record {self.seq + 1} is missing (next is {seq})")
        if prev_hash != self.hash:
            return Broken(seq, "prev_hash does not match the previous record's hash")
        if key_id is None and self.keyed:
            return Broken(seq, "record has no key id after keyed records (re-chained unkeyed)")
        if key_id is not None and key_id not in self.keys:
            return Broken(seq, f"record is keyed with '{key_id}', not one of ALLUSE_AUDIT_KEYS")
        key = None if key_id is None else self.keys[key_id]
        self.keyed = self.keyed or key is not None
        if link_hash(prev_hash, record, key) != stored_hash:
            return Broken(seq, "content does not match its hash (modified)")
        return None

    def _pin(self, seq: int, stored_hash: str) -> Broken | None:
        while self.heads and self.heads[0].seq <= seq:
            head = self.heads.pop(0)
            if head.seq == seq and head.hash != stored_hash:
                return Broken(
                    self.pinned + 1,
                    f"records {self.pinned + 1} to {seq} were rewritten: record {seq} differs"
                    f" from the head published at {head.published}",
                )
            self.pinned = seq
        return None

    def finish(self, head_seq: int, head_hash: str) -> Broken | None:
        if self.broken is None and (head_seq, head_hash) != (self.seq, self.hash):
            self.broken = Broken(self.seq + 1, f"chain ends at {self.seq} but head says {head_seq}")
        if self.broken is None and self.heads:
            last = self.heads[-1]
            self.broken = Broken(
                self.seq + 1,
                f"records {self.seq + 1} to {last.seq} were dropped: the chain ends at"
                f" {self.seq} but a head published at {last.published} says {last.seq}",
            )
        if self.broken is None and self.seq > 0 and not self.keyed:
            self.broken = Broken(1, "no record is keyed (the chain was re-chained unkeyed)")
        return self.broken
