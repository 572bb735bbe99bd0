"""What became of each entry written to a stream: its answer, its rejection or its dead letter."""

import json
from typing import Any

from redis.asyncio import Redis

from shared.contracts.streams import ACCOUNT_EVENTS, Streams
from tests.support.streams import entries
from tests.support.waiting import until

Written = dict[bytes, tuple[str, dict[Any, Any]]]  # entry id -> (name, fields written)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _verdict(fields: dict[bytes, bytes]) -> str:
    type_ = fields[b"type"].decode()
    data = json.loads(fields[b"data"])
    if type_ == "alluse.command.rejected":
        return f"rejected: {data['code']}: {data['reason']}"
    if type_ == "alluse.query.failed":
        return f"{type_} {data['code']}"
    return f"{type_} {data.get('balance', '')}".strip()


async def verdicts(
    redis: Redis,
    streams: Streams,
    stream: str,
    written: Written,
    *,
    answers: tuple[str, ...] = (ACCOUNT_EVENTS,),
    replies: str | None = None,
    timeout: float = 20,
) -> dict[str, str]:
    """name -> verdict for every entry written, waiting until each has one (or the timeout):
    "dead: <reason>", "rejected: <code>: <reason>", or the answer's type (and balance)."""
    by_cause = {_text(f.get("id", f.get(b"id", ""))): n for n, f in written.values()}
    keys = [streams.key(a) for a in answers] + ([replies] if replies else [])
    found: dict[str, str] = {}

    async def look() -> dict[str, str]:
        for _, dead in await entries(redis, f"{stream}.dlq"):
            if dead[b"dlq_entry_id"] in written:
                found[written[dead[b"dlq_entry_id"]][0]] = f"dead: {dead[b'dlq_reason'].decode()}"
        for key in keys:
            for _, fields in await entries(redis, key):
                cause = fields.get(b"causationid", b"").decode()
                if cause in by_cause and by_cause[cause] not in found:
                    found[by_cause[cause]] = _verdict(fields)
        return {n: found.get(n, "none") for n, _ in written.values()}

    # Every entry has a verdict: what the test expects or not, each was processed.
    return await until(
        look, lambda seen: "none" not in seen.values(), timeout=timeout, what="verdicts"
    )
