"""Liveness and readiness of a long-running process: the state behind ``/healthz`` and ``/readyz``.

The command that starts a worker (``shadow``, ``compare``) or the lag exporter makes one
:class:`Health`, passes it to what it runs, and serves it next to ``/metrics``
(:func:`shadowlane.metrics.serve_metrics`); the HTTP thread reads it, the event loop writes it.

- **alive** (``/healthz``): the event loop ran the heartbeat within ``stall_after_s``. A loop
  blocked for longer (a synchronous call that hangs, a busy loop) answers 503: restart the process.
- **ready** (``/readyz``): the process is doing its job (a worker joined its consumer group and took
  over what it was given), its last broker contact succeeded within ``broker_stale_after_s``, and
  it is alive. A worker with no partitions (a standby: its group has more members than the topic
  has partitions) is ready and says so: readiness gates Service endpoints and rolling updates, and
  a standby takes partitions over the moment another member leaves. Until then, and while
  stopping, 503 with the reason in the JSON body. A rebalance does not make a member unready.

Workers contact the broker first through :meth:`Health.first_contact`, which retries while the
broker cannot be reached (readiness says why) instead of exiting, for at most the worker's
``startup_timeout_s`` (then :class:`StartupTimeout` names the last cause), and then through
:meth:`Health.watch_broker`, a cheap ``ListOffsets`` of one partition every ``probe_interval_s``.
aiokafka reports every failed bootstrap as ``KafkaConnectionError("Unable to bootstrap from …")``,
whether the broker is down, refuses the credentials, fails the TLS handshake or has a name that
does not resolve; it only logs why, so :class:`BootstrapCause` keeps that line for the reason.
Once stopping, a worker stays stopping: nothing makes it ready again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from shadowlane.errors import ShadowlaneError

log = logging.getLogger(__name__)

T = TypeVar("T")
Body = dict[str, Any]

HEARTBEAT_S = 1.0
"""How often the event loop proves it runs."""

STANDBY = "standby: no partitions assigned (the group has more members than partitions)"


class EndOffsets(Protocol):
    """What the broker probe needs of a consumer (``AIOKafkaConsumer`` has it)."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...


def transient(exc: BaseException) -> bool:
    """Whether retrying can fix ``exc``: a broker that cannot be reached or did not answer in time
    (not refused credentials, a missing permission or a bad setting)."""
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | TimeoutError | ConnectionError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


def describe(exc: BaseException) -> str:
    """One line for an error (aiokafka's errors name themselves)."""
    name, text = type(exc).__name__, str(exc)
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


class StartupTimeout(ShadowlaneError):
    """The broker could not be used within the startup timeout; the message names the last cause."""


class BootstrapCause(logging.Handler):
    """While installed on aiokafka's logger (a context manager), keeps the last reason it logged
    for not connecting to a bootstrap broker: ``host:port: <error>``. It sees what that logger lets
    through: ERROR and up in a worker (:mod:`shadowlane.cli.main`), where that reason is logged."""

    LOGGER = "aiokafka"  # the client module logs as the package
    LINES = ("Unable connect to", "Unable to request metadata from")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith(self.LINES):
            return
        args = record.args
        if isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], BaseException):
            self.last = f"{args[0]}:{args[1]}: {describe(args[2])}"
        else:
            self.last = record.getMessage()

    def __enter__(self) -> BootstrapCause:
        self.last = None
        logging.getLogger(self.LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)


