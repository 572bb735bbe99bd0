"""The guides' Python compiles and imports only what the client library has, so a reader who
copies a snippet gets no NameError from a renamed class."""

import ast
import importlib
import re
from pathlib import Path

import pytest

GUIDES = Path(__file__).resolve().parents[2] / "docs" / "guides"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("guide", ["engines.md", "consumers.md"])
def test_every_python_block_compiles_and_its_library_imports_exist(guide: str) -> None:
    blocks = BLOCK.findall((GUIDES / guide).read_text())
    assert blocks
    for block in blocks:
        try:
            tree = ast.parse(block)
        except SyntaxError:  # a snippet that awaits at top level runs inside the reader's coroutine
            tree = ast.parse("async def _():\n" + "".join(f"    {x}\n" for x in block.splitlines()))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alluse_client"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{guide}: {node.module}.{alias.name}"
