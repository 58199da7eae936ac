"""The shadow worker's kill switch: pausing replay while a signed kill switch is engaged.

Kill switch: ``halt`` (e.g. ``lambda: watcher.killed(flag)``, see
:mod:`shadowlane.rollout.control_plane`) is checked on every loop turn (a turn waits ≤ 0.2 s). While it
says True the worker pauses every assigned partition (gauge ``paused_by_kill``) and records already
fetched wait before their candidate call; replays already calling the candidate finish. When it
says False again the partitions resume where they stopped: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)

HOLD_POLL_S = 0.1


class KillSwitchHold:
    """Mixed into :class:`~shadowlane.shadow.worker.ShadowWorker`."""

    halt: Callable[[], bool] | None
    paused_by_kill: bool
    group_id: str
    stats: Any
    _stop: asyncio.Event

    async def _poll(self, consumer: AIOKafkaConsumer, max_records: int, timeout_ms: int) -> None:
        raise NotImplementedError

    def _halted(self) -> bool:
        return self.halt is not None and self.halt()

    async def _hold(self, consumer: AIOKafkaConsumer) -> None:
        """Kill switch engaged: keep every assigned partition paused, and keep polling (nothing
        comes back) so the group does not evict this member."""
        if not self.paused_by_kill:
            self.paused_by_kill = True
            self.stats.kill_pauses += 1
            log.warning("%s: kill switch engaged, replay paused", self.group_id)
        consumer.pause(*consumer.assignment())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), HOLD_POLL_S)
        consumer.pause(*consumer.assignment())
        await self._poll(consumer, 1, 0)

    async def _held(self) -> bool:
        """Wait while the kill switch is engaged; False when the worker stops meanwhile."""
        self.stats.kill_held += 1
        while self._halted():
            if self._stop.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HOLD_POLL_S)
        return True
