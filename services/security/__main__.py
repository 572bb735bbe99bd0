"""python -m services.security: run the security service with settings from the environment.

`python -m services.security admin ...` is its administration instead (`alluse security`).
"""

import asyncio
import contextlib
import signal
import sys

from services.security.app import APPEND_ONLY, MIGRATIONS, SCHEMA, serve
from services.security.crypto import KeyConfigError
from services.security.settings import SecuritySettings
from shared.infra import logs
from shared.infra.db import migrate_and_exit


async def main() -> None:
    settings = SecuritySettings()
    logs.setup(settings.log_level, "security")
    task = asyncio.create_task(serve(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    migrate_and_exit(sys.argv, SCHEMA, MIGRATIONS, APPEND_ONLY)  # `... security migrate`
    if sys.argv[1:2] == ["admin"]:
        from services.security.console_parser import main as admin

        sys.exit(admin(sys.argv[2:]))
    try:
        asyncio.run(main())
    except KeyConfigError as exc:
        sys.exit(f"security service refuses to start: {exc}")
