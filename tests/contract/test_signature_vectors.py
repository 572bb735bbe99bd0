"""The signature test vectors (tests/vectors/signatures.json, docs/signatures.md), checked twice:
by the platform's own verifier here, and by an independent Node implementation that knows only
the documentation. Either failing fails `make test`; a machine without Node fails too."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import trust
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of
from tests.vectors import generate

VECTORS = Path(generate.__file__).with_name("signatures.json")
VERIFY = VECTORS.with_name("verify.mjs")


def vectors() -> dict[str, Any]:
    return dict(json.loads(VECTORS.read_text(encoding="utf-8")))


def keyset(jwks: dict[str, Any]) -> KeySet:
    async def fetch() -> dict[str, Any]:
        return jwks

    return KeySet(fetch)


def test_the_committed_vectors_are_what_the_signer_makes_today() -> None:
    # Reproducible: the same seed, signed_at and entries give the same bytes; a change to the
    # scheme shows here first (regenerate with `make vectors` and update docs/signatures.md).
    assert generate.main(["--check"]) == 0


def test_each_intermediate_value_is_the_platforms() -> None:
    v = vectors()
    for g in v["groups"]:
        leaves = [trust.leaf(fields) for fields in g["entries"]]
        depth, root, paths = trust.tree(leaves)
        assert [trust.signed_bytes(f).decode() for f in g["entries"]] == g["canonical"]
        assert [h.hex() for h in leaves] == g["leaves"]
        assert [[h.hex() for h in p] for p in paths] == g["paths"]
        assert (depth, root.hex()) == (g["depth"], g["root"])
        assert trust.signed_root(depth, root).hex() == g["message"]
    assert {g["depth"] for g in v["groups"]} == {0, 2}  # a lone entry and a padded tree


async def test_the_platforms_verifier_accepts_each_entry_and_refuses_each_tampered_copy() -> None:
    v = vectors()
    keys = keyset(v["jwks"])
    for g in v["groups"]:
        for fields in g["entries"]:
            assert await signer_of(keys, fields) == v["signer"] == trust.INTEGRATION
    for case in v["tampered"]:
        with pytest.raises(Rejected):
            await signer_of(keyset(v["jwks"]), case["fields"])


NODE = Path("/usr/bin/node")  # where Debian's nodejs puts it, should PATH not name it


def node() -> str:
    found = shutil.which("node") or (str(NODE) if NODE.exists() else None)
    if found is None:
        pytest.fail(
            "Node.js is needed to check the signature vectors independently"
            " (tests/vectors/verify.mjs): install `node` (18 or later) and run the tests again"
        )
    return found


def run_node(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), str(VERIFY), str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_an_independent_node_implementation_verifies_the_vectors() -> None:
    done = run_node(VECTORS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "entries verified" in done.stdout


def test_the_node_implementation_notices_a_wrong_vector(tmp_path: Path) -> None:
    # Not vacuous: one byte of one entry changed and the Node check fails.
    v = vectors()
    v["groups"][1]["entries"][0]["data"] = v["groups"][1]["entries"][0]["data"].replace("87", "88")
    bad = tmp_path / "signatures.json"
    bad.write_text(json.dumps(v), encoding="utf-8")
    done = run_node(bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "group 1 entry 0" in done.stderr


def test_without_node_the_check_fails_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine without Node must not pass by skipping the independent check.
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(sys.modules[__name__], "NODE", Path("/nonexistent/node"))
    with pytest.raises(pytest.fail.Exception, match=r"Node\.js is needed"):
        node()
