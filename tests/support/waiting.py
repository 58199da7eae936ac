"""Waiting on the event loop for a condition the code under test makes true in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(predicate: Callable[[], object], timeout_s: float = 2.0, step_s: float = 0.005) -> bool:
    """Poll ``predicate()`` on the event loop until it is truthy or the timeout passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return bool(predicate())
