"""Entry point of the `alluse` command."""

import argparse
import asyncio
import importlib
import os
import sys

# Each module has `register(subparsers)`; its subcommands set `func`, an async (args) -> int.
AREAS = (
    "services.cli.account",
    "services.cli.reports",
    "services.cli.security",
    "services.cli.integration",
    "services.cli.growth",
    "services.cli.decade",
    "services.cli.positions",
    "services.cli.dlq",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alluse",
        description="Operate the ALL-USE account platform over its Redis streams.",
        epilog="Connection settings come from REDIS_URL, DATABASE_URL and ALLUSE_* variables.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts, not tables")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = asyncio.run(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `alluse history X | head` closed our stdout: stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
