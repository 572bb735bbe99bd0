"""`alluse dlq list|show|redrive|drop`: the dead-letter streams, read and acted on by an operator.

A dead letter keeps its entry's original fields (a bearer token redacted), why it failed
(`dlq_reason`, `dlq_stream`, `dlq_entry_id`, `dlq_deliveries`) and the writer its service
verified (`dlq_writer`), all under that service's signature (`dlq_signature`). Re-driving puts
the signed letter back on the stream it came from with the operator's token, which authorizes
the re-drive; the service checks the letter's signature again and applies the entry as its
original writer, so the inbox makes a re-drive of an entry already applied change nothing. A
letter whose signature does not hold (one written into the DLQ by anyone but the service), or
an entry refused for who wrote it, is refused here and by the service, and never booked. Each re-drive and drop is first written
to the security service's audit chain (by its administration, as `alluse security` runs it:
DATABASE_URL and the keys); if that fails, nothing is done.
"""

import argparse
import asyncio
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.cli.client import platform_keys, redacted, redis_url
from services.cli.deadletters import Dead, actor_of, audited, dead_letters, short
from services.cli.output import OK, REJECTED, UNAVAILABLE, USAGE, CliError, emit, fail, table
from services.cli.tokens import resolve_token
from shared.contracts.envelope import EnvelopeError, decode
from shared.contracts.streams import Streams
from shared.infra.runtime.redisclient import connect
from shared.infra.runtime.settings import Duration, Settings
from shared.infra.trust.keys import KeysUnavailable
from shared.tooling.progress import Progress

CHUNK = 200  # dead letters audited per call of the security administration
Action = Callable[[Redis, Streams, argparse.Namespace], Awaitable[int]]


async def list_(redis: Redis, streams: Streams, a: argparse.Namespace) -> int:
    found = await dead_letters(redis, streams, a.stream, a.reason)
    groups = Counter((short(d.stream, streams), d.reason[:90]) for d in found)
    group_rows = [{"stream": s, "reason": r, "entries": n} for (s, r), n in groups.most_common()]
    rows = [d.row(streams) for d in found[: a.limit]]
    if a.json:
        emit(a, {"groups": group_rows, "entries": rows})
        return OK
    table(group_rows, ("stream", "reason", "entries"))
    if rows:
        print()
        table(rows, ("dlq_id", "stream", "type", "source", "id", "deliveries", "reason"))
    if len(found) > a.limit:
        print(f"({len(found) - a.limit} more: --limit N shows more)")
    return OK


async def show(redis: Redis, streams: Streams, a: argparse.Namespace) -> int:
    (dead,) = await _chosen(redis, streams, a)
    emit(a, dead.detail(streams))
    return OK


async def redrive(redis: Redis, streams: Streams, a: argparse.Namespace) -> int:
    chosen, skipped, refused = [], 0, []
    keys, window = platform_keys(), dedup_window()
    for dead in await _chosen(redis, streams, a):
        try:
            decode(dead.original())
        except EnvelopeError as exc:
            if not a.all:
                raise CliError(
                    f"{dead.entry_id} cannot be re-driven ({exc}); drop it", REJECTED
                ) from None
            skipped += 1
            continue
        try:
            why = await dead.refusal(keys, window)
        except KeysUnavailable:
            msg = "the platform's keys cannot be fetched (ALLUSE_JWKS_URL)"
            raise CliError(msg, UNAVAILABLE) from None
        if why is None:
            chosen.append(dead)
        else:  # e.g. a letter someone wrote into the DLQ: never money, however it reads
            refused.append((dead, why))
    token = await asyncio.to_thread(resolve_token, a.token_file)
    actor, done = actor_of(token), []
    for at in range(0, len(refused), CHUNK):  # an attempt on a forged letter is a finding
        await audited_refusals(actor, refused[at : at + CHUNK], streams)
    if refused and not a.all:
        dead, why = refused[0]
        raise CliError(f"{dead.entry_id} is not re-driven: {why}", REJECTED)
    with Progress("redrive", len(chosen)) as bar:
        for at in range(0, len(chosen), CHUNK):
            chunk = chosen[at : at + CHUNK]
            await audited("dlq.redriven", actor, chunk, streams)
            for n, dead in enumerate(chunk):
                try:
                    # Put back first, remove second: a crash between re-drives it twice, which
                    # the inbox makes harmless; never a dead letter removed but not re-driven.
                    new_id = await redis.xadd(dead.stream, dead.redriven(token))  # type: ignore[arg-type]
                    await redis.xdel(dead.dlq, dead.entry_id)
                except RedisError as exc:  # e.g. an ACL user that may not write that stream
                    # The trail holds the intent; it must also say what did not happen.
                    await audited("dlq.redrive_failed", actor, chunk[n:], streams, str(exc))
                    raise CliError(
                        f"Redis refused re-driving {dead.entry_id} onto {dead.stream}: {exc};"
                        " it stays in the DLQ",
                        UNAVAILABLE,
                    ) from None
                new = new_id.decode() if isinstance(new_id, bytes) else str(new_id)
                done.append({**dead.row(streams), "new_entry": new})
                bar.advance()
    refusals = [{**d.row(streams), "refused": why} for d, why in refused]
    if a.json:
        emit(a, {"redriven": done, "skipped_not_cloudevents": skipped, "refused": refusals})
    else:
        table(done, ("dlq_id", "stream", "type", "id", "new_entry"))
        if skipped:
            print(
                f"{skipped} entries are not CloudEvents and stay in place: `alluse dlq drop` them"
            )
        for r in refusals:
            print(f"refused {r['dlq_id']} ({r['type']} {r['id']}): {r['refused']}", file=sys.stderr)
    return REJECTED if refused else OK


