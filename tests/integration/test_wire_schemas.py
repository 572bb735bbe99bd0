"""The wire agrees with its specification: every entry the running account and integration
services write on the lifecycle stream, in a session that makes most lifecycle types,

- carries the `dataschema` of its type and validates against that JSON Schema,
- holds no `data` field the schema does not declare (the schemas allow extra fields for
  compatibility, so validation alone would not notice one),
- holds no stream field the AsyncAPI document does not declare,
- is signed by the integration service, whatever its `source` says, as the platform's own
  verifier and the independent Node verifier (tests/vectors/verify.mjs) both find."""

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from redis.asyncio import Redis

from services.account.app import build as account_service
from services.integration.app import build as integration_service
from shared.contracts import asyncapi, docs, lifecycle
from shared.contracts.streams import ACCOUNT_LIFECYCLE, WS2_EVENTS, WS4_EVENTS
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of, text_fields
from tests.conftest import as_service
from tests.contract.test_signature_vectors import VERIFY, node
from tests.support.account import Client
from tests.support.streams import ce, entries, outcomes, xadd
from tests.support.tokens import Signer


@pytest.fixture
async def platform(
    settings: Settings, own_database: str, redis: Redis, signer: Signer
) -> AsyncIterator[tuple[Client, Settings]]:
    mine = settings.model_copy(update={"database_url": own_database})
    account = await account_service(mine)
    integration = await integration_service(
        as_service(mine, signer, "integration"), schema=f"integration_{uuid.uuid4().hex[:8]}"
    )
    async with running(account), running(integration):
        yield Client(redis, mine, signer), mine


def option(account: str, side: str, option_type: str, quantity: int, price: str) -> dict[str, Any]:
    return {
        "fill_id": f"fill-{uuid.uuid4().hex}",
        "order_id": "ord-1",
        "account_id": account,
        "symbol": "TSLA",
        "instrument_type": "option",
        "option_type": option_type,
        "strike": "250.00",
        "expiration": "2026-12-18",
        "delta": "0.45",
        "side": side,
        "quantity": quantity,
        "price": price,
        "commission": "1.00",
        "filled_at": datetime.now(UTC).isoformat(),
    }


async def session(client: Client, settings: Settings) -> set[str]:
    """Commands and upstream entries that make most lifecycle types; the ids whose outcomes
    must be on the lifecycle stream before it is read (the barrier)."""
    lifecycle_key = settings.streams.key(ACCOUNT_LIFECYCLE)
    engine = client.signer.bearer("trading_engine")
    accounts = await client.initialize()
    gen, rev, com = (accounts[t]["id"] for t in ("generation", "revenue", "compounding"))
    causes: set[str] = set()

    async def command(type_: str, data: dict[str, Any], subject: str = "", want: int = 1) -> Any:
        attrs = {"subject": subject} if subject else {}
        events = await client.command(type_, data, want=want, **attrs)
        causes.add(events[0]["causationid"])
        return events

    async def upstream(stream: str, type_: str, data: dict[str, Any], subject: str = "") -> str:
        attrs = {"subject": subject} if subject else {}
        fields = ce(type_, data, source="ws4/gateway-1", authorization=engine, **attrs)
        await xadd(client.redis, settings.streams.key(stream), fields)
        assert await outcomes(client.redis, lifecycle_key, fields["id"])  # barrier
        return fields["id"]

    await command("alluse.account.update", {"name": "renamed"}, subject=gen)
    deposit = await command("alluse.account.deposit", {"amount": "1000.00"}, subject=rev)
    await command("alluse.account.withdraw", {"amount": "1.00"}, subject=com)  # refused
    txid = int(deposit[0]["data"]["transaction"]["id"])
    await command("alluse.account.reverse", {"transaction_id": txid, "reason": "test"}, want=2)
    await command("alluse.config.update", {"growth": {"valuation_tolerance_pct": "0.5"}})
    empty = await command("alluse.account.create", {"type": "revenue", "name": "empty"})
    await command("alluse.account.close", {}, subject=empty[0]["data"]["account"]["id"], want=2)
    await command("alluse.account.reinvest", {})
    week = {"week_start": "2026-11-30", "week_type": "P-EW", "confidence": "0.9"}
    causes.add(await upstream(WS2_EVENTS, "ws2.week.classified", week))
    # $60,000 of premium on calls (no cash collateral): a fork, with its own events.
    sold = option(gen, "sell_to_open", "call", 100, "6.01")
    causes.add(await upstream(WS4_EVENTS, "ws4.trade.filled", sold, subject=gen))
    valuation = {
        "account_id": rev,
        "positions_market_value": "99999.00",
        "as_of": datetime.now(UTC).isoformat(),
    }
    causes.add(await upstream(WS4_EVENTS, "ws4.account.valuation", valuation, subject=rev))
    bad = option(gen, "sell_to_open", "put", -1, "1.00")  # refused by the integration service
    causes.add(await upstream(WS4_EVENTS, "ws4.trade.filled", bad, subject=gen))
    return causes


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def undeclared(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str) -> list[str]:
    """Paths in `value` that `schema` does not declare (free-form objects declare anything)."""
    schema = resolve(schema, root)
    if "anyOf" in schema:  # e.g. an optional object: the branch of the value's own kind
        kinds: dict[type, str] = {dict: "object", list: "array"}
        for branch in map(lambda b: resolve(b, root), schema["anyOf"]):
            if branch.get("type") == kinds.get(type(value)):
                return undeclared(value, branch, root, at)
        return []
    if isinstance(value, dict) and "properties" in schema:
        out = [f"{at}.{k}" for k in value if k not in schema["properties"]]
        for k, v in value.items():
            if k in schema["properties"]:
                out += undeclared(v, schema["properties"][k], root, f"{at}.{k}")
        return out
    if isinstance(value, list) and "items" in schema:
        return [p for i, v in enumerate(value) for p in undeclared(v, schema["items"], root, at)]
    return []


