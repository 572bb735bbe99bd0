"""python -m services.account"""

import asyncio
import contextlib
import sys

from services.account.app import MIGRATIONS, SCHEMA, main
from shared.infra.db import migrate_and_exit

migrate_and_exit(sys.argv, SCHEMA, MIGRATIONS)  # `python -m services.account migrate`

with contextlib.suppress(KeyboardInterrupt):
    asyncio.run(main())
