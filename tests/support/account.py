"""The account service's test client: what an operator's tool does, over plain redis-py."""

import uuid
from typing import Any

from redis.asyncio import Redis

from services.account.app import SCHEMA
from services.account.state.store import reads
from shared.contracts.lifecycle import LIFECYCLE_TYPES
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    ACCOUNT_QUERIES,
)
from shared.contracts.trust import reply_namespace
from shared.infra.runtime.db import connection
from shared.infra.runtime.service import Runtime
from shared.infra.runtime.settings import Settings
from tests.support.barriers import inbox_outcome
from tests.support.streams import caused, ce, outcomes, reply, xadd
from tests.support.tokens import Signer


class Client:
    """What an operator's tool does: XADD commands and queries, read outcomes."""

    def __init__(self, redis: Redis, settings: Settings, signer: Signer) -> None:
        self.redis, self.s, self.signer = redis, settings.streams, signer
        self.events = self.s.key(ACCOUNT_EVENTS)  # where outcomes are read
        self.database_url = settings.database_url  # where the inbox proves an entry was applied

    async def command(
        self, type_: str, data: dict[str, Any], *, role: str = "admin", want: int = 1, **attrs: str
    ) -> list[dict[str, Any]]:
        fields = ce(type_, data, authorization=self.signer.bearer(role), **attrs)
        await xadd(self.redis, self.s.key(ACCOUNT_COMMANDS), fields)
        events = await outcomes(self.redis, self.events, fields["id"], want=want)
        for event in events:  # what the service emits honours the published lifecycle schemas
            LIFECYCLE_TYPES[event["type"]].model_validate(event["data"])
        return events

    async def query(
        self, type_: str, data: dict[str, Any], *, role: str = "viewer"
    ) -> dict[str, Any]:
        box = reply_namespace(self.s.prefix, f"user-{role}") + uuid.uuid4().hex
        await xadd(
            self.redis,
            self.s.key(ACCOUNT_QUERIES),
            ce(type_, data, authorization=self.signer.bearer(role), replyto=box),
        )
        return await reply(self.redis, box)

    async def effect(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        want: int = 1,
        id_: str | None = None,
        time: str | None = None,
    ) -> list[dict[str, Any]]:
        """An upstream event as the integration service forwards it (`alluse.effect.<type_>`)."""
        extra = {"time": time} if time else {}
        fields = ce(
            f"alluse.effect.{type_}",
            data,
            source="ws4/gateway-1",
            id_=id_,
            subject=data.get("account_id", ""),
            **extra,
        )
        # Signed as the integration service signs what it forwards.
        await xadd(self.redis, self.s.key(ACCOUNT_EFFECTS), self.signer.sign("integration", fields))
        if want:
            events = await outcomes(self.redis, self.events, fields["id"], want=want)
        else:
            events = await self.nothing_caused(fields)
        for event in events:
            LIFECYCLE_TYPES[event["type"]].model_validate(event["data"])
        return events

    async def nothing_caused(self, fields: dict[str, str]) -> list[dict[str, Any]]:
        """What the entry `fields` caused, for a test expecting nothing: waits until the service
        has applied it (its inbox row, which records every event it caused), then adds what is on
        the stream already. An empty list proves the entry was processed and announced nothing."""
        recorded = await inbox_outcome(self.database_url, SCHEMA, fields["source"], fields["id"])
        announced = [event for stream, event in recorded if stream == self.events]
        return [*announced, *await caused(self.redis, self.events, fields["id"])]

    async def barrier(self) -> None:
        """Returns once everything the service committed before this call is on the streams:
        a command it always refuses, whose outcome the relay publishes after all of that."""
        data = {"account_id": str(uuid.uuid4()), "amount": "1.00"}
        (refused,) = await self.command("alluse.account.deposit", data)
        assert refused["data"]["code"] == "unknown_account", refused

    async def initialize(
        self, capital: str = "250000.00", **extra: Any
    ) -> dict[str, dict[str, Any]]:
        events = await self.command(
            "alluse.system.initialize", {"total_capital": capital, **extra}, want=4
        )
        assert events[0]["type"] == "alluse.system.initialized", events
        return {a["type"]: a for a in events[0]["data"]["accounts"]}


async def assert_ledger_balanced(rt: Runtime) -> None:
    """After every test: each account's balance equals the sum of its transactions."""
    async with connection(rt.pool) as conn:
        checked, bad = await reads.ledger_mismatches(conn)
    assert checked > 0 and bad == [], bad


def rejection(events: list[dict[str, Any]]) -> dict[str, Any]:
    (event,) = events
    assert event["type"] == "alluse.command.rejected", event
    return dict(event["data"])
