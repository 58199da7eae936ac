"""The comparator's join state: requests and shadow results meet by ``req_hash`` in a window.

Pure bookkeeping, no I/O. A request waits for one result per expected candidate; a result that
arrives first waits for its request. Time is the caller's watermark (event time that only
advances when every assigned partition has caught up to it), so re-reading a backlog after a
restart never expires a pair early. Every record leaves the buffer through exactly one output:

- :class:`Joined` — request + result, for one candidate;
- :class:`Expired` — ``shadow_timeout`` (request without that candidate's result) or
  ``request_missing`` (result whose request never came);
- :class:`Built` — the native join's alternative to a :class:`Joined` for a plain pair, built
  as it joined (:mod:`shadowlane.compare.native.join`); this Python join never makes one.

Records are held as the comparator read them (:data:`~shadowlane.compare.prod_side.Request`,
:data:`~shadowlane.compare.results.Result`: native records whose fields stay Rust values, or Python
ones); the join reads only their ``req_hash``, ``candidate`` and ``candidate_served``.

A request's outputs leave together, once it has an outcome for every expected candidate: each
:class:`Joined` then sees the other candidates' results for the same request (``peers``), which
is how a candidate's comparison learns the baseline's noise floor and λ. The records become
*done* with the request's last output, so a restart never sees a half-finished request.

A result that arrives after its request left without it (``shadow_timeout``) is counted
``late_results``; a copy of a result that already joined, is waiting, or left as
``request_missing`` is counted ``duplicate_results``. Both are done at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowlane.compare.prod_side import ProdSide, Request, read_request
from shadowlane.compare.results import Result, read_result, read_result_python
from shadowlane.contracts.codec import DecodeError
from shadowlane.contracts.envelope import RequestEnvelope

RecordRef = tuple[str, int, int]  # (topic, partition, offset)
# the candidates whose outcome for a request already left: a lone one as itself, so the cache holds
# no tuple per request (a tuple is one more object for the garbage collector to walk)
Finished = str | tuple[str, ...]
_NEVER = 2**63


@dataclass(slots=True)
class _WaitingRequest:
    envelope: Request
    ref: RecordRef
    deadline_ms: int
    waiting: set[str]
    joined: list[tuple[Result, RecordRef]] = field(default_factory=list)


@dataclass(slots=True)
class _WaitingResult:
    result: Result
    ref: RecordRef
    deadline_ms: int


@dataclass(slots=True)
class Joined:
    envelope: Request
    result: Result
    release: list[RecordRef]
    peers: dict[str, Result] = field(default_factory=dict)


@dataclass(slots=True)
class Expired:
    outcome: str  # "shadow_timeout" | "request_missing"
    candidate: str
    req_hash: str
    envelope: Request | None
    result: Result | None
    release: list[RecordRef]


@dataclass(slots=True)
class Built:
    """A plain pair the native join built as it joined (``shadowlane/compare/native/builder.py``'s rules):
    the comparison's fields in the contract's order and its wire bytes (None: Python encodes)."""

    fields: dict[str, Any]
    wire: bytes | None
    release: list[RecordRef]


Output = Joined | Expired | Built
Ingested = tuple[list[Output], list[int], list[int], list[tuple[Any, DecodeError]]]
"""What :meth:`JoinBuffer.ingest` gives back: the outputs, every record's offset in order, the
offsets done at once (a duplicate, a record with nothing to join) and the undecodable records
with their errors."""


@dataclass(slots=True)
class JoinStats:
    requests: int = 0
    results: int = 0
    joined: int = 0
    shadow_timeouts: int = 0
    requests_missing: int = 0
    duplicate_requests: int = 0
    candidate_served: int = 0  # exposure records of a rollout's candidate arm: nothing to join
    duplicate_results: int = 0  # a copy of a result that already joined, waits or left unpaired
    late_results: int = 0  # a result whose request already left without it (shadow_timeout)
    ignored_candidates: int = 0
    evicted: int = 0


RequestReader = Callable[[bytes | None, bytes | None], Request]
"""Reads a requests-topic record from its value and key."""


def readers(native: bool) -> tuple[RequestReader, Callable[[bytes | None], Result]]:
    """How a join reads requests and shadow results: through the native readers when ``native``
    (each falls back to Python for a record it declines, or when the module is absent), else Python."""
    if native:
        return read_request, read_result
    return ProdSide.decode_python, read_result_python


def _candidates(done: Finished) -> tuple[str, ...]:
    return (done,) if isinstance(done, str) else done


class JoinBuffer:
    """Holds what waits for its pair; returns outputs as pairs complete or expire."""

    def __init__(
        self,
        candidates: Iterable[str],
        window_ms: int,
        *,
        max_pending: int = 200_000,
        native_readers: bool = True,
    ) -> None:
        self.candidates = frozenset(candidates)
        self.read_request, self.read_result = readers(native_readers)
        self.window_ms = window_ms
        self.max_pending = max_pending
        self._requests: OrderedDict[str, _WaitingRequest] = OrderedDict()
        self._results: OrderedDict[tuple[str, str], _WaitingResult] = OrderedDict()
        # req_hash -> the candidates whose outcome already left, oldest first, capped: a record
        # re-read after it left (a redelivery) is a duplicate, not a new pair
        self._finished: OrderedDict[str, Finished] = OrderedDict()
        self._finished_cap = max(10_000, max_pending)
        # the (req_hash, candidate) pairs that left as shadow_timeout, oldest first, capped like
        # ``_finished``: their result arriving after that is late, not a duplicate
        self._timed_out: OrderedDict[tuple[str, str], None] = OrderedDict()
        # a lower bound on every waiting deadline: ``expire`` scans nothing while the watermark
        # has not passed it (most polls), and resets it to the exact minimum when it scans
        self._earliest_deadline = _NEVER
        self.stats = JoinStats()

    @property
    def pending(self) -> int:
        return len(self._requests) + len(self._results)

    def _finish(self, req_hash: str, candidate: str) -> None:
        done = self._finished.get(req_hash)
        if done is not None:
            self._finished[req_hash] = (*_candidates(done), candidate)  # keeps its place: oldest first
            return
        self._finished[req_hash] = candidate  # not a set: that would triple the cache's memory
        if len(self._finished) > self._finished_cap:
            self._finished.popitem(last=False)

    def ingest(self, records: Sequence[Any], topic: str, partition: int, is_request: bool) -> Ingested:
        """One poll's records (``ConsumerRecord``) of one partition, read and joined in order."""
        read_request, read_result = self.read_request, self.read_result
        add = self.add_request if is_request else self.add_result
        outputs: list[Output] = []
        offsets: list[int] = []
        done: list[int] = []
        bad: list[tuple[Any, DecodeError]] = []
        for record in records:
            offset = record.offset
            offsets.append(offset)
            try:
                value = read_request(record.value, record.key) if is_request else read_result(record.value)
            except DecodeError as exc:
                bad.append((record, exc))
                continue
            out, finished = add(value, (topic, partition, offset), record.timestamp)  # type: ignore[arg-type]
            if out:
                outputs.extend(out)
            if finished:
                done.append(offset)
        return outputs, offsets, done, bad

    def add_request(
        self, env: Request | RequestEnvelope, ref: RecordRef, ts_ms: int
    ) -> tuple[list[Output], bool]:
        """Returns (outputs, done_now). ``done_now`` is True for a duplicate released at once."""
        self.stats.requests += 1
        req_hash = env.req_hash
        if req_hash in self._requests:
            self.stats.duplicate_requests += 1
            return [], True
        waiting = set(self.candidates)
        done = self._finished.get(req_hash)
        if done is not None:
            waiting.difference_update(_candidates(done))
        if not waiting:
            self.stats.duplicate_requests += 1
            return [], True
        side = ProdSide.of(env) if isinstance(env, RequestEnvelope) else env
        if side.candidate_served:
            self.stats.candidate_served += 1
            return [], True
        deadline = ts_ms + self.window_ms
        if deadline < self._earliest_deadline:
            self._earliest_deadline = deadline
        entry = _WaitingRequest(side, ref, deadline, waiting)
        self._requests[req_hash] = entry
        outputs: list[Output] = []
        if self._results:  # results that came first wait here; most requests find none
            for candidate in sorted(waiting):
                early = self._results.pop((req_hash, candidate), None)
                if early is not None:
                    outputs.extend(self._join(entry, early.result, early.ref))
        if len(self._requests) + len(self._results) > self.max_pending:
            outputs.extend(self._evict())
        return outputs, False

    def add_result(self, res: Result, ref: RecordRef, ts_ms: int) -> tuple[list[Output], bool]:
        """Returns (outputs, done_now). ``done_now`` means the record needs no further handling."""
        self.stats.results += 1
        if res.candidate not in self.candidates:
            self.stats.ignored_candidates += 1
            return [], True
        key = (res.req_hash, res.candidate)
        done = self._finished.get(res.req_hash)
        if done is not None and res.candidate in _candidates(done):
            if key in self._timed_out:  # the first copy is late; a redelivery of it is a duplicate
                del self._timed_out[key]
                self.stats.late_results += 1
            else:
                self.stats.duplicate_results += 1
            return [], True
        if key in self._results:
            self.stats.duplicate_results += 1
            return [], True
        entry = self._requests.get(res.req_hash)
        if entry is not None:
            return self._join(entry, res, ref), False
        deadline = ts_ms + self.window_ms
        if deadline < self._earliest_deadline:
            self._earliest_deadline = deadline
        self._results[key] = _WaitingResult(res, ref, deadline)
        if len(self._requests) + len(self._results) > self.max_pending:
            return self._evict(), False
        return [], False

    def _join(self, entry: _WaitingRequest, res: Result, ref: RecordRef) -> list[Output]:
        self.stats.joined += 1
        entry.waiting.discard(res.candidate)
        entry.joined.append((res, ref))
        self._finish(entry.envelope.req_hash, res.candidate)
        return [] if entry.waiting else self._complete(entry, [])

    def _complete(self, entry: _WaitingRequest, missing: list[str]) -> list[Output]:
        """All of a request's outputs: one Joined per result, one Expired per missing candidate."""
        self._requests.pop(entry.envelope.req_hash, None)
        peers: dict[str, Result] = {}  # shared: every Joined sees all of them
        release = [entry.ref]
        outputs: list[Output] = []
        for res, ref in entry.joined:
            peers[res.candidate] = res
            release.append(ref)
            outputs.append(Joined(entry.envelope, res, [], peers))
        for candidate in missing:
            self.stats.shadow_timeouts += 1
            self._finish(entry.envelope.req_hash, candidate)
            self._timed_out[(entry.envelope.req_hash, candidate)] = None
            if len(self._timed_out) > self._finished_cap:
                self._timed_out.popitem(last=False)
            outputs.append(
                Expired("shadow_timeout", candidate, entry.envelope.req_hash, entry.envelope, None, [])
            )
        outputs[-1].release = release
        return outputs

    def expire(self, watermark_ms: int) -> list[Output]:
        """Everything whose deadline is before ``watermark_ms`` leaves as :class:`Expired`
        (requests first, then results, each in arrival order)."""
        if watermark_ms <= self._earliest_deadline:
            return []
        earliest = _NEVER
        due_requests: list[_WaitingRequest] = []
        for entry in self._requests.values():
            if entry.deadline_ms < watermark_ms:
                due_requests.append(entry)
            elif entry.deadline_ms < earliest:
                earliest = entry.deadline_ms
        due_results: list[tuple[str, str]] = []
        for key, waiting in self._results.items():
            if waiting.deadline_ms < watermark_ms:
                due_results.append(key)
            elif waiting.deadline_ms < earliest:
                earliest = waiting.deadline_ms
        self._earliest_deadline = earliest
        outputs: list[Output] = []
        for entry in due_requests:
            outputs.extend(self._expire_request(entry))
        for key in due_results:
            outputs.append(self._expire_result(key))
        return outputs

    def _expire_request(self, entry: _WaitingRequest) -> list[Output]:
        missing = sorted(entry.waiting)
        entry.waiting.clear()
        return self._complete(entry, missing)

    def _expire_result(self, key: tuple[str, str]) -> Expired:
        waiting = self._results.pop(key)
        self.stats.requests_missing += 1
        self._finish(*key)
        return Expired("request_missing", key[1], key[0], None, waiting.result, [waiting.ref])

    def _evict(self) -> list[Output]:
        """Bound memory: past ``max_pending`` the oldest entries expire early (counted)."""
        outputs: list[Output] = []
        while self.pending > self.max_pending:
            self.stats.evicted += 1
            if self._requests:
                _, entry = next(iter(self._requests.items()))
                outputs.extend(self._expire_request(entry))
            else:
                outputs.append(self._expire_result(next(iter(self._results))))
        return outputs

    def mark_finished(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember (``req_hash``, candidate) pairs whose outcome another member already emitted
        (read from the compare topic by a partition's new owner): a copy of the request read here
        is then a duplicate, not a new pair."""
        for req_hash, candidate in pairs:
            done = self._finished.get(req_hash)
            if done is None or candidate not in _candidates(done):
                self._finish(req_hash, candidate)

    def forget_finished(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Forget that (``req_hash``, candidate) pairs left: their outcome was built but given up
        before it was shipped, so their records, read again, are new pairs, not duplicates."""
        for req_hash, candidate in pairs:
            self._timed_out.pop((req_hash, candidate), None)
            done = self._finished.get(req_hash)
            if done is None:
                continue
            left = tuple(c for c in _candidates(done) if c != candidate)
            if not left:
                del self._finished[req_hash]
            else:
                self._finished[req_hash] = left if len(left) > 1 else left[0]

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> int:
        """Forget entries of revoked partitions (their new owner re-reads them). Returns count."""
        gone = set(partitions)
        req = [h for h, e in self._requests.items() if (e.ref[0], e.ref[1]) in gone]
        res = [k for k, r in self._results.items() if (r.ref[0], r.ref[1]) in gone]
        for h in req:
            del self._requests[h]
        for k in res:
            del self._results[k]
        return len(req) + len(res)
