"""Who may write what: the owner of each internal type, the signed bytes, the reply namespace.

Clients prove themselves with a bearer token; a service proves each entry it writes with an
Ed25519 signature, made with a key the security service publishes in its JWKS bound to that
service (JWK member `service`). A reader takes an internal type only when the signer is the
type's owner below.

A service signs the entries it writes together (up to GROUP of them) at once: each entry's
leaf is SHA-256 over its own fields (`signed_bytes`), the leaves (padded to a power of two)
form a Merkle tree, and the root is signed. An entry carries
`signature: <kid>.<base64url signature>.<its index>.<base64url of its sibling hashes>`, so it
proves its own content alone, and one Ed25519 signature serves the whole group.
"""

import hashlib
from collections.abc import Mapping

import orjson

from shared.contracts.lifecycle import LIFECYCLE_TYPES
from shared.contracts.messages import (
    AUDIT_TYPES,
    COMMAND_REJECTED,
    QUERY_FAILED,
    QUERY_RESULT,
    WEEK_CHANGED,
)
from shared.contracts.upstream import EFFECT_TYPES

ACCOUNT, INTEGRATION, SECURITY = "account", "integration", "security"
SERVICES = (ACCOUNT, INTEGRATION, SECURITY)
SIGNATURE = "signature"
SIGNED_AT = "signed_at"  # when the service signed it, Unix milliseconds: bounds replays
SIGNED_CONTEXT = b"alluse-entry-v1\n"  # an entry's bytes are never anything else's
ROOT_CONTEXT = b"alluse-entries-v1\n"  # what is signed: this, the tree's depth, its root
GROUP = 64  # entries under one signature: proofs of at most 6 hashes
MAX_DEPTH = 6
REVOKED = "alluse.security.revoked"
# Extension attributes a service adds to an entry it forwards for another writer (an engine's
# fill, re-typed as an effect), under its signature: the writer it verified, whose key space
# the entry keeps, and the type the writer sent, which a refusal names.
WRITER = "writer"
ORIGIN_TYPE = "origintype"
# And why it would refuse the entry, though it proved its writer (a token since expired or
# revoked): the owner of the key's inbox applies nothing, but answers the duplicate of an entry
# its key applied, else this refusal (docs/lanes.md).
LAPSED_CODE = "lapsedcode"
LAPSED_REASON = "lapsedreason"
# Each service's CloudEvents `source`: an audit record is taken only from the one it names.
SOURCES = {
    "alluse/account-service": ACCOUNT,
    "alluse/integration": INTEGRATION,
    "alluse/security": SECURITY,
}

# The one table of internal types: which service alone may write each.
OWNERS: dict[str, str] = {
    **dict.fromkeys(EFFECT_TYPES.values(), INTEGRATION),
    **dict.fromkeys(set(LIFECYCLE_TYPES) - {WEEK_CHANGED}, ACCOUNT),
    COMMAND_REJECTED: ACCOUNT,
    REVOKED: SECURITY,
    QUERY_RESULT: ACCOUNT,
    QUERY_FAILED: ACCOUNT,
}


def owner(type_: str, source: str) -> str | None:
    """The service that alone may write an entry of this type (audit records: its source's)."""
    if type_ in AUDIT_TYPES:
        return SOURCES.get(source)
    return OWNERS.get(type_)


def signed_bytes(fields: Mapping[str, str]) -> bytes:
    """What a service signs: every field of the entry but the signature, in one canonical form.

    Stream-independent (the key is not in it), so the same entry verifies wherever it is
    copied, and the owner table decides where it may be acted on.
    """
    items = sorted((k, v) for k, v in fields.items() if k != SIGNATURE)
    return SIGNED_CONTEXT + orjson.dumps(items)


def reply_namespace(prefix: str, subject: str) -> str:
    """The keys a caller may name as `replyto`: its own, under its token's subject.

    The subject is escaped ('%' as '%25', '.' as '%2E') so that no caller's namespace lies
    inside another's: client `eng` may not write under `eng.x`'s replies.
    """
    safe = subject.replace("%", "%25").replace(".", "%2E")
    return f"{prefix}alluse.reply.{safe}."


def replyto_allowed(prefix: str, subject: str, replyto: str | None) -> bool:
    space = reply_namespace(prefix, subject)
    return bool(replyto) and str(replyto).startswith(space) and len(str(replyto)) > len(space)


def leaf(fields: Mapping[str, str]) -> bytes:
    return hashlib.sha256(b"\x00" + signed_bytes(fields)).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


PAD = hashlib.sha256(b"\x02").digest()  # fills the tree to a power of two; never a leaf


def tree(leaves: list[bytes]) -> tuple[int, bytes, list[list[bytes]]]:
    """(depth, root, each leaf's sibling hashes bottom-up) of up to GROUP leaves."""
    depth = max(len(leaves) - 1, 0).bit_length()
    level = leaves + [PAD] * ((1 << depth) - len(leaves))
    paths: list[list[bytes]] = [[] for _ in leaves]
    for _ in range(depth):
        for i in range(len(leaves)):
            pos = i >> len(paths[i])
            paths[i].append(level[pos ^ 1])
        level = [node(level[j], level[j + 1]) for j in range(0, len(level), 2)]
    return depth, level[0], paths


def root_of(leaf_hash: bytes, index: int, siblings: list[bytes]) -> bytes:
    h = leaf_hash
    for level, sibling in enumerate(siblings):
        h = node(sibling, h) if (index >> level) & 1 else node(h, sibling)
    return h


def signed_root(depth: int, root: bytes) -> bytes:
    return ROOT_CONTEXT + bytes([depth]) + root
