"""How the hook's sender thread shares the interpreter with the prod service it runs in.

CPython runs one thread's bytecode at a time (the GIL). A thread that wants it while another one
computes gets it when the holder blocks in a system call, or else after the switch interval
(``sys.getswitchinterval()``, 5 ms by default): the prod service's event loop would stall that long
behind a busy sender. A bare system call is not enough either: the holder takes the GIL back
before the waiting thread has even woken up. So the sender computes in short chunks and *sleeps*
between them, long enough for a waiting thread to take over (``time.sleep(0)`` is a real sleep of
the thread's timer slack, ~50 µs on Linux).

:class:`Pacer` decides how long a chunk may be and how long the pause after it is:

- while the host is serving (its requests reached the hook within ``ACTIVE_WINDOW_S``), chunks
  of ``CHUNK_S`` followed by pauses that keep the sender's share of the wall time under ``DUTY``:
  a backlog drains at a bounded pace next to the prod traffic, never in one go;
- while the host is idle, chunks of ``IDLE_CHUNK_S`` with the shortest pause, so a backlog drains
  at full speed when nothing else needs the interpreter (a request arriving then waits at most
  one such chunk before its first hand-over; its neighbours find the host active).

Whether a pause came back late is no signal: on a shared machine the OS delays sleeps anyway.

The library never changes the host's switch interval or its garbage collector.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CHUNK_S = 0.0001
IDLE_CHUNK_S = 0.002
DUTY = 0.25
ACTIVE_WINDOW_S = 0.1


class Pacer:
    """Chunks the sender's work and pauses between chunks (see the module docstring).

    Work is the sender thread's CPU time (``time.thread_time``): time it spends waiting for the
    broker or for the GIL is no work. ``activity()`` returns a counter the host side bumps for
    every request it hands the hook (``PublisherStats.seen``): reading it is the whole cost of
    watching the host.
    """

    def __init__(
        self,
        activity: Callable[[], int],
        *,
        cpu: Callable[[], float] = time.thread_time,
        wall: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        chunk_s: float = CHUNK_S,
        idle_chunk_s: float = IDLE_CHUNK_S,
        duty: float = DUTY,
    ) -> None:
        self._activity, self._cpu, self._wall, self._sleep = activity, cpu, wall, sleep
        self._chunk_s, self._idle_chunk_s = chunk_s, idle_chunk_s
        self._rest_per_work = (1.0 - duty) / duty
        self._seen = activity()
        self._active_until = 0.0
        self._started = 0.0
        self.pauses = 0
        self.worked_s = 0.0
        self.paused_s = 0.0

    def host_active(self) -> bool:
        """The host handed the hook a request within the last ``ACTIVE_WINDOW_S``."""
        now = self._wall()
        seen = self._activity()
        if seen != self._seen:
            self._seen = seen
            self._active_until = now + ACTIVE_WINDOW_S
        return now < self._active_until

    def begin(self) -> None:
        """A chunk starts now (call it on the sender thread, before computing)."""
        self._started = self._cpu()

    def due(self) -> bool:
        """True when the current chunk is used up: the caller lets its own loop run, then
        calls :meth:`pause`. Called after each unit of work; one clock read when not due."""
        worked = self._cpu() - self._started
        if worked < self._chunk_s:
            return False
        return worked >= self._idle_chunk_s or self.host_active()

    def pause(self) -> None:
        """Hand the interpreter over: a short sleep, longer while the host is serving."""
        worked = self._cpu() - self._started
        # a chunk that overran (one big envelope, say) earns no longer pause than a full chunk
        rest = min(worked, self._chunk_s) * self._rest_per_work if self.host_active() else 0.0
        asleep = self._wall()
        self._sleep(rest)
        self.paused_s += self._wall() - asleep
        self.pauses += 1
        self.worked_s += worked
        self._started = self._cpu()
