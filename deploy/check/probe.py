"""In-container probe of `make deploy-check`: run with the platform image's Python
(`docker compose exec -T security python - ARGS < probe.py`), connected to Redis as the
onboarded machine client's user `client-<lane>` (URL in PROBE_REDIS_URL, lane in PROBE_LANE).
It writes and reads what that client may (docs/lanes.md); it never runs a service.

  wait-init COMMAND_ID         the generation account created by that initialize command
  outcome ENTRY_ID             the outcome of that entry on the lane's outcome stream (JSON)
  deposits TOKEN ACCOUNT N TAG N deposits of 1.00, ids TAG-0..TAG-N-1, each re-sent with the
                               same id until its balance_changed is seen (a client's protocol:
                               an XADD lost with Redis is sent again; the inbox applies it once)
  applied ACCOUNT TAG          how many TAG-* commands were applied, which twice, the balance
"""

import json
import os
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import redis

PREFIX = os.environ.get("ALLUSE_STREAM_PREFIX", "")
LANE = os.environ.get("PROBE_LANE", "")
LIFECYCLE = PREFIX + "alluse.account.lifecycle"
# The client's lane of the commands stream (Streams.lane), and its outcome stream.
COMMANDS = f"{PREFIX}{{{PREFIX}alluse.account.commands}}.lane.{LANE}"
OUTCOMES = f"{PREFIX}alluse.outcomes.{LANE}"


def connect() -> "redis.Redis[str]":
    return redis.Redis.from_url(os.environ["PROBE_REDIS_URL"], decode_responses=True)


def events(r: "redis.Redis[str]") -> list[dict[str, Any]]:
    out = []
    for _, fields in r.xrange(LIFECYCLE, "-", "+"):
        fields["data"] = json.loads(fields.get("data", "{}"))
        out.append(fields)
    return out


def retrying(call: Any, deadline: float) -> Any:
    """Redis may be restarting (kill -9 under test): wait for it, like any client would."""
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_init(command_id: str) -> None:
    r, deadline = connect(), time.monotonic() + 120
    while time.monotonic() < deadline:
        for e in retrying(lambda: events(r), deadline):
            if e.get("causationid") != command_id or e["type"] != "alluse.account.created":
                continue
            if e["data"]["account"]["type"] == "generation":
                print(e["data"]["account"]["id"])
                return
        time.sleep(1)
    raise SystemExit(f"no generation account from {command_id}")


def outcome(entry_id: str) -> None:
    """The one outcome of the client's entry (`causationid` its id), as the client reads it."""
    r, deadline = connect(), time.monotonic() + 120
    while time.monotonic() < deadline:
        for _, fields in retrying(lambda: r.xrange(OUTCOMES, "-", "+"), deadline):
            if fields.get("causationid") == entry_id:
                fields["data"] = json.loads(fields.get("data", "{}"))
                print(json.dumps(fields))
                return
        time.sleep(1)
    raise SystemExit(f"no outcome of {entry_id} on {OUTCOMES}")


def deposit(token: str, account: str, entry_id: str) -> dict[str, str]:
    data = {"account_id": account, "amount": "1.00", "description": "deploy-check"}
    return {
        "specversion": "1.0",
        "id": entry_id,
        "source": "ops/deploy-check",
        "type": "alluse.account.deposit",
        "time": "2026-12-07T00:00:00Z",
        "subject": account,
        "authorization": f"Bearer {token}",
        "data": json.dumps(data),
    }


def applied(r: "redis.Redis[str]", tag: str, deadline: float) -> dict[str, dict[str, Any]]:
    return {
        e["causationid"]: e
        for e in retrying(lambda: events(r), deadline)
        if e["type"] == "alluse.account.balance_changed"
        and e.get("causationid", "").startswith(f"{tag}-")
    }


def deposits(token: str, account: str, count: int, tag: str) -> None:
    r, deadline = connect(), time.monotonic() + 300
    ids = [f"{tag}-{i}" for i in range(count)]
    for n, entry_id in enumerate(ids, 1):
        retrying(lambda e=entry_id: r.xadd(COMMANDS, deposit(token, account, e)), deadline)
        time.sleep(0.05)  # steady traffic across the kills, not one burst before them
        if n % 10 == 0:
            print(f"sent {n}", file=sys.stderr, flush=True)  # the crash test kills on these
    resent = 0
    while True:
        seen = applied(r, tag, deadline)
        missing = [i for i in ids if i not in seen]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(missing)} deposits never applied: {missing[:5]}")
        time.sleep(10)
        still = [i for i in missing if i not in applied(r, tag, deadline)]
        for entry_id in still:  # its XADD was lost with Redis: the client sends it again
            retrying(lambda e=entry_id: r.xadd(COMMANDS, deposit(token, account, e)), deadline)
        resent += len(still)
    print(json.dumps({"applied": len(seen), "resent": resent}))


def count(account: str, tag: str) -> None:
    """Applied once each: one balance_changed per command, whatever the relay re-sent (a
    re-sent event keeps its id; a command applied twice would show two event ids)."""
    r = connect()
    ids: dict[str, set[str]] = {}
    balance, again = Decimal(0), 0
    seen: set[tuple[str, str]] = set()
    for e in retrying(lambda: events(r), time.monotonic() + 60):
        again += (e["source"], e["id"]) in seen  # published twice (at least once), one event
        seen.add((e["source"], e["id"]))
        if e["type"] == "alluse.account.balance_changed" and e.get("subject") == account:
            # Deposits only: the balance only grows. Not the last entry's: after a Redis crash
            # the relay may publish an older event again (same id), which readers dedupe.
            balance = max(balance, Decimal(e["data"]["balance"]))
            if e.get("causationid", "").startswith(f"{tag}-"):
                ids.setdefault(e["causationid"], set()).add(e["id"])
    doubled = sorted(c for c, seen in ids.items() if len(seen) > 1)
    out = {"applied": len(ids), "doubled": doubled, "balance": str(balance), "republished": again}
    print(json.dumps(out))


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "wait-init":
        wait_init(args[0])
    elif command == "outcome":
        outcome(args[0])
    elif command == "deposits":
        deposits(args[0], args[1], int(args[2]), args[3])
    elif command == "applied":
        count(args[0], args[1])
    elif command == "new-id":
        print(uuid.uuid4().hex)
    else:
        raise SystemExit(__doc__)