async def audited_refusals(actor: str, refused: list[tuple[Dead, str]], streams: Streams) -> None:
    for reason in {why for _, why in refused}:
        chunk = [d for d, why in refused if why == reason]
        await audited("dlq.redrive_refused", actor, chunk, streams, reason)


async def drop(redis: Redis, streams: Streams, a: argparse.Namespace) -> int:
    chosen = await _chosen(redis, streams, a)
    actor = actor_of(await asyncio.to_thread(resolve_token, a.token_file))
    for at in range(0, len(chosen), CHUNK):
        chunk = chosen[at : at + CHUNK]
        await audited("dlq.dropped", actor, chunk, streams)
        pipe = redis.pipeline(transaction=False)
        for dead in chunk:
            pipe.xdel(dead.dlq, dead.entry_id)
        await pipe.execute()
    emit(a, [d.row(streams) for d in chosen], ("dlq_id", "stream", "type", "id", "reason"))
    return OK


async def _chosen(redis: Redis, streams: Streams, a: argparse.Namespace) -> list[Dead]:
    if getattr(a, "all", False):
        return await dead_letters(redis, streams, a.stream, a.reason)
    if not a.dlq_id:
        raise CliError("name a dead letter's ID (see `alluse dlq list`) or pass --all", USAGE)
    found = [d for d in await dead_letters(redis, streams, a.stream) if d.entry_id == a.dlq_id]
    if not found:
        raise CliError(f"no dead letter {a.dlq_id} (already re-driven or dropped?)", REJECTED)
    if len(found) > 1:
        names = ", ".join(short(d.stream, streams) for d in found)
        raise CliError(
            f"{a.dlq_id} is in several dead-letter streams ({names}): add --stream", USAGE
        )
    return found


def dedup_window() -> timedelta:
    """The services' deduplication window (ALLUSE_DEDUP_WINDOW, read as they read it)."""
    raw = os.environ.get("ALLUSE_DEDUP_WINDOW")
    if raw is None:
        return Settings.model_fields["dedup_window"].default  # type: ignore[no-any-return]
    try:
        return TypeAdapter(Duration).validate_python(raw)
    except ValidationError as exc:
        raise CliError(f"ALLUSE_DEDUP_WINDOW: {exc.errors()[0]['msg']}", USAGE) from None


def _run(action: Action) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def go(a: argparse.Namespace) -> int:
        url = ""
        try:
            url = redis_url()
            redis = connect(url, socket_connect_timeout=5)
            try:
                return await action(redis, Streams(os.environ.get("ALLUSE_STREAM_PREFIX", "")), a)
            finally:
                await redis.aclose()
        except CliError as exc:
            return fail(exc.message, exc.code)
        except BrokenPipeError:
            raise  # the reader of our output went away (`| head`): not Redis's fault
        except (RedisError, OSError) as exc:
            return fail(f"Redis at {redacted(url)} is unreachable: {exc}", UNAVAILABLE)

    return go


def register(sub: Any) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="list, show, re-drive or drop dead letters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    examples = {
        "list": "  alluse dlq list\n  alluse dlq list --stream commands --reason deliveries",
        "show": "  alluse dlq show 1764322931000-0",
        "redrive": "  alluse dlq redrive 1764322931000-0\n  alluse dlq redrive --all --stream ws4",
        "drop": "  alluse dlq drop 1764322931000-0\n  alluse dlq drop --all --reason 'not JSON'",
    }
    helps = {
        "list": "dead letters grouped by stream and reason, then one per line",
        "show": "every field of one dead letter",
        "redrive": "put dead letters back on their stream under your token (audited)",
        "drop": "delete dead letters for good (audited)",
    }
    for name, func in (("list", list_), ("show", show), ("redrive", redrive), ("drop", drop)):
        p = actions.add_parser(
            name,
            help=helps[name],
            description=helps[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"examples:\n{examples[name]}",
        )
        p.set_defaults(func=_run(func))
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        p.add_argument(
            "--stream",
            help="commands | ws2 | ws4 | effects | events | audit | queries"
            " | a stream name (default: every dead-letter stream)",
        )
        if name in ("list", "redrive", "drop"):
            p.add_argument("--reason", help="only dead letters whose reason contains this text")
        if name == "list":
            p.add_argument("--limit", type=int, default=50, help="entries shown (default 50)")
        else:
            p.add_argument(
                "dlq_id",
                nargs="?" if name != "show" else None,
                metavar="ID",
                help="the dead letter's entry id, from `alluse dlq list`",
            )
        if name in ("redrive", "drop"):
            p.add_argument(
                "--all", action="store_true", help="every dead letter matching --stream/--reason"
            )
            p.add_argument(
                "--token-file", metavar="PATH", help="your JWT (default: as for every command)"
            )
