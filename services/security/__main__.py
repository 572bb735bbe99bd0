"""python -m services.security: run the security service with settings from the environment.

`python -m services.security admin ...` is its administration instead (`alluse security`).
"""

import contextlib
import sys

import uvloop

from services.security.app import APPEND_ONLY, MIGRATIONS, SCHEMA, main
from services.security.crypto import KeyConfigError
from shared.infra.runtime.db import migrate_and_exit

if __name__ == "__main__":
    migrate_and_exit(sys.argv, SCHEMA, MIGRATIONS, APPEND_ONLY)  # `... security migrate`
    if sys.argv[1:2] == ["admin"]:
        from services.security.console_parser import main as admin

        sys.exit(admin(sys.argv[2:]))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(main())  # libuv's loop: less CPU per socket event than asyncio's
    except KeyConfigError as exc:
        sys.exit(f"security service refuses to start: {exc}")
