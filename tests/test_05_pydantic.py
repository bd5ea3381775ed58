"""Graded tests of chapter 5's exercise: a configuration system built on pydantic-settings.

Every test runs in an empty current folder with every ``APP_*`` variable removed, and
sets its own environment variables and ``.env`` files in temporary folders.
"""

from __future__ import annotations

import json
import logging
import os
import types
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from course.pytest_plugin import exercise
from course.testing import assert_same, same

Module = types.ModuleType
MonkeyPatch = pytest.MonkeyPatch

OPENAI_SECRET = "sk-test-7f3a9c1e5b2d8f604a1c"
ANTHROPIC_SECRET = "sk-ant-test-c0ffee5eed1234beef99"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if name.upper().startswith("APP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def write_env(folder: Path, name: str, **values: str) -> Path:
    path = folder / name
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), encoding="utf-8")
    return path


def settings_of(notebook: Module, value: object) -> BaseSettings:
    assert isinstance(value, notebook.AppSettings) and isinstance(value, BaseSettings), (
        f"expected an AppSettings (a pydantic-settings BaseSettings), got {type(value).__name__}"
    )
    return value


def text_of(value: object) -> str:
    """``str(value)`` as a plain str: a str subclass could answer ``in`` with whatever it likes."""
    return str.__str__(str(value))


def validation_locs(notebook: Module) -> list[tuple[int | str, ...]]:
    """Build AppSettings from the current environment; return the locations of its errors."""
    try:
        notebook.AppSettings()
    except ValidationError as exc:
        return [tuple(error["loc"]) for error in exc.errors()]
    return []


def secret_fragments(secret: str) -> list[str]:
    """The secret and every 6-character piece of its random part (after the well-known prefix)."""
    tail = secret.removeprefix("sk-ant-test-").removeprefix("sk-test-")
    return [secret] + [tail[i : i + 6] for i in range(len(tail) - 5)]


def assert_hidden(text: str, secret: str, where: str) -> None:
    for fragment in secret_fragments(secret):
        assert fragment not in text, (
            f"the secret (or the part {fragment!r} of it) appears in {where}: {text!r}"
        )


# ---------------------------------------------------------------- settings_sources


@exercise("settings_sources", points=1, hint="Compare every default and type with the tables; "
          "nested sections are models built with default_factory (or a default instance).")
def test_defaults(notebook: Module) -> None:
    settings = settings_of(notebook, notebook.AppSettings())
    assert_same(settings.profile, "dev", "profile")
    assert_same(settings.log_level, "INFO", "log_level")
    assert settings.openai_api_key is None and settings.anthropic_api_key is None, "keys default to None"
    for section in ("model", "retry", "features"):
        assert isinstance(getattr(settings, section), BaseModel), f"{section} should be a Pydantic model"
    assert_same(settings.model.name, "mock-gpt", "model.name")
    assert_same(settings.model.temperature, 0.2, "model.temperature")
    assert_same(settings.model.max_tokens, 512, "model.max_tokens")
    assert_same(settings.model.timeout_s, 30.0, "model.timeout_s")
    assert_same(settings.retry.max_attempts, 3, "retry.max_attempts")
    assert_same(settings.retry.base_delay_s, 0.5, "retry.base_delay_s")
    assert_same(settings.retry.max_delay_s, 8.0, "retry.max_delay_s")
    assert_same(settings.features.streaming, False, "features.streaming")
    assert_same(settings.features.response_cache, True, "features.response_cache")
    assert_same(settings.features.fallback_provider, False, "features.fallback_provider")


@exercise("settings_sources", points=1, hint="Set env_prefix='APP_' and env_nested_delimiter='__' in "
          "model_config; the field types do the conversion from strings.")
