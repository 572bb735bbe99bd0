"""What `--help` shows speaks to the people running the command: what it does and how, never
notes for maintainers such as how long a module is."""

import argparse
import importlib
import re

import pytest

from services.cli import __main__ as cli

MAINTAINERS_ONLY = re.compile(r"\b\d+ lines\b|lines on purpose|little over|longer than our", re.I)
# Modules whose docstring is the description of a command's --help (`make run`, `make soak`, ...).
DESCRIBED_BY_DOCSTRING = [
    "services.run",
    "services.bench.soak",
    "services.bench.trust",
    "services.bench.chaos",
    "services.cli.dlq",
    "shared.simulators.upstream",
    "shared.contracts.docs",
]


def helps(parser: argparse.ArgumentParser) -> list[str]:
    """The parser's help and that of every subcommand under it."""
    found = [parser.format_help()]
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in getattr(action, "choices", {}).values():
            found += helps(sub)
    return found


def test_alluse_help_texts_speak_to_users_only() -> None:
    texts = helps(cli.build_parser())
    assert len(texts) > 20  # every subcommand was reached
    assert [t for t in texts if MAINTAINERS_ONLY.search(t)] == []


@pytest.mark.parametrize("name", DESCRIBED_BY_DOCSTRING)
def test_a_command_s_description_speaks_to_users_only(name: str) -> None:
    doc = importlib.import_module(name).__doc__ or ""
    assert not MAINTAINERS_ONLY.search(doc), doc
