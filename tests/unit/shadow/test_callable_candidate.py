"""CallableCandidate: a sync function runs in a thread pool of ``threads`` workers, with the replay
marker set in its thread, so a blocking candidate never stalls the event loop; an async one runs
on the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from shadowlane.hook.context import in_replay
from shadowlane.shadow.candidates import CallableCandidate, CandidateError


async def test_blocking_calls_run_side_by_side_and_the_loop_keeps_ticking() -> None:
    threads: set[str] = set()

    def blocking(body: dict[str, Any]) -> str:
        threads.add(threading.current_thread().name)
        time.sleep(0.2)
        return f"ok {in_replay()}"

    candidate = CallableCandidate("sync", blocking, threads=4)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    replies = await asyncio.gather(*(candidate.chat({"messages": []}) for _ in range(4)))
    elapsed = time.monotonic() - started
    ticking.cancel()
    await candidate.aclose()
    assert [r.content for r in replies] == ["ok True"] * 4  # the replay marker crossed into the thread
    assert elapsed < 0.6  # 4 × 0.2 s side by side, not one after another
    assert ticks >= 10  # the loop ran meanwhile
    assert all(name.startswith("candidate-sync") for name in threads)
    assert threading.current_thread().name not in threads


async def test_the_pool_is_sized_by_threads() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def blocking(body: dict[str, Any]) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return "ok"

    candidate = CallableCandidate("sync", blocking, threads=2)
    await asyncio.gather(*(candidate.chat({}) for _ in range(6)))
    await candidate.aclose()
    assert peak == 2


async def test_an_async_function_runs_on_the_loop() -> None:
    loop_thread = threading.current_thread().name

    async def answer(body: dict[str, Any]) -> str:
        return threading.current_thread().name

    candidate = CallableCandidate("async", answer)
    assert (await candidate.chat({})).content == loop_thread


async def test_exceptions_from_the_thread_are_classified() -> None:
    def boom(body: dict[str, Any]) -> str:
        raise ValueError("nope")

    candidate = CallableCandidate("sync", boom)
    with pytest.raises(CandidateError, match="ValueError: nope") as caught:
        await candidate.chat({})
    assert caught.value.error_class == "exception"
    await candidate.aclose()