def test_reads_environment_variables(notebook: Module, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MODEL__TEMPERATURE", "0.7")
    monkeypatch.setenv("APP_MODEL__MAX_TOKENS", "1024")
    monkeypatch.setenv("APP_RETRY__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("APP_FEATURES__STREAMING", "true")
    monkeypatch.setenv("APP_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("APP_OPENAI_API_KEY", OPENAI_SECRET)
    settings = settings_of(notebook, notebook.AppSettings())
    assert_same(settings.model.temperature, 0.7, "model.temperature from APP_MODEL__TEMPERATURE")
    assert_same(settings.model.max_tokens, 1024, "model.max_tokens from APP_MODEL__MAX_TOKENS")
    assert_same(settings.retry.max_attempts, 5, "retry.max_attempts from APP_RETRY__MAX_ATTEMPTS")
    assert_same(settings.features.streaming, True, "features.streaming from APP_FEATURES__STREAMING")
    assert_same(settings.log_level, "DEBUG", "log_level from APP_LOG_LEVEL")
    assert isinstance(settings.openai_api_key, SecretStr), (
        f"openai_api_key should be a SecretStr, got {type(settings.openai_api_key).__name__}"
    )
    assert_same(settings.openai_api_key.get_secret_value(), OPENAI_SECRET,
                "openai_api_key.get_secret_value()")


@exercise("settings_sources", points=1, hint="env_file='.env' reads the file in the current folder; "
          "extra='ignore' skips keys that are not settings; environment variables beat the file.")
def test_reads_dotenv_and_environment_wins(notebook: Module, monkeypatch: MonkeyPatch) -> None:
    write_env(Path.cwd(), ".env", APP_MODEL__NAME="mock-claude", APP_MODEL__TEMPERATURE="1.0",
              APP_FEATURES__FALLBACK_PROVIDER="1", OTHER_TOOL_TOKEN="not-ours")
    monkeypatch.setenv("APP_MODEL__TEMPERATURE", "0.3")
    settings = settings_of(notebook, notebook.AppSettings())
    assert_same(settings.model.name, "mock-claude", "model.name from .env")
    assert_same(settings.features.fallback_provider, True, "features.fallback_provider from .env")
    assert_same(settings.model.temperature, 0.3, "model.temperature (the environment variable beats .env)")


@exercise("settings_sources", points=1, hint="Check each range with its boundaries: ge/le include the "
          "limit, gt excludes it. Keys need min_length=20; profile and log_level are Literals.")
def test_range_rules(notebook: Module, monkeypatch: MonkeyPatch) -> None:
    invalid = [
        ("APP_MODEL__TEMPERATURE", "2.01", ("model", "temperature")),
        ("APP_MODEL__TEMPERATURE", "-0.1", ("model", "temperature")),
        ("APP_MODEL__MAX_TOKENS", "0", ("model", "max_tokens")),
        ("APP_MODEL__MAX_TOKENS", "32001", ("model", "max_tokens")),
        ("APP_MODEL__TIMEOUT_S", "0", ("model", "timeout_s")),
        ("APP_MODEL__TIMEOUT_S", "121", ("model", "timeout_s")),
        ("APP_MODEL__NAME", "", ("model", "name")),
        ("APP_RETRY__MAX_ATTEMPTS", "11", ("retry", "max_attempts")),
        ("APP_RETRY__MAX_ATTEMPTS", "0", ("retry", "max_attempts")),
        ("APP_RETRY__BASE_DELAY_S", "0", ("retry", "base_delay_s")),
        ("APP_RETRY__MAX_DELAY_S", "301", ("retry", "max_delay_s")),
        ("APP_PROFILE", "qa", ("profile",)),
        ("APP_LOG_LEVEL", "TRACE", ("log_level",)),
        ("APP_FEATURES__STREAMING", "maybe", ("features", "streaming")),
        ("APP_OPENAI_API_KEY", "sk-too-short", ("openai_api_key",)),
        ("APP_ANTHROPIC_API_KEY", "sk-ant-too-short", ("anthropic_api_key",)),
    ]
    for name, value, loc in invalid:
        monkeypatch.setenv(name, value)
        locs = validation_locs(notebook)
        assert any(same(found, loc) for found in locs), (
            f"{name}={value!r} should fail validation at {loc}; errors were at {locs}"
        )
        monkeypatch.delenv(name)
    valid = [("APP_MODEL__TEMPERATURE", "2.0"), ("APP_MODEL__TEMPERATURE", "0"),
             ("APP_MODEL__MAX_TOKENS", "32000"), ("APP_MODEL__MAX_TOKENS", "1"),
             ("APP_MODEL__TIMEOUT_S", "120"), ("APP_RETRY__MAX_ATTEMPTS", "10"),
             ("APP_RETRY__MAX_ATTEMPTS", "1"), ("APP_RETRY__MAX_DELAY_S", "300"),
             ("APP_OPENAI_API_KEY", OPENAI_SECRET), ("APP_PROFILE", "staging")]
    for name, value in valid:
        monkeypatch.setenv(name, value)
        locs = validation_locs(notebook)
        assert not locs, f"{name}={value!r} is valid (a boundary), but validation failed at {locs}"
        monkeypatch.delenv(name)


@exercise("settings_sources", points=1, hint="A field_validator on max_delay_s can read base_delay_s from "
          "info.data; a model_validator(mode='after') on AppSettings checks the prod rule.")
def test_cross_field_rules(notebook: Module, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("APP_RETRY__BASE_DELAY_S", "2")
    monkeypatch.setenv("APP_RETRY__MAX_DELAY_S", "1.5")
    locs = validation_locs(notebook)
    assert any(same(found, ("retry", "max_delay_s")) for found in locs), (
        f"max_delay_s below base_delay_s should fail at ('retry', 'max_delay_s'); errors were at {locs}"
    )
    monkeypatch.setenv("APP_RETRY__MAX_DELAY_S", "2")
    assert not validation_locs(notebook), "max_delay_s equal to base_delay_s is allowed"

    monkeypatch.setenv("APP_PROFILE", "prod")
    with pytest.raises(ValidationError) as caught:
        notebook.AppSettings()
    message = text_of(caught.value)
    for name in ("APP_OPENAI_API_KEY", "APP_ANTHROPIC_API_KEY"):
        assert name in message, f"prod without a key should fail with a message naming {name}: {message}"
    monkeypatch.setenv("APP_ANTHROPIC_API_KEY", ANTHROPIC_SECRET)
    settings = settings_of(notebook, notebook.AppSettings())
    assert_same(settings.profile, "prod", "profile")

    with pytest.raises(ValidationError):
        notebook.ModelParams(temprature=0.5)  # a typo in a nested section is an error, not ignored


def probe_validated_values_survive(nb: Module) -> dict[str, object]:
    """What the validators leave behind: a valid max_delay_s, and the settings object
    that model_validate returns (and any warning pydantic gives about a validator)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = nb.RetryPolicy(base_delay_s=1.0, max_delay_s=20.0)
        validated = nb.AppSettings.model_validate({"profile": "staging"})
    value = policy.max_delay_s
    return {
        "max_delay_s": value if type(value) in (int, float) else repr(value),
        "validated": type(validated).__name__ if validated is not None else None,
        "is_settings": isinstance(validated, nb.AppSettings),
        "profile": str.__str__(validated.profile) if isinstance(validated, nb.AppSettings) else None,
        "warnings": [str(w.message) for w in caught],
    }


@exercise("settings_sources", points=1, hint="A field_validator returns the value it accepts (return "
          "value), and a model_validator(mode='after') returns self: whatever a validator returns is "
          "what the model keeps.")
def test_validators_return_what_they_accept(notebook: Module) -> None:
    got = probe_validated_values_survive(notebook)
    assert got["max_delay_s"] == 20.0, (
        f"RetryPolicy(base_delay_s=1.0, max_delay_s=20.0).max_delay_s should be 20.0, got "
        f"{got['max_delay_s']!r}: does the field_validator return the value?"
    )
    assert got["is_settings"] is True and got["profile"] == "staging", (
        "AppSettings.model_validate({'profile': 'staging'}) should return the settings, got "
        f"{got['validated']!r}: does the model_validator return self?"
    )
    warned = got["warnings"]
    complaints = [w for w in warned if "returning a value other than `self`" in w] if isinstance(
        warned, list) else []
    assert not complaints, f"pydantic warns about a model validator: {complaints[0]}"


# ---------------------------------------------------------------- settings_profiles


def profile_folder(folder: Path) -> Path:
    write_env(folder, ".env", APP_MODEL__NAME="mock-gpt-mini", APP_MODEL__TEMPERATURE="0.5",
              APP_RETRY__MAX_ATTEMPTS="4")
    write_env(folder, ".env.dev", APP_MODEL__TEMPERATURE="1.0", APP_LOG_LEVEL="DEBUG")
    write_env(folder, ".env.staging", APP_MODEL__TEMPERATURE="0.1")
    write_env(folder, ".env.prod", APP_MODEL__TEMPERATURE="0", APP_OPENAI_API_KEY=OPENAI_SECRET,
              APP_LOG_LEVEL="WARNING")
    return folder


@exercise("settings_profiles", points=1, hint="Read .env, then .env.<profile>: pass both to AppSettings "
          "with _env_file=(...); a later file overrides an earlier one.")
def test_profile_chosen_by_environment_variable(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    folder = profile_folder(tmp_path)
    expected = {"dev": (1.0, "DEBUG"), "staging": (0.1, "INFO"), "prod": (0.0, "WARNING")}
    for profile, (temperature, log_level) in expected.items():
        monkeypatch.setenv("APP_PROFILE", profile)
        settings = settings_of(notebook, notebook.load_settings(folder))
        assert_same(settings.profile, profile, f"profile with APP_PROFILE={profile}")
        assert_same(settings.model.temperature, temperature,
                    f"model.temperature in {profile} (from .env.{profile})")
        assert_same(settings.log_level, log_level, f"log_level in {profile}")
        assert_same(settings.model.name, "mock-gpt-mini", f"model.name in {profile} (from the shared .env)")
        assert_same(settings.retry.max_attempts, 4, f"retry.max_attempts in {profile} (from the shared .env)")
    monkeypatch.delenv("APP_PROFILE")
    settings = settings_of(notebook, notebook.load_settings(folder))
    assert_same(settings.profile, "dev", "profile when APP_PROFILE is not set anywhere")
    assert_same(settings.model.temperature, 1.0, "model.temperature without APP_PROFILE (dev reads .env.dev)")


@exercise("settings_profiles", points=1, hint="When APP_PROFILE is not in the environment, look it up in "
          "env_dir/.env (dotenv_values); the environment variable still wins over the file.")
def test_profile_chosen_by_dotenv(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    folder = profile_folder(tmp_path)
    with (folder / ".env").open("a", encoding="utf-8") as env:
        env.write("APP_PROFILE=staging\n")
    settings = settings_of(notebook, notebook.load_settings(folder))
    assert_same(settings.profile, "staging", "profile from APP_PROFILE in .env")
    assert_same(settings.model.temperature, 0.1,
                "model.temperature when .env says staging (from .env.staging)")
    monkeypatch.setenv("APP_PROFILE", "dev")
    settings = settings_of(notebook, notebook.load_settings(folder))
    assert_same(settings.profile, "dev", "profile when the environment says dev and .env says staging")
    assert_same(settings.model.temperature, 1.0,
                "model.temperature when APP_PROFILE=dev beats .env (from .env.dev)")


@exercise("settings_profiles", points=1, hint="Build every path from env_dir, not the current folder; a "
          "missing profile file is skipped; environment variables beat every file.")
def test_only_env_dir_and_environment_wins(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    write_env(Path.cwd(), ".env", APP_MODEL__NAME="from-the-current-folder", APP_PROFILE="prod")
    write_env(Path.cwd(), ".env.dev", APP_MODEL__MAX_TOKENS="7")
    folder = tmp_path / "config"
    folder.mkdir()
    write_env(folder, ".env", APP_MODEL__NAME="mock-claude")
    write_env(folder, ".env.staging", APP_MODEL__TEMPERATURE="0.9", APP_MODEL__MAX_TOKENS="2048")
    settings = settings_of(notebook, notebook.load_settings(str(folder)))  # a str works too
    assert_same(settings.model.name, "mock-claude", "model.name (read env_dir/.env, not ./.env)")
    assert_same(settings.profile, "dev", "profile (env_dir/.env does not set it)")
    assert_same(settings.model.max_tokens, 512,
         "model.max_tokens (there is no env_dir/.env.dev, and ./.env.dev is not ours)")
    monkeypatch.setenv("APP_PROFILE", "staging")
    monkeypatch.setenv("APP_MODEL__TEMPERATURE", "0.25")
    settings = settings_of(notebook, notebook.load_settings(folder))
    assert_same(settings.model.max_tokens, 2048, "model.max_tokens from .env.staging")
    assert_same(settings.model.temperature, 0.25, "model.temperature (the environment beats .env.staging)")


# ---------------------------------------------------------------- settings_validation


@exercise("settings_validation", points=1, hint="'APP_' + the parts of loc in capitals, joined with '__'.")
def test_env_var_name(notebook: Module) -> None:
    for loc, name in [(("model", "temperature"), "APP_MODEL__TEMPERATURE"), (("profile",), "APP_PROFILE"),
                      (("retry", "max_delay_s"), "APP_RETRY__MAX_DELAY_S")]:
        assert_same(notebook.env_var_name(loc), name, f"env_var_name({loc!r})")


@exercise("settings_validation", points=1, hint="load_settings must raise ConfigError (not "
          "ValidationError), and each line of its message starts with env_var_name(error['loc']).")
def test_each_bad_value_fails_at_startup_naming_its_variable(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    cases = [
        ("APP_MODEL__TEMPERATURE", "9"),
        ("APP_MODEL__MAX_TOKENS", "lots"),
        ("APP_RETRY__MAX_ATTEMPTS", "0"),
        ("APP_RETRY__MAX_DELAY_S", "0.1"),
        ("APP_FEATURES__RESPONSE_CACHE", "perhaps"),
        ("APP_LOG_LEVEL", "LOUD"),
        ("APP_PROFILE", "qa"),
    ]
    for name, value in cases:
        monkeypatch.setenv(name, value)
        with pytest.raises(notebook.ConfigError) as caught:
            notebook.load_settings(tmp_path)
        message = text_of(caught.value)
        assert name in message, f"{name}={value!r}: the error should name {name}; it said: {message!r}"
        monkeypatch.delenv(name)


@exercise("settings_validation", points=1, hint="Loop over every entry of exc.errors(); an entry with an "
          "empty loc (the prod rule) shows its msg alone. Return the ConfigError, do not raise it.")
def test_every_problem_is_listed(notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    write_env(tmp_path, ".env.prod", APP_MODEL__TEMPERATURE="5", APP_RETRY__BASE_DELAY_S="-1")
    monkeypatch.setenv("APP_PROFILE", "prod")
    monkeypatch.setenv("APP_MODEL__MAX_TOKENS", "0")
    with pytest.raises(notebook.ConfigError) as caught:
        notebook.load_settings(tmp_path)
    message = text_of(caught.value)
    for name in ("APP_MODEL__TEMPERATURE", "APP_RETRY__BASE_DELAY_S", "APP_MODEL__MAX_TOKENS"):
        assert name in message, f"every problem should be listed; {name} is missing from: {message!r}"

    monkeypatch.delenv("APP_MODEL__MAX_TOKENS")
    (tmp_path / ".env.prod").unlink()
    with pytest.raises(ValidationError) as validation:
        notebook.AppSettings()
    error = notebook.config_error(validation.value)
    assert isinstance(error, notebook.ConfigError), (
        f"config_error() should return a ConfigError, got {type(error).__name__}"
    )
    assert "APP_OPENAI_API_KEY" in text_of(error), f"the prod rule's message should appear: {str(error)!r}"


@exercise("settings_validation", points=1, hint="Pydantic's str(exc) shows each input_value: build the "
          "message from loc and msg only (exc.errors(include_input=False)).")
def test_error_shows_no_given_value(notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    write_env(tmp_path, ".env", APP_MODEL__NAME="mock-gpt", APP_MODEL__TIMEOUT_S="4000.125")
    with pytest.raises(notebook.ConfigError) as caught:
        notebook.load_settings(tmp_path)
    message = text_of(caught.value)
    assert "APP_MODEL__TIMEOUT_S" in message, f"the error should name APP_MODEL__TIMEOUT_S: {message!r}"
    assert "4000.125" not in message and "input_value" not in message, (
        f"the message repeats the value that was given (a secret would leak the same way): {message!r}"
    )


# ---------------------------------------------------------------- secret_masking


@exercise("secret_masking", points=1, hint="Type both keys as SecretStr | None: its repr, str and JSON "
          "form are '**********'; get_secret_value() gives the real key.")
def test_secrets_hidden_in_repr_str_and_json(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("APP_OPENAI_API_KEY", OPENAI_SECRET)
    write_env(tmp_path, ".env", APP_ANTHROPIC_API_KEY=ANTHROPIC_SECRET)
    settings = settings_of(notebook, notebook.load_settings(tmp_path))
    views = {
        "repr(settings)": repr(settings),
        "str(settings)": str(settings),
        "f'{settings}'": f"{settings}",
        "settings.model_dump_json()": settings.model_dump_json(),
        "json.dumps(settings.model_dump(mode='json'))": json.dumps(settings.model_dump(mode="json")),
        "str(settings.model_dump())": str(settings.model_dump()),
        "str(settings.openai_api_key)": str(settings.openai_api_key),
    }
    for where, text in views.items():
        assert type(text) is str
        assert_hidden(text, OPENAI_SECRET, where)
        assert_hidden(text, ANTHROPIC_SECRET, where)
    for field, secret in (("openai_api_key", OPENAI_SECRET), ("anthropic_api_key", ANTHROPIC_SECRET)):
        key = getattr(settings, field)
        assert isinstance(key, SecretStr), f"{field} should be a SecretStr, got {type(key).__name__}"
        assert_same(key.get_secret_value(), secret, f"{field}.get_secret_value()")


@exercise("secret_masking", points=1, hint="Log one INFO record with the profile, the model name and "
          "'openai_api_key=set' or '=unset' (same for anthropic_api_key), never the key itself.")
def test_log_settings_says_what_matters_and_hides_secrets(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_env(tmp_path, ".env", APP_PROFILE="prod", APP_MODEL__NAME="mock-claude-haiku")
    write_env(tmp_path, ".env.prod", APP_OPENAI_API_KEY=OPENAI_SECRET)
    log = logging.getLogger("tests.secret_masking")
    with caplog.at_level(logging.DEBUG):
        settings = settings_of(notebook, notebook.load_settings(tmp_path))
        caplog.clear()
        notebook.log_settings(settings, log)
    mine = [r for r in caplog.records if same(r.name, log.name)]
    assert len(mine) == 1 and same(mine[0].levelno, logging.INFO), (
        f"log_settings should log one INFO record on the logger it is given; got "
        f"{[(r.name, r.levelname) for r in caplog.records]}"
    )
    text = text_of(mine[0].getMessage())
    for needed in ("prod", "mock-claude-haiku", "openai_api_key=set", "anthropic_api_key=unset"):
        assert needed in text, f"the log line should contain {needed!r}: {text!r}"
    assert_hidden(caplog.text, OPENAI_SECRET, "the captured logs")


@exercise("secret_masking", points=1, hint="Nothing that loads or rejects the settings may log or print a "
          "key: check your debug logging and the ConfigError message.")
def test_no_secret_in_logs_or_errors(
    notebook: Module, monkeypatch: MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    short_secret = "sk-test-9d8c7b6a5e"  # 18 characters: too short, so it is rejected
    write_env(tmp_path, ".env", APP_OPENAI_API_KEY=short_secret, APP_ANTHROPIC_API_KEY=ANTHROPIC_SECRET)
    with caplog.at_level(logging.DEBUG), pytest.raises(notebook.ConfigError) as caught:
        notebook.load_settings(tmp_path)
    message = text_of(caught.value)
    assert "APP_OPENAI_API_KEY" in message, f"the error should name APP_OPENAI_API_KEY: {message!r}"
    for secret in (short_secret, ANTHROPIC_SECRET):
        assert_hidden(message, secret, "the ConfigError message")
        assert_hidden(repr(caught.value.args), secret, "the ConfigError's args")
        assert_hidden(caplog.text, secret, "the captured logs")
