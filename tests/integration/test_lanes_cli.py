"""Finding 2 of issue 18 with the CLI as a process: answers bound to the request it sent.

Each test starts the CLI while the services are stopped, so that what an attacker adds is
certainly there before the genuine outcome; then starts the services.
"""

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from services.account.app import build as build_account
from shared.contracts.answers import ENTRY_APPLIED, ENTRY_REFUSED
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    ACCOUNT_QUERIES,
    OPERATOR_LANE,
)
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.support.streams import ce, decoded, entries, read, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until


def required(settings: Settings) -> Settings:
    return settings.model_copy(update={"lanes": "required"})


@contextlib.asynccontextmanager
async def account_service(settings: Settings) -> AsyncIterator[None]:
    rt = await build_account(required(settings))
    async with running(rt):
        yield


async def operator(redis: Redis, settings: Settings, signer: Signer, fields: dict[str, str]) -> Any:
    """A command or query through the operators' lane, as the CLI sends them; its outcome."""
    s = settings.streams
    await xadd(redis, s.lane(fields.pop("_stream"), OPERATOR_LANE), fields)

    async def outcome() -> list[dict[str, Any]]:
        found = [decoded(f) for _, f in await entries(redis, s.outcomes(OPERATOR_LANE))]
        return [e for e in found if e["data"].get("id") == fields["id"]]

    await until(lambda: _count(outcome), equals=1)
    return (await outcome())[0]


async def _count(probe: Any) -> int:
    return len(await probe())


INITIALIZED = "alluse.system.initialized"


async def accounts(redis: Redis, settings: Settings, signer: Signer) -> dict[str, dict[str, Any]]:
    init = ce(
        "alluse.system.initialize",
        {"total_capital": "250000.00"},
        authorization=signer.bearer("admin"),
        _stream=ACCOUNT_COMMANDS,
    )
    outcome = await operator(redis, settings, signer, init)
    assert outcome["type"] == ENTRY_APPLIED, outcome
    # The portfolio this initialization made: the database holds other tests' accounts too.
    (made,) = [e["id"] for e in outcome["data"]["events"] if e["type"] == INITIALIZED]
    events = [decoded(f) for _, f in await entries(redis, settings.streams.key(ACCOUNT_EVENTS))]
    (portfolio,) = [e["data"]["portfolio_id"] for e in events if e["id"] == made]
    box = settings.streams.replies(OPERATOR_LANE) + uuid.uuid4().hex
    q = ce(
        "alluse.query.accounts",
        {"portfolio_id": portfolio},
        authorization=signer.bearer("admin"),
        replyto=box,
        _stream=ACCOUNT_QUERIES,
    )
    await operator(redis, settings, signer, q)
    (answer,) = [decoded(f) for _, f in await entries(redis, box)]
    return {a["type"]: a for a in answer["data"]["accounts"]}


async def cli(settings: Settings, signer: Signer, *argv: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "ALLUSE_STREAM_PREFIX": settings.stream_prefix,
        "ALLUSE_TOKEN": signer.token("operator"),
        "ALLUSE_JWKS_URL": signer.jwks_url,
    }
    env.pop("ALLUSE_TOKEN_FILE", None)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *argv,
        "--timeout",
        "60",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def first_entry(redis: Redis, key: str) -> dict[bytes, bytes]:
    got = await read(redis, {key: "0-0"}, count=1, block=30_000)
    assert got, f"nothing on {key}"
    return got[0][1][0][1]


async def test_a_refused_copy_of_an_operators_withdrawal_does_not_make_the_cli_say_rejected(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    """The copy, token-less, in another lane (engine A's), is refused by the account service
    first (a genuine, signed rejection naming the same id); the CLI prints the withdrawal,
    which moved the money once, and the refusal is engine A's outcome alone."""
    s = settings.streams
    await redis.sadd(s.lanes, "engine-a")
    async with account_service(settings):
        ids = await accounts(redis, settings, signer)
    gen = ids["generation"]["id"]
    command_id = uuid.uuid4().hex
    proc = await cli(settings, signer, "--json", "withdraw", gen, "10.00", "--id", command_id)
    original = await first_entry(redis, s.lane(ACCOUNT_COMMANDS, OPERATOR_LANE))
    copy = {k: v for k, v in original.items() if k != b"authorization"}
    await xadd(redis, s.lane(ACCOUNT_COMMANDS, "engine-a"), copy)
    async with account_service(settings):
        out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
    shown = json.loads(out)
    assert shown["account_id"] == gen, shown
    assert Decimal(shown["balance"]) == Decimal(ids["generation"]["balance"]) - 10, shown
    refused = [decoded(f) for _, f in await entries(redis, s.outcomes("engine-a"))]
    assert [(e["type"], e["data"]["id"]) for e in refused] == [(ENTRY_REFUSED, command_id)]
    assert refused[0]["data"]["code"] == "unauthorized"


async def test_a_replayed_signed_answer_for_another_account_is_never_shown(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    """A genuine answer (signed by the account service) about the Com-Acc, copied into the
    reply stream of the CLI's `show` of the Gen-Acc: the CLI shows the Gen-Acc."""
    s = settings.streams
    async with account_service(settings):
        ids = await accounts(redis, settings, signer)
        box = s.replies(OPERATOR_LANE) + uuid.uuid4().hex
        q = ce(
            "alluse.query.account",
            {"account_id": ids["compounding"]["id"]},
            replyto=box,
            authorization=signer.bearer("admin"),
            _stream=ACCOUNT_QUERIES,
        )
        await operator(redis, settings, signer, q)
        ((_, other),) = await entries(redis, box)
    proc = await cli(settings, signer, "--json", "show", ids["generation"]["id"])
    query = await first_entry(redis, s.lane(ACCOUNT_QUERIES, OPERATOR_LANE))
    await xadd(redis, query[b"replyto"].decode(), other)
    async with account_service(settings):
        out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
    assert json.loads(out)["id"] == ids["generation"]["id"], out
