"""The one frozen settings object, built once at the entry point and passed down.

:func:`load_settings` builds it from, lowest first: the defaults, a config file (``--config`` or
``$SHADOWLANE_CONFIG``; YAML or TOML, nested like the model: ``shadow: {rate_cap: 20}``), the
environment (prefix ``SHADOWLANE_``, nested with ``__``: ``SHADOWLANE_SHADOW__RATE_CAP=20``) and
explicit overrides. A name that is not a setting, in the file or among the ``SHADOWLANE_*``
variables, and a value that does not validate are a :class:`~shadowlane.errors.ConfigError` with
one line per problem (:mod:`shadowlane.settings_sources`).

``KAFKA_BOOTSTRAP_SERVERS`` is honoured as-is: when it is set every command talks to that cluster,
otherwise to the local broker that ``shadowlane kafka start`` runs under the state folder. The
sections are in :mod:`shadowlane.settings_sections`; ``docs/settings-reference.md`` lists every
field (:mod:`shadowlane.settings_reference`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import orjson
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shadowlane.errors import ConfigError
from shadowlane.settings_names import env_name
from shadowlane.settings_sections import (
    CompareSettings,
    ControlSettings,
    HookSettings,
    KafkaSettings,
    ModelPrice,
    ShadowSettings,
    TopicSettings,
)
from shadowlane.settings_sources import (
    CONFIG_VARIABLE,
    Layer,
    by_field_name,
    config_file_choice,
    env_layer,
    file_layer,
    merge,
    validation_problems,
)

__all__ = [
    "CompareSettings",
    "ControlSettings",
    "HookSettings",
    "KafkaSettings",
    "ModelPrice",
    "Settings",
    "ShadowSettings",
    "TopicSettings",
    "default_state_dir",
    "load_settings",
    "settings_env",
]

SECTIONS = ("kafka", "topics", "hook", "shadow", "compare", "control")


def default_state_dir() -> Path:
    """Where the local broker and the demo keep their files when ``$SHADOWLANE_HOME`` is not set:
    ``$XDG_STATE_HOME/shadowlane``, else ``~/.local/state/shadowlane``. Never the working directory."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "shadowlane"


class Settings(BaseSettings):
    """Everything a Shadowlane process needs; construct once with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="SHADOWLANE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SHADOWLANE_BOOTSTRAP_SERVERS"),
        description="the cluster every command, the hook and the workers talk to, over "
        "kafka.bootstrap_servers (so not a key of a config file); none: kafka.bootstrap_servers, "
        "else the local broker (shadowlane kafka start)",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        validation_alias=AliasChoices("SHADOWLANE_HOME", "SHADOWLANE_STATE_DIR"),
        description="where the local broker's jars and data and the demo's logs live; default "
        "$XDG_STATE_HOME/shadowlane, else ~/.local/state/shadowlane (never the working directory)",
    )
    config_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(CONFIG_VARIABLE),
        description="the YAML or TOML file read under the environment (shadowlane --config FILE "
        "wins over the variable); not a key of the file itself",
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


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """The settings from the defaults, the config file, the environment and ``overrides``, each
    over the one before.

    ``config_file``: a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file; None reads
    ``$SHADOWLANE_CONFIG`` when it is set. ``overrides`` are field values (``state_dir=...``) or
    whole sections. Raises :class:`ConfigError`, one line per problem, when a name is not a
    setting or a value does not validate.
    """
    problems: list[str] = []
    layers: list[Layer] = []  # lowest first
    chosen = config_file_choice(config_file, os.environ)
    if chosen is not None:
        from_file, unknown = file_layer(Settings, *chosen)
        layers.append(from_file)
        problems += unknown
    from_env, unknown = env_layer(Settings)
    layers.append(from_env)
    problems += unknown
    layers.append(Layer(by_field_name(Settings, overrides), "load_settings() arguments"))
    values: dict[str, object] = {"config_file": chosen[0]} if chosen is not None else {}
    for layer in layers:
        values = merge(Settings, values, layer.values)
    try:
        # every source is read: the model must not read its variables again (they would merge
        # under these values, maps key by key); "=" is in no variable's name
        settings = Settings(**values, _env_prefix="=")  # type: ignore[arg-type]
    except ValidationError as exc:
        problems += validation_problems(Settings, exc, layers[::-1])
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that rebuild ``settings`` in a child process (secrets excluded: the
    child reads them from the environment or the config file it inherits)."""
    env: dict[str, str] = {"SHADOWLANE_HOME": str(settings.state_dir)}
    if settings.config_file is not None:  # what the environment leaves to it: secrets, above all
        env[CONFIG_VARIABLE] = str(settings.config_file)
    bootstrap = settings.bootstrap_servers or settings.kafka.bootstrap_servers
    if bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    for section in SECTIONS:
        part: BaseModel = getattr(settings, section)
        for name, value in part.model_dump(mode="python").items():
            if value is None or isinstance(value, SecretStr):
                continue
            if (section, name) == ("control", "signing_keys"):  # secrets: children read them from the env
                continue
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            env[env_name(Settings, (section, name))] = text
    return env
