"""`alluse simulate` (the WS2/WS4 simulators) and `alluse tail` (follow a stream live)."""

import argparse
import asyncio
import contextlib
import json
from typing import Any

from services.cli.output import OK, UNAVAILABLE, CliError, fail
from services.cli.tokens import renewed, resolve_token
from shared.contracts import streams
from shared.infra.runtime.redisclient import connect
from shared.infra.runtime.settings import Settings
from shared.simulators import upstream as simulate

STREAMS = {
    "lifecycle": streams.ACCOUNT_LIFECYCLE,
    "audit": streams.AUDIT,
    "commands": streams.ACCOUNT_COMMANDS,
    "ws2": streams.WS2_EVENTS,
    "ws4": streams.WS4_EVENTS,
    "effects": streams.ACCOUNT_EFFECTS,
    "events": streams.ACCOUNT_EVENTS,
}


def register(sub: Any) -> None:
    sim = sub.add_parser(
        "simulate",
        help="publish a simulated WS2 + WS4 feed, week by week",
        description=simulate.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_arguments(sim)
    sim.set_defaults(func=run_simulate)
    tail = sub.add_parser("tail", help="follow a stream live (XREAD), one line per entry")
    tail.add_argument(
        "--stream",
        default="lifecycle",
        help=f"{' | '.join(STREAMS)} | any stream name; '.dlq' suffix allowed (default lifecycle)",
    )
    tail.add_argument("--count", type=int, help="stop after N entries")
    tail.add_argument("--from-start", action="store_true", help="replay the stream from its start")
    tail.set_defaults(func=run_tail)


async def run_simulate(args: Any) -> int:
    """The simulators publish as a trading engine: with the token `alluse` resolves."""
    try:
        token = await asyncio.to_thread(resolve_token, args.token_file)

        async def fresh() -> str:  # a long run outlives a token: renewed before it expires
            nonlocal token
            token = await renewed(token, args.token_file)
            return token

        return await simulate.run(args, fresh)
    except CliError as exc:
        return fail(str(exc), exc.code)


def stream_name(name: str) -> str:
    base, dlq, _ = name.partition(".dlq") if name.endswith(".dlq") else (name, "", "")
    return STREAMS.get(base, base) + dlq


def line(entry_id: str, attrs: dict[str, str]) -> str:
    data = attrs.get("data", "")
    with contextlib.suppress(ValueError):
        data = json.dumps(json.loads(data), separators=(",", ":"))
    who = f" subject={attrs['subject']}" if "subject" in attrs else ""
    cause = f" cause={attrs['causationid']}" if "causationid" in attrs else ""
    reason = f" dlq_reason={attrs['dlq_reason']!r}" if "dlq_reason" in attrs else ""
    return (
        f"{entry_id} {attrs.get('time', '-')} {attrs.get('type', '?')} "
        f"[{attrs.get('source', '?')}] id={attrs.get('id', '?')}{who}{cause}{reason} {data}"
    )


async def run_tail(args: Any) -> int:
    settings = Settings()
    key = settings.streams.key(stream_name(args.stream))
    redis = connect(settings.redis_url)
    last, shown = ("0" if args.from_start else "$"), 0
    try:
        while args.count is None or shown < args.count:
            reply: Any = await redis.xread({key: last}, count=100, block=1000)
            for _, entries in reply:
                for raw_id, raw in entries:
                    last = raw_id.decode()
                    attrs = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
                    print(
                        json.dumps({"entry": last, **attrs}) if args.json else line(last, attrs),
                        flush=True,
                    )
                    shown += 1
                    if args.count is not None and shown >= args.count:
                        return OK
    except BrokenPipeError:
        raise  # the reader of our output went away (`| head`): not Redis's fault
    except OSError as exc:
        return fail(f"Redis unreachable: {exc}", UNAVAILABLE)
    finally:
        await redis.aclose()
    return OK
