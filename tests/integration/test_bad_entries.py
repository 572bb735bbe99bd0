"""One entry's failure is only that entry's: bad entries batched with valid commands, through
the real account service. Each valid command gets its outcome in the same pass; each bad one
is answered (a rejection naming it) or dead-lettered with a reason."""

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_QUERIES
from shared.contracts.trust import reply_namespace
from tests.support.account import Client
from tests.support.streams import ce
from tests.support.verdicts import Written, verdicts


def nested(depth: int) -> str:
    return '{"amount": "1.00", "x": ' + "[" * depth + "]" * depth + "}"


def es256(client: Client) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = client.signer.claims("admin")
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": client.signer.kid})


def by_service(client: Client) -> str:
    """An admin token made with the account service's entry-signing key: never a token key."""
    signer = client.signer.services["account"]
    claims = client.signer.claims("admin")
    return jwt.encode(claims, signer.key, algorithm="EdDSA", headers={"kid": signer.kid})


def bad_deposits(client: Client, account_id: str) -> dict[str, dict[Any, Any]]:
    """Every kind of bad entry a producer can write, by what is wrong with it."""
    token = client.signer.bearer("admin")

    def deposit(**over: Any) -> dict[Any, Any]:
        fields: dict[Any, Any] = ce(
            "alluse.account.deposit",
            {"amount": "1.00"},
            authorization=token,
            subject=account_id,
        )
        return {**fields, **over}

    return {
        "200 KB of nesting": deposit(data=nested(100_000)),
        "nesting past the limit": deposit(data=nested(40)),
        "a string past the limit": deposit(data=json.dumps({"amount": "1.00", "x": "y" * 70_000})),
        "an entry past the size limit": deposit(description="z" * 300_000),
        "not UTF-8": deposit(data=b'{"amount": "\xff\xfe"}'),
        "no data": {k: v for k, v in deposit().items() if k != "data"},
        "data not JSON": deposit(data="{not json"),
        "data a JSON array": deposit(data="[1, 2]"),
        "not a CloudEvent": {"hello": "world"},
        "no time": {k: v for k, v in deposit().items() if k != "time"},
        "a bad time": deposit(time="yesterday"),
        "an unknown type": deposit(type="alluse.account.teleport"),
        "no token": {k: v for k, v in deposit().items() if k != "authorization"},
        "a forged token": deposit(authorization="Bearer eyJhbGciOiJub25lIn0.e30."),
        # The kid is real (EdDSA); the token is ES256: the key's own algorithm only.
        "an ES256 token with a real kid": deposit(authorization=f"Bearer {es256(client)}"),
        "a token signed by a service's key": deposit(authorization=f"Bearer {by_service(client)}"),
        "a token expired beyond the leeway": deposit(
            authorization=client.signer.bearer(exp=int(time.time()) - 31)
        ),
        "a viewer's token": deposit(authorization=client.signer.bearer("viewer")),
        "amount a number": deposit(data=json.dumps({"amount": 5})),
        "amount overflowing": deposit(data=json.dumps({"amount": "1e999999999"})),
        "amount of wrong type": deposit(data=json.dumps({"amount": {"a": [1]}})),
        "subject not an account": deposit(subject="not-a-uuid"),
        "unknown account": deposit(subject=str(uuid.uuid4())),
        "subject and data disagree": deposit(
            data=json.dumps({"amount": "1.00", "account_id": str(uuid.uuid4())})
        ),
    }


async def write_mixed(
    redis: Redis, stream: str, bad: dict[str, dict[Any, Any]], good: list[dict[str, str]]
) -> Written:
    """All entries in one MULTI, so the service reads them as one batch; bad and good interleaved."""
    pipe = redis.pipeline(transaction=True)
    order: list[tuple[str, dict[Any, Any]]] = []
    named = [*bad.items()]
    for i in range(max(len(named), len(good))):
        if i < len(named):
            order.append(named[i])
        if i < len(good):
            order.append((f"valid {good[i]['id']}", good[i]))
    for _, fields in order:
        pipe.xadd(stream, fields)
    ids = await pipe.execute()
    return dict(zip(ids, order, strict=True))


