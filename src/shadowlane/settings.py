"""The one frozen settings object, built once at the entry point and passed down.

Every value can come from the environment (prefix ``SHADOWLANE_``, nested with ``__``, e.g.
``SHADOWLANE_SHADOW__RATE_CAP=20``). ``KAFKA_BOOTSTRAP_SERVERS`` is honoured as-is: when it is set
every command talks to that cluster, otherwise to the local broker that ``shadowlane kafka start``
runs under the state folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal, Self

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_state_dir() -> Path:
    """Where the local broker and the demo keep their files when ``$SHADOWLANE_HOME`` is not set:
    ``$XDG_STATE_HOME/shadowlane``, else ``~/.local/state/shadowlane``. Never the working directory."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "shadowlane"


def _drain_timeout(what: str) -> float:
    """The ``drain_timeout_s`` field of a worker's settings."""
    return Field(
        default=10.0, gt=0.0, description=f"seconds, at shutdown or revocation: how long {what} may finish"
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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """How to reach the cluster. ``bootstrap_servers=None`` means the local broker."""

    bootstrap_servers: str | None = None
    client_id: str = "shadowlane"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_oauth_token_provider: str | None = Field(
        default=None,
        description="for OAUTHBEARER: 'module:attribute' of a callable returning an aiokafka "
        "AbstractTokenProvider (called once per client)",
    )
    ssl_cafile: str | None = Field(default=None, description="CA bundle (PEM); none: the system CAs")
    ssl_certfile: str | None = Field(default=None, description="client certificate (PEM) for mTLS")
    ssl_keyfile: str | None = Field(default=None, description="the client certificate's private key (PEM)")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    request_timeout_ms: int = 30_000

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

    prefix: str = "shadowlane."
    requests: str = "requests"
    shadow_results: str = "shadow-results"
    compare: str = "compare"
    summary: str = "compare.summary"
    compare_state: str = "compare.state"
    alerts: str = "alerts"
    dlq: str = "dlq"
    control: str = "control"
    control_log: str = "control-log"
    audit: str = "audit"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int | None = Field(
        default=None, ge=1, description="copies of each partition; None: min(3, brokers in the cluster)"
    )
    min_insync_replicas: int = Field(
        default=2, ge=1, description="acks=all waits for this many copies (capped at the replication factor)"
    )
    retention_ms: int = 7 * 24 * 3600 * 1000

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

    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    salt: str = "shadowlane-v1"
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=256, ge=1)
    linger_ms: int = Field(default=5, ge=0)
    drop_fields: tuple[str, ...] = ()
    strict: bool = Field(
        default=False,
        description="replace every free-text value outside strict_allow by its salted hash (after "
        "masking): nothing a person wrote leaves prod; answers can no longer be compared by meaning",
    )
    strict_allow: tuple[str, ...] = Field(
        default=("model", "role", "name", "type", "id", "tool_call_id", "finish_reason", "object"),
        description="keys whose text values strict mode keeps (masked)",
    )
    endpoint_paths: tuple[str, ...] = ("/v1/chat/completions",)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    native_path: Literal["auto", "native", "python"] = Field(
        default="auto",
        description="the sanitizer's engine: auto (native when shadowlane_native is installed), "
        "native (refused at start without it), python",
    )