async def test_every_lifecycle_entry_is_what_the_contract_says(
    platform: tuple[Client, Settings], signer: Signer, tmp_path: Path
) -> None:
    client, settings = platform
    await session(client, settings)
    raw = await entries(client.redis, settings.streams.key(ACCOUNT_LIFECYCLE))
    lifecycle_entries = [text_fields(fields) for _, fields in raw]
    doc = asyncapi.build()
    attributes = {
        *doc["components"]["schemas"]["CloudEventAttributes"]["properties"],
        *doc["components"]["schemas"]["ServiceSignature"]["properties"],
        "data",
    }
    keys = KeySet.from_url(signer.jwks_url)
    problems: list[str] = []
    for fields in lifecycle_entries:
        type_ = fields["type"]
        schema = json.loads((docs.SCHEMAS / f"{type_}.json").read_text())
        data = json.loads(fields["data"])
        if fields.get("dataschema") != lifecycle.dataschema(type_):
            problems.append(f"{type_}: dataschema {fields.get('dataschema')!r}")
        for error in jsonschema.Draft202012Validator(schema).iter_errors(data):
            problems.append(f"{type_}: {error.message[:200]}")
        problems += [f"{type_}: undeclared {p}" for p in undeclared(data, schema, schema, "data")]
        problems += [f"{type_}: stream field {f}" for f in set(fields) - attributes]
        if await signer_of(keys, fields) != "integration":
            problems.append(f"{type_}: not signed by the integration service")
    assert problems == []
    made = {f["type"] for f in lifecycle_entries}
    assert made >= {
        "alluse.system.initialized",
        "alluse.account.created",
        "alluse.account.updated",
        "alluse.account.balance_changed",
        "alluse.account.reversed",
        "alluse.config.updated",
        "alluse.account.status_changed",
        "alluse.account.closed",
        "alluse.week.changed",
        "alluse.account.position_changed",
        "alluse.account.fork_eligible",
        "alluse.account.forked",
        "alluse.account.valuation_mismatch",
        "alluse.command.rejected",
    }, made
    sources = {f["source"] for f in lifecycle_entries if f["type"] == "alluse.command.rejected"}
    assert sources == {"alluse/account-service", "alluse/integration"}  # both services' refusals

    # The same entries, checked by the Node verifier that knows only docs/signatures.md.
    wire = tmp_path / "wire.json"
    wire.write_text(
        json.dumps(
            {"jwks": {"keys": signer.jwks}, "signer": "integration", "entries": lifecycle_entries}
        )
    )
    command = [node(), str(VERIFY), "--entries", str(wire)]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(lifecycle_entries)} entries verified" in done.stdout
