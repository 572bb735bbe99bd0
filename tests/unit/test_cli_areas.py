"""The `alluse` parser: an area that is not installed leaves its commands unknown; an area that
is there but fails to import (a missing module inside it) stops the command with that error."""

import argparse
import sys
from pathlib import Path

import pytest

from services.cli import __main__ as cli


def subcommands() -> set[str]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_a_missing_area_only_leaves_its_commands_unknown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "fork" in subcommands()  # the growth area is installed: `fork` is its command
    monkeypatch.setattr(cli, "AREAS", ("services.cli.no_such_area", "services.cli.dlq"))
    assert "dlq" in subcommands() and "fork" not in subcommands()
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["fork", "x"])
    # A usage error because `fork` is unknown (its own arguments would be a different message).
    assert exc.value.code == 2
    assert "invalid choice: 'fork'" in capsys.readouterr().err


def test_a_broken_import_inside_an_area_surfaces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "broken_area.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "AREAS", ("broken_area",))
    with pytest.raises(ModuleNotFoundError) as caught:
        cli.build_parser()
    assert caught.value.name == "no_such_module_anywhere"
    sys.modules.pop("broken_area", None)
