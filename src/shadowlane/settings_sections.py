"""The sections of the settings (``kafka``, ``topics``, ``hook``, ``shadow``, ``compare``,
``control``): one frozen model each, every field with its default, bounds and a description.

The descriptions are the content of ``docs/settings-reference.md``
(:mod:`shadowlane.settings_reference`). Each section forbids unknown fields.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from shadowlane.compare.pins import PinHeaders

NativePath = Literal["auto", "native", "python"]


def _drain_timeout(what: str) -> float:
    """The ``drain_timeout_s`` field of a worker's settings."""
    return Field(
        default=10.0, gt=0.0, description=f"seconds, at shutdown or revocation: how long {what} may finish"
    )


def _startup_timeout() -> float:
    """The ``startup_timeout_s`` field of a worker's settings (``docs/docker.md``)."""
    return Field(
        default=300.0,
        ge=0.0,
        description="seconds a starting worker retries a broker it cannot use (down, refusing the "
        "credentials, failing TLS, unknown host) before it exits 3 naming the cause; 0: forever",
    )


def _dedupe_ttl(default: float, what: str) -> float:
    """The ``dedupe_ttl_s`` field of a worker's settings (retry storms, ``docs/delivery.md``)."""
    return Field(default=default, ge=0.0, description=f"seconds; {what}; 0: off")


def _exactly_once(what: str) -> bool:
    """The ``exactly_once`` field of a worker's settings (``docs/delivery.md``)."""
    return Field(
        default=True,
        description=f"write {what} and the consumed offsets in one Kafka transaction per input "
        "partition (read_committed readers see each once); false: at-least-once, a little cheaper",
    )


def _commit_interval() -> float:
    """The ``commit_interval_s`` field of a worker's settings."""
    return Field(
        default=0.5,
        gt=0.0,
        le=30.0,
        description="seconds between commits (with exactly_once: how long output waits to be visible)",
    )


