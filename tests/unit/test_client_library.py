"""The client library (alluse_client) agrees with the platform byte for byte, without importing it.

Signatures made by the platform's signer verify with the library's independent check; its
canonical form and leaves equal the platform's for any fields; its bundled JSON Schemas are
the platform's; the entries it builds decode as the platform decodes them.
"""

import base64
import json
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alluse_client
from alluse_client import signatures as lib
from alluse_client import tokens
from alluse_client.keys import KeySet, KeysUnavailable
from alluse_client.schemas import SchemaError, SchemaSet
from alluse_client.tokens import claims
from alluse_client.wire import binary_fields, dumps, idempotent_id
from shared.contracts import trust
from shared.contracts.envelope import decode
from shared.contracts.lifecycle import LIFECYCLE_TYPES
from shared.contracts.upstream import UPSTREAM_TYPES, TradeFilled
from shared.infra.trust.signing import EntrySigner, new_seed

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_SCHEMAS = ROOT / "shared" / "contracts" / "schemas"
BUNDLED = ROOT / "shared" / "client" / "src" / "alluse_client" / "schemas"
KINDS = ("lifecycle", "upstream", "outcomes")

text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


@given(st.dictionaries(text, text, max_size=8))
def test_canonical_form_and_leaf_equal_the_platforms(fields: dict[str, str]) -> None:
    assert lib.canonical(fields) == trust.signed_bytes(fields)
    assert lib.leaf(fields) == trust.leaf(fields)


def entry(n: int) -> dict[str, str]:
    return binary_fields(
        "alluse.account.closed",
        "alluse/account-service",
        {"account_id": f"a-{n}", "reason": "é \u2028 \n"},
        id=f"e-{n}",
    )


async def test_entries_the_platform_signs_verify_and_tampered_ones_do_not() -> None:
    signer = EntrySigner.from_seed("integration", new_seed())
    keys = KeySet.of({"keys": [signer.jwk(), {"kty": "RSA", "kid": "token-key"}]})
    signed = signer.sign_many([entry(n) for n in range(70)])  # two groups: 64 + 6
    for fields in signed:
        assert await keys.signer_of(fields) == "integration"
    with pytest.raises(lib.SignatureError):
        await keys.signer_of({**signed[3], "data": signed[4]["data"]})
    with pytest.raises(lib.SignatureError):
        await keys.signer_of({k: v for k, v in signed[0].items() if k != "signature"})
    # A signature claiming another entry's place in the tree does not verify either.
    kid, sig, _, path = signed[1]["signature"].split(".")
    with pytest.raises(lib.SignatureError):
        await keys.signer_of({**signed[1], "signature": f"{kid}.{sig}.0.{path}"})


async def test_an_unknown_kid_refetches_the_set_and_an_outage_waits() -> None:
    old = EntrySigner.from_seed("integration", new_seed())
    new = EntrySigner.from_seed("integration", new_seed())
    jwks: list[dict[str, Any]] = [old.jwk()]
    published: dict[str, object] | None = {"keys": jwks}
    fetches = 0
    now = [1000.0]

    async def fetch() -> dict[str, object]:
        nonlocal fetches
        fetches += 1
        if published is None:
            raise OSError("down")
        return published

    keys = KeySet(fetch, clock=lambda: now[0])
    assert await keys.signer_of(old.sign(entry(1))) == "integration"
    jwks.append(new.jwk())  # a rotation: the new kid is not cached yet
    now[0] += 2
    assert await keys.signer_of(new.sign(entry(2))) == "integration"
    assert fetches == 2
    stranger = EntrySigner.from_seed("integration", new_seed())
    now[0] += 2
    with pytest.raises(lib.SignatureError, match="not published"):
        await keys.signer_of(stranger.sign(entry(3)))
    with pytest.raises(KeysUnavailable):  # asked again within a second: not refetched
        await keys.signer_of(stranger.sign(entry(3)))


@pytest.mark.parametrize("kind", KINDS)
def test_bundled_schemas_are_the_platforms(kind: str) -> None:
    platform = {f.name: f.read_bytes() for f in (PLATFORM_SCHEMAS / kind).glob("*.json")}
    bundled = {f.name: f.read_bytes() for f in (BUNDLED / kind).glob("*.json")}
    assert bundled == platform, (
        f"run make docs: it writes shared/contracts/schemas/{kind}/ into the client library too"
    )
    assert set(SchemaSet.bundled(kind).schemas) == {f.removesuffix(".json") for f in platform}


def test_bundled_lifecycle_schemas_cover_every_lifecycle_type() -> None:
    assert set(SchemaSet.bundled().schemas) == set(LIFECYCLE_TYPES)


def test_schema_validation_names_the_field() -> None:
    schemas = SchemaSet.bundled()
    with pytest.raises(SchemaError, match="account_id"):
        schemas.validate("alluse.account.closed", {"account_id": 7, "reason": "x"})


