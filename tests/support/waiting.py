"""The one way tests wait: poll a probe until its value is what the test needs, never a fixed sleep.

A wait proves that something happened. It never proves that something did not: a test checking
an absence first waits on a barrier showing the entry was processed (its inbox row, or a later
entry's outcome), then looks once (see tests/support/streams.py).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
_ANY: Any = object()  # `equals` not given
PAUSE = 0.02  # between probes: short, so a wait ends soon after its condition holds


def _check(value: T, done: Callable[[T], object] | None, equals: Any) -> bool:
    if equals is not _ANY:
        return bool(value == equals)
    return bool(done(value) if done is not None else value)


def _failure(value: object, equals: Any, what: str, timeout: float) -> AssertionError:
    wanted = f", expected {equals!r}" if equals is not _ANY else ""
    return AssertionError(f"{what or 'condition'}: still {value!r}{wanted} after {timeout}s")


async def until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], object] | None = None,
    *,
    equals: Any = _ANY,
    timeout: float = 10,
    what: str = "",
) -> T:
    """Await `probe` until its value equals `equals`, satisfies `done`, or (given neither) is
    truthy; returns that value. Fails with the last value seen after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not _check(value := await probe(), done, equals):
        if time.monotonic() > deadline:
            raise _failure(value, equals, what, timeout)
        await asyncio.sleep(PAUSE)
    return value


def until_sync(
    probe: Callable[[], T],
    done: Callable[[T], object] | None = None,
    *,
    equals: Any = _ANY,
    timeout: float = 10,
    what: str = "",
) -> T:
    """`until` for tests that drive processes and servers from synchronous code."""
    deadline = time.monotonic() + timeout
    while not _check(value := probe(), done, equals):
        if time.monotonic() > deadline:
            raise _failure(value, equals, what, timeout)
        time.sleep(PAUSE)
    return value
