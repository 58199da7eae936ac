"""The one frozen settings object, built once at the entry point and passed down.

Every value can come from the environment (prefix ``SHADOWLANE_``, nested with ``__``, e.g.
``SHADOWLANE_SHADOW__RATE_CAP=20``). ``KAFKA_BOOTSTRAP_SERVERS`` is honoured as-is: when it is set
every command talks to that cluster, otherwise to the local broker that ``shadowlane kafka start``
runs under the state folder.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def project_root() -> Path:
    """The source checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "deploy").is_dir():
        return here
    return Path.cwd()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """How to reach the cluster. ``bootstrap_servers=None`` means the local broker."""

    bootstrap_servers: str | None = None
    client_id: str = "shadowlane"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    request_timeout_ms: int = 30_000


class TopicSettings(_Frozen):
    """Topic names (prefixed) and the shape new topics are created with."""

    prefix: str = "shadowlane."
    requests: str = "requests"
    shadow_results: str = "shadow-results"
    compare: str = "compare"
    dlq: str = "dlq"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
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
    def dlq_topic(self) -> str:
        return self.name(self.dlq)


class HookSettings(_Frozen):
    """The publish hook inside the prod service."""

    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    salt: str = "shadowlane-v1"
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=256, ge=1)
    linger_ms: int = Field(default=5, ge=0)
    drop_fields: tuple[str, ...] = ()
    endpoint_paths: tuple[str, ...] = ("/v1/chat/completions",)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


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
    readonly_tools: tuple[str, ...] = ()
    tool_stubs: dict[str, str] = Field(default_factory=dict)
    group_prefix: str = "shadowlane.shadow."


class CompareSettings(_Frozen):
    """The comparator's consumer group and join window."""

    group_id: str = "shadowlane.compare"
    candidates: tuple[str, ...] = ("candidate",)
    window_s: float = Field(default=120.0, gt=0.0)
    embedder: str = "minilm"
    embed_url: str | None = None
    embed_model: str = "text-embedding-3-small"
    embed_batch: int = Field(default=16, ge=1)
    embed_api_key: SecretStr | None = None
    max_pending: int = Field(default=200_000, ge=1)


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
    state_dir: Path = Field(default_factory=lambda: project_root() / ".state")
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    hook: HookSettings = HookSettings()
    shadow: ShadowSettings = ShadowSettings()
    compare: CompareSettings = CompareSettings()

    @property
    def kafka_pom(self) -> Path:
        return project_root() / "deploy" / "kafka" / "pom.xml"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides (CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that rebuild ``settings`` in a child process (secrets excluded)."""
    env: dict[str, str] = {"SHADOWLANE_STATE_DIR": str(settings.state_dir)}
    bootstrap = settings.bootstrap_servers or settings.kafka.bootstrap_servers
    if bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    for section in ("kafka", "topics", "hook", "shadow", "compare"):
        part: BaseModel = getattr(settings, section)
        for name, value in part.model_dump(mode="python").items():
            if value is None or isinstance(value, SecretStr):
                continue
            key = f"SHADOWLANE_{section.upper()}__{name.upper()}"
            env[key] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return env
