"""The topic registry: every topic Shadowlane uses, its key, value schema, producers, consumers.

Names are logical here (``requests``); the concrete name comes from ``TopicSettings`` (prefix
``shadowlane.`` by default) so deployments can rename without touching the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.base import WireModel
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.control import ControlRecord
from shadowlane.contracts.dead_letter import DeadLetter
from shadowlane.contracts.drift_alert import DriftAlert
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.contracts.window_state import WindowState
from shadowlane.contracts.window_summary import WindowSummary


@dataclass(frozen=True, slots=True)
class TopicSpec:
    logical: str
    key: str
    value: type[WireModel]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    co_partitioned_with: tuple[str, ...] = ()
    description: str = ""


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        logical="requests",
        key="req_hash",
        value=RequestEnvelope,
        producers=("publish hook (ShadowPublisher / ShadowMirrorMiddleware)",),
        consumers=("shadow workers (one group per candidate)", "comparator"),
        co_partitioned_with=("shadow-results",),
        description="sanitized prod requests with the prod answer and recorded tool I/O",
    ),
    TopicSpec(
        logical="shadow-results",
        key="req_hash",
        value=ShadowResult,
        producers=("shadow workers",),
        consumers=("comparator",),
        co_partitioned_with=("requests",),
        description="one record per (request, candidate) replay",
    ),
    TopicSpec(
        logical="compare",
        key="req_hash",
        value=Comparison,
        producers=("comparator",),
        consumers=("dashboards, gates, reports, `shadowlane tail`, CompareReader",),
        description="per-request prod vs candidate comparisons, complete or timed out",
    ),
    TopicSpec(
        logical="compare.summary",
        key="candidate",
        value=WindowSummary,
        producers=("comparator",),
        consumers=("gates (`shadowlane gate`), dashboards, reports",),
        description="tumbling-window summaries per candidate / endpoint / tenant, mergeable partials",
    ),
    TopicSpec(
        logical="compare.state",
        key="<comparator group>/<input partition>",
        value=WindowState,
        producers=("comparator (exactly-once: in the transaction of each input partition)",),
        consumers=("comparator (a partition's next owner)",),
        description="compacted: per comparator group and input partition, the open windows and the "
        "pairs emitted past the committed offsets, as of its last transaction",
    ),
    TopicSpec(
        logical="alerts",
        key="candidate",
        value=DriftAlert,
        producers=("comparator",),
        consumers=("operators, paging, rollout control",),
        description="windows whose mean ΔS or λ flip rate crossed its threshold",
    ),
    TopicSpec(
        logical="dlq",
        key="req_hash (or the source key)",
        value=DeadLetter,
        producers=("shadow workers", "comparator"),
        consumers=("operators",),
        description="records that could not be processed, with the reason and the raw bytes",
    ),
    TopicSpec(
        logical="control",
        key="kind:name",
        value=ControlRecord,
        producers=("operators and CI (signed manifests, route configs, kill switches)", "rollout controller"),
        consumers=("publish hooks, routers, shadow workers, comparator, gates (ControlState)",),
        description="signed configs in force, compacted: the latest record per kind:name; unsigned, "
        "tampered or replayed records are refused and the previous config stays",
    ),
    TopicSpec(
        logical="control-log",
        key="kind:name",
        value=ControlRecord,
        producers=("control publishers (every record they put on control, first here)",),
        consumers=("every ControlState consumer, with the control topic",),
        description="append-only history of every signed control record (never compacted, no "
        "retention limit): a fresh process takes, per kind:name, the newest genuine record of "
        "both topics, so nothing written to the compacted topic can hide or roll back a config",
    ),
    TopicSpec(
        logical="audit",
        key="name",
        value=AuditEvent,
        producers=("control publishers", "ControlState consumers", "gates", "rollout controller"),
        consumers=("operators, compliance, incident review",),
        description="who / what / why of every config change, refused config and gate decision",
    ),
)


def spec(logical: str) -> TopicSpec:
    for topic in TOPICS:
        if topic.logical == logical:
            return topic
    raise KeyError(logical)
