"""How a CLI subcommand is wired: its parser (connection options, examples, exit codes) and
the runner that connects to Redis, acts, and turns what went wrong into an exit code."""

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.cli.arguments import positive_float
from services.cli.client import StreamClient, outcome_keys, redacted, redis_url
from services.cli.output import UNAVAILABLE, CliError, fail
from services.cli.tokens import resolve_token
from shared.contracts.streams import (
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    OPERATOR_LANE,
    Streams,
)
from shared.infra.runtime.redisclient import connect
from shared.tooling.credentials import default_lane

Action = Callable[[StreamClient, argparse.Namespace], Awaitable[int]]


def run(action: Action) -> Callable[[argparse.Namespace], Awaitable[int]]:
    """Connect, act, and turn what went wrong into an exit code and a line on stderr."""

    async def go(args: argparse.Namespace) -> int:
        url = ""
        try:
            url = redis_url()
            token = await asyncio.to_thread(resolve_token, args.token_file)
            redis = connect(url, socket_connect_timeout=5)
            try:
                streams = Streams(os.environ.get("ALLUSE_STREAM_PREFIX", ""))
                lane = default_lane(token, os.environ)
                # A machine client's Redis user reads the public feed, not the internal events.
                events = ACCOUNT_EVENTS if lane in (None, OPERATOR_LANE) else ACCOUNT_LIFECYCLE
                client = StreamClient(
                    redis,
                    streams,
                    token,
                    args.timeout,
                    keys=outcome_keys(),
                    token_file=args.token_file,
                    lane=lane,
                    outcomes=events,
                )
                return await action(client, args)
            finally:
                await redis.aclose()
        except CliError as exc:
            if exc.data and args.json:
                print(json.dumps(exc.data, indent=2, default=str))
            return fail(exc.message, exc.code)
        except BrokenPipeError:
            raise  # the reader of our output went away (`| head`): not Redis's fault
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            return fail(f"Redis at {redacted(url)} is unreachable: {exc}", UNAVAILABLE)
        except RedisResponseError as exc:  # e.g. NOPERM, or a lane stream left exhausted
            return fail(f"Redis at {redacted(url)} refused: {exc}", UNAVAILABLE)

    return go


def common(*, command: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the JWT (default: $ALLUSE_TOKEN_FILE, "
        "$ALLUSE_TOKEN, or client credentials from $ALLUSE_CLIENT_ID/$ALLUSE_CLIENT_SECRET_FILE)",
    )
    g.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the outcome (default 10; exit 4 when it passes)",
    )
    g.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    if command:
        g.add_argument(
            "--id",
            metavar="ID",
            help="CloudEvent id; re-send with the same --id to retry "
            "idempotently (default: a fresh UUID)",
        )
    return p


EXIT_CODES = "exit codes: 0 ok, 1 rejected, 2 usage, 3 Redis unreachable, 4 timeout"


def add(
    sub: Any, name: str, action: Action, help_: str, examples: str, *, command: bool
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_,
        description=help_,
        parents=[common(command=command)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}",
    )
    p.set_defaults(func=run(action))
    return p
