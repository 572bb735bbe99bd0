"""`alluse security ...`: runs the security service's own administration as a process.

The security service owns its schema, keys and audit chain; the CLI only hands the arguments
to `python -m services.security admin` (which has the --help of every action) and renders the
JSON it answers with. The process inherits the environment (DATABASE_URL, REDIS_URL,
ALLUSE_ENCRYPTION_KEYS, ...) and the terminal, so password prompts work as before.
"""

import argparse
import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from typing import Any

from services.cli.output import UNAVAILABLE, emit, fail

ADMIN = [sys.executable, "-m", "services.security", "admin"]


async def forward(args: argparse.Namespace) -> int:
    try:
        proc = await asyncio.create_subprocess_exec(*ADMIN, *args.rest, stdout=PIPE)
        out = (await proc.communicate())[0].decode()
    except OSError as exc:
        return fail(f"cannot run the security administration: {exc}", UNAVAILABLE)
    code = proc.returncode or 0
    try:
        result = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:  # --help, usage and gen-key speak text
        print(out, end="")
        return code
    if result is not None:
        emit(args, result)
    return code


def register(subparsers: Any) -> None:
    # Everything after `security` belongs to the security service's parser, even --help.
    p = subparsers.add_parser(
        "security",
        help="users, clients, keys and the audit trail (`alluse security --help`)",
        add_help=False,
        prefix_chars="\0",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=forward)
