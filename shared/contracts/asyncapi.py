"""The AsyncAPI 3.0 document of every public stream, generated from the contract models.

`python -m shared.contracts.docs` (`make docs`) writes it to deploy/docs/ with its HTML page.
"""

import importlib
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contracts import answers, lifecycle, streams, trust, upstream
from shared.contracts.envelope import CloudEvent
from shared.contracts.messages import AUDIT_BATCH, AUDIT_RECORDED

REF = "#/components/schemas/{model}"
VERSION = "1.2.0"  # the wire contract's version (docs/contract.md, "Versioning")
COMMANDS = {
    "alluse.system.initialize": "InitializeSystem",
    "alluse.account.create": "CreateAccount",
    "alluse.account.update": "UpdateAccount",
    "alluse.account.deposit": "MoveMoney",
    "alluse.account.withdraw": "MoveMoney",
    "alluse.account.set_status": "SetStatus",
    "alluse.account.close": "CloseAccount",
    "alluse.account.fork": "ForkAccount",
    "alluse.account.merge": "MergePortfolio",
    "alluse.account.reinvest": "Reinvest",
    "alluse.config.update": "UpdateConfig",
    "alluse.account.reverse": "ReverseTransaction",
}
QUERIES = {
    "alluse.query.account": "AccountRef",
    "alluse.query.accounts": "ListAccounts",
    "alluse.query.history": "History",
    "alluse.query.summary": "Empty",
    "alluse.query.integrity": "Empty",
    "alluse.query.metrics": "AccountRef",
    "alluse.query.tree": "PortfolioRef",
    "alluse.query.positions": "AccountRef",
    "alluse.query.as_of": "AsOf",
}
# Query answers and lane outcomes: logical names of channels that are many streams each.
REPLIES = "alluse.reply.{replyto}"
OUTCOMES = "alluse.outcomes.{lane}"


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
        streams.AUDIT: {AUDIT_RECORDED: answers.AuditRecorded, AUDIT_BATCH: answers.AuditBatch},
        REPLIES: dict(answers.REPLY_TYPES),
        OUTCOMES: dict(answers.OUTCOME_TYPES),
    }


LANES = (
    " Each client writes into its own lane `{<stream>}.lane.<L>` (braces included: a Redis"
    " Cluster hash tag) and reads the outcome of each entry on `alluse.outcomes.<L>`."
)
CHANNELS = {  # stream -> (channel id, operation actions, description)
    streams.WS2_EVENTS: (
        "ws2ProtocolEvents",
        ("receive",),
        "Written by the WS2 protocol engine (role trading_engine), with a bearer token." + LANES,
    ),
    streams.WS4_EVENTS: (
        "ws4MarketEvents",
        ("receive",),
        "Written by the WS4 market integration (role trading_engine), with a bearer token." + LANES,
    ),
    streams.ACCOUNT_COMMANDS: (
        "accountCommands",
        ("receive",),
        "Operators' tools and trading engines; each entry needs `authorization: Bearer <JWT>`."
        " Every command gets exactly one outcome on the lifecycle stream." + LANES,
    ),
    streams.ACCOUNT_QUERIES: (
        "accountQueries",
        ("receive",),
        "Anyone with a token; the reply is XADDed on `replyto`." + LANES,
    ),
    streams.ACCOUNT_LIFECYCLE: (
        "accountLifecycle",
        ("send",),
        "Written by the integration service. Stable `id` per event (deduplicate on source + id),"
        " commit order per account, `dataschema` names the versioned JSON Schema of `data`."
        " Every entry is signed with the integration service's key, also those whose `source`"
        " is `alluse/account-service` (its events, republished).",
    ),
    streams.AUDIT: (
        "audit",
        ("send", "receive"),
        "Every service writes; the security service reads. Each entry is signed by the"
        " service its `source` names: one record (`alluse.audit.recorded`), or the records of"
        " one batch (`alluse.audit.batch`, new in contract 1.2), each chained on its own.",
    ),
    REPLIES: (
        "queryReplies",
        ("send",),
        "The answer to a query, XADDed on the `replyto` it named (under the caller's own"
        " namespace), `causationid` = the query's id; the stream expires an hour after its"
        " first answer.",
    ),
    OUTCOMES: (
        "laneOutcomes",
        ("send",),
        "One outcome per entry written into lane `lane`, `causationid` = the entry's id, signed"
        " by the service that decided it (new in contract 1.1).",
    ),
}
# Who signs the entries of each service-written channel (JWK member `service`; docs/signatures.md).
SIGNERS = {
    streams.ACCOUNT_LIFECYCLE: trust.INTEGRATION,
    streams.AUDIT: "the service named by the record's `source`",
    REPLIES: trust.ACCOUNT,
    OUTCOMES: "account (commands, queries, fills, assignments, expirations)"
    " or integration (quotes, verdicts, week classifications, valuations, its own refusals)",
}
PARAMETERS = {
    REPLIES: {"replyto": {"description": "the rest of the `replyto` the query named"}},
    OUTCOMES: {"lane": {"description": "the lane: `[a-z0-9][a-z0-9_-]{0,62}`"}},
}
CLIENT_WRITTEN = (
    streams.WS2_EVENTS,
    streams.WS4_EVENTS,
    streams.ACCOUNT_COMMANDS,
    streams.ACCOUNT_QUERIES,
)


def _headers(type_: str, stream: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"type": {"const": type_}}
    required = []
    parts = [{"$ref": REF.format(model="CloudEventAttributes")}]
    if stream in CLIENT_WRITTEN:
        required.append("authorization")
    if stream == streams.ACCOUNT_QUERIES:
        required.append("replyto")
    if stream == streams.ACCOUNT_LIFECYCLE:
        extra["dataschema"] = {"const": lifecycle.dataschema(type_)}
    if stream in SIGNERS:
        parts.append({"$ref": REF.format(model="ServiceSignature")})
        required += [trust.SIGNATURE, trust.SIGNED_AT]
    part: dict[str, Any] = {"type": "object", "properties": extra}
    if required:
        part["required"] = required
    return {"allOf": [*parts, part]}


def _signature() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "ServiceSignature",
        "description": "Fields of every entry a service writes (docs/signatures.md): an Ed25519"
        " signature over the entry's other fields, made with a key the security service"
        " publishes in its JWKS with the member `service` naming the signer.",
        "properties": {
            trust.SIGNATURE: {
                "type": "string",
                "pattern": r"^[^.]+\.[A-Za-z0-9_-]+\.[0-9]+\.[A-Za-z0-9_-]*$",
                "description": "<kid>.<base64url Ed25519 signature>.<index in the signed"
                " group>.<base64url of the sibling hashes>; not itself signed",
            },
            trust.SIGNED_AT: {
                "type": "string",
                "pattern": "^[0-9]{1,15}$",
                "description": "when the service signed, Unix milliseconds; signed",
            },
        },
    }


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
    schemas = {
        "CloudEventAttributes": _attributes(),
        "ServiceSignature": _signature(),
        **defs["$defs"],
    }
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
        if stream in PARAMETERS:
            channels[cid]["parameters"] = PARAMETERS[stream]
        if stream in SIGNERS:
            channels[cid]["x-signed-by"] = SIGNERS[stream]
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
            "version": VERSION,
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