def _topic(default: str, what: str) -> str:
    """A topic's short name (the prefix goes in front)."""
    return Field(default=default, description=f"short name of the topic of {what}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """How to reach the cluster. ``bootstrap_servers=None`` means the local broker."""

    bootstrap_servers: str | None = Field(
        default=None,
        description="host:port[,host:port…]; none: KAFKA_BOOTSTRAP_SERVERS, else the local broker",
    )
    client_id: str = Field(default="shadowlane", description="client id every Kafka client presents")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how clients talk to the brokers"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        default=None, description="required with a SASL_ security_protocol"
    )
    sasl_username: str | None = Field(default=None, description="for PLAIN and SCRAM")
    sasl_password: SecretStr | None = Field(default=None, description="for PLAIN and SCRAM")
    sasl_oauth_token_provider: str | None = Field(
        default=None,
        description="for OAUTHBEARER: 'module:attribute' of a callable returning an aiokafka "
        "AbstractTokenProvider (called once per client)",
    )
    ssl_cafile: str | None = Field(default=None, description="CA bundle (PEM); none: the system CAs")
    ssl_certfile: str | None = Field(default=None, description="client certificate (PEM) for mTLS")
    ssl_keyfile: str | None = Field(default=None, description="the client certificate's private key (PEM)")
    ssl_key_password: SecretStr | None = Field(default=None, description="password of ssl_keyfile, if any")
    ssl_check_hostname: bool = Field(default=True, description="check the brokers' certificates name them")
    request_timeout_ms: int = Field(default=30_000, description="milliseconds a request to a broker may take")

    @model_validator(mode="after")
    def _security_complete(self) -> Self:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl_mechanism")
        if self.sasl_mechanism == "OAUTHBEARER" and not self.sasl_oauth_token_provider:
            raise ValueError(
                "sasl_mechanism OAUTHBEARER needs sasl_oauth_token_provider ('module:attribute')"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and self.sasl_username is None:
            raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mTLS needs both)")
        return self


class TopicSettings(_Frozen):
    """Topic names (prefixed) and the shape new topics are created with."""

    prefix: str = Field(default="shadowlane.", description="put in front of every topic's short name")
    requests: str = _topic("requests", "request envelopes from the hook")
    shadow_results: str = _topic("shadow-results", "the candidates' replies")
    compare: str = _topic("compare", "comparisons (one per request and candidate)")
    summary: str = _topic("compare.summary", "window summaries")
    compare_state: str = _topic("compare.state", "the comparator's window state (compacted)")
    alerts: str = _topic("alerts", "alerts")
    dlq: str = _topic("dlq", "dead letters")
    control: str = _topic("control", "signed configs and kill switches (compacted)")
    control_log: str = _topic("control-log", "every signed control record (never compacted)")
    audit: str = _topic("audit", "the audit trail of control commands")
    partitions: int = Field(default=6, ge=1, description="partitions of each new topic")
    replication_factor: int | None = Field(
        default=None, ge=1, description="copies of each partition; None: min(3, brokers in the cluster)"
    )
    min_insync_replicas: int = Field(
        default=2, ge=1, description="acks=all waits for this many copies (capped at the replication factor)"
    )
    retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000, description="milliseconds new topics keep records (7 days)"
    )

    def name(self, short: str) -> str:
        return f"{self.prefix}{short}"

    @property
    def requests_topic(self) -> str:
        return self.name(self.requests)

    @property
    def shadow_results_topic(self) -> str:
        return self.name(self.shadow_results)

    @property
    def compare_topic(self) -> str:
        return self.name(self.compare)

    @property
    def summary_topic(self) -> str:
        return self.name(self.summary)

    @property
    def compare_state_topic(self) -> str:
        """The comparator's window state per input partition (exactly-once), compacted."""
        return self.name(self.compare_state)

    @property
    def alerts_topic(self) -> str:
        return self.name(self.alerts)

    @property
    def dlq_topic(self) -> str:
        return self.name(self.dlq)

    @property
    def control_topic(self) -> str:
        """Signed configs and kill switches; compacted (latest record per ``kind:name``)."""
        return self.name(self.control)

    @property
    def control_log_topic(self) -> str:
        """Every signed control record ever published, append-only (never compacted, no time
        retention): what compaction of the control topic can never take away."""
        return self.name(self.control_log)

    @property
    def audit_topic(self) -> str:
        return self.name(self.audit)

    def all_topics(self) -> list[str]:
        return [
            self.requests_topic,
            self.shadow_results_topic,
            self.compare_topic,
            self.summary_topic,
            self.compare_state_topic,
            self.alerts_topic,
            self.dlq_topic,
            self.control_topic,
            self.control_log_topic,
            self.audit_topic,
        ]


class HookSettings(_Frozen):
    """The publish hook inside the prod service."""

    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="share of requests published")
    salt: str = Field(
        default="shadowlane-v1", description="salt of the sampling hash (the same request: the same choice)"
    )
    queue_size: int = Field(
        default=10_000, ge=1, description="requests waiting to be sent; past it new ones are dropped"
    )
    batch_size: int = Field(default=256, ge=1, description="envelopes built and sent at a time")
    linger_ms: int = Field(default=5, ge=0, description="milliseconds between polls of the queue")
    drop_fields: tuple[str, ...] = Field(
        default=(), description="extra keys removed from every request (on top of the built-in list)"
    )
    strict: bool = Field(
        default=False,
        description="replace every free-text value outside strict_allow by its salted hash (after "
        "masking): nothing a person wrote leaves prod; answers can no longer be compared by meaning",
    )
    strict_allow: tuple[str, ...] = Field(
        default=("model", "role", "name", "type", "id", "tool_call_id", "finish_reason", "object"),
        description="keys whose text values strict mode keeps (masked)",
    )
    endpoint_paths: tuple[str, ...] = Field(
        default=("/v1/chat/completions",), description="request paths the ASGI middleware captures"
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger request bodies are not captured (counted)"
    )
    native_path: NativePath = Field(
        default="auto",
        description="the sanitizer's engine: auto (native when shadowlane_native is installed), "
        "native (refused at start without it), python",
    )
    served_model_pin: str | None = Field(
        default=None,
        description="pin name prod's response `model` is recorded under in the envelope's served "
        "pins, checked against its pins; none: not recorded",
    )
    served_pin_headers: PinHeaders = Field(
        default_factory=dict,
        description="prod response header -> pin name recorded in the served pins (the ASGI "
        "middleware); a header a response lacks is recorded empty and counts as a pin mismatch",
    )


