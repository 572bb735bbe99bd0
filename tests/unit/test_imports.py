"""Each top-level package imports only `shared/` and itself: services meet over streams."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Crossings still being moved out (into `shared/` or a process boundary); none may be added.
KNOWN = {("bench", "account"), ("cli", "integration")}


def crossings() -> set[tuple[str, str, str]]:
    """(importing package, imported package, file) for every import of services.<other>."""
    found = set()
    for path in (ROOT / "services").rglob("*.py"):
        package = path.relative_to(ROOT / "services").parts[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != package:
                    found.add((package, parts[1], str(path.relative_to(ROOT))))
    return found


def test_no_package_imports_another_packages_internals() -> None:
    unexpected = sorted(c for c in crossings() if c[:2] not in KNOWN)
    assert unexpected == []


def test_the_cli_administers_security_through_the_service_entry_point() -> None:
    assert not [c for c in crossings() if c[:2] == ("cli", "security")]
