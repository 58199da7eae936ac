"""load_settings: a config file (YAML or TOML) under the environment under explicit overrides; a
name that is not a setting, or a value that does not validate, is a ConfigError with one line per
problem that says where it was set, and never shows a secret."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from shadowlane.errors import ConfigError, ShadowlaneError
from shadowlane.kafka.bootstrap import configured_bootstrap
from shadowlane.settings import Settings, TopicSettings, load_settings, settings_env

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-0123456789-abcdefghijklmnop"  # 34 characters: long enough for a signing key

YAML = """
kafka: {bootstrap_servers: file-kafka:9092}
topics: {prefix: file.}
shadow:
  rate_cap: 20
  concurrency: 3
  pins: {model_rev: gpt-y, region: eu}
  candidate_api_key: from-the-file
compare:
  prices:
    gpt-y: {input_per_mtok: 0.15, output_per_mtok: 0.6}
"""

TOML = """
[kafka]
bootstrap_servers = "file-kafka:9092"

[topics]
prefix = "file."

[shadow]
rate_cap = 20
concurrency = 3
pins = { model_rev = "gpt-y", region = "eu" }
candidate_api_key = "from-the-file"

[compare]
prices = { "gpt-y" = { input_per_mtok = 0.15, output_per_mtok = 0.6 } }
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the machine running the tests; the state folder in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("SHADOWLANE_") or name.upper() == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path / "state"))


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(exc.value).splitlines()


@pytest.mark.parametrize(("name", "text"), [("s.yaml", YAML), ("s.yml", YAML), ("s.toml", TOML)])
def test_a_config_file_loads_nested_like_the_model(tmp_path: Path, name: str, text: str) -> None:
    settings = load_settings(config_file=_write(tmp_path, name, text))
    assert settings.kafka.bootstrap_servers == "file-kafka:9092"
    assert settings.topics.prefix == "file."
    assert settings.topics.partitions == TopicSettings().partitions  # untouched: the default
    assert (settings.shadow.rate_cap, settings.shadow.concurrency) == (20.0, 3)
    assert settings.shadow.pins == {"model_rev": "gpt-y", "region": "eu"}
    assert settings.shadow.candidate_api_key is not None
    assert settings.shadow.candidate_api_key.get_secret_value() == "from-the-file"
    assert settings.compare.prices["gpt-y"].output_per_mtok == 0.6
    assert settings.config_file == tmp_path / name


def test_overrides_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "s.yaml", YAML)
    monkeypatch.setenv("SHADOWLANE_SHADOW__RATE_CAP", "7")
    monkeypatch.setenv("SHADOWLANE_SHADOW__PINS", '{"model_rev": "env"}')
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env-kafka:9092")
    settings = load_settings(config_file=path)
    assert settings.shadow.rate_cap == 7.0  # the environment over the file
    assert settings.shadow.concurrency == 3  # the file, where the environment says nothing
    assert settings.shadow.pins == {"model_rev": "env"}  # a map is replaced whole, not merged
    assert settings.bootstrap_servers == "env-kafka:9092"
    overridden = load_settings(
        config_file=path, bootstrap_servers="flag:1", topics=TopicSettings(prefix="o.")
    )
    assert overridden.bootstrap_servers == "flag:1"  # overrides over the environment
    assert overridden.topics.prefix == "o."
    assert overridden.shadow.rate_cap == 7.0


def test_the_config_file_is_named_by_the_argument_else_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = _write(tmp_path, "env.toml", "[shadow]\nrate_cap = 11\n")
    monkeypatch.setenv("SHADOWLANE_CONFIG", str(from_env))
    assert load_settings().shadow.rate_cap == 11.0
    assert (
        load_settings(config_file=_write(tmp_path, "arg.yaml", "shadow: {rate_cap: 12}")).shadow.rate_cap
        == 12
    )
    monkeypatch.delenv("SHADOWLANE_CONFIG")
    assert load_settings().config_file is None


def test_a_child_process_rebuilds_the_settings_secrets_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "s.yaml", f"control:\n  signing_keys: {{k1: {SECRET}}}\n  active_key_id: k1\n")
    settings = load_settings(config_file=path)
    env = settings_env(settings)
    assert SECRET not in "".join(env.values())  # the secret stays in the file
    assert env["SHADOWLANE_CONFIG"] == str(path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = load_settings()
    assert child.control.signing_keys["k1"].get_secret_value() == SECRET
    assert child.model_dump() == settings.model_dump()


def test_an_unknown_variable_is_an_error_with_the_closest_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLANE_RATE_CAP", "5")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert _problems(exc) == [
        "SHADOWLANE_RATE_CAP: unknown setting; did you mean SHADOWLANE_SHADOW__RATE_CAP?"
    ]
    assert isinstance(exc.value, ShadowlaneError)


