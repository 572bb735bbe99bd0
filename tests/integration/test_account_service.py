"""The account service in-process on real Redis and PostgreSQL, driven with plain redis-py XADD."""

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import jwt
import pytest
from redis.asyncio import Redis

from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    AUDIT,
    REVOCATIONS,
)
from shared.contracts.trust import REVOKED
from shared.infra.runtime.settings import Settings
from tests.support.account import Client, rejection
from tests.support.streams import ce, decoded, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until


async def test_rule_3_initialize_moderate_250k_through_the_stream(client: Client) -> None:
    accounts = await client.initialize("250000.00", template="moderate")
    assert {t: a["balance"] for t, a in accounts.items()} == {
        "generation": "100000.00",
        "revenue": "75000.00",
        "compounding": "75000.00",
    }
    assert {t: a["cash_buffer"] for t, a in accounts.items()} == {
        "generation": "5000.00",
        "revenue": "3750.00",
        "compounding": "3750.00",
    }
    summary = await client.query("alluse.query.summary", {})
    assert summary["type"] == "alluse.query.result"


async def test_deposit_and_withdrawal_move_balance_and_available(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    (dep,) = await client.command(
        "alluse.account.deposit", {"amount": "1000.00"}, subject=gen["id"]
    )
    assert dep["type"] == "alluse.account.balance_changed"
    assert dep["data"]["balance"] == "101000.00"
    assert dep["data"]["cash_buffer"] == "5050.00"  # deposits are contributed capital
    (wd,) = await client.command(
        "alluse.account.withdraw", {"account_id": gen["id"], "amount": "95950.00"}
    )
    # Withdrawals reduce contributed capital (rule 2), so the buffer shrinks with them.
    assert (wd["data"]["balance"], wd["data"]["cash_buffer"], wd["data"]["available"]) == (
        "5050.00",
        "252.50",
        "4797.50",
    )


async def test_rule_2_withdrawal_over_available_is_rejected(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    data = rejection(
        await client.command(
            "alluse.account.withdraw", {"account_id": gen["id"], "amount": "95000.01"}
        )
    )
    assert data["code"] == "insufficient_funds"
    account = await client.query("alluse.query.account", {"account_id": gen["id"]})
    assert account["data"]["balance"] == "100000.00"


async def test_rule_1_com_acc_refuses_every_withdrawal(client: Client) -> None:
    com = (await client.initialize())["compounding"]
    data = rejection(
        await client.command("alluse.account.withdraw", {"account_id": com["id"], "amount": "1.00"})
    )
    assert data["code"] == "withdrawal_forbidden"


NON_CANONICAL = ("\u0661\u0660\u0660", "\uff11\uff10\uff10", "1_000", "+5", " 7 ", "1E+2")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"amount": "-5.00"}, "invalid_payload"),
        ({"amount": 5.5}, "invalid_amount"),
        ({"amount": "1.001"}, "invalid_amount"),
        ({"amount": "ten"}, "invalid_amount"),
        # Decimal() takes each of these; the wire takes ASCII digits only, plainly written.
        *(({"amount": a}, "invalid_amount") for a in NON_CANONICAL),
        ({}, "invalid_payload"),
        ({"amount": "5.00", "account_id": str(uuid.uuid4())}, "unknown_account"),
    ],
)
async def test_bad_payloads_get_one_rejection_with_a_code(
    client: Client, data: dict[str, Any], code: str
) -> None:
    gen = (await client.initialize())["generation"]
    payload = {"account_id": gen["id"], **data}
    got = rejection(await client.command("alluse.account.deposit", payload))
    assert got["code"] == code and got["reason"]


async def test_closed_account_takes_no_deposit(client: Client) -> None:
    (created,) = await client.command("alluse.account.create", {"type": "revenue", "name": "spare"})
    account_id = created["data"]["account"]["id"]
    events = await client.command(
        "alluse.account.close", {"account_id": account_id, "reason": "done"}, want=2
    )
    assert [e["type"] for e in events] == ["alluse.account.status_changed", "alluse.account.closed"]
    assert (
        rejection(
            await client.command(
                "alluse.account.deposit", {"account_id": account_id, "amount": "1.00"}
            )
        )["code"]
        == "account_closed"
    )


async def test_unknown_type_and_missing_token_and_weak_role_are_rejected(
    client: Client, redis: Redis, settings: Settings
) -> None:
    assert rejection(await client.command("alluse.account.explode", {}))["code"] == "unknown_type"
    assert (
        rejection(
            await client.command("alluse.account.create", {"type": "revenue"}, role="viewer")
        )["code"]
        == "forbidden"
    )
    fields = ce("alluse.account.create", {"type": "revenue"})  # no authorization at all
    await xadd(redis, settings.streams.key(ACCOUNT_COMMANDS), fields)
    got = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), fields["id"])
    assert rejection(got)["code"] == "unauthorized"


