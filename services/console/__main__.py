"""python -m services.console"""

import contextlib

from services.console.app import main

with contextlib.suppress(KeyboardInterrupt):
    main()