class ShadowSettings(_Frozen):
    """One shadow consumer group, i.e. one candidate."""

    candidate: str = "candidate"
    candidate_url: str | None = None
    candidate_model: str | None = None
    candidate_api_key: SecretStr | None = None
    pins: dict[str, str] = Field(default_factory=dict)
    rate_cap: float = Field(default=50.0, gt=0.0)
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=30.0, gt=0.0)
    max_attempts: int = Field(default=3, ge=1)
    backoff_base_s: float = Field(default=0.2, ge=0.0)
    backoff_max_s: float = Field(default=5.0, ge=0.0)
    max_tool_rounds: int = Field(default=4, ge=0)
    drain_timeout_s: float = _drain_timeout("replays and dead letters in flight")
    dedupe_ttl_s: float = _dedupe_ttl(300.0, "copies of a request (same req_hash) within it replay once")
    exactly_once: bool = _exactly_once("shadow results")
    commit_interval_s: float = _commit_interval()
    readonly_tools: tuple[str, ...] = ()
    tool_stubs: dict[str, str] = Field(default_factory=dict)
    group_prefix: str = "shadowlane.shadow."
    lambda_ratio: float = Field(
        default=0.1, ge=0.0, le=1.0, description="share of requests replayed extra times for λ"
    )
    lambda_seeds: int = Field(default=2, ge=0, le=8, description="seeded replays per λ-sampled request")
    lambda_paraphrases: int = Field(default=3, ge=0, le=3, description="paraphrase replays (when carried)")
    lambda_salt: str = "shadowlane-lambda-v1"


class ModelPrice(_Frozen):
    """USD per million tokens."""

    input_per_mtok: float = Field(ge=0.0)
    output_per_mtok: float = Field(ge=0.0)


class CompareSettings(_Frozen):
    """The comparator's consumer group, join window, metric definitions, windows and alerts."""

    group_id: str = "shadowlane.compare"
    candidates: tuple[str, ...] = ("candidate",)
    window_s: float = Field(default=120.0, gt=0.0)
    embedder: str = "minilm"
    native_path: Literal["auto", "native", "python"] = Field(
        default="auto",
        description="the hot path: auto (native when shadowlane_native is installed), native, python",
    )
    embed_url: str | None = None
    embed_model: str = "text-embedding-3-small"
    embed_batch: int = Field(default=16, ge=1)
    embed_api_key: SecretStr | None = None
    max_pending: int = Field(default=200_000, ge=1)
    drain_timeout_s: float = _drain_timeout("unacknowledged output and dead letters")
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
    grader: Literal["contains", "exact", "delta_s"] = "contains"
    solved_max_delta_s: float = Field(default=0.05, ge=0.0, le=1.0, description="'delta_s' grader cutoff")
    citation_pattern: str = Field(
        default=r"\[(?:doc|src|cite):([^\]\s]+)\]", description="regex; group 1 is a cited id"
    )
    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="model -> price")
    summary_window_s: float = Field(default=60.0, gt=0.0)
    summary_grace_s: float = Field(default=10.0, ge=0.0)
    alert_delta_s_mean: float = Field(default=0.45, ge=0.0, le=1.0)
    alert_lambda_flip_rate: float = Field(default=0.20, ge=0.0, le=1.0)
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


class Settings(BaseSettings):
    """Everything a Shadowlane process needs; construct once with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="SHADOWLANE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        populate_by_name=True,
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SHADOWLANE_BOOTSTRAP_SERVERS"),
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        validation_alias=AliasChoices("SHADOWLANE_HOME", "SHADOWLANE_STATE_DIR", "state_dir"),
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    hook: HookSettings = HookSettings()
    shadow: ShadowSettings = ShadowSettings()
    compare: CompareSettings = CompareSettings()
    control: ControlSettings = ControlSettings()

    @property
    def kafka_pom(self) -> Path:
        """The Maven pom of the local broker's jars, shipped inside the package (beside its log4j2.xml)."""
        return Path(str(resources.files("shadowlane.kafka.resources").joinpath("pom.xml")))


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides (CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that rebuild ``settings`` in a child process (secrets excluded)."""
    env: dict[str, str] = {"SHADOWLANE_HOME": str(settings.state_dir)}
    bootstrap = settings.bootstrap_servers or settings.kafka.bootstrap_servers
    if bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    for section in ("kafka", "topics", "hook", "shadow", "compare", "control"):
        part: BaseModel = getattr(settings, section)
        for name, value in part.model_dump(mode="python").items():
            if value is None or isinstance(value, SecretStr):
                continue
            if (section, name) == ("control", "signing_keys"):  # secrets: children read them from the env
                continue
            key = f"SHADOWLANE_{section.upper()}__{name.upper()}"
            env[key] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return env
