"""`python -m services.integration`: run the integration service until SIGTERM or Ctrl-C."""

import contextlib
import sys

import uvloop

from services.integration.app import MIGRATIONS, SCHEMA, main
from shared.infra.runtime.db import migrate_and_exit

migrate_and_exit(sys.argv, SCHEMA, MIGRATIONS)  # `python -m services.integration migrate`

with contextlib.suppress(KeyboardInterrupt):
    uvloop.run(main())  # libuv's loop: less CPU per socket event than asyncio's
