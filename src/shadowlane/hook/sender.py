"""The hook's sender: a dedicated thread, with its own event loop and its own Kafka producer,
that turns queued captures into envelopes and ships them.

``ShadowPublisher.publish()`` appends to a deque and returns; nothing on the prod side wakes the
sender per call. The sender polls the deque every ``linger_ms`` while traffic flows (backing off
to ``IDLE_POLL_MAX_S`` when there is none), builds up to ``batch_size`` envelopes at a time
(sanitize, validate, encode) and appends them to per-partition record batches. Its computing is
paced by :class:`~shadowlane.hook.pacing.Pacer`, so the prod thread gets the interpreter back
within a chunk (~0.1 ms) and a backlog drains at a bounded duty cycle while the host serves.
The envelope of a request that came with a valid W3C ``traceparent`` is built and handed over
inside a ``shadowlane.publish`` span, and its record carries the trace context on in its headers
(:mod:`shadowlane.tracing`); an untraced request costs nothing more.

Accounting: every capture taken from the deque ends in exactly one counter. The sender never
writes ``PublisherStats`` itself (the host side writes some of the same counters): it keeps
:class:`SenderCounts` and hands them to its owner through ``post`` (which runs a callable on the
owner's event loop) at most every ``REPORT_EVERY_S`` and when it ends. Envelopes still unshipped
or unacknowledged when it ends (broker gone, stop timed out) are counted as ``send_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from shadowlane.errors import InvalidMessage
from shadowlane.hook.context import RawMirror
from shadowlane.hook.envelope_builder import EnvelopeBuilder
from shadowlane.hook.pacing import Pacer
from shadowlane.kafka.batching import PartitionBatcher, RecordTooLarge, ShipFailed, Shipped, partition_count
from shadowlane.settings import HookSettings
from shadowlane.tracing import PUBLISH_SPAN, KafkaHeaders, TraceContext, Tracing

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], "AIOKafkaProducer"]
Post = Callable[[Callable[[], None]], None]
IDLE_POLL_MAX_S = 0.05
REPORT_EVERY_S = 0.02
STOP_PRODUCER_S = 2.0  # how long an aborted sender waits for its producer to close


@dataclass(slots=True)
class SenderCounts:
    """What the sender counted since its last report (the sender's share of ``PublisherStats``)."""

    published: int = 0
    send_failed: int = 0
    dropped_invalid: int = 0
    dropped_too_large: int = 0
    sanitized_fields: int = 0
    connect_failures: int = 0

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


class Sender:
    """Drains ``queue`` to ``topic`` from its own thread; see the module docstring."""

    def __init__(
        self,
        queue: deque[RawMirror],
        builder: EnvelopeBuilder,
        settings: HookSettings,
        *,
        topic: str,
        producer_factory: ProducerFactory,
        activity: Callable[[], int],
        post: Post,
        on_counts: Callable[[SenderCounts], None],
        on_connected: Callable[[], None],
        on_exit: Callable[[], None],
        pacer: Pacer | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._queue, self._builder, self._settings = queue, builder, settings
        self._tracing = tracing if tracing is not None else Tracing()
        self._topic, self._factory = topic, producer_factory
        self._post, self._on_counts = post, on_counts
        self._on_connected, self._on_exit = on_connected, on_exit
        self.pacer = pacer or Pacer(activity)
        self._poll_s = max(settings.linger_ms, 1) / 1000
        self._counts = SenderCounts()
        self._reported = 0.0
        self._closing = False
        self._aborting = False
        self._finished = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._acked: asyncio.Event | None = None
        self._batcher: PartitionBatcher | None = None
        self._partitions = 0
        self._unshipped = 0  # appended to an open batch, not yet handed to the producer
        self._in_flight = 0  # handed to the producer, not yet acknowledged
        self._thread = threading.Thread(target=self._run_thread, name="shadowlane-sender", daemon=True)

    # ------------------------------------------------------------------ owner side (any thread)
    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop once the queue is drained and everything shipped is acknowledged."""
        self._closing = True
        self._call(self._wake)

    def abort(self) -> None:
        """Stop now: take nothing more from the queue, count what is unshipped or unacknowledged."""
        self._closing = self._aborting = True
        self._call(self._cancel)

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the sender's loop has already closed
                loop.call_soon_threadsafe(fn)

    # ------------------------------------------------------------------ the thread
    def _run_thread(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException:  # the thread must end with its counts reported, whatever happened
            log.exception("shadow sender crashed; what it held is counted as failed")
        finally:
            self._finish()
            self._post(self._on_exit)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        self._acked = asyncio.Event()
        try:
            if self._aborting:
                return
            producer = await self._connect()
            if producer is None:
                return
            try:
                await self._drain(producer)
                await self._ship_rest(producer)
            finally:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(producer.stop(), STOP_PRODUCER_S)
        except asyncio.CancelledError:
            if not self._aborting:
                raise

    def _finish(self) -> None:
        self._finished = True  # late delivery callbacks are ignored from here on
        lost = self._unshipped + self._in_flight
        if lost:
            self._counts.send_failed += lost
            log.warning("shadow sender stopped with %d envelopes unacknowledged (counted as failed)", lost)
        self._unshipped = self._in_flight = 0
        self._report(force=True)

    def _cancel(self) -> None:
        if self._main is not None:
            self._main.cancel()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _nap(self, seconds: float) -> None:
        """Sleep on the sender's loop; ``close()`` cuts it short."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        handle = loop.call_later(seconds, self._wake)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._counts and (force or now - self._reported >= REPORT_EVERY_S):
            counts, self._counts, self._reported = self._counts, SenderCounts(), now
            self._post(functools.partial(self._on_counts, counts))

    async def _connect(self) -> AIOKafkaProducer | None:
        """A started producer, or None when closing and the broker cannot be reached."""
        delay = 0.2
        while True:
            producer = self._factory()
            try:
                await producer.start()
            except Exception as exc:
                self._counts.connect_failures += 1
                self._report(force=True)
                log.warning("shadow publisher cannot reach Kafka (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(Exception):
                    await producer.stop()
                if self._closing:
                    return None
                await self._nap(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._post(self._on_connected)
            return producer

    async def _drain(self, producer: AIOKafkaProducer) -> None:
        idle = self._poll_s
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._report()
                await self._nap(idle)
                idle = min(idle * 2, IDLE_POLL_MAX_S)
                continue
            idle = self._poll_s
            await self._send_some(producer)
            self._report()

    async def _send_some(self, producer: AIOKafkaProducer) -> None:
        """Build up to ``batch_size`` envelopes into per-partition batches and ship the full ones.

        Delivery is not awaited here; the number of unacknowledged envelopes is bounded by
        ``queue_size``. A broker error loses what was unshipped (counted as failed).
        """
        pacer = self.pacer
        pacer.begin()
        try:
            if not self._partitions:
                self._partitions = await partition_count(producer, self._topic)
            if self._batcher is None:
                self._batcher = PartitionBatcher(producer, self._topic, self._partitions)
            for _ in range(min(len(self._queue), self._settings.batch_size)):
                if self._aborting:
                    break
                raw = self._queue.popleft()
                if raw.trace_id is not None:
                    await self._add_traced(raw)
                else:
                    record = self._build(raw)
                    if record is not None:
                        await self._add(*record)
                if pacer.due():
                    await asyncio.sleep(0)  # the producer's own tasks run between chunks
                    pacer.pause()
            await self._flush()
        except Exception as exc:  # broker trouble: what was not handed over is lost, and counted
            self._lose_unshipped(exc)
        acked = self._acked
        assert acked is not None
        while self._in_flight > self._settings.queue_size:
            acked.clear()
            await acked.wait()

    def _build(self, raw: RawMirror) -> tuple[str, bytes] | None:
        try:
            record = self._builder.record(raw)
        except InvalidMessage as exc:
            self._counts.dropped_invalid += 1
            log.warning("not mirrored: req_id=%s %s", raw.req_id, exc)
            return None
        except Exception as exc:  # any other surprise in client data: count it, keep going
            self._counts.dropped_invalid += 1
            log.warning("not mirrored: req_id=%s unexpected %s: %s", raw.req_id, type(exc).__name__, exc)
            return None
        self._counts.sanitized_fields += record.sanitized_fields
        return record.req_hash, record.value

    async def _add_traced(self, raw: RawMirror) -> None:
        """Build and hand over the envelope of a request that came with a trace id, inside its
        ``shadowlane.publish`` span (a span-less hop without an SDK, nothing for an invalid id)."""
        incoming = TraceContext.of(raw.trace_id, raw.tracestate)
        attributes = {"messaging.system": "kafka", "messaging.destination.name": self._topic}
        with self._tracing.hop(PUBLISH_SPAN, incoming, kind="producer", attributes=attributes) as hop:
            record = self._build(raw)
            if record is not None:
                hop.set("shadowlane.req_hash", record[0])
                await self._add(*record, hop.context.kafka_headers())

    async def _add(self, req_hash: str, value: bytes, headers: KafkaHeaders | None = None) -> None:
        assert self._batcher is not None
        self._unshipped += 1  # from here on a failure below counts it
        try:
            shipped = await self._batcher.add(req_hash, value, headers)
        except RecordTooLarge as exc:
            self._unshipped -= 1
            self._counts.dropped_too_large += 1
            shipped = exc.shipped
        self._track(shipped)

    async def _flush(self) -> None:
        if self._batcher is not None:
            self._track(await self._batcher.flush())

    async def _ship_rest(self, producer: AIOKafkaProducer) -> None:
        """Closing with an empty queue: ship the open batches and wait for every acknowledgement."""
        try:
            await self._flush()
            await producer.flush()
        except Exception as exc:
            self._lose_unshipped(exc)
        acked = self._acked
        assert acked is not None
        while self._in_flight:
            acked.clear()
            await acked.wait()

    def _lose_unshipped(self, exc: Exception) -> None:
        if isinstance(exc, ShipFailed):
            self._track(exc.shipped)  # handed over before the failure: their acks will count them
        self._partitions = 0  # refresh metadata next time
        self._batcher = None  # its open batches are abandoned: counted below
        lost, self._unshipped = self._unshipped, 0
        self._counts.send_failed += lost
        log.warning("shadow send failed, %d envelopes lost (counted): %s", lost, exc)

    def _track(self, shipped: list[Shipped]) -> None:
        for fut, count in shipped:
            self._unshipped -= count
            self._in_flight += count
            fut.add_done_callback(functools.partial(self._delivered, count=count))

    def _delivered(self, fut: asyncio.Future[Any], count: int) -> None:
        if self._finished:
            return  # already counted as failed when the sender ended
        self._in_flight -= count
        if fut.cancelled() or fut.exception() is not None:
            self._counts.send_failed += count
            log.warning(
                "shadow delivery of %d envelopes failed: %s",
                count,
                "cancelled" if fut.cancelled() else fut.exception(),
            )
        else:
            self._counts.published += count
        if self._acked is not None:
            self._acked.set()