class ShadowSettings(_Frozen):
    """One shadow consumer group, i.e. one candidate."""

    candidate: str = Field(default="candidate", description="the candidate's name (results and group id)")
    candidate_url: str | None = Field(default=None, description="the candidate's OpenAI-compatible base URL")
    candidate_model: str | None = Field(
        default=None, description="model name sent to the candidate; none: the request's own"
    )
    candidate_api_key: SecretStr | None = Field(default=None, description="bearer token for the candidate")
    pins: dict[str, str] = Field(
        default_factory=dict, description="name -> value recorded with each result (model revision, …)"
    )
    served_model_pin: str | None = Field(
        default=None,
        description="pin name the model a reply names (its `model`) is recorded under in the "
        "result's served pins, checked against pins; none: not recorded",
    )
    served_pin_headers: PinHeaders = Field(
        default_factory=dict,
        description="response header -> pin name recorded in the result's served pins; a header a "
        "response lacks is recorded empty and counts as a pin mismatch",
    )
    rate_cap: float = Field(
        default=50.0, gt=0.0, description="calls per second to the candidate, for the whole group"
    )
    concurrency: int = Field(
        default=8, ge=1, description="calls in flight per member (and threads of a sync --callable)"
    )
    timeout_s: float = Field(default=30.0, gt=0.0, description="seconds one call to the candidate may take")
    max_attempts: int = Field(default=3, ge=1, description="calls per replay, the first included")
    backoff_base_s: float = Field(default=0.2, ge=0.0, description="seconds before the first retry")
    backoff_max_s: float = Field(default=5.0, ge=0.0, description="longest wait between retries, in seconds")
    max_tool_rounds: int = Field(default=4, ge=0, description="tool-call rounds per replay")
    drain_timeout_s: float = _drain_timeout("replays and dead letters in flight")
    startup_timeout_s: float = _startup_timeout()
    dedupe_ttl_s: float = _dedupe_ttl(300.0, "copies of a request (same req_hash) within it replay once")
    exactly_once: bool = _exactly_once("shadow results")
    commit_interval_s: float = _commit_interval()
    readonly_tools: tuple[str, ...] = Field(
        default=(), description="tools answered from recordings or stubs; every other tool is blocked"
    )
    tool_stubs: dict[str, str] = Field(
        default_factory=dict, description="tool name -> the answer it gets when nothing was recorded"
    )
    group_prefix: str = Field(
        default="shadowlane.shadow.", description="consumer group id: this prefix and the candidate's name"
    )
    lambda_ratio: float = Field(
        default=0.1, ge=0.0, le=1.0, description="share of requests replayed extra times for λ"
    )
    lambda_seeds: int = Field(default=2, ge=0, le=8, description="seeded replays per λ-sampled request")
    lambda_paraphrases: int = Field(default=3, ge=0, le=3, description="paraphrase replays (when carried)")
    lambda_salt: str = Field(
        default="shadowlane-lambda-v1", description="salt of the λ-sampling hash (same for every group)"
    )


class ModelPrice(_Frozen):
    """USD per million tokens."""

    input_per_mtok: float = Field(ge=0.0, description="USD per million input tokens")
    output_per_mtok: float = Field(ge=0.0, description="USD per million output tokens")