class Health:
    """Liveness and readiness of one process. Every method but :meth:`liveness` and
    :meth:`readiness` is called on the event loop; those two on the HTTP thread."""

    def __init__(
        self,
        *,
        stall_after_s: float = 30.0,
        broker_stale_after_s: float = 30.0,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_after_s = stall_after_s
        self.broker_stale_after_s = broker_stale_after_s
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._beat = clock()
        self._phase = "starting"  # starting | up | stopping
        self._reason = "starting"
        self._detail: Body = {}
        self._broker_ok_at: float | None = None
        self._broker_error: str | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ event loop side
    def start(self) -> None:
        """Start the heartbeat on the running event loop."""
        self.beat()
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beating())

    def close(self) -> None:
        """Stop the heartbeat and the broker probe."""
        for task in (self._heartbeat, self._probe):
            if task is not None:
                task.cancel()
        self._heartbeat = self._probe = None

    def beat(self) -> None:
        with self._lock:
            self._beat = self._clock()

    async def _beating(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(HEARTBEAT_S)

    def starting(self, reason: str) -> None:
        """Not ready yet, because of ``reason``."""
        with self._lock:
            self._phase, self._reason = "starting", reason

    def up(self, **detail: Any) -> None:
        """Doing its job (ready while the broker answers); ``detail`` goes into the ``/readyz`` body.
        Nothing once stopping: a takeover that completes during the drain does not make it ready."""
        with self._lock:
            if self._phase != "stopping":
                self._phase, self._reason, self._detail = "up", "", detail

    def member(self, group: str, partitions: int) -> None:
        """A worker took over its assignment in ``group``: ``partitions`` of its input topic (0: standby)."""
        detail: Body = {"group": group, "partitions": partitions}
        if partitions == 0:
            detail["note"] = STANDBY
        self.up(**detail)

    def stopping(self) -> None:
        with self._lock:
            self._phase, self._reason = "stopping", "stopping: draining in-flight work and committing"

    def broker_reached(self) -> None:
        with self._lock:
            self._broker_ok_at, self._broker_error = self._clock(), None

    def broker_failed(self, reason: str) -> None:
        with self._lock:
            self._broker_error = reason

    async def first_contact(
        self,
        step: Callable[[], Awaitable[T]],
        *,
        give_up_after_s: float = 0.0,
        first_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
    ) -> T:
        """``await step()`` (the process's first broker call) until the broker answers: while it
        cannot be reached, readiness says why and each attempt logs one warning; the delay doubles
        from ``first_delay_s`` to ``max_delay_s``. An error retrying cannot fix is raised at once;
        after ``give_up_after_s`` (0: never) :class:`StartupTimeout`, naming the last cause."""
        delay = first_delay_s
        deadline = self._clock() + give_up_after_s if give_up_after_s > 0 else None
        self.starting("connecting to the Kafka broker")
        while True:
            with BootstrapCause() as cause:
                try:
                    result = await step()
                except Exception as exc:
                    if not transient(exc):
                        raise
                    why = describe(exc)
                    if cause.last is not None and isinstance(exc, KafkaConnectionError):
                        why = f"{why} ({cause.last})"
                    reason = f"cannot reach the Kafka broker: {why}"
                else:
                    self.broker_reached()
                    self.starting("joining the consumer group")
                    return result
            self.broker_failed(reason)
            self.starting(reason)
            left = None if deadline is None else deadline - self._clock()
            if left is not None and left <= 0:
                raise StartupTimeout(f"gave up after {give_up_after_s:g}s: {reason}")
            wait = delay if left is None else min(delay, left)
            log.warning("%s; retrying in %.1fs", reason, wait)
            await asyncio.sleep(wait)
            delay = min(max_delay_s, delay * 2)

    def watch_broker(self, consumer: EndOffsets, topic: str) -> None:
        """Probe the broker through ``consumer`` (the end offset of ``topic``'s partition 0) every
        ``probe_interval_s`` until :meth:`unwatch_broker`."""
        self.unwatch_broker()
        self._probe = asyncio.get_running_loop().create_task(
            self._probing(consumer, TopicPartition(topic, 0))
        )

    def unwatch_broker(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    async def _probing(self, consumer: EndOffsets, tp: TopicPartition) -> None:
        while True:
            await self.probe_once(consumer, tp)
            await asyncio.sleep(self.probe_interval_s)

    async def probe_once(self, consumer: EndOffsets, tp: TopicPartition) -> bool:
        """One broker round trip; records its outcome and returns whether it succeeded."""
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                await consumer.end_offsets([tp])
        except TimeoutError:
            self.broker_failed(f"the Kafka broker did not answer within {self.probe_timeout_s:g}s")
            return False
        except Exception as exc:
            self.broker_failed(f"the Kafka broker cannot be reached: {describe(exc)}")
            return False
        self.broker_reached()
        return True

    # ------------------------------------------------------------------ HTTP thread side
    def liveness(self) -> tuple[bool, Body]:
        """(alive, body): the heartbeat's age against ``stall_after_s``."""
        with self._lock:
            age = self._clock() - self._beat
        if age > self.stall_after_s:
            reason = f"event loop stalled: no heartbeat for {age:.0f}s (limit {self.stall_after_s:g}s)"
            return False, {"alive": False, "reason": reason, "heartbeat_age_s": round(age, 3)}
        return True, {"alive": True, "heartbeat_age_s": round(age, 3)}

    def readiness(self) -> tuple[bool, Body]:
        """(ready, body): see the module docstring. The body always says the phase and the broker's
        state; a 503's body has the ``reason``."""
        alive, live = self.liveness()
        with self._lock:
            now = self._clock()
            phase, reason, detail = self._phase, self._reason, dict(self._detail)
            ok_at, error = self._broker_ok_at, self._broker_error
        broker: Body = {"last_ok_s_ago": None if ok_at is None else round(now - ok_at, 3)}
        if error:
            broker["error"] = error
        body: Body = {"ready": False, "phase": phase, **detail, "broker": broker}
        if not alive:
            body["reason"] = live["reason"]
        elif phase != "up":
            body["reason"] = reason
        elif error:
            body["reason"] = error
        elif ok_at is None or now - ok_at > self.broker_stale_after_s:
            body["reason"] = f"no successful broker contact for over {self.broker_stale_after_s:g}s"
        else:
            body["ready"] = True
        return bool(body["ready"]), body
