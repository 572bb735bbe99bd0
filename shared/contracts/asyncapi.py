"""The AsyncAPI 3.0 document of every public stream, generated from the contract models.

`python -m shared.contracts.docs` (`make docs`) writes it to deploy/docs/ with its HTML page.
"""

import importlib
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contracts import lifecycle, streams, upstream
from shared.contracts.envelope import CloudEvent

REF = "#/components/schemas/{model}"
COMMANDS = {
    "alluse.system.initialize": "InitializeSystem",
    "alluse.account.create": "CreateAccount",
    "alluse.account.update": "UpdateAccount",
    "alluse.account.deposit": "MoveMoney",
    "alluse.account.withdraw": "MoveMoney",
    "alluse.account.set_status": "SetStatus",
    "alluse.account.close": "CloseAccount",
    "alluse.account.fork": "ForkAccount",
    "alluse.account.merge": "MergeAccount",
    "alluse.account.reinvest": "Reinvest",
}
QUERIES = {
    "alluse.query.account": "AccountRef",
    "alluse.query.accounts": "ListAccounts",
    "alluse.query.history": "History",
    "alluse.query.summary": "Empty",
    "alluse.query.integrity": "Empty",
}


def _account_contract() -> ModuleType | None:
    try:
        return importlib.import_module("shared.contracts.account")
    except ModuleNotFoundError:
        return None


def _catalogue() -> dict[str, dict[str, type[BaseModel] | None]]:
    """Per public stream, its message types and their payload models (None: not yet modelled)."""
    account = _account_contract()

    def model(name: str) -> type[BaseModel] | None:
        found = getattr(account, name, None)
        return found if isinstance(found, type) and issubclass(found, BaseModel) else None

    up = upstream.UPSTREAM_TYPES
    return {
        streams.WS2_EVENTS: {t: m for t, m in up.items() if t.startswith("ws2.")},
        streams.WS4_EVENTS: {t: m for t, m in up.items() if t.startswith("ws4.")},
        streams.ACCOUNT_COMMANDS: {t: model(n) for t, n in COMMANDS.items()},
        streams.ACCOUNT_QUERIES: {t: model(n) for t, n in QUERIES.items()},
        streams.ACCOUNT_LIFECYCLE: dict(lifecycle.LIFECYCLE_TYPES),
        streams.AUDIT: {"alluse.audit.recorded": None},
    }


CHANNELS = {  # stream -> (channel id, operation actions, description)
    streams.WS2_EVENTS: ("ws2ProtocolEvents", ("receive",), "Written by the WS2 protocol engine."),
    streams.WS4_EVENTS: ("ws4MarketEvents", ("receive",), "Written by the WS4 market integration."),
    streams.ACCOUNT_COMMANDS: (
        "accountCommands",
        ("receive",),
        "Operators' tools and trading engines; each entry needs `authorization: Bearer <JWT>`."
        " Every command gets exactly one outcome on the lifecycle stream.",
    ),
    streams.ACCOUNT_QUERIES: (
        "accountQueries",
        ("receive",),
        "Anyone with a token; the reply is XADDed on `replyto`.",
    ),
    streams.ACCOUNT_LIFECYCLE: (
        "accountLifecycle",
        ("send",),
        "Written by the integration service. Stable `id` per event (deduplicate on source + id),"
        " commit order per account, `dataschema` names the versioned JSON Schema of `data`.",
    ),
    streams.AUDIT: (
        "audit",
        ("send", "receive"),
        "Every service writes; the security service reads.",
    ),
}


def _headers(type_: str, stream: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"type": {"const": type_}}
    required = []
    if stream == streams.ACCOUNT_COMMANDS:
        required.append("authorization")
    if stream == streams.ACCOUNT_QUERIES:
        required += ["authorization", "replyto"]
    if stream == streams.ACCOUNT_LIFECYCLE:
        extra["dataschema"] = {"const": lifecycle.dataschema(type_)}
    part: dict[str, Any] = {"type": "object", "properties": extra}
    if required:
        part["required"] = required
    return {"allOf": [{"$ref": REF.format(model="CloudEventAttributes")}, part]}


def _attributes() -> dict[str, Any]:
    schema = CloudEvent.model_json_schema(mode="serialization")
    schema["properties"].pop("data")
    schema["required"] = [r for r in schema["required"] if r != "data"]
    schema["title"] = "CloudEventAttributes"
    schema["description"] = (
        "CloudEvents 1.0 in binary mode: one Redis stream field per attribute; the payload is"
        " the JSON object in field `data`. Money is a decimal string."
    )
    return schema


def build() -> dict[str, Any]:
    catalogue = _catalogue()
    models = sorted({m for types in catalogue.values() for m in types.values() if m}, key=str)
    refs, defs = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    schemas = {"CloudEventAttributes": _attributes(), **defs["$defs"]}
    schemas["AnyPayload"] = {
        "type": "object",
        "description": "Not yet modelled in shared.contracts.",
    }
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for stream, types in catalogue.items():
        cid, actions, description = CHANNELS[stream]
        for type_, model in types.items():
            payload = (
                refs[(model, "serialization")]
                if model
                else {"$ref": REF.format(model="AnyPayload")}
            )
            messages[type_] = {
                "name": type_,
                "title": type_,
                "summary": ((model.__doc__ or "").strip().splitlines() or [""])[0] if model else "",
                "contentType": "application/json",
                "headers": _headers(type_, stream),
                "payload": payload,
                "correlationId": {"location": "$message.header#/correlationid"},
            }
        channels[cid] = {
            "address": stream,
            "title": stream,
            "description": description,
            "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in types},
        }
        for action in actions:
            operations[f"{action}{cid[0].upper()}{cid[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [{"$ref": f"#/channels/{cid}/messages/{t}"} for t in types],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ALL-USE account platform: public streams",
            "version": f"{lifecycle.VERSION}.0.0",
            "description": "Redis Streams, CloudEvents 1.0 binary mode. A deployment may put a"
            f" prefix in front of every stream name; `<stream>{streams.DLQ_SUFFIX}` holds entries"
            " a service gave up on, with `dlq_reason`.",
        },
        "defaultContentType": "application/json",
        "servers": {"redis": {"host": "localhost:6379", "protocol": "redis"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