class CompareSettings(_Frozen):
    """The comparator's consumer group, join window, metric definitions, windows and alerts."""

    group_id: str = Field(default="shadowlane.compare", description="the comparator's consumer group id")
    candidates: tuple[str, ...] = Field(
        default=("candidate",), description="candidates whose results are joined with prod"
    )
    window_s: float = Field(
        default=120.0, gt=0.0, description="seconds a request waits for its results before it is judged"
    )
    embedder: str = Field(
        default="minilm",
        description="ΔS embeddings: minilm (local), static (opt-in: distilled from minilm, faster, "
        "less faithful), openai (embed_url), none (no ΔS)",
    )
    native_path: NativePath = Field(
        default="auto",
        description="the hot path: auto (native when shadowlane_native is installed), native, python",
    )
    embed_url: str | None = Field(default=None, description="OpenAI-compatible base URL for embedder openai")
    embed_model: str = Field(default="text-embedding-3-small", description="model for embedder openai")
    embed_batch: int = Field(default=16, ge=1, description="texts per embedding call")
    embed_api_key: SecretStr | None = Field(default=None, description="bearer token for embed_url")
    embed_cache_entries: int = Field(
        default=50_000,
        ge=0,
        description="distinct texts whose embeddings are kept (LRU by text and model); 0 = no cache",
    )
    embed_cache_mb: int = Field(
        default=128, ge=1, description="MiB of cached embedding vectors (float32 × dimensions each)"
    )
    embed_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="where minilm (and static's one-off distillation) runs: auto (a GPU when "
        "onnxruntime-gpu is installed and sees one, else the CPU), cpu, cuda (a GPU, or a "
        "configuration error at start); the embedder's name, and so ΔS's definition, is the same on either",
    )
    max_pending: int = Field(
        default=200_000,
        ge=1,
        description="requests and results waiting to be joined; past it, the oldest expire",
    )
    delta_s_backlog_s: float = Field(
        default=5.0,
        gt=0.0,
        description="seconds of ΔS work that may wait (joined pairs, at the embedder's measured rate; "
        "64 pairs until measured, never under 32); past it the comparator pauses fetching until half "
        "is done (counted: intake_paused_seconds); keep it under drain_timeout_s",
    )
    delta_s_backlog_max: int = Field(
        default=20_000, ge=1, description="joined pairs that may wait for ΔS, whatever the rate"
    )
    drain_timeout_s: float = _drain_timeout("the ΔS backlog, unacknowledged output and dead letters")
    startup_timeout_s: float = _startup_timeout()
    exactly_once: bool = _exactly_once("comparisons, window summaries, alerts and the window state")
    commit_interval_s: float = _commit_interval()
    # off by default: comparisons do not name the group that wrote them, so this is for a group
    # that is the only writer of its compare topic (read back on every rebalance: keep it short)
    dedupe_ttl_s: float = _dedupe_ttl(
        0.0, "a partition's new owner learns the pairs emitted within it (only writer of the compare topic)"
    )
    baseline_candidate: str | None = Field(
        default="baseline", description="the noise-floor shadow (prod model + pins); None disables"
    )
    lambda_threshold: float = Field(
        default=0.40, ge=0.0, le=1.0, description="λ convergent: every pairwise ΔS of λ replays ≤ this"
    )
    grader: Literal["contains", "exact", "delta_s"] = Field(
        default="contains", description="how an answer counts as solved against the reference"
    )
    solved_max_delta_s: float = Field(default=0.05, ge=0.0, le=1.0, description="'delta_s' grader cutoff")
    citation_pattern: str = Field(
        default=r"\[(?:doc|src|cite):([^\]\s]+)\]", description="regex; group 1 is a cited id"
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="model -> {input_per_mtok, output_per_mtok}: USD per million tokens, for cost",
    )
    summary_window_s: float = Field(default=60.0, gt=0.0, description="seconds per window summary")
    summary_grace_s: float = Field(
        default=10.0, ge=0.0, description="seconds a window stays open for late results"
    )
    alert_delta_s_mean: float = Field(
        default=0.45, ge=0.0, le=1.0, description="alert when a window's mean ΔS is above this"
    )
    alert_lambda_flip_rate: float = Field(
        default=0.20, ge=0.0, le=1.0, description="alert when a window's λ flip rate is above this"
    )
    alert_min_samples: int = Field(default=20, ge=1, description="fewer observations never alert")


class ControlSettings(_Frozen):
    """Signed control records: the HMAC keys and how often consumers look for changes.

    There is no default key: until ``signing_keys`` is set (e.g.
    ``SHADOWLANE_CONTROL__SIGNING_KEYS='{"k2025": "<64 hex chars>"}'``) nothing can be signed, and
    a process that follows the control topic refuses to start (it could not tell a genuine kill
    switch from a forged one). Running without control is ``enabled = false``, said out loud at
    start. Keep the retired key next to the new one while rotating.
    """

    enabled: bool = Field(
        default=True,
        description="follow the signed control topic (kill switches, route configs); false runs "
        "without them, and says so at start",
    )
    signing_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="key id -> HMAC-SHA256 key (at least 32 characters)"
    )
    active_key_id: str | None = Field(default=None, description="key id new records are signed with")
    poll_interval_s: float = Field(
        default=0.25,
        gt=0.0,
        le=0.5,
        description="control topic poll interval: a kill switch lands within 2 s",
    )

    @model_validator(mode="after")
    def _keys_usable(self) -> Self:
        for key_id, key in self.signing_keys.items():
            if not key_id or len(key_id) > 64:
                raise ValueError(f"signing key id {key_id!r} must be 1 to 64 characters")
            if len(key.get_secret_value()) < 32:
                raise ValueError(f"signing key {key_id!r} is shorter than 32 characters")
        if self.active_key_id is not None and self.active_key_id not in self.signing_keys:
            raise ValueError(f"active_key_id {self.active_key_id!r} is not among signing_keys")
        return self
