"""python -m services.bench.trust [--count N]: what proving each entry costs, per entry.

Signing an entry (each service, for every entry it writes: alone, and as its relay does, 64
entries under one signature), checking a service's signature (each reader of an internal
stream: an entry alone, and entries of one signed group), verifying a bearer token the first
time, and finding it again in the per-token cache (every later entry with the same token).
In-process, no I/O.
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contracts.envelope import new_event
from shared.infra.trust.auth import Verifier
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import EntrySigner, new_seed, signer_of


def entry() -> dict[str, str]:
    """A typical account event: a balance change with its transaction."""
    account = str(uuid.uuid4())
    data = {
        "account_id": account,
        "balance": "110074.35",
        "available": "104574.35",
        "cash_buffer": "5500.00",
        "transaction": {
            "id": "100",
            "amount": "74.35",
            "type": "trade_premium",
            "description": "sell_to_open 1 AMD put 153 @ 0.75",
        },
    }
    return new_event(
        "alluse.account.balance_changed", "alluse/account-service", data, subject=account
    )


async def per_entry(n: int, step: Callable[[int], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    for i in range(n):
        await step(i)
    return (time.perf_counter() - started) / n * 1e6


async def measure(n: int) -> dict[str, float]:
    signer = EntrySigner.from_seed("account", new_seed())
    token_key, kid = Ed25519PrivateKey.generate(), "bench-token"
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(token_key.public_key(), as_dict=True)
    jwks = {"keys": [signer.jwk(), {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}]}

    async def fetch() -> dict[str, Any]:
        return jwks

    keys = KeySet(fetch)
    verifier = Verifier(keys, issuer="alluse-security", audience="alluse")
    now = int(time.time())

    def token() -> str:
        claims = {
            "iss": "alluse-security",
            "aud": "alluse",
            "sub": "bench",
            "role": "operator",
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
        }
        return "Bearer " + jwt.encode(claims, token_key, algorithm="EdDSA", headers={"kid": kid})

    entries = [entry() for _ in range(n)]
    alone = [signer.sign(e) for e in entries]
    grouped = signer.sign_many(entries)
    tokens = [token() for _ in range(n)]
    await keys.get(kid)  # the JWKS fetched once, as a running service has it

    async def sign(i: int) -> None:
        signer.sign(entries[i])

    async def sign_group(i: int) -> None:
        if i % 64 == 0:
            signer.sign_many(entries[i : i + 64])

    async def check(i: int) -> None:
        keys.verified.clear()  # as if each entry came from a group of its own
        await signer_of(keys, alone[i])

    async def check_group(i: int) -> None:
        await signer_of(keys, grouped[i])

    async def first(i: int) -> None:
        await verifier.principal(tokens[i])

    async def again(i: int) -> None:
        await verifier.principal(tokens[i])

    return {
        "sign an entry alone (service)": await per_entry(n, sign),
        "sign an entry in a group of 64 (relay)": await per_entry(n, sign_group),
        "check an entry signed alone (reader)": await per_entry(n, check),
        "check an entry of a signed group (reader)": await per_entry(n, check_group),
        "verify a bearer token, first time": await per_entry(n, first),
        "the same token again (cached)": await per_entry(n, again),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m services.bench.trust",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--count", type=int, default=2000, help="entries per measurement (2000)")
    args = p.parse_args()
    if args.count < 1:
        p.error("--count must be positive")
    for what, micros in asyncio.run(measure(args.count)).items():
        print(f"{what:<44} {micros:8.1f} µs per entry")


if __name__ == "__main__":
    main()
