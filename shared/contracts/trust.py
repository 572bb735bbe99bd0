"""Who may write what: the owner of each internal type, the signed bytes, the reply namespace.

Clients prove themselves with a bearer token; a service proves each entry it writes with an
Ed25519 signature over the entry's own fields (`signature: <kid>.<base64url>`), made with a
key the security service publishes in its JWKS bound to that service (JWK member `service`).
A reader takes an internal type only when the signer is the type's owner below.
"""

from collections.abc import Mapping

import orjson

from shared.contracts.lifecycle import LIFECYCLE_TYPES
from shared.contracts.messages import (
    AUDIT_RECORDED,
    COMMAND_REJECTED,
    QUERY_FAILED,
    QUERY_RESULT,
    WEEK_CHANGED,
)
from shared.contracts.upstream import EFFECT_TYPES

ACCOUNT, INTEGRATION, SECURITY = "account", "integration", "security"
SERVICES = (ACCOUNT, INTEGRATION, SECURITY)
SIGNATURE = "signature"
SIGNED_CONTEXT = b"alluse-entry-v1\n"  # a signature over an entry is never one over anything else
REVOKED = "alluse.security.revoked"
# Each service's CloudEvents `source`: an audit record is taken only from the one it names.
SOURCES = {"alluse/account-service": ACCOUNT, "alluse/integration": INTEGRATION,
           "alluse/security": SECURITY}  # fmt: skip

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
    """The service that alone may write an entry of this type (an audit record: its source's)."""
    if type_ == AUDIT_RECORDED:
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
    """The keys a caller may name as `replyto`: its own, under its token's subject."""
    return f"{prefix}alluse.reply.{subject}."


def replyto_allowed(prefix: str, subject: str, replyto: str | None) -> bool:
    space = reply_namespace(prefix, subject)
    return bool(replyto) and str(replyto).startswith(space) and len(str(replyto)) > len(space)
