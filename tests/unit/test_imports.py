"""The house's walls: each top-level package imports only shared/ and itself, and shared/ no
service. A service talks to another through shared contracts or a process, never its modules."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def crossings(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "services").rglob("*.py")) + sorted((root / "shared").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        own = ".".join(parts[:2]) if parts[0] == "services" else "shared"
        for name in imported(path):
            top = name.split(".")
            if top[0] not in ("services", "shared") or name == "services":
                continue
            target = ".".join(top[:2]) if top[0] == "services" else "shared"
            if target not in (own, "shared"):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def test_each_top_level_package_imports_only_shared_and_itself() -> None:
    assert crossings() == []


def test_the_walk_sees_a_crossing(tmp_path: Path) -> None:
    """The wall's check on a tree of its own: both kinds of crossing found, allowed imports not."""
    files = {
        "services/account/handlers/accounts.py": "from services.account.domain import Account\n"
        "import shared.infra.runtime.db\n",  # its own service and shared/: allowed
        "services/console/views.py": "from services.account.domain import Account\n",
        "shared/tooling/client.py": "import services.cli.client\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert sorted(crossings(tmp_path)) == [  # a file's imports come as a set: any order
        "services/console/views.py imports services.account.domain",
        "services/console/views.py imports services.account.domain.Account",
        "shared/tooling/client.py imports services.cli.client",
    ]


SERVICES = ("services/account", "services/security", "services/integration", "shared/infra")


def test_services_and_their_infrastructure_never_import_client_side_tooling() -> None:
    """shared/tooling (launching, embedded servers, progress bars, the operators' stream client)
    serves tools and tests; a service process needs none of it."""
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in SERVICES
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in imported(path)
        if name == "shared.tooling" or name.startswith("shared.tooling.")
    ]
    assert found == []
