"""Checking the platform's entry signatures: the exact bytes, independent of the platform's code.

A service signs up to 64 entries it writes together with one Ed25519 signature over the root
of a Merkle tree; each entry carries its own proof in the field `signature`:

    <kid>.<base64url Ed25519 signature>.<index of the entry's leaf>.<base64url sibling hashes>

- canonical form: the entry's fields but `signature`, as a JSON array of `[name, value]` pairs
  sorted by name, compact (no spaces), UTF-8, non-ASCII characters unescaped; prefixed with
  `alluse-entry-v1\\n`;
- leaf = SHA-256(0x00 || canonical form); node = SHA-256(0x01 || left || right); the leaves
  are padded to a power of two with SHA-256(0x02);
- signed message = `alluse-entries-v1\\n` || one byte: the tree's depth || the root.

`signed_at` (Unix milliseconds) is one of the signed fields.
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

SIGNATURE = "signature"
SIGNED_AT = "signed_at"
ENTRY_CONTEXT = b"alluse-entry-v1\n"
ROOT_CONTEXT = b"alluse-entries-v1\n"
MAX_DEPTH = 6
PAD = hashlib.sha256(b"\x02").digest()


class SignatureError(Exception):
    """The entry is unsigned, signed by a key nobody published, or its signature is wrong."""


def b64decode(text: str) -> bytes:
    """base64url without padding, as every value of the proof is written."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(fields: Mapping[str, str]) -> bytes:
    """The bytes a service signs for one entry (its leaf is the hash of these)."""
    items = sorted((k, v) for k, v in fields.items() if k != SIGNATURE)
    return ENTRY_CONTEXT + json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()


def leaf(fields: Mapping[str, str]) -> bytes:
    return hashlib.sha256(b"\x00" + canonical(fields)).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(leaf_hash: bytes, index: int, siblings: list[bytes]) -> bytes:
    """The tree's root from one leaf and its sibling hashes, bottom-up."""
    h = leaf_hash
    for level, sibling in enumerate(siblings):
        h = node(sibling, h) if (index >> level) & 1 else node(h, sibling)
    return h


def signed_message(depth: int, root: bytes) -> bytes:
    return ROOT_CONTEXT + bytes([depth]) + root


class Proof:
    """The parsed `signature` field of one entry."""

    __slots__ = ("index", "kid", "siblings", "signature")

    def __init__(self, value: str | None) -> None:
        parts = (value or "").split(".")
        if len(parts) != 4 or not parts[0] or not parts[1] or not parts[2].isdigit():
            raise SignatureError("entry carries no service signature")
        self.kid = parts[0]
        try:
            self.signature = b64decode(parts[1])
            raw = b64decode(parts[3])
        except (binascii.Error, ValueError):
            raise SignatureError("signature is not base64url") from None
        self.index = int(parts[2])
        self.siblings = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        if len(raw) % 32 or len(self.siblings) > MAX_DEPTH or self.index >> len(self.siblings):
            raise SignatureError("malformed Merkle path")

    def message(self, fields: Mapping[str, str]) -> bytes:
        """What the service's key signed, if `fields` are the entry's true content."""
        depth = len(self.siblings)
        return signed_message(depth, root_of(leaf(fields), self.index, self.siblings))


def text_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    """Stream fields as text, whether the Redis client decodes responses or not."""
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in raw.items()
    }