async def test_history_is_paged_and_filtered(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    for i in range(5):
        await client.command(
            "alluse.account.deposit", {"account_id": gen["id"], "amount": f"{i + 1}.00"}
        )
    page = await client.query(
        "alluse.query.history", {"account_id": gen["id"], "type": "deposit", "limit": 4}
    )
    txs = page["data"]["transactions"]
    assert [t["amount"] for t in txs] == ["5.00", "4.00", "3.00", "2.00"]
    rest = await client.query(
        "alluse.query.history",
        {"account_id": gen["id"], "limit": 4, "before": page["data"]["next"]},
    )
    assert [t["amount"] for t in rest["data"]["transactions"]] == ["1.00", "100000.00"]


async def test_fifty_concurrent_withdrawals_never_overdraw(
    client: Client, settings: Settings, redis: Redis
) -> None:
    rev = (await client.initialize("100000.00"))["revenue"]  # 30,000.00 with a 1,500.00 buffer
    balance, contributed = Decimal(rev["balance"]), Decimal(rev["contributed_capital"])
    expected = 0  # the rule applied one withdrawal at a time: each must fit in `available`
    while Decimal(1000) <= balance - contributed * Decimal("0.05"):
        balance, contributed, expected = balance - 1000, contributed - 1000, expected + 1
    results = await asyncio.gather(
        *(
            client.command(
                "alluse.account.withdraw", {"account_id": rev["id"], "amount": "1000.00"}
            )
            for _ in range(50)
        )
    )
    kinds = [r[0]["type"] for r in results]
    done = kinds.count("alluse.account.balance_changed")
    assert done == expected == 29
    assert kinds.count("alluse.command.rejected") == 50 - done
    account = await client.query("alluse.query.account", {"account_id": rev["id"]})
    assert Decimal(account["data"]["balance"]) == Decimal(rev["balance"]) - 1000 * done
    assert Decimal(account["data"]["balance"]) >= Decimal(account["data"]["cash_buffer"])
    integrity = await client.query("alluse.query.integrity", {}, role="auditor")
    assert integrity["data"]["ok"] is True, integrity


async def test_a_revoked_token_is_refused_once_the_revocation_is_read(
    client: Client, redis: Redis, settings: Settings, signer: Signer
) -> None:
    claims = signer.claims("admin")
    token = jwt.encode(claims, signer.key, algorithm="EdDSA", headers={"kid": signer.kid})
    fields = ce("alluse.account.create", {"type": "revenue"}, authorization=f"Bearer {token}")
    await xadd(redis, settings.streams.key(ACCOUNT_COMMANDS), fields)
    (created,) = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), fields["id"])
    assert created["type"] == "alluse.account.created"
    # The security service publishes the revocation; the account service follows the stream.
    revoked = {"type": REVOKED, "kind": "jti", "value": claims["jti"], "until": str(claims["exp"])}
    await xadd(redis, settings.streams.key(REVOCATIONS), signer.sign("security", revoked))
    # Each try is a fresh command, until one is refused as revoked. How soon is a figure for
    # the benchmarks: a deadline here would only measure how busy the machine is.

    async def attempt() -> dict[str, Any]:
        again = ce("alluse.account.create", {"type": "revenue"}, authorization=f"Bearer {token}")
        await xadd(redis, settings.streams.key(ACCOUNT_COMMANDS), again)
        (seen,) = await outcomes(redis, settings.streams.key(ACCOUNT_EVENTS), again["id"])
        return seen

    got = await until(attempt, lambda e: e["type"] == "alluse.command.rejected", what="refusal")
    assert got["type"] == "alluse.command.rejected", got
    assert got["data"]["code"] == "unauthorized" and "revoked" in got["data"]["reason"]


async def test_commands_and_denials_leave_audit_records(
    client: Client, redis: Redis, settings: Settings
) -> None:
    gen = (await client.initialize())["generation"]
    await client.command("alluse.account.deposit", {"account_id": gen["id"], "amount": "5.00"})
    await client.command(
        "alluse.account.deposit", {"account_id": gen["id"], "amount": "5.00"}, role="viewer"
    )

    async def audited() -> list[dict[str, Any]]:
        return [decoded(f)["data"] for _, f in await entries(redis, settings.streams.key(AUDIT))]

    records = await until(audited, lambda found: len(found) >= 3, what="audit records")
    actions = [r["action"] for r in records]
    assert actions == ["alluse.system.initialize", "alluse.account.deposit", "command.denied"]
    assert records[1]["actor"] == "user-admin"
    assert records[2]["details"]["code"] == "forbidden"
    assert all("authorization" not in str(r) and "Bearer" not in str(r) for r in records)
