"""Runs a long-lived worker until SIGINT / SIGTERM, then lets it shut down cleanly, but never for
longer than its grace period.

The first signal asks the worker to stop (it drains what is in flight for up to its drain
timeout, commits and closes). Should that shutdown still be running ``grace_s`` after the signal
(a broker that does not answer a commit, say), or on a second signal, the worker's task is
cancelled: what it had not committed is read again by the partition's next owner. A task that
has not ended ``EXIT_AFTER_CANCEL_S`` after that (a client's close waiting on the network) ends
the process (exit status 70), as an orchestrator's SIGKILL would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_AFTER_CANCEL_S = 1.0
EXIT_STATUS = 70  # EX_SOFTWARE


def _exit_now() -> None:
    log.error("worker did not end %.0fs after being cancelled: exiting", EXIT_AFTER_CANCEL_S)
    logging.shutdown()
    os._exit(EXIT_STATUS)


async def run_until_signal(
    run: Callable[[], Awaitable[None]], stop: Callable[[], None], *, grace_s: float | None = None
) -> None:
    """Await ``run()``; a signal calls ``stop()``, and cancels ``run()`` when it is still going
    ``grace_s`` later (None: never) or when a second signal comes."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run())
    watchdogs: list[asyncio.TimerHandle] = []
    signalled = False

    def cancel(why: str) -> None:
        if not task.done():
            log.warning("shutdown %s: cancelling the worker", why)
            task.cancel()
            watchdogs.append(loop.call_later(EXIT_AFTER_CANCEL_S, _exit_now))

    def on_signal() -> None:
        nonlocal signalled
        if signalled:
            cancel("interrupted again")
            return
        signalled = True
        stop()
        if grace_s is not None:
            watchdogs.append(loop.call_later(grace_s, cancel, f"still running after {grace_s:.0f}s"))

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this coroutine itself is being cancelled
    finally:
        for handle in watchdogs:
            handle.cancel()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
