"""Every type on the wire is in the contract (docs/contract.md), the AsyncAPI document and the
JSON Schemas; every refusal code the code can write is in the contract.

"On the wire" is read from the code itself, two ways: the dispatch tables and contract models
(what the services accept and emit), and every string literal in services/ and shared/ that
looks like a message type, so a type emitted from a new place is caught too."""

import ast
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.account.handlers import router
from services.integration.handlers import FromUpstream
from shared.contracts import answers, asyncapi, docs, lifecycle, streams, trust, upstream
from shared.contracts.messages import AUDIT_RECORDED
from shared.contracts.streams import Streams
from shared.contracts.vocabulary import Refusal

ROOT = Path(__file__).parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
TYPE = re.compile(r"^(alluse|ws2|ws4)\.[a-z_]+(\.[a-z_]+)+$")
INTERNAL = {*upstream.EFFECT_TYPES.values(), trust.REVOKED}  # the services' own, listed apart
STREAM_NAMES = {v for k, v in vars(streams).items() if k.isupper() and isinstance(v, str)}
# Literals shaped like a type that are not one: who they are and why they look so.
NOT_TYPES = {
    "alluse.broker",  # the embedded broker's log name
    "alluse.env",  # the env file `make run` writes
    "alluse.lanes",  # the lane registry, a Redis set
}


def literals(folder: str) -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield str(path.relative_to(ROOT)), node.value


def tabled() -> set[str]:
    """What the services accept (dispatch tables) and emit (contract models)."""
    upstream_routes = FromUpstream(Streams()).routes()
    return {
        *router.COMMANDS,
        *router.QUERIES,
        *(t for table in upstream_routes.values() for t in table),
        *lifecycle.LIFECYCLE_TYPES,
        *answers.REPLY_TYPES,
        *answers.OUTCOME_TYPES,
        AUDIT_RECORDED,
    }


@functools.cache
def in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in ("services", "shared"):
        for where, text in literals(folder):
            if TYPE.match(text) and not text.endswith(streams.DLQ_SUFFIX):
                found.setdefault(text, where)
    return {
        t: w
        for t, w in found.items()
        if t not in STREAM_NAMES and t not in NOT_TYPES and t not in INTERNAL
    }


def documented() -> set[str]:
    """The types the contract specifies: each the first cell of a table row."""
    row = re.compile(r"^\| `((?:alluse|ws2|ws4)\.[a-z_.]*[a-z_])` \|", re.MULTILINE)
    return set(row.findall(CONTRACT.read_text()))


def mentioned() -> set[str]:
    return set(re.findall(r"`((?:alluse|ws2|ws4)\.[a-z_.]*[a-z_])`", CONTRACT.read_text()))


def wire_types() -> set[str]:
    return tabled() | set(in_code())


def schema_files() -> set[str]:
    return {p.stem for p in docs.ALL_SCHEMAS.rglob("*.json")}


@pytest.mark.parametrize("where", ["contract", "asyncapi", "schemas"])
def test_every_type_on_the_wire_is_specified(where: str) -> None:
    have = {
        "contract": documented,
        "asyncapi": lambda: set(asyncapi.build()["components"]["messages"]),
        "schemas": schema_files,
    }[where]()
    missing = {t: in_code().get(t, "a dispatch table") for t in wire_types() - have}
    assert missing == {}, f"types on the wire missing from the {where} (type: first seen in)"


def test_the_literal_scan_finds_what_the_tables_hold() -> None:
    # The scan is not vacuous: the types the tables name are literals in the code too.
    assert tabled() - set(in_code()) - set(answers.OUTCOME_TYPES) <= {AUDIT_RECORDED}
    assert len(wire_types()) >= 19 + 7 + 12 + 9


def test_the_contract_names_nothing_that_is_not_on_the_wire() -> None:
    listed = {t for t in mentioned() if not t.endswith(streams.DLQ_SUFFIX)}
    extra = listed - wire_types() - STREAM_NAMES - INTERNAL - NOT_TYPES
    assert extra == set(), "docs/contract.md names types the code neither accepts nor emits"


def test_internal_types_are_named_as_such() -> None:
    assert mentioned() >= INTERNAL


def test_every_refusal_code_is_in_the_contract() -> None:
    codes: dict[str, str] = {}
    for folder in ("services", "shared"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                code = None
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Rejected":
                    arg = node.args[0] if node.args else None
                    code = arg.value if isinstance(arg, ast.Constant) else None
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = {getattr(t, "id", None) for t in targets}
                    value = node.value
                    if "code" in names and isinstance(value, ast.Constant):
                        code = value.value
                if isinstance(code, str) and code != "rejected":  # the base class's placeholder
                    codes.setdefault(code, str(path.relative_to(ROOT)))
    codes.setdefault("idempotency_conflict", "shared/infra/stream/pipeline.py")
    for code in answers.DELIVERY_CODES:  # written by the consumers and routers, as constants
        codes.setdefault(code, "shared/contracts/answers.py")
    # The account service's rules name their codes from the contract's vocabulary.
    codes.update(dict.fromkeys(Refusal, "shared/contracts/vocabulary.py"))
    text = CONTRACT.read_text()
    missing = {c: w for c, w in codes.items() if f"`{c}`" not in text}
    assert missing == {}, "refusal codes missing from docs/contract.md (code: written in)"
    assert len(codes) >= 35


def test_the_contract_points_only_inside_the_repository() -> None:
    for page in ("contract.md", "rules.md", "signatures.md"):
        text = (ROOT / "docs" / page).read_text()
        assert "../shared" not in text and "CONTRACT.md" not in text
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (ROOT / "docs" / target).resolve().exists(), f"{page}: {target}"


def test_the_schemas_on_disk_are_what_make_docs_writes() -> None:
    written = {p for p in docs.outputs() if p.suffix == ".json" and docs.ALL_SCHEMAS in p.parents}
    on_disk = set(docs.ALL_SCHEMAS.rglob("*.json"))
    assert on_disk == written, "stale schema files: run `make docs` and remove the others"
    for path in written:
        assert json.loads(path.read_text())["$id"].endswith(f"/{path.stem}/1.json")
