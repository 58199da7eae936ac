"""``ShadowPublisher``: the non-blocking publish hook for the prod service.

``publish()`` is synchronous and O(1): it takes the sampling decision (one BLAKE2b hash; none at
a sampling ratio of 1, where the sender derives the bucket), appends the raw capture to a bounded
deque and returns; it wakes nothing. A sender thread with its own event loop and Kafka producer
(:mod:`shadowlane.hook.sender`) drains the deque: it sanitizes, builds envelopes and produces
them, pacing itself so the prod thread keeps the interpreter (:mod:`shadowlane.hook.pacing`).
When the broker is down or slow, the deque fills and new captures are dropped and counted;
``publish()`` never raises, never awaits the broker and never blocks.
``stop()`` drains what is queued (bounded by a timeout), flushes, and counts what it leaves.

Every counter has one writer, the publisher's event loop: a capture made on another thread (a sync
SDK client, LiteLLM's logging thread) is handed to that loop before it is counted or queued.
:meth:`ShadowPublisher.from_settings` builds the producer from the settings; with no bootstrap
address configured, ``start()`` logs a clear error and counts it (``config_errors``), and the
request path is untouched (captures count as ``dropped_not_running``). Nothing here starts a broker.

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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from shadowlane.errors import ConfigError
from shadowlane.hashing import unit_hash
from shadowlane.hook.context import RawMirror, RawToolCall, RequestLabels

if TYPE_CHECKING:  # loaded at start(): importing the hook needs no pydantic, Kafka or Prometheus
    from aiokafka import AIOKafkaProducer

    from shadowlane.hook.sender import ProducerFactory, Sender, SenderCounts
    from shadowlane.metrics import StatsCollector
    from shadowlane.settings import HookSettings, Settings
    from shadowlane.tracing import Tracing

log = logging.getLogger(__name__)

__all__ = ["GateVerdict", "MirrorGate", "PublisherStats", "ShadowPublisher", "Unmirrored"]
ABORT_GRACE_S = 3.0  # after the drain timeout: how long stop() waits for the aborted sender

Unmirrored = Literal["dropped_too_large", "dropped_incomplete", "dropped_invalid"]
"""Why a request the hook saw could not be handed to ``publish`` (see ``count_unmirrored``)."""
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
    skipped_shadow: int = 0
    config_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, counts: SenderCounts) -> None:
        """Add what the sender thread counted (called on the publisher's own event loop)."""
        for f in fields(counts):
            setattr(self, f.name, getattr(self, f.name) + getattr(counts, f.name))


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
        tracing: Tracing | None = None,
    ) -> None:
        """``tracing``: the ``shadowlane.publish`` spans' provider (default: OpenTelemetry's global
        one, see :mod:`shadowlane.tracing`)."""
        self._settings = settings
        self.gate = gate
        self.tracing = tracing
        self._topic = topic
        self._factory = producer_factory
        self._pins = pins
        self.served_pin_headers: dict[bytes, str] = {
            header.lower().encode("latin-1"): pin for header, pin in settings.served_pin_headers.items()
        }
        """Response header (lower case) -> served pin name, read by the ASGI middleware."""
        self._queue: deque[RawMirror] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._config_error: str | None = None
        self._sender: Sender | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._running = False
        self.stats = PublisherStats()
        self.samples_all = settings.sample_ratio >= 1.0
        """Every request is mirrored (``sample_ratio`` 1): capture points need no sampling decision."""
        self.connected = asyncio.Event()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        pins: Mapping[str, str] | None = None,
        gate: MirrorGate | None = None,
        **producer_options: Any,
    ) -> ShadowPublisher:
        """The hook as the settings describe it: ``settings.hook``, the requests topic, and an
        ``AIOKafkaProducer`` (``acks="all"``, ``linger_ms=5``, overridden by ``producer_options``)
        for the configured bootstrap servers. Without them, ``start()`` refuses (counted)."""
        from shadowlane.kafka.bootstrap import NO_HOOK_BOOTSTRAP, client_kwargs, configured_bootstrap

        bootstrap = configured_bootstrap(settings)
        options = {"acks": "all", "linger_ms": 5, **producer_options}

        def producer() -> AIOKafkaProducer:
            from aiokafka import AIOKafkaProducer

            return AIOKafkaProducer(**client_kwargs(settings, bootstrap or ""), **options)

        publisher = cls(
            settings.hook,
            topic=settings.topics.requests_topic,
            producer_factory=producer,
            pins=pins,
            gate=gate,
        )
        if bootstrap is None:
            publisher._config_error = NO_HOOK_BOOTSTRAP
        return publisher

    # ------------------------------------------------------------------ request path
    def should_sample(self, req_id: str) -> tuple[bool, float | None]:
        """Whether to mirror ``req_id``, and its sampling bucket. At ``sample_ratio`` 1 every
        request is mirrored and the bucket is None: the sender derives it, off the request path."""
        if self.samples_all:
            return True, None
        settings = self._settings
        bucket = unit_hash(settings.salt, req_id)
        return bucket < settings.sample_ratio, bucket

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
        tracestate: str | None = None,
    ) -> bool:
        """Queue one prod request for mirroring. Returns True when it was sampled and queued (from
        a thread other than the publisher's loop: when it was handed to that loop).

        ``bucket`` is the request's sampling bucket when the caller already took the sampling
        decision (see :meth:`should_sample`); the request is then not sampled again.
        ``trace_id`` is the request's W3C ``traceparent`` (kept on the envelope) and ``tracestate``
        its state; both travel on as the envelope record's headers, the state only there
        (:mod:`shadowlane.tracing`).
        """
        raw = RawMirror(
            req_id or str(uuid.uuid4()),
            endpoint,
            request,
            response,
            status,
            latency_ms,
            time.time_ns() // 1_000_000,
            bucket,
            tenant,
            trace_id,
            tool_calls,
            pins or {},
            labels,
            tracestate,
        )
        return self.submit(raw, sampled=bucket is not None)

    def submit(self, raw: RawMirror, *, sampled: bool) -> bool:
        """:meth:`publish` for a capture point that built the :class:`RawMirror` itself (the
        middleware, the client-side captures): ``sampled`` says it took the sampling decision."""
        owner = self._loop_thread
        if owner is not None and owner != threading.get_ident():  # not self._owned(): inlined
            self._post(functools.partial(self.submit, raw, sampled=sampled))
            return True
        try:
            stats = self.stats
            stats.seen += 1
            if not sampled:
                mirrored, bucket = self.should_sample(raw.req_id)
                if not mirrored:
                    stats.sampled_out += 1
                    return False
                if bucket is not None:
                    raw = raw._replace(bucket=bucket)
            gate = self.gate
            if gate is not None:
                bucket = raw.bucket
                if bucket is None:
                    bucket = unit_hash(self._settings.salt, raw.req_id)
                    raw = raw._replace(bucket=bucket)
                labels = raw.labels
                arm = labels.exposure.arm if labels is not None and labels.exposure is not None else None
                verdict = gate(raw.endpoint, raw.tenant, bucket, arm)
                if verdict != "mirror":
                    if verdict == "killed":
                        stats.killed += 1
                    else:
                        stats.route_skipped += 1
                    return False
            if not self._running:
                stats.dropped_not_running += 1
                return False
            queue = self._queue
            if len(queue) >= self._settings.queue_size:
                stats.dropped_queue_full += 1
                return False
            queue.append(raw)
            stats.enqueued += 1
            return True
        except Exception:  # never let mirroring fail the prod request
            self.stats.dropped_invalid += 1
            log.exception("shadow publish failed; request not mirrored")
            return False

    def count_sampled_out(self) -> None:
        """Count a request the caller decided not to mirror (see ``should_sample``)."""
        self._count("sampled_out")

    def count_skipped_shadow(self) -> None:
        """Count a request that is itself a shadow replay: never mirrored again."""
        self._count("skipped_shadow")

    def count_unmirrored(self, reason: Unmirrored) -> None:
        """Count a request the hook saw but could not hand to ``publish``: ``seen`` and its reason."""
        self._count(reason)

    def _count(self, outcome: str) -> None:
        """``seen`` and ``outcome``, on the thread that owns the counters."""
        if not self._owned():
            self._post(functools.partial(self._count, outcome))
            return
        stats = self.stats
        stats.seen += 1
        setattr(stats, outcome, getattr(stats, outcome) + 1)

    def _owned(self) -> bool:
        """True on the thread that writes the counters: the loop ``start()`` ran on (any thread
        before that, when nothing else runs yet)."""
        owner = self._loop_thread
        return owner is None or owner == threading.get_ident()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the sender thread. Never fails because the broker is unreachable: the sender
        keeps retrying (counted in ``connect_failures``) while captures queue up."""
        if self._sender is not None:
            return
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._config_error is not None:  # refused here, never on the request path
            self.stats.config_errors += 1
            log.error("shadow publisher not started: %s", self._config_error)
            return
        # what the sender needs is loaded here, at start-up (never by the sender thread while prod
        # runs, and not by `import shadowlane.hook`): the contracts (pydantic), aiokafka
        import aiokafka  # noqa: F401

        from shadowlane.hook.envelope_builder import EnvelopeBuilder
        from shadowlane.hook.sender import Sender
        from shadowlane.sanitize import Sanitizer

        s = self._settings
        try:
            sanitizer = Sanitizer(
                s.drop_fields, strict=s.strict_allow if s.strict else None, salt=s.salt, path=s.native_path
            )
        except ConfigError as exc:
            self.stats.config_errors += 1
            log.error("shadow publisher not started: %s", exc)
            return
        log.info("shadow publisher: sanitizer engine %s", "native" if sanitizer.native else "python")
        builder = EnvelopeBuilder(
            sanitizer,
            ratio=s.sample_ratio,
            salt_id=s.salt,
            pins=self._pins,
            served_model_pin=s.served_model_pin,
        )
        stopped = self._stopped = loop.create_future()
        self._running = True
        self._sender = Sender(
            self._queue, builder, self._settings, topic=self._topic, producer_factory=self._factory,
            activity=self._activity, post=self._post, on_counts=self.stats.add,
            on_connected=self.connected.set, on_exit=lambda: _resolve(stopped), tracing=self.tracing,
        )  # fmt: skip
        self._sender.start()

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop accepting, drain what is queued (up to the timeout), flush and close.

        Past the timeout the sender is aborted: what is still queued is counted in
        ``dropped_not_running``, what was built but not acknowledged in ``send_failed``.
        """
        sender, stopped = self._sender, self._stopped
        if sender is None or stopped is None:
            return
        self._running = False
        sender.close()
        try:
            await asyncio.wait_for(asyncio.shield(stopped), drain_timeout_s)
        except TimeoutError:
            sender.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopped), ABORT_GRACE_S)
        finally:
            self._sender = None
            left = len(self._queue)
            if left:
                self.stats.dropped_not_running += left
                self._queue.clear()
                log.warning("shadow publisher stopped with %d unsent envelopes (counted)", left)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start on entry, stop (draining) on exit: an ASGI app's lifespan as it is, e.g.
        ``FastAPI(lifespan=publisher.lifespan)`` or ``Starlette(lifespan=publisher.lifespan)``."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def collector(self, **labels: str) -> StatsCollector:
        """A Prometheus collector for this hook: register it with the prod service's registry."""
        from shadowlane.metrics import StatsCollector  # prometheus_client: loaded when asked for

        return StatsCollector(
            "shadowlane_hook", self.stats.as_dict, gauges=lambda: {"queue_depth": self.queued}, labels=labels
        )

    # ------------------------------------------------------------------ sender thread plumbing
    def _activity(self) -> int:
        return self.stats.seen

    def _post(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the publisher's event loop: how other threads (the sender, sync SDK
        clients) touch ``stats`` and the queue."""
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("no loop")
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # that loop is closed: nothing else can touch the stats any more
            fn()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
