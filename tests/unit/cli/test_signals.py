"""A signal stops a worker, and never waits longer than its grace period: a shutdown that overruns
is cancelled, and a task that ignores the cancellation ends the process (exit status 70)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

from shadowlane.cli.signals import EXIT_AFTER_CANCEL_S, EXIT_STATUS, run_until_signal


async def test_a_signal_calls_stop_and_a_clean_worker_ends_on_its_own() -> None:
    stopped = asyncio.Event()

    async def run() -> None:
        await stopped.wait()

    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run_until_signal(run, stopped.set, grace_s=5.0), 2.0)
    assert stopped.is_set()


async def test_a_shutdown_past_its_grace_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def run() -> None:
        try:
            await asyncio.sleep(3600)  # ignores stop()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    started = time.monotonic()
    await asyncio.wait_for(run_until_signal(run, lambda: None, grace_s=0.3), 3.0)
    assert cancelled.is_set()
    assert 0.3 <= time.monotonic() - started < 2.0


async def test_a_second_signal_cancels_at_once() -> None:
    async def run() -> None:
        await asyncio.sleep(3600)

    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
    loop.call_later(0.10, os.kill, os.getpid(), signal.SIGINT)
    started = time.monotonic()
    await asyncio.wait_for(run_until_signal(run, lambda: None, grace_s=60.0), 3.0)
    assert time.monotonic() - started < 2.0


def test_a_worker_that_ignores_cancellation_ends_the_process() -> None:
    script = textwrap.dedent(
        """
        import asyncio, os, signal
        from shadowlane.cli.signals import run_until_signal

        async def run():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass  # a close that hangs: swallows the cancellation

        async def main():
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
            await run_until_signal(run, lambda: None, grace_s=0.2)

        asyncio.run(main())
        """
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert done.returncode == EXIT_STATUS, done.stderr
    assert "exiting" in done.stderr
    assert elapsed < 0.2 + EXIT_AFTER_CANCEL_S + 5.0
