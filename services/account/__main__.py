"""python -m services.account"""

import asyncio
import contextlib

from services.account.app import main

with contextlib.suppress(KeyboardInterrupt):
    asyncio.run(main())
