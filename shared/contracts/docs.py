"""Write (or `--check`) the generated contract documents: the AsyncAPI 3.0 JSON, its
self-contained HTML page, and one JSON Schema of `data` per public type (lifecycle types under
schemas/lifecycle/, the others under schemas/<kind>/). No network needed."""

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.contracts import asyncapi, lifecycle, streams

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "deploy" / "docs"
SCHEMAS = Path(__file__).parent / "schemas" / "lifecycle"
# The client library ships its own copy of these kinds' schemas (it never imports the platform).
CLIENT_SCHEMAS = ROOT / "shared" / "client" / "src" / "alluse_client" / "schemas"
CLIENT_KINDS = ("lifecycle", "upstream", "outcomes")
ALL_SCHEMAS = SCHEMAS.parent
# The folder of each channel's schemas other than the lifecycle's (same URI scheme, its kind).
KINDS = {
    streams.WS2_EVENTS: "upstream",
    streams.WS4_EVENTS: "upstream",
    streams.ACCOUNT_COMMANDS: "commands",
    streams.ACCOUNT_QUERIES: "queries",
    streams.AUDIT: "audit",
    asyncapi.REPLIES: "replies",
    asyncapi.OUTCOMES: "outcomes",
}
STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;
color:#1d2330}h1{font-size:1.6rem}h2{border-bottom:2px solid #dde;padding-top:1rem}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f5f6fa;padding:.6rem;
overflow:auto}table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border:1px solid
#dde;padding:.2rem .5rem;text-align:left;vertical-align:top}th{background:#f0f1f6}.op{display:
inline-block;border-radius:3px;padding:0 .4rem;color:#fff;background:#3a6}.receive{background:
#36a}details{margin:.3rem 0 1rem}nav a{margin-right:.8rem}"""


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        for part in node["$ref"].lstrip("#/").split("/"):
            doc = doc[part]
        node = doc
    return node


def _kind(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_kind(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    return "|".join(kind) if isinstance(kind, list) else str(kind)


def _fields(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    schema = _resolve(doc, schema)
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(_kind(prop))}</td>"
        f"<td>{'yes' if name in required else ''}</td>"
        f"<td>{html.escape(prop.get('description', '') or prop.get('pattern', ''))}</td></tr>"
        for name, prop in schema.get("properties", {}).items()
    )
    head = "<tr><th>field</th><th>type</th><th>required</th><th>notes</th></tr>"
    return f"<table>{head}{rows}</table>" if rows else "<p>any JSON object</p>"


def render(doc: dict[str, Any]) -> str:
    info, parts = doc["info"], []
    nav = " ".join(
        f'<a href="#{c}">{html.escape(ch["address"])}</a>' for c, ch in doc["channels"].items()
    )
    for cid, channel in doc["channels"].items():
        ops = [
            o["action"]
            for o in doc["operations"].values()
            if o["channel"]["$ref"].endswith(f"/{cid}")
        ]
        badges = "".join(f'<span class="op {a}">{a}</span> ' for a in ops)
        signer = channel.get("x-signed-by")
        signed = (
            f"<p>Signed by: <b>{html.escape(signer)}</b> (docs/signatures.md)</p>" if signer else ""
        )
        parts.append(
            f'<h2 id="{cid}"><code>{html.escape(channel["address"])}</code> {badges}</h2>'
            f"<p>{html.escape(channel.get('description', ''))}</p>{signed}"
        )
        for ref in channel["messages"].values():
            msg = _resolve(doc, ref)
            schema = json.dumps(_resolve(doc, msg["payload"]), indent=2)
            parts.append(
                f"<h3><code>{html.escape(msg['name'])}</code></h3><p>{html.escape(msg['summary'])}</p>"
                f"{_fields(doc, msg['payload'])}<details><summary>JSON Schema of <code>data</code>"
                f"</summary><pre>{html.escape(schema)}</pre></details>"
            )
    attrs = _fields(doc, {"$ref": "#/components/schemas/CloudEventAttributes"})
    attrs += "<h2>Fields of every entry a service writes</h2>" + _fields(
        doc, {"$ref": "#/components/schemas/ServiceSignature"}
    )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(info['title'])}</title>"
        f"<style>{STYLE}</style><h1>{html.escape(info['title'])} <small>v{info['version']}, AsyncAPI"
        f" {doc['asyncapi']}</small></h1><p>{html.escape(info['description'])}</p><nav>{nav}</nav>"
        f"<h2>Stream fields of every entry</h2>{attrs}{''.join(parts)}</html>\n"
    )


def outputs() -> dict[Path, str]:
    doc = asyncapi.build()
    files = {
        DOCS / "asyncapi.json": json.dumps(doc, indent=2) + "\n",
        DOCS / "asyncapi.html": render(doc),
    }
    for event_type in lifecycle.LIFECYCLE_TYPES:
        schema = lifecycle.json_schema(event_type)
        files[SCHEMAS / f"{event_type}.json"] = json.dumps(schema, indent=2) + "\n"
    for stream, types in asyncapi._catalogue().items():
        kind = KINDS.get(stream)
        for message_type, model in types.items():
            if kind is not None and model is not None:
                schema = json_schema(kind, message_type, model)
                files[ALL_SCHEMAS / kind / f"{message_type}.json"] = (
                    json.dumps(schema, indent=2) + "\n"
                )
    for path, text in list(files.items()):
        if path.parent.parent == ALL_SCHEMAS and path.parent.name in CLIENT_KINDS:
            files[CLIENT_SCHEMAS / path.parent.name / path.name] = text
    return files


def schema_uri(kind: str, message_type: str) -> str:
    return (
        f"{lifecycle.SCHEMA_BASE.rsplit('/', 1)[0]}/{kind}/{message_type}/{lifecycle.VERSION}.json"
    )


def json_schema(kind: str, message_type: str, model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of one type's `data`, as the lifecycle types have theirs."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(kind, message_type),
        **model.model_json_schema(mode="serialization"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale, run `make docs`: " + ", ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
