"""``ShadowPublisher``: the non-blocking publish hook for the prod service.

``publish()`` is synchronous and O(1): it takes the sampling decision (one BLAKE2b hash),
appends the raw capture to a bounded deque and returns. One background task drains the deque:
it sanitizes, builds envelopes and produces them. When the broker is down or slow, the deque
fills and new captures are dropped and counted; ``publish()`` never raises, never awaits the
broker and never blocks. ``stop()`` drains what is queued (bounded by a timeout) and flushes.

An optional *gate* (:data:`MirrorGate`, e.g. :class:`shadowlane.rollout.control_plane.MirrorGate`) is
consulted for every sampled request: a kill switch or a route config in force can stop mirroring
live. It must be pure (no I/O, no await); what it refuses is counted (``killed``, ``route_skipped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaProducer

from shadowlane.contracts.codec import encode
from shadowlane.errors import InvalidMessage
from shadowlane.hashing import unit_hash
from shadowlane.hook.context import RawToolCall, RequestLabels
from shadowlane.hook.envelope_builder import EnvelopeBuilder, RawMirror
from shadowlane.kafka.batching import PartitionBatcher, RecordTooLarge, Shipped, partition_count
from shadowlane.metrics import StatsCollector
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import HookSettings

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], AIOKafkaProducer]
# the sender builds envelopes on the prod service's event loop; it yields at least this often
YIELD_EVERY_S = 0.0002

GateVerdict = Literal["mirror", "killed", "route_skipped"]
MirrorGate = Callable[[str, str, float, str | None], GateVerdict]
"""``gate(endpoint, tenant, bucket, arm)``: mirror the request, or not because a kill switch is
engaged (``killed``) or because the route config in force does not mirror it (``route_skipped``).
``arm`` is the rollout arm that served it (the handler's ``set_exposure``), None outside a rollout."""


@dataclass(slots=True)
class PublisherStats:
    """Counters for every request the hook saw; every drop has its own counter."""

    seen: int = 0
    sampled_out: int = 0
    killed: int = 0
    route_skipped: int = 0
    enqueued: int = 0
    published: int = 0
    dropped_queue_full: int = 0
    dropped_invalid: int = 0
    dropped_not_running: int = 0
    dropped_too_large: int = 0
    dropped_incomplete: int = 0
    send_failed: int = 0
    sanitized_fields: int = 0
    connect_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ShadowPublisher:
    """Mirrors sampled prod requests to the requests topic without touching the request path."""

    def __init__(
        self,
        settings: HookSettings,
        *,
        topic: str,
        producer_factory: ProducerFactory,
        pins: Mapping[str, str] | None = None,
        gate: MirrorGate | None = None,
    ) -> None:
        self._settings = settings
        self.gate = gate
        self._topic = topic
        self._factory = producer_factory
        self._builder = EnvelopeBuilder(
            Sanitizer(settings.drop_fields), ratio=settings.sample_ratio, salt_id=settings.salt, pins=pins
        )
        self._queue: deque[RawMirror] = deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._closing = False
        self.stats = PublisherStats()
        self.connected = asyncio.Event()
        self._in_flight = 0
        self._partitions = 0
        self._acked = asyncio.Event()

    # ------------------------------------------------------------------ request path
    def should_sample(self, req_id: str) -> tuple[bool, float]:
        bucket = unit_hash(self._settings.salt, req_id)
        return bucket < self._settings.sample_ratio, bucket

    def publish(
        self,
        *,
        req_id: str | None,
        endpoint: str,
        request: bytes | Mapping[str, Any],
        response: bytes | Mapping[str, Any] | None,
        status: int,
        latency_ms: float,
        tenant: str = "default",
        trace_id: str | None = None,
        tool_calls: Sequence[RawToolCall] = (),
        pins: Mapping[str, str] | None = None,
        bucket: float | None = None,
        labels: RequestLabels | None = None,
    ) -> bool:
        """Queue one prod request for mirroring. Returns True when it was sampled and queued.

        ``bucket`` is the request's sampling bucket when the caller already took the sampling
        decision (the middleware does, before capturing anything); it is then not hashed again.
        """
        try:
            stats = self.stats
            stats.seen += 1
            rid = req_id or str(uuid.uuid4())
            if bucket is None:
                sampled, bucket = self.should_sample(rid)
                if not sampled:
                    stats.sampled_out += 1
                    return False
            gate = self.gate
            if gate is not None:
                arm = labels.exposure.arm if labels is not None and labels.exposure is not None else None
                verdict = gate(endpoint, tenant, bucket, arm)
                if verdict != "mirror":
                    if verdict == "killed":
                        stats.killed += 1
                    else:
                        stats.route_skipped += 1
                    return False
            if not self._running:
                stats.dropped_not_running += 1
                return False
            if len(self._queue) >= self._settings.queue_size:
                stats.dropped_queue_full += 1
                return False
            self._queue.append(
                RawMirror(
                    req_id=rid,
                    endpoint=endpoint,
                    request=request,
                    response=response,
                    status=status,
                    latency_ms=latency_ms,
                    ts_ms=time.time_ns() // 1_000_000,
                    bucket=bucket,
                    tenant=tenant,
                    trace_id=trace_id,
                    tool_calls=tool_calls,
                    pins=pins or {},
                    labels=labels,
                )
            )
            stats.enqueued += 1
            self._signal()
            return True
        except Exception:  # never let mirroring fail the prod request
            self.stats.dropped_invalid += 1
            log.exception("shadow publish failed; request not mirrored")
            return False

    def count_sampled_out(self) -> None:
        """Count a request the caller decided not to mirror (see ``should_sample``)."""
        self.stats.seen += 1
        self.stats.sampled_out += 1

    def _signal(self) -> None:
        if threading.get_ident() == self._loop_thread:
            if not self._wake.is_set():
                self._wake.set()
        elif self._loop is not None:
            # from another thread the event's state may change under us: always hand over
            self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the background sender. Never fails because the broker is unreachable."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._running = True
        self._task = asyncio.create_task(self._run(), name="shadowlane-publisher")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop accepting, drain what is queued (up to the timeout), flush and close."""
        if self._task is None:
            return
        self._running = False
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._task = None
            left = len(self._queue)
            if left:
                self.stats.dropped_not_running += left
                self._queue.clear()
                log.warning("shadow publisher stopped with %d unsent envelopes (counted)", left)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def collector(self, **labels: str) -> StatsCollector:
        """A Prometheus collector for this hook: register it with the prod service's registry."""
        return StatsCollector(
            "shadowlane_hook", self.stats.as_dict, gauges=lambda: {"queue_depth": self.queued}, labels=labels
        )

    # ------------------------------------------------------------------ sender
    async def _connect(self) -> AIOKafkaProducer:
        delay = 0.2
        while True:
            producer = self._factory()
            try:
                await producer.start()
                self.connected.set()
                return producer
            except Exception as exc:
                self.stats.connect_failures += 1
                log.warning("shadow publisher cannot reach Kafka (%s); retrying in %.1fs", exc, delay)
                await producer.stop()
                if self._closing:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _run(self) -> None:
        try:
            producer = await self._connect()
        except Exception:
            return
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    if self._settings.linger_ms and not self._closing:
                        await asyncio.sleep(self._settings.linger_ms / 1000)
                await self._send_batch(producer)
        finally:
            try:
                await producer.flush()
                while self._in_flight:  # let the delivery callbacks run and count
                    self._acked.clear()
                    await self._acked.wait()
            finally:
                await producer.stop()

    async def _send_batch(self, producer: AIOKafkaProducer) -> None:
        """Build up to ``batch_size`` envelopes and hand them to Kafka as per-partition batches.

        Envelopes go straight into aiokafka record batches (:class:`PartitionBatcher`),
        partitioned by ``req_hash``; this skips the per-message work of ``send()``. Delivery is
        not awaited here, so building the next batch overlaps with the network; the number of
        unacknowledged envelopes is bounded by ``queue_size``.
        """
        built = shipped = 0
        try:
            if not self._partitions:
                self._partitions = await partition_count(producer, self._topic)
            batcher = PartitionBatcher(producer, self._topic, self._partitions)
            slice_started = time.perf_counter()
            for _ in range(min(len(self._queue), self._settings.batch_size)):
                if time.perf_counter() - slice_started > YIELD_EVERY_S:
                    await asyncio.sleep(0)  # let prod requests run: building never stalls the loop long
                    slice_started = time.perf_counter()
                raw = self._queue.popleft()
                try:
                    envelope = self._builder.build(raw)
                    value = encode(envelope)
                except InvalidMessage as exc:
                    self.stats.dropped_invalid += 1
                    log.warning("not mirrored: req_id=%s %s", raw.req_id, exc)
                    continue
                except Exception as exc:  # any other surprise in client data: count it, keep going
                    self.stats.dropped_invalid += 1
                    log.warning(
                        "not mirrored: req_id=%s unexpected %s: %s", raw.req_id, type(exc).__name__, exc
                    )
                    continue
                self.stats.sanitized_fields += envelope.sanitized_fields
                built += 1  # counted before shipping, so a failure below accounts for it
                try:
                    shipped += self._track(await batcher.add(envelope.req_hash, value))
                except RecordTooLarge:
                    built -= 1
                    self.stats.dropped_too_large += 1
            shipped += self._track(await batcher.flush())
        except Exception as exc:  # broker trouble: what was built but not shipped is counted as failed
            self._partitions = 0  # refresh metadata next time
            self.stats.send_failed += max(built - shipped, 0)
            log.warning("shadow send failed, %d envelopes lost (counted): %s", max(built - shipped, 0), exc)
        while self._in_flight > self._settings.queue_size:
            self._acked.clear()
            await self._acked.wait()

    def _track(self, shipped: list[Shipped]) -> int:
        total = 0
        for fut, count in shipped:
            self._in_flight += count
            total += count
            fut.add_done_callback(functools.partial(self._delivered, count=count))
        return total

    def _delivered(self, fut: asyncio.Future[Any], count: int) -> None:
        self._in_flight -= count
        if fut.cancelled() or fut.exception() is not None:
            self.stats.send_failed += count
            log.warning(
                "shadow delivery of %d envelopes failed: %s",
                count,
                "cancelled" if fut.cancelled() else fut.exception(),
            )
        else:
            self.stats.published += count
        self._acked.set()
