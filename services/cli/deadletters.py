"""Dead letters as the operator sees them (where from, why, the original entry), and the audit
records of what the operator does with them."""

import asyncio
import json
import time
from asyncio.subprocess import PIPE
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from redis.asyncio import Redis

from services.cli.integration import STREAMS
from services.cli.output import UNAVAILABLE, USAGE, CliError
from services.cli.security import ADMIN
from shared.contracts import trust
from shared.contracts.streams import CONSUMED, DLQ_SUFFIX, Streams
from shared.infra.stream.messaging import LETTER_FIELDS, Rejected
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import letter_signer

DLQ_FIELDS = LETTER_FIELDS  # what the service adds to the original entry, signature included
SOURCE = "alluse-cli/dlq"  # the audit records' source
ALIASES = {**STREAMS, "queries": "alluse.account.queries"}


def short(stream_key: str, streams: Streams) -> str:
    """`commands` for the commands stream, as `alluse tail --stream` names it."""
    name = stream_key.removeprefix(streams.prefix)
    return next((alias for alias, full in ALIASES.items() if full == name), name)


@dataclass(frozen=True)
class Dead:
    dlq: str  # the dead-letter stream's key
    entry_id: str  # the dead letter's id there
    fields: dict[bytes, bytes]

    @property
    def stream(self) -> str:
        """Where it came from, and where a re-drive puts it: the DLQ's own name says so."""
        return self.dlq.removesuffix(DLQ_SUFFIX)

    @property
    def reason(self) -> str:
        return self.attr("dlq_reason")

    def attr(self, name: str) -> str:
        return self.fields.get(name.encode(), b"").decode(errors="replace")

    def original(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.fields.items() if k not in DLQ_FIELDS}

    def redriven(self, token: str) -> dict[bytes, bytes]:
        """The signed letter as it is, with the operator's token, which authorizes the re-drive:
        the service checks the letter's signature again and applies the entry as the writer
        it verified and signed into the letter, never as the operator (guards.redrivable)."""
        return {**self.fields, b"authorization": f"Bearer {token}".encode()}

    async def refusal(self, keys: KeySet, window: timedelta) -> str | None:
        """Why this letter must not be re-driven, or None: only a letter its service signed
        (never one written by someone else) naming the writer it verified, within the
        deduplication window (the service refuses an older one: its inbox may have forgotten
        the entry), and never an entry refused for who wrote it."""
        try:
            signer = await letter_signer(keys, self.fields)
        except Rejected as r:
            return r.reason
        signed = self.attr("dlq_signed_at")
        if not signed.isdigit() or time.time() * 1000 - int(signed) > window / timedelta(
            milliseconds=1
        ):
            return f"written longer ago than the deduplication window ({window}): send it anew"
        if signer not in trust.SERVICES:
            return f"signed by '{signer}', not a service of the platform"
        if self.attr("dlq_refused") == "writer":
            return "refused for who wrote it: never re-driven"
        if not self.attr("dlq_writer"):
            return "its service verified no writer for it"
        return None

    def row(self, streams: Streams) -> dict[str, str]:
        return {
            "dlq_id": self.entry_id,
            "stream": short(self.stream, streams),
            "type": self.attr("type") or "?",
            "source": self.attr("source") or "?",
            "id": self.attr("id") or "?",
            "deliveries": self.attr("dlq_deliveries"),
            "reason": self.reason,
        }

    def detail(self, streams: Streams) -> dict[str, Any]:
        out: dict[str, Any] = {"dlq": self.dlq, **self.row(streams)}
        for key, value in self.original().items():
            text = value.decode(errors="replace")
            if key == b"data":
                try:
                    out["data"] = json.loads(text)
                    continue
                except ValueError:
                    pass
            out[key.decode(errors="replace")] = text
        return out


def dlq_keys(streams: Streams, only: str | None) -> list[str]:
    if only is None:
        return [streams.dlq(name) for name in CONSUMED]
    name = ALIASES.get(only, only).removesuffix(DLQ_SUFFIX)
    if name not in CONSUMED:
        raise CliError(f"'{only}' has no dead-letter stream; one of: {', '.join(ALIASES)}", USAGE)
    return [streams.dlq(name)]


async def dead_letters(
    redis: Redis, streams: Streams, only: str | None = None, reason: str | None = None
) -> list[Dead]:
    """Every dead letter (of one stream, whose reason contains `reason`), oldest first."""
    found: list[Dead] = []
    for key in dlq_keys(streams, only):
        last = "-"
        while True:
            page: Any = await redis.xrange(key, min=last, count=1000)
            for entry_id, fields in page:
                found.append(Dead(key, entry_id.decode(), fields))
            if len(page) < 1000:
                break
            last = "(" + page[-1][0].decode()
    if reason:
        found = [d for d in found if reason.lower() in d.reason.lower()]
    return found


def actor_of(token: str) -> str:
    """Who acts, for the audit trail: the token's subject (the issuer made it for us)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims.get("sub", "?"))


async def audited(
    action: str, actor: str, chunk: list[Dead], streams: Streams, error: str | None = None
) -> None:
    """The security service appends the records to its chain first; if it cannot, nothing is done."""
    records = [
        {
            "action": action,
            "actor": actor,
            "subject": d.attr("subject") or None,
            "details": {**d.row(streams), "dlq": d.dlq, **({"error": error} if error else {})},
            "source": SOURCE,
        }
        for d in chunk
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *ADMIN, "record-audit", stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
    except OSError as exc:
        raise CliError(f"cannot run the security administration: {exc}", UNAVAILABLE) from None
    _, err = await proc.communicate(json.dumps(records).encode())
    if proc.returncode:
        why = err.decode(errors="replace").strip().removeprefix("error: ")
        raise CliError(f"not audited, so not done: {why}", proc.returncode)
