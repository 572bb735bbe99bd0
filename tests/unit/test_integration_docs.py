"""The committed AsyncAPI document and lifecycle JSON Schemas are what the code generates, and
the document has the structure AsyncAPI 3.0 requires."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.contracts import asyncapi, docs, lifecycle

PUBLIC_STREAMS = {
    "ws2.protocol.events",
    "ws4.market.events",
    "alluse.account.commands",
    "alluse.account.queries",
    "alluse.account.lifecycle",
    "alluse.audit",
    "alluse.reply.{replyto}",  # a query's answer, on the `replyto` it named
    "alluse.outcomes.{lane}",  # one outcome per entry written into a lane
}
LIFECYCLE = {  # docs/contract.md, "Lifecycle types"
    "alluse.system.initialized",
    "alluse.account.created",
    "alluse.account.updated",
    "alluse.account.status_changed",
    "alluse.account.balance_changed",
    "alluse.account.closed",
    "alluse.account.fork_eligible",
    "alluse.account.forked",
    "alluse.account.merged",
    "alluse.account.reinvested",
    "alluse.account.protocol_violation",
    "alluse.account.drawdown_breached",
    "alluse.week.changed",
    "alluse.command.rejected",
}
# Added beside the contract's list (additive): a reinvestment run's summary, a config change,
# and docs/rules.md section 11's position changes, valuation mismatches and reversals.
ADDED = {
    "alluse.account.reinvestment_completed",
    "alluse.config.updated",
    "alluse.account.position_changed",
    "alluse.account.valuation_mismatch",
    "alluse.account.reversed",
}
KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")  # AsyncAPI 3.0 component and map keys


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return asyncapi.build()


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_committed_documents_are_up_to_date_with_the_code() -> None:
    assert docs.main(["--check"]) == 0, "run `make docs` and commit the result"


def test_the_committed_document_is_the_generated_one(doc: dict[str, Any]) -> None:
    committed = json.loads((docs.DOCS / "asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(doc))


def test_document_has_the_asyncapi_3_structure(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert all(s["host"] and s["protocol"] for s in doc["servers"].values())
    for key in (*doc["channels"], *doc["operations"], *doc["components"]["messages"]):
        assert KEY.match(key), key
    for channel in doc["channels"].values():
        assert channel["address"] and channel["messages"]
    for operation in doc["operations"].values():
        assert operation["action"] in {"send", "receive"}
        channel = resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:  # must be messages of the operation's channel
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
        assert channel in doc["channels"].values()
    for message in doc["components"]["messages"].values():
        assert message["contentType"] == "application/json"
        assert resolve(doc, message["payload"]["$ref"])["type"] == "object"
        assert message["correlationId"]["location"].startswith("$message.header#/")


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in refs(doc):
        assert resolve(doc, ref) is not None, ref


def test_every_public_stream_and_lifecycle_type_is_described(doc: dict[str, Any]) -> None:
    assert {c["address"] for c in doc["channels"].values()} == PUBLIC_STREAMS
    assert set(doc["channels"]["accountLifecycle"]["messages"]) == LIFECYCLE | ADDED
    assert set(lifecycle.LIFECYCLE_TYPES) == LIFECYCLE | ADDED
    assert doc["operations"]["sendAccountLifecycle"]["action"] == "send"
    assert doc["operations"]["receiveWs4MarketEvents"]["action"] == "receive"


def test_lifecycle_schemas_are_versioned_and_name_their_uri() -> None:
    for event_type in LIFECYCLE | ADDED:
        schema = json.loads((docs.SCHEMAS / f"{event_type}.json").read_text())
        assert schema["$id"] == lifecycle.dataschema(event_type)
        assert schema["$id"].endswith(f"/{event_type}/{lifecycle.VERSION}.json")
        assert schema["type"] == "object" and schema["additionalProperties"] is True


def test_html_page_is_self_contained(doc: dict[str, Any]) -> None:
    page = docs.render(doc)
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert all(t in page for t in LIFECYCLE)


def test_service_written_channels_name_their_signer_and_carry_the_signature(
    doc: dict[str, Any],
) -> None:
    signers = {c["address"]: c.get("x-signed-by") for c in doc["channels"].values()}
    assert signers["alluse.account.lifecycle"] == "integration"  # whatever `source` says
    assert signers["alluse.reply.{replyto}"] == "account"
    assert signers["alluse.outcomes.{lane}"] and signers["alluse.audit"]
    for channel in doc["channels"].values():
        signed = "x-signed-by" in channel
        for ref in channel["messages"].values():
            parts = resolve(doc, ref["$ref"])["headers"]["allOf"]
            required = {r for p in parts for r in p.get("required", [])}
            has_signature = {"$ref": "#/components/schemas/ServiceSignature"} in parts
            assert has_signature == signed == ({"signature", "signed_at"} <= required)
            assert ("authorization" in required) == (not signed)
    fields = doc["components"]["schemas"]["ServiceSignature"]["properties"]
    assert set(fields) == {"signature", "signed_at"}