FILL = {
    "fill_id": "f-1",
    "order_id": "o-1",
    "account_id": "acc",
    "symbol": "NVDA",
    "instrument_type": "option",
    "option_type": "put",
    "strike": Decimal("120.00"),
    "expiration": date(2026, 12, 18),
    "delta": Decimal("-0.45"),
    "side": "sell_to_open",
    "quantity": 3,
    "price": Decimal("2.15"),
    "commission": Decimal("1.95"),
    "filled_at": datetime(2026, 11, 26, 15, tzinfo=UTC),
}


def test_built_entries_decode_as_the_platform_reads_them() -> None:
    fields = binary_fields("ws4.trade.filled", "ws4/gw", FILL, token="a.b.c", subject="acc")
    event = decode({k.encode(): v.encode() for k, v in fields.items()})
    assert (event.type, event.source, event.subject, event.authorization) == (
        "ws4.trade.filled",
        "ws4/gw",
        "acc",
        "Bearer a.b.c",
    )
    model = UPSTREAM_TYPES["ws4.trade.filled"].model_validate(event.data)
    assert isinstance(model, TradeFilled) and model.price == Decimal("2.15")
    assert json.loads(fields["data"])["strike"] == "120.00"  # money as exact strings


def test_built_payloads_match_the_upstream_schemas_and_bad_ones_do_not() -> None:
    upstream = SchemaSet.bundled("upstream")
    upstream.validate(
        "ws4.trade.filled", json.loads(binary_fields("ws4.trade.filled", "s", FILL)["data"])
    )
    with pytest.raises(SchemaError, match="price"):
        upstream.validate("ws4.trade.filled", {**json.loads(dumps(FILL)), "price": 2.15})


def test_ids_follow_the_natural_key_so_a_republished_event_is_a_duplicate() -> None:
    first = idempotent_id("ws4.trade.filled", "ws4/gw", FILL)
    assert first == binary_fields("ws4.trade.filled", "ws4/gw", {**FILL})["id"]
    assert first != idempotent_id("ws4.trade.filled", "ws4/gw", {**FILL, "fill_id": "f-2"})
    assert first != idempotent_id("ws4.trade.filled", "ws4/other", FILL)
    with pytest.raises(ValueError, match="fill_id"):
        idempotent_id("ws4.trade.filled", "ws4/gw", {"order_id": "o"})
    with pytest.raises(ValueError, match="time zone"):
        binary_fields("ws4.trade.filled", "s", {**FILL, "filled_at": datetime(2026, 1, 1)})


def test_token_claims_are_read_without_verification() -> None:
    token = "e30." + "eyJzdWIiOiJlbmciLCJleHAiOjV9" + ".sig"  # {"sub":"eng","exp":5}
    assert claims(token) == {"sub": "eng", "exp": 5}
    with pytest.raises(alluse_client.TokenError):
        claims("not-a-jwt")


def test_the_library_imports_nothing_of_the_platform() -> None:
    package = ROOT / "shared" / "client" / "src" / "alluse_client"
    for source in package.glob("*.py"):
        code = source.read_text()
        assert "from shared" not in code and "import shared" not in code, source.name
        assert "from services" not in code and "import services" not in code, source.name


def _issuer(status: int, body: bytes, seen: list[tuple[str, str]]) -> ThreadingHTTPServer:
    """A stand-in token endpoint answering every POST with `status` and `body`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append((self.headers.get("Authorization", ""), form))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_token_requests_tell_a_refusal_from_an_issuer_out_of_reach() -> None:
    seen: list[tuple[str, str]] = []
    ok = _issuer(200, json.dumps({"access_token": "a.b.c", "expires_in": 60}).encode(), seen)
    no = _issuer(400, b'{"error":"invalid_grant","error_description":"spent"}', seen)
    try:
        url = f"http://127.0.0.1:{ok.server_port}/oauth/token"
        form = {"grant_type": "password", "username": "ann", "password": "pw"}
        assert tokens.request_token(url, form)["access_token"] == "a.b.c"
        assert tokens.client_credentials(url, "eng a", "s:1")["expires_in"] == 60
        with pytest.raises(tokens.TokenRefused) as refused:
            tokens.request_token(f"http://127.0.0.1:{no.server_port}/oauth/token", form)
    finally:
        for server in (ok, no):
            server.shutdown()
            server.server_close()  # closed: the next request finds nobody listening
    assert (refused.value.error, refused.value.description) == ("invalid_grant", "spent")
    assert str(refused.value) == "token request refused: invalid_grant: spent"
    assert seen[0] == ("", "grant_type=password&username=ann&password=pw")
    basic = base64.b64decode(seen[1][0].removeprefix("Basic ")).decode()
    assert basic == "eng+a:s%3A1" and seen[1][1] == "grant_type=client_credentials"
    with pytest.raises(tokens.IssuerUnreachable, match="unreachable") as down:
        tokens.request_token(f"http://u:secret@127.0.0.1:{ok.server_port}/t", form, timeout=2)
    assert "secret" not in str(down.value)  # the URL's credentials stay out of messages
    with pytest.raises(tokens.IssuerUnreachable, match="http"):
        tokens.request_token("file:///etc/passwd", form)