async def test_200kb_nested_json_is_one_dead_letter_and_its_batch_is_applied(
    client: Client, redis: Redis
) -> None:
    gen = (await client.initialize())["generation"]
    stream = client.s.key(ACCOUNT_COMMANDS)
    deposits = [
        ce(
            "alluse.account.deposit",
            {"amount": "10.00"},
            authorization=client.signer.bearer(),
            subject=gen["id"],
        )
        for _ in range(5)
    ]
    bad = {"200 KB of nesting": bad_deposits(client, gen["id"])["200 KB of nesting"]}
    entries = await write_mixed(redis, stream, bad, deposits)
    found = await verdicts(redis, client.s, stream, entries)
    assert all(
        v.startswith("alluse.account.balance_changed")
        for n, v in found.items()
        if n.startswith("valid")
    ), found
    assert found["200 KB of nesting"] == "dead: field 'data' is nested deeper than 32 levels"
    (latest,) = [v for v in found.values() if v.endswith("100050.00")]
    assert latest  # the five deposits, each once


async def test_a_batch_of_every_kind_of_bad_entry_answers_every_valid_command(
    client: Client, redis: Redis
) -> None:
    gen = (await client.initialize())["generation"]
    stream = client.s.key(ACCOUNT_COMMANDS)
    bad = bad_deposits(client, gen["id"])
    good = [
        ce(
            "alluse.account.deposit",
            {"amount": "1.00"},
            authorization=client.signer.bearer(),
            subject=gen["id"],
        )
        for _ in range(len(bad))
    ]
    found = await verdicts(redis, client.s, stream, await write_mixed(redis, stream, bad, good))
    valid = {n: v for n, v in found.items() if n.startswith("valid")}
    assert len(valid) == len(good)
    assert all(v.startswith("alluse.account.balance_changed") for v in valid.values()), valid
    unanswered = {
        n: v
        for n, v in found.items()
        if not n.startswith("valid") and not v.startswith(("dead: ", "rejected: "))
    }
    assert unanswered == {}
    assert found["not UTF-8"] == "dead: entry is not UTF-8"
    assert found["no token"].startswith("rejected: unauthorized")
    assert found["a viewer's token"].startswith("rejected: forbidden")
    assert found["amount overflowing"].startswith("rejected: invalid_amount")
    for poisoned in (
        "an ES256 token with a real kid",
        "a token signed by a service's key",
        "a token expired beyond the leeway",
    ):
        assert found[poisoned].startswith("rejected: unauthorized"), found[poisoned]
    summary = await client.query("alluse.query.account", {"account_id": gen["id"]})
    assert summary["data"]["balance"] == f"{100000 + len(good)}.00"


async def test_bad_queries_beside_good_ones_each_get_their_own_verdict(
    client: Client, redis: Redis
) -> None:
    gen = (await client.initialize())["generation"]
    stream = client.s.key(ACCOUNT_QUERIES)
    box = reply_namespace(client.s.prefix, "user-viewer") + uuid.uuid4().hex
    await redis.set(box + ".taken", "a string, not a stream", ex=60)

    def query(**over: Any) -> dict[Any, Any]:
        fields = ce(
            "alluse.query.account",
            {"account_id": gen["id"]},
            authorization=client.signer.bearer("viewer"),
            replyto=box,
        )
        return {**fields, **over}

    bad = {
        "200 KB of nesting": query(data=nested(100_000)),
        "no replyto": {k: v for k, v in query().items() if k != "replyto"},
        "replyto not a stream": query(replyto=box + ".taken"),
        "no token": {k: v for k, v in query().items() if k != "authorization"},
        "account_id of wrong type": query(data=json.dumps({"account_id": [1]})),
    }
    good = [query() for _ in bad]
    entries = await write_mixed(redis, stream, bad, good)
    found = await verdicts(redis, client.s, stream, entries, replies=box)
    valid = [v for n, v in found.items() if n.startswith("valid")]
    assert valid == ["alluse.query.result 100000.00"] * len(good), found
    assert found["200 KB of nesting"].startswith("dead: ")
    assert found["replyto not a stream"].startswith("dead: reply to")
    assert found["no token"].startswith("dead: unauthorized")  # no verified caller to answer
    assert found["account_id of wrong type"] == "alluse.query.failed invalid_payload"