def test_every_unknown_variable_is_named_and_the_test_suites_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLANE_SHADW__RATE_CAP", "1")  # the section misspelt
    monkeypatch.setenv("SHADOWLANE_SHADOW__CANDIDATE__URL", "x")  # __ for _
    monkeypatch.setenv("SHADOWLANE_TEST_ANYTHING", "1")  # the test suite's own
    monkeypatch.setenv("SHADOWLANE_SHADOW__PINS__TEMPERATURE", "0")  # one entry of a map: fine
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert _problems(exc) == [
        "SHADOWLANE_SHADOW__CANDIDATE__URL: unknown setting; did you mean SHADOWLANE_SHADOW__CANDIDATE_URL?",
        "SHADOWLANE_SHADW__RATE_CAP: unknown setting; did you mean SHADOWLANE_SHADOW__RATE_CAP?",
    ]


def test_an_unknown_key_in_the_file_is_an_error_wherever_it_is(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.yaml",
        "shadw: {rate_cap: 1}\nshadow: {rate_capp: 1, rate_cap: 2}\n"
        "compare: {prices: {gpt-y: {input_per_mtok: 1, output_per_mtok: 1, cached: 1}}}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=path)
    where = f"config file {path}"
    assert _problems(exc) == [
        f"{where}: shadw: unknown setting; did you mean shadow?",
        f"{where}: shadow.rate_capp: unknown setting; did you mean shadow.rate_cap?",
        f"{where}: compare.prices.gpt-y.cached: unknown setting "
        "(compare.prices.gpt-y takes input_per_mtok, output_per_mtok)",
    ]


def test_config_file_is_not_a_key_of_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.toml", 'config_file = "other.toml"\n')
    with pytest.raises(ConfigError, match="config_file: not a key of a config file"):
        load_settings(config_file=path)


def test_a_bad_value_is_one_line_that_names_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHADOWLANE_SHADOW__RATE_CAP", "x")
    path = _write(tmp_path, "s.yaml", "kafka: {security_protocol: SASL_SSL}\nhook: {sample_ratio: 3}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=path)
    assert sorted(_problems(exc)) == [
        "hook.sample_ratio: must be ≤ 1 (got 3); set in config file " + str(path),
        "kafka: security_protocol SASL_SSL needs a sasl_mechanism; set in config file " + str(path),
        "shadow.rate_cap: must be a number (got 'x'); set by SHADOWLANE_SHADOW__RATE_CAP",
    ]


def test_a_list_in_the_environment_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLANE_HOOK__DROP_FIELDS", "ssn")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    (line,) = _problems(exc)
    assert line.startswith("SHADOWLANE_HOOK__DROP_FIELDS: hook.drop_fields: must be JSON in the environment")
    assert line.endswith("(got 'ssn')")


def test_secrets_are_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLANE_CONTROL__SIGNING_KEYS", f'{{"k1": "{SECRET}", "k2": {{"nested": 1}}}}')
    path = _write(tmp_path, "s.yaml", "kafka: {sasl_password: 123456789}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=path)
    text = str(exc.value)
    assert "control.signing_keys.k2: must be a string" in text
    assert "kafka.sasl_password: must be a string" in text
    for secret in (SECRET, "nested", "123456789"):
        assert secret not in text
    monkeypatch.setenv("SHADOWLANE_CONTROL__SIGNING_KEYS", f"{SECRET}")  # not JSON
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "control.signing_keys: must be JSON" in str(exc.value)
    assert SECRET not in str(exc.value)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("gone.yaml", None, "cannot read it"),
        ("s.ini", "[shadow]\n", "unknown kind of file '.ini'; use .yaml, .yml or .toml"),
        ("s.yaml", "shadow: {rate_cap: [1\n", "not valid YAML (line 2, column 1: "),
        ("s.toml", "[shadow\n", "not valid TOML ("),
        ("s.yaml", "- 1\n- 2\n", "the top level must be a mapping of sections"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(
    tmp_path: Path, name: str, text: str | None, problem: str
) -> None:
    path = tmp_path / name if text is None else _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=path)
    (line,) = _problems(exc)
    assert line.startswith(f"config file {path} (--config): {problem}")


def test_yaml_without_pyyaml_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # a core install: PyYAML comes with the extras
    path = _write(tmp_path, "s.yaml", YAML)
    with pytest.raises(ConfigError, match=r"needs PyYAML \(pip install pyyaml"):
        load_settings(config_file=path)
    assert load_settings(config_file=_write(tmp_path, "s.toml", TOML)).shadow.rate_cap == 20.0


def test_an_empty_yaml_file_is_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(config_file=_write(tmp_path, "s.yaml", "# nothing yet\n"))
    assert settings.shadow == Settings().shadow


def test_an_unrelated_state_dir_variable_is_not_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIR", "/somebody/elses")
    assert load_settings().state_dir == tmp_path / "state"
    assert load_settings(state_dir=tmp_path / "x").state_dir == tmp_path / "x"


def test_the_examples_in_the_configuration_page_load_and_agree(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    (yaml_text,) = re.findall(r"```yaml\n(# shadowlane\.yaml\n.*?)```", page, re.DOTALL)
    (toml_text,) = re.findall(r"```toml\n(# shadowlane\.toml\n.*?)```", page, re.DOTALL)
    from_yaml = load_settings(config_file=_write(tmp_path, "shadowlane.yaml", yaml_text))
    from_toml = load_settings(config_file=_write(tmp_path, "shadowlane.toml", toml_text))
    assert from_yaml.shadow.rate_cap == 20.0
    assert from_yaml.compare.prices["gpt-y"].input_per_mtok == 0.15
    assert from_yaml.model_dump(exclude={"config_file"}) == from_toml.model_dump(exclude={"config_file"})


@pytest.mark.parametrize(
    ("name", "text"), [("s.yaml", "bootstrap_servers: k:1\n"), ("s.toml", 'bootstrap_servers = "k:1"\n')]
)
def test_the_top_level_bootstrap_servers_is_not_a_key_of_the_file(
    tmp_path: Path, name: str, text: str
) -> None:
    """It would beat kafka.bootstrap_servers from the environment: the file over the environment."""
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=path)
    assert _problems(exc) == [
        f"config file {path}: bootstrap_servers: not a key of a config file; use kafka.bootstrap_servers"
    ]


@pytest.mark.parametrize(
    "variable",
    ["SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS", "SHADOWLANE_BOOTSTRAP_SERVERS"],
)
def test_the_environments_cluster_beats_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    path = _write(tmp_path, "s.yaml", "kafka: {bootstrap_servers: file-kafka:9092}\n")
    assert configured_bootstrap(load_settings(config_file=path)) == "file-kafka:9092"
    monkeypatch.setenv(variable, "env-kafka:9092")
    assert configured_bootstrap(load_settings(config_file=path)) == "env-kafka:9092"


def test_kubernetes_service_links_do_not_stop_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Service named shadowlane-kafka-bootstrap (a Strimzi cluster) in the namespace."""
    for name, value in {
        "SHADOWLANE_KAFKA_BOOTSTRAP_SERVICE_HOST": "10.0.0.7",
        "SHADOWLANE_KAFKA_BOOTSTRAP_SERVICE_PORT": "9092",
        "SHADOWLANE_KAFKA_BOOTSTRAP_SERVICE_PORT_TCP_CLIENTS": "9092",
        "SHADOWLANE_KAFKA_BOOTSTRAP_PORT": "tcp://10.0.0.7:9092",
        "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_TCP": "tcp://10.0.0.7:9092",
        "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_TCP_PROTO": "tcp",
        "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_TCP_PORT": "9092",
        "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_TCP_ADDR": "10.0.0.7",
        "SHADOWLANE_SERVICE_HOST": "10.0.0.8",
        "SHADOWLANE_PORT": "tcp://10.0.0.8:9108",
    }.items():
        monkeypatch.setenv(name, value)
    assert load_settings().kafka == Settings().kafka
    monkeypatch.setenv("SHADOWLANE_RATE_CAP", "5")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert _problems(exc) == [
        "SHADOWLANE_RATE_CAP: unknown setting; did you mean SHADOWLANE_SHADOW__RATE_CAP?"
    ]


HUNTER = "hunter2-correct-horse-battery-staple"
SECTIONS_WITH_SECRETS = [
    ("SHADOWLANE_KAFKA", "kafka", f'{{"sasl_password": "{HUNTER}"'),  # the closing brace forgotten
    ("SHADOWLANE_CONTROL", "control", f'{{"signing_keys": {{"k1": "{HUNTER}"}}'),
    ("SHADOWLANE_KAFKA", "kafka", f"sasl_password={HUNTER}"),
]


@pytest.mark.parametrize(("name", "section", "raw"), SECTIONS_WITH_SECRETS)
def test_a_section_variable_that_is_not_json_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, name: str, section: str, raw: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    (line,) = _problems(exc)
    assert line.startswith(f"{name}: {section}: must be JSON in the environment")
    assert "hunter2" not in line


@pytest.mark.parametrize(("section", "raw"), [(s, r) for _, s, r in SECTIONS_WITH_SECRETS])
def test_a_section_that_is_not_a_mapping_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, raw: str
) -> None:
    """The file's equivalent: the section as one string; and a JSON string in the environment."""
    path = _write(tmp_path, "s.toml", f"{section} = {json.dumps(raw)}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=path)
    (line,) = _problems(exc)
    assert line.startswith(f"{section}: must be a mapping")
    assert "hunter2" not in line
    monkeypatch.setenv(f"SHADOWLANE_{section.upper()}", json.dumps(raw))
    with pytest.raises(ConfigError) as exc:
        load_settings()
    (line,) = _problems(exc)
    assert line.startswith(f"{section}: must be a mapping")
    assert "hunter2" not in line
