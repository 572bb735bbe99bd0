"""Wait on a condition, never on a fixed sleep."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(probe: Callable[[], Awaitable[Any]], *, equals: Any, timeout: float = 10) -> Any:
    """Poll `probe` until it returns `equals`; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while (value := await probe()) != equals:
        assert time.monotonic() < deadline, f"still {value!r}, expected {equals!r}"
        await asyncio.sleep(0.02)
    return value
