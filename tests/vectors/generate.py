"""Write tests/vectors/signatures.json: entry signatures anyone can check (docs/signatures.md).

`make vectors` (python -m tests.vectors.generate). Deterministic: a fixed test-only seed, a
fixed `signed_at` and fixed entries, signed by the platform's own EntrySigner, so the file
changes only when the signing scheme does; `--check` fails if the committed file is stale.
Each group lists its entries as they lie on the stream, and what a verifier computes on the
way: the canonical bytes, the leaves, the root, the signed message and the signature. The
`tampered` entries must fail verification.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts import trust
from shared.contracts.envelope import dumps
from shared.contracts.lifecycle import dataschema
from shared.infra.trust.signing import EntrySigner, b64, unb64

PATH = Path(__file__).with_name("signatures.json")
# Test-only: a published private key. Never a deployment's key.
SEED = b64(hashlib.sha256(b"alluse signature test vectors v1").digest())
SIGNED_AT = 1796117400000  # 2026-12-01T09:30:00Z in Unix milliseconds
ACCOUNT_SOURCE = "alluse/account-service"
ACCOUNT = "6f1c2a52-8d3e-4a0b-9c1e-2f4a5b6c7d8e"
ODD = 'v=1\tq\n\r\b\f\u0001\u001f\u007f \u2028 é/😀 "x" \\'


def _entry(n: int, type_: str, source: str, data: dict[str, Any], **extra: str) -> dict[str, str]:
    """Stream fields as the services write them (envelope.new_event, without its random parts)."""
    fields = {
        "specversion": "1.0",
        "id": f"0b7e4f0e-5a8b-4f7e-8f0a-00000000000{n}",
        "source": source,
        "type": type_,
        "time": f"2026-12-01T09:29:5{n}.125000+00:00",
        "datacontenttype": "application/json",
        "dataschema": dataschema(type_),
        **extra,
    }
    fields["data"] = dumps(data)
    return fields


def entries() -> list[list[dict[str, str]]]:
    """Two groups: three lifecycle entries (a padded tree of depth 2) and one alone (depth 0)."""
    deposit = {
        "account_id": ACCOUNT,
        "transaction": {
            "id": "1041",
            "type": "deposit",
            "amount": "2500.00",
            "description": 'Prämie "Q4" \u2013 café ✓ 😀',
            "week_type": "P-EW",
        },
        "balance": "102500.00",
        "available": "97375.00",
        "cash_buffer": "5125.00",
    }
    position = {
        "account_id": ACCOUNT,
        "contract": "TSLA  261218P00250000",
        "symbol": "TSLA",
        "kind": "put",
        "strike": "250",
        "expiration": "2026-12-18",
        "multiplier": 100,
        "change": -2,
        "cost_change": "-1240.00",
        "quantity": -2,
        "cost": "-1240.00",
        "cause": "fill",
        "reference": "fill-7781",
        "transaction_id": "1042",
    }
    rejected = {
        "code": "invalid_payload",
        "reason": "amount: must be > 0\n\ttab, \u0001 and \\ kept",
        "command_type": "alluse.account.deposit",
        "command_id": "cmd-17",
    }
    week = {
        "week_start": "2026-11-30",
        "week_type": "C-WAP+",
        "confidence": "0.87",
        "previous_week_type": "P-EW",
    }
    cause = {"causationid": "fill-7781", "correlationid": "fill-7781"}
    return [
        [
            _entry(1, "alluse.account.balance_changed", ACCOUNT_SOURCE, deposit, subject=ACCOUNT),
            _entry(
                2,
                "alluse.account.position_changed",
                ACCOUNT_SOURCE,
                position,
                subject=ACCOUNT,
                **cause,
            ),
            _entry(
                3,
                "alluse.command.rejected",
                ACCOUNT_SOURCE,
                rejected,
                subject=ACCOUNT,
                causationid="cmd-17",
                correlationid="cmd-17",
            ),
        ],
        # Raw control and non-ASCII characters in a field's own value (`data` is JSON, so
        # its are escaped already): the canonical form must escape them as JSON.stringify does.
        [_entry(4, "alluse.week.changed", "alluse/integration", week, tracestate=ODD)],
    ]


def _hex(raw: bytes) -> str:
    return raw.hex()


def group(signer: EntrySigner, unsigned: list[dict[str, str]]) -> dict[str, Any]:
    signed = signer.sign_many(unsigned, at_ms=SIGNED_AT)
    leaves = [trust.leaf(fields) for fields in signed]
    depth, root, paths = trust.tree(leaves)
    message = trust.signed_root(depth, root)
    return {
        "entries": signed,
        "canonical": [trust.signed_bytes(fields).decode() for fields in signed],
        "leaves": [_hex(h) for h in leaves],
        "paths": [[_hex(h) for h in path] for path in paths],
        "depth": depth,
        "root": _hex(root),
        "message": _hex(message),
        "signature": signed[0][trust.SIGNATURE].split(".")[1],
    }


def tampered(first: dict[str, str]) -> list[dict[str, Any]]:
    """Copies of a signed entry, each changed in one way a verifier must notice."""
    kid, sig, index, path = first[trust.SIGNATURE].split(".")
    other = unb64(path)
    swapped = b64(other[32:64] + other[:32])
    return [
        {"why": "a field's value changed", "fields": {**first, "subject": "someone-else"}},
        {"why": "signed_at changed", "fields": {**first, trust.SIGNED_AT: str(SIGNED_AT + 1)}},
        {"why": "a field added", "fields": {**first, "lane": "eng-1"}},
        {"why": "another index", "fields": {**first, trust.SIGNATURE: f"{kid}.{sig}.1.{path}"}},
        {
            "why": "a kid the JWKS does not list",
            "fields": {**first, trust.SIGNATURE: f"account-000000000000.{sig}.{index}.{path}"},
        },
        {
            "why": "sibling hashes reordered",
            "fields": {**first, trust.SIGNATURE: f"{kid}.{sig}.{index}.{swapped}"},
        },
    ]


def build() -> dict[str, Any]:
    signer = EntrySigner.from_seed(trust.INTEGRATION, SEED)
    groups = [group(signer, g) for g in entries()]
    return {
        "about": "Test vectors of the platform's entry signatures; the scheme is specified in"
        " docs/signatures.md. The seed is a published test key, never a deployment's.",
        "seed": SEED,
        "jwks": {"keys": [signer.jwk()]},
        "signer": trust.INTEGRATION,
        "signed_at": str(SIGNED_AT),
        "entry_context": trust.SIGNED_CONTEXT.decode(),
        "root_context": trust.ROOT_CONTEXT.decode(),
        "pad": _hex(trust.PAD),
        "groups": groups,
        "tampered": tampered(groups[0]["entries"][0]),
    }


def text() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    if args.check:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != text():
            print(f"stale, run `make vectors`: {PATH.name}", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text(), encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
