"""An example trading engine: a week's classification, fills, a retry and a conflicting fill,
each entry's outcome printed as one JSON line.

    ALLUSE_CLIENT_ID=ws4-example ALLUSE_CLIENT_SECRET_FILE=ws4-example.secret \
        python shared/client/examples/engine.py <account id> [--fills N]

Settings (environment): ALLUSE_REDIS_URL (or REDIS_URL), ALLUSE_STREAM_PREFIX, ALLUSE_TOKEN_URL,
ALLUSE_JWKS_URL, ALLUSE_CLIENT_ID, ALLUSE_CLIENT_SECRET_FILE, and ALLUSE_LANE (the client's
lane, usually its client id, on a platform with lanes; unset: the shared streams).
"""

import argparse
import asyncio
import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from redis.asyncio import Redis

from alluse_client import ClientCredentials, Engine, KeySet, NoOutcome, Sent

SECURITY = "http://127.0.0.1:8081"


def say(sent: Sent, status: str, code: str | None = None) -> None:
    print(
        json.dumps({"type": sent.type, "id": sent.id, "status": status, "code": code}), flush=True
    )


async def outcome(engine: Engine, sent: Sent) -> None:
    try:
        got = await engine.outcome(sent, timeout=60)
    except NoOutcome:
        say(sent, "none")
        return
    say(sent, got.status, got.code)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("account_id")
    parser.add_argument("--fills", type=int, default=5)
    parser.add_argument(
        "--run",
        default=uuid.uuid4().hex[:8],
        help="names this run's fills; the same --run publishes the same fills",
    )
    args = parser.parse_args()
    env = os.environ
    tokens = ClientCredentials(  # the secret file is read once, at start
        env.get("ALLUSE_TOKEN_URL", f"{SECURITY}/oauth/token"),
        env["ALLUSE_CLIENT_ID"],
        await asyncio.to_thread(Path(env["ALLUSE_CLIENT_SECRET_FILE"]).read_text),
    )
    keys = KeySet.from_url(env.get("ALLUSE_JWKS_URL", f"{SECURITY}/.well-known/jwks.json"))
    redis = Redis.from_url(
        env.get("ALLUSE_REDIS_URL") or env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    common = {
        "keys": keys,
        "prefix": env.get("ALLUSE_STREAM_PREFIX", ""),
        "lane": env.get("ALLUSE_LANE") or None,
    }
    ws2 = Engine(redis, tokens, source="ws2/example-engine", **common)  # type: ignore[arg-type]
    ws4 = Engine(redis, tokens, source="ws4/example-engine", **common)  # type: ignore[arg-type]

    today = datetime.now(UTC)
    monday = date.fromordinal(today.date().toordinal() - today.weekday())
    week = await ws2.week_classified(
        {"week_start": monday, "week_type": "P-EW", "confidence": Decimal("0.9")}
    )
    await outcome(ws2, week)  # fills after their week's classification are booked with it

    fills = []
    for n in range(args.fills):
        fill = await ws4.trade_filled(
            {
                "fill_id": f"example-{args.run}-{n}",
                "order_id": f"order-{args.run}-{n}",
                "account_id": args.account_id,
                "symbol": "NVDA",
                "instrument_type": "option",
                "option_type": "put",
                "strike": Decimal("120.00"),
                "delta": Decimal("-0.45"),
                "expiration": monday + timedelta(days=4),
                "side": "sell_to_open",
                "quantity": 1,
                "price": Decimal("2.15"),
                "commission": Decimal("0.65"),
                "filled_at": today,
            }
        )
        fills.append(fill)
    for fill in fills:
        await outcome(ws4, fill)
    # A retry after a crash publishes the same fill again: the same id, applied once. (Without
    # lanes the platform announces nothing for it: its outcome is not awaited there.)
    again = await ws4.trade_filled(
        {
            "fill_id": f"example-{args.run}-0",
            "order_id": f"order-{args.run}-0",
            "account_id": args.account_id,
            "symbol": "NVDA",
            "instrument_type": "option",
            "option_type": "put",
            "strike": Decimal("120.00"),
            "delta": Decimal("-0.45"),
            "expiration": monday + timedelta(days=4),
            "side": "sell_to_open",
            "quantity": 1,
            "price": Decimal("2.15"),
            "commission": Decimal("0.65"),
            "filled_at": today,
        }
    )
    if common["lane"]:
        await outcome(ws4, again)
    # The same fill_id with another price, under a new id: refused as a conflict.
    conflict = await ws4.trade_filled(
        {
            "fill_id": f"example-{args.run}-1",
            "order_id": f"order-{args.run}-1",
            "account_id": args.account_id,
            "symbol": "NVDA",
            "instrument_type": "option",
            "option_type": "put",
            "strike": Decimal("120.00"),
            "delta": Decimal("-0.45"),
            "side": "sell_to_open",
            "quantity": 1,
            "price": Decimal("9.99"),
            "commission": Decimal("0.65"),
            "filled_at": today,
        },
        id=f"example-{args.run}-conflict",
    )
    await outcome(ws4, conflict)
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
