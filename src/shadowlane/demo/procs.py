"""Runs ``shadowlane`` worker commands as child processes, configured through the environment.

The demo runs its shadow worker and comparator this way (as a deployment would: separate
processes, one consumer group each), and the integration tests use it to kill and restart them.
Each command prints JSON event lines on stdout: ``assigned`` once it owns partitions and
``stopped`` with its counters when it shuts down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson

from shadowlane.settings import Settings, settings_env


class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *args: str,
        log_path: Path | None = None,
        secrets: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """Start ``shadowlane ARGS``; its stderr goes to ``log_path`` (discarded when None).
        ``secrets``: environment variables for what ``settings_env`` leaves out (signing keys)."""
        env = {**os.environ, **settings_env(settings), **(secrets or {}), "PYTHONUNBUFFERED": "1"}
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path or os.devnull, "ab") as stderr:  # noqa: ASYNC230 (local file, once per process)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shadowlane.cli.main",
                *args,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        return cls(proc)

    async def wait_event(self, name: str, timeout_s: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker exited with {await self.proc.wait()} before {name!r}")
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    self.events.append(event)
                    if event.get("event") == name:
                        return event

    async def terminate(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """SIGTERM, then the worker's final stats line."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        event = await self.wait_event("stopped", timeout_s)
        await self.proc.wait()
        return event

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
