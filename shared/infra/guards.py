"""The first step of every pipeline: who wrote this entry, and may it write this type?

Pipeline(..., guard=bearer(verifier))             # clients: a token whose role allows it
Pipeline(..., guard=signed_by(keys, "account"))    # internal: the owning service's signature
"""

from shared.contracts import trust
from shared.contracts.envelope import CloudEvent
from shared.infra.auth import Verifier
from shared.infra.keys import KeySet
from shared.infra.messaging import Guard, Rejected
from shared.infra.signing import signer_of, text_fields


def bearer(verifier: Verifier) -> Guard:
    async def guard(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        ev.verified_as((await verifier.authorize(ev.authorization, ev.type)).subject)

    return guard


def signed_by(keys: KeySet, service: str | None) -> Guard:
    """Entries of types owned by `service` (None: by whichever service the type names), each
    signed by its owner."""

    async def guard(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        signer = await signer_of(keys, text_fields(fields))
        owner = trust.owner(ev.type, ev.source)
        if owner is None or (service is not None and owner != service):
            raise Rejected("forbidden", f"'{ev.type[:100]}' is not taken on this stream")
        if signer != owner:
            raise Rejected(
                "forbidden", f"'{ev.type}' is accepted only from the {owner} service, not {signer}"
            )
        ev.verified_as(signer)

    return guard
