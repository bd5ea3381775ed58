"""Graded tests of chapter 5's exercises: a configuration system built on pydantic-settings,
and a typed tool registry with its calling loop.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data. Every settings run in
a probe happens in a :func:`scene`: a fresh empty current folder, the ``.env`` files the
test asked for in a temporary folder, and every ``APP_*`` variable removed except the
ones the test set (all restored afterwards, since the worker process outlives one probe).
Values, model names and secrets are drawn at random per run, so returning the published
examples earns nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import string
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model
from pydantic_settings import BaseSettings

from course.llm_server import LLMServer
from course.probing import kind, plain, probe, raised, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any
Files = dict[str, dict[str, str]]  # "folder/.env" -> {"APP_X": "value"}; "cwd" is the current folder

SECTIONS = {
    "model": ("name", "temperature", "max_tokens", "timeout_s"),
    "retry": ("max_attempts", "base_delay_s", "max_delay_s"),
    "features": ("streaming", "response_cache", "fallback_provider"),
}
KEYS = ("openai_api_key", "anthropic_api_key")
LONG = 20_000  # shown() limit for texts that are searched for secrets: never cut one off


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def secret(prefix: str = "sk-test-") -> str:
    return prefix + "".join(random.choices("0123456789abcdef", k=20))


def temperature() -> float:
    """A valid temperature that is not the default 0.2, so a default cannot pass for it."""
    return random.choice([n for n in range(1, 200) if n != 20]) / 100


# --------------------------------------------------------------- worker-side helpers


def settings_view(nb: Any, settings: Any) -> Data:
    """What a test may check about an AppSettings, as data."""
    if not (isinstance(settings, nb.AppSettings) and isinstance(settings, BaseSettings)):
        return {"settings": False, "type": kind(settings)}
    view: dict[str, Data] = {"settings": True, "type": kind(settings),
                             "profile": plain(settings.profile),
                             "log_level": plain(settings.log_level)}
    for section, fields in SECTIONS.items():
        part = getattr(settings, section)
        view[section] = ({name: plain(getattr(part, name)) for name in fields}
                         if isinstance(part, BaseModel) else f"<not a model: {kind(part)}>")
    for key in KEYS:
        value = getattr(settings, key)
        view[key] = None if value is None else {
            "secret_str": isinstance(value, SecretStr), "type": kind(value),
            "value": plain(value.get_secret_value()) if isinstance(value, SecretStr) else None}
    return view


def notebook_line(nb: Any, exc: BaseException) -> str:
    """Where in the notebook an exception we caught was raised (its deepest line there)."""
    where, tb = "", exc.__traceback__
    notebook = str(getattr(nb, "__file__", ""))
    while tb is not None:
        if notebook and tb.tb_frame.f_code.co_filename.split("#", 1)[0] == notebook:
            where = f" (raised at line {tb.tb_lineno} of {Path(notebook).name})"
        tb = tb.tb_next
    return where


def error_view(nb: Any, exc: BaseException) -> Data:
    config_error = getattr(nb, "ConfigError", None)
    view: dict[str, Data] = {
        "type": kind(exc), "message": shown(exc, str, LONG), "args": shown(exc.args, repr, LONG),
        "where": notebook_line(nb, exc),
        "config_error": isinstance(config_error, type) and isinstance(exc, config_error),
        "validation_error": isinstance(exc, ValidationError),
    }
    if isinstance(exc, ValidationError):
        view["locs"] = [[plain(part) for part in error["loc"]] for error in exc.errors()]
    return view


@contextlib.contextmanager
def captured_logs() -> Iterator[list[dict[str, Data]]]:
    """Every record any logger sends to the root logger, at DEBUG and up, as data."""
    records: list[dict[str, Data]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append({"name": shown(record.name, str), "level": record.levelno,
                            "message": shown(record.getMessage, lambda get: get(), LONG)})

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def scene(files: Files, env: dict[str, str]) -> Iterator[Path]:
    """A fresh folder holding ``files``, with ``<root>/cwd`` as the current folder and only
    ``env`` among the APP_* variables; the process's folder and environment come back after."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "cwd").mkdir()
        for relative, values in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
        for name in list(os.environ):
            if name.upper().startswith("APP_"):
                del os.environ[name]
        os.environ.update(env)
        os.chdir(root / "cwd")
        try:
            yield root
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


def outcome(nb: Any, build: Callable[[], Any]) -> Data:
    """Build settings; return {"settings": view} or {"error": view}, with the logs either way."""
    with captured_logs() as logs:
        try:
            result: dict[str, Data] = {"settings": settings_view(nb, build())}
        except Exception as exc:
            result = {"error": error_view(nb, exc)}
    result["logs"] = logs
    return result


@probe
def probe_settings(nb: Any, files: Files, runs: list[dict[str, Any]]) -> Data:
    """Each run: its own scene with ``env``; ``load`` names a folder for load_settings(), else
    AppSettings() is called (``as_str`` passes the folder as a str)."""
    out = []
    for run in runs:
        with scene(files, run.get("env", {})) as root:
            if run.get("load") is None:
                out.append(outcome(nb, nb.AppSettings))
            else:
                folder = root / run["load"]
                arg = str(folder) if run.get("as_str") else folder
                out.append(outcome(nb, lambda arg=arg: nb.load_settings(arg)))
    return out


def one(notebook: Any, env: dict[str, str], files: Files | None = None,
        load: str | None = None) -> Data:
    return probe_settings(notebook, files or {}, [{"env": env, "load": load}])[0]


def settings_in(result: Data, what: str = "AppSettings()") -> dict[str, Any]:
    """The settings view of one run, failing with what went wrong instead."""
    if "error" in result:
        error = result["error"]
        raise AssertionError(f"{what} should build the settings; it raised {error['type']}: "
                             f"{error['message']}{error['where']}")
    view: dict[str, Any] = result["settings"]
    assert view["settings"], (
        f"{what}: expected an AppSettings (a pydantic-settings BaseSettings), got {view['type']}"
    )
    return view


def error_in(result: Data, what: str) -> dict[str, Any]:
    assert "error" in result, f"{what} should fail, but it built the settings"
    error: dict[str, Any] = result["error"]
    return error


def locs_of(result: Data) -> list[list[Any]]:
    """The locations of a ValidationError's errors; [] when the settings were built."""
    if "settings" in result:
        return []
    error = result["error"]
    assert error["validation_error"], (
        f"expected a pydantic ValidationError, got {error['type']}: {error['message']}"
    )
    locs: list[list[Any]] = error["locs"]
    return locs


def secret_fragments(value: str) -> list[str]:
    """The secret and every 6-character piece of its random part (after the well-known prefix)."""
    tail = value.removeprefix("sk-ant-test-").removeprefix("sk-test-")
    return [value] + [tail[i : i + 6] for i in range(len(tail) - 5)]


def assert_hidden(text: str, value: str, where: str) -> None:
    for fragment in secret_fragments(value):
        assert fragment not in text, (
            f"the secret (or the part {fragment!r} of it) appears in {where}: {text!r}"
        )


def assert_field(view: dict[str, Any], path: str, expected: Any, why: str = "") -> None:
    section, _, name = path.rpartition(".")
    got = view[section][name] if section else view[path]
    assert_same(got, expected, f"{path}{' (' + why + ')' if why else ''}")


def assert_key(view: dict[str, Any], field: str, expected: str) -> None:
    key = view[field]
    assert key is not None and key["secret_str"], (
        f"{field} should be a SecretStr, got {key['type'] if key else None}"
    )
    assert_same(key["value"], expected, f"{field}.get_secret_value()")


# ---------------------------------------------------------------- settings_sources

DEFAULTS = {"profile": "dev", "log_level": "INFO", "model.name": "mock-gpt",
            "model.temperature": 0.2, "model.max_tokens": 512, "model.timeout_s": 30.0,
            "retry.max_attempts": 3, "retry.base_delay_s": 0.5, "retry.max_delay_s": 8.0,
            "features.streaming": False, "features.response_cache": True,
            "features.fallback_provider": False}


@exercise("settings_sources", points=1, hint="Compare every default and type with the tables; "
          "nested sections are models built with default_factory (or a default instance).")
def test_defaults(notebook: Any) -> None:
    view = settings_in(one(notebook, {}))
    assert view["openai_api_key"] is None and view["anthropic_api_key"] is None, (
        f"keys default to None, got {view['openai_api_key']} and {view['anthropic_api_key']}"
    )
    for section in SECTIONS:
        assert type(view[section]) is dict, f"{section} should be a Pydantic model: {view[section]}"
    for path, expected in DEFAULTS.items():
        assert_field(view, path, expected)


@exercise("settings_sources", points=1, hint="Set env_prefix='APP_' and env_nested_delimiter='__' in "
          "model_config; the field types do the conversion from strings.")
def test_reads_environment_variables(notebook: Any) -> None:
    temp, tokens, attempts = temperature(), random.randint(1, 32000), random.randint(4, 10)
    streaming = random.choice(["true", "1", "yes", "on"])
    level, key = random.choice(["DEBUG", "WARNING", "ERROR"]), secret()
    env = {"APP_MODEL__TEMPERATURE": str(temp), "APP_MODEL__MAX_TOKENS": str(tokens),
           "APP_RETRY__MAX_ATTEMPTS": str(attempts), "APP_FEATURES__STREAMING": streaming,
           "APP_LOG_LEVEL": level, "APP_OPENAI_API_KEY": key}
    view = settings_in(one(notebook, env))
    assert_field(view, "model.temperature", temp, "from APP_MODEL__TEMPERATURE")
    assert_field(view, "model.max_tokens", tokens, "from APP_MODEL__MAX_TOKENS")
    assert_field(view, "retry.max_attempts", attempts, "from APP_RETRY__MAX_ATTEMPTS")
    assert_field(view, "features.streaming", True, f"from APP_FEATURES__STREAMING={streaming}")
    assert_field(view, "log_level", level, "from APP_LOG_LEVEL")
    assert_key(view, "openai_api_key", key)


@exercise("settings_sources", points=1, hint="env_file='.env' reads the file in the current folder; "
          "extra='ignore' skips keys that are not settings; environment variables beat the file.")
def test_reads_dotenv_and_environment_wins(notebook: Any) -> None:
    name, file_temp, env_temp = f"mock-{word()}", temperature(), temperature()
    files = {"cwd/.env": {"APP_MODEL__NAME": name, "APP_MODEL__TEMPERATURE": str(file_temp),
                          "APP_FEATURES__FALLBACK_PROVIDER": "1", "OTHER_TOOL_TOKEN": word()}}
    view = settings_in(one(notebook, {"APP_MODEL__TEMPERATURE": str(env_temp)}, files))
    assert_field(view, "model.name", name, "from .env")
    assert_field(view, "features.fallback_provider", True, "from .env")
    assert_field(view, "model.temperature", env_temp, "the environment variable beats .env")


def above(limit: float) -> str:
    return str(round(limit + random.randint(1, 500) / 100, 2))


@exercise("settings_sources", points=1, hint="Check each range with its boundaries: ge/le include the "
          "limit, gt excludes it. Keys need min_length=20; profile and log_level are Literals.")
def test_range_rules(notebook: Any) -> None:
    invalid = [
        ("APP_MODEL__TEMPERATURE", "2.01", ("model", "temperature")),
        ("APP_MODEL__TEMPERATURE", above(2.0), ("model", "temperature")),
        ("APP_MODEL__TEMPERATURE", "-0.1", ("model", "temperature")),
        ("APP_MODEL__MAX_TOKENS", "0", ("model", "max_tokens")),
        ("APP_MODEL__MAX_TOKENS", str(random.randint(32001, 99999)), ("model", "max_tokens")),
        ("APP_MODEL__TIMEOUT_S", "0", ("model", "timeout_s")),
        ("APP_MODEL__TIMEOUT_S", above(120), ("model", "timeout_s")),
        ("APP_MODEL__NAME", "", ("model", "name")),
        ("APP_RETRY__MAX_ATTEMPTS", str(random.randint(11, 99)), ("retry", "max_attempts")),
        ("APP_RETRY__MAX_ATTEMPTS", "0", ("retry", "max_attempts")),
        ("APP_RETRY__BASE_DELAY_S", "0", ("retry", "base_delay_s")),
        ("APP_RETRY__MAX_DELAY_S", above(300), ("retry", "max_delay_s")),
        ("APP_PROFILE", random.choice(["qa", "test", "production", "Dev"]), ("profile",)),
        ("APP_LOG_LEVEL", random.choice(["TRACE", "info", "CRITICAL", "VERBOSE"]), ("log_level",)),
        ("APP_FEATURES__STREAMING", random.choice(["maybe", "sometimes", "2"]),
         ("features", "streaming")),
        ("APP_OPENAI_API_KEY", "sk-" + word(random.randint(4, 16)), ("openai_api_key",)),
        ("APP_ANTHROPIC_API_KEY", "sk-ant-" + word(random.randint(4, 12)), ("anthropic_api_key",)),
    ]
    valid = [("APP_MODEL__TEMPERATURE", "2.0"), ("APP_MODEL__TEMPERATURE", "0"),
             ("APP_MODEL__MAX_TOKENS", "32000"), ("APP_MODEL__MAX_TOKENS", "1"),
             ("APP_MODEL__TIMEOUT_S", "120"), ("APP_RETRY__MAX_ATTEMPTS", "10"),
             ("APP_RETRY__MAX_ATTEMPTS", "1"), ("APP_RETRY__MAX_DELAY_S", "300"),
             ("APP_OPENAI_API_KEY", secret()), ("APP_PROFILE", "staging")]
    runs = [{"env": {name: value}} for name, value, _ in invalid]
    runs += [{"env": {name: value}} for name, value in valid]
    results = probe_settings(notebook, {}, runs)
    for (name, value, loc), result in zip(invalid, results, strict=False):
        locs = locs_of(result)
        assert any(same(found, list(loc)) for found in locs), (
            f"{name}={value!r} should fail validation at {loc}; errors were at {locs}"
        )
    for (name, value), result in zip(valid, results[len(invalid):], strict=True):
        locs = locs_of(result)
        assert not locs, f"{name}={value!r} is valid (a boundary), but validation failed at {locs}"


@probe
def probe_typo(nb: Any, value: float) -> Data:
    def build() -> None:
        nb.ModelParams(temprature=value)

    return raised(build)


@exercise("settings_sources", points=1, hint="A field_validator on max_delay_s can read base_delay_s from "
          "info.data; a model_validator(mode='after') on AppSettings checks the prod rule.")
def test_cross_field_rules(notebook: Any) -> None:
    base = random.randint(2, 40) / 2
    below = str(base - random.randint(1, 3) / 4)
    key = secret("sk-ant-test-")
    runs = [
        {"env": {"APP_RETRY__BASE_DELAY_S": str(base), "APP_RETRY__MAX_DELAY_S": below}},
        {"env": {"APP_RETRY__BASE_DELAY_S": str(base), "APP_RETRY__MAX_DELAY_S": str(base)}},
        {"env": {"APP_PROFILE": "prod"}},
        {"env": {"APP_PROFILE": "prod", "APP_ANTHROPIC_API_KEY": key}},
    ]
    lower, equal, prod_no_key, prod = probe_settings(notebook, {}, runs)
    locs = locs_of(lower)
    assert any(same(found, ["retry", "max_delay_s"]) for found in locs), (
        f"max_delay_s={below} below base_delay_s={base} should fail at ('retry', 'max_delay_s'); "
        f"errors were at {locs}"
    )
    assert not locs_of(equal), f"max_delay_s equal to base_delay_s is allowed: {equal.get('error')}"
    error = error_in(prod_no_key, "APP_PROFILE=prod without a key")
    assert error["validation_error"], f"expected a ValidationError, got {error['type']}"
    for name in ("APP_OPENAI_API_KEY", "APP_ANTHROPIC_API_KEY"):
        assert name in error["message"], (
            f"prod without a key should fail with a message naming {name}: {error['message']}"
        )
    view = settings_in(prod, "AppSettings() in prod with an Anthropic key")
    assert_field(view, "profile", "prod")
    assert_key(view, "anthropic_api_key", key)
    typo = probe_typo(notebook, temperature())
    assert typo is not None and typo["type"] == "ValidationError", (
        f"ModelParams(temprature=...) (a typo in a nested section) should be a ValidationError, "
        f"got {typo}"
    )


@probe
def probe_validated_values(nb: Any, base: float, top: float, profile: str) -> Data:
    """What the validators leave behind: RetryPolicy's max_delay_s, the object that
    AppSettings.model_validate returns, and any warning pydantic gives about a validator."""
    import warnings

    with scene({}, {}), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = nb.RetryPolicy(base_delay_s=base, max_delay_s=top)
        validated = nb.AppSettings.model_validate({"profile": profile})
    value = policy.max_delay_s
    is_settings = isinstance(validated, nb.AppSettings)
    return {
        "max_delay_s": value if type(value) in (int, float) else f"<{kind(value)}: {shown(value)}>",
        "validated": kind(validated),
        "profile": shown(validated.profile, str) if is_settings else None,
        "is_settings": is_settings,
        "warnings": [shown(w.message, str) for w in caught],
    }


@exercise("settings_sources", points=1, hint="A field_validator returns the value it accepts (return "
          "value), and a model_validator(mode='after') returns self: whatever a validator returns is "
          "what the model keeps.")
def test_validators_return_what_they_accept(notebook: Any) -> None:
    base = random.randint(1, 20) / 4
    top = base + random.randint(1, 200) / 2
    profile = random.choice(["dev", "staging"])
    got = probe_validated_values(notebook, base, top, profile)
    assert same(got["max_delay_s"], top), (
        f"RetryPolicy(base_delay_s={base}, max_delay_s={top}).max_delay_s should be {top}, got "
        f"{got['max_delay_s']!r}: does the field_validator return the value?"
    )
    assert got["is_settings"] is True and got["profile"] == profile, (
        f"AppSettings.model_validate({{'profile': {profile!r}}}) should return the settings, got "
        f"{got['validated']!r}: does the model_validator return self?"
    )
    complaints = [w for w in got["warnings"] if "returning a value other than `self`" in w]
    assert not complaints, f"pydantic warns about a model validator: {complaints[0]}"


# ---------------------------------------------------------------- settings_profiles


def profile_files(folder: str) -> tuple[Files, dict[str, Any]]:
    """A shared .env and one file per profile, with random values; and what each should give."""
    shared = {"name": f"mock-{word()}", "temperature": temperature(),
              "attempts": random.randint(4, 10)}
    temps = {p: temperature() for p in ("dev", "staging", "prod")}
    key = secret()
    files = {
        f"{folder}/.env": {"APP_MODEL__NAME": shared["name"],
                           "APP_MODEL__TEMPERATURE": str(shared["temperature"]),
                           "APP_RETRY__MAX_ATTEMPTS": str(shared["attempts"])},
        f"{folder}/.env.dev": {"APP_MODEL__TEMPERATURE": str(temps["dev"]), "APP_LOG_LEVEL": "DEBUG"},
        f"{folder}/.env.staging": {"APP_MODEL__TEMPERATURE": str(temps["staging"])},
        f"{folder}/.env.prod": {"APP_MODEL__TEMPERATURE": str(temps["prod"]),
                                "APP_OPENAI_API_KEY": key, "APP_LOG_LEVEL": "WARNING"},
    }
    return files, {"shared": shared, "temps": temps}


@exercise("settings_profiles", points=1, hint="Read .env, then .env.<profile>: pass both to AppSettings "
          "with _env_file=(...); a later file overrides an earlier one.")
def test_profile_chosen_by_environment_variable(notebook: Any) -> None:
    files, want = profile_files("config")
    profiles = ["dev", "staging", "prod"]
    random.shuffle(profiles)
    runs = [{"env": {"APP_PROFILE": p}, "load": "config"} for p in profiles]
    runs.append({"env": {}, "load": "config"})
    results = probe_settings(notebook, files, runs)
    levels = {"dev": "DEBUG", "staging": "INFO", "prod": "WARNING"}
    for profile, result in zip(profiles, results, strict=False):
        view = settings_in(result, f"load_settings() with APP_PROFILE={profile}")
        assert_field(view, "profile", profile, f"APP_PROFILE={profile}")
        assert_field(view, "model.temperature", want["temps"][profile],
                     f"in {profile}, from .env.{profile}")
        assert_field(view, "log_level", levels[profile], f"in {profile}")
        assert_field(view, "model.name", want["shared"]["name"], f"in {profile}, from the shared .env")
        assert_field(view, "retry.max_attempts", want["shared"]["attempts"],
                     f"in {profile}, from the shared .env")
    view = settings_in(results[-1], "load_settings() without APP_PROFILE")
    assert_field(view, "profile", "dev", "APP_PROFILE is not set anywhere")
    assert_field(view, "model.temperature", want["temps"]["dev"],
                 "without APP_PROFILE, dev reads .env.dev")


@exercise("settings_profiles", points=1, hint="When APP_PROFILE is not in the environment, look it up in "
          "env_dir/.env (dotenv_values); the environment variable still wins over the file.")
def test_profile_chosen_by_dotenv(notebook: Any) -> None:
    files, want = profile_files("config")
    in_file, in_env = random.sample(["dev", "staging", "prod"], 2)
    files["config/.env"]["APP_PROFILE"] = in_file
    runs = [{"env": {}, "load": "config"}, {"env": {"APP_PROFILE": in_env}, "load": "config"}]
    from_file, from_env = probe_settings(notebook, files, runs)
    view = settings_in(from_file, f"load_settings() with APP_PROFILE={in_file} in .env")
    assert_field(view, "profile", in_file, "from APP_PROFILE in .env")
    assert_field(view, "model.temperature", want["temps"][in_file],
                 f"when .env says {in_file}, from .env.{in_file}")
    view = settings_in(from_env, f"load_settings() with APP_PROFILE={in_env} in the environment")
    assert_field(view, "profile", in_env,
                 f"the environment says {in_env} and .env says {in_file}")
    assert_field(view, "model.temperature", want["temps"][in_env],
                 f"APP_PROFILE={in_env} beats .env, so from .env.{in_env}")


@exercise("settings_profiles", points=1, hint="Build every path from env_dir, not the current folder; a "
          "missing profile file is skipped; environment variables beat every file.")
def test_only_env_dir_and_environment_wins(notebook: Any) -> None:
    name, tokens, env_temp = f"mock-{word()}", random.randint(1000, 32000), temperature()
    files = {
        "cwd/.env": {"APP_MODEL__NAME": "from-the-current-folder", "APP_PROFILE": "prod"},
        "cwd/.env.dev": {"APP_MODEL__MAX_TOKENS": str(random.randint(2, 99))},
        "config/.env": {"APP_MODEL__NAME": name},
        "config/.env.staging": {"APP_MODEL__TEMPERATURE": str(temperature()),
                                "APP_MODEL__MAX_TOKENS": str(tokens)},
    }
    runs = [{"env": {}, "load": "config", "as_str": True},
            {"env": {"APP_PROFILE": "staging", "APP_MODEL__TEMPERATURE": str(env_temp)},
             "load": "config"}]
    first, second = probe_settings(notebook, files, runs)
    view = settings_in(first, "load_settings(env_dir) (env_dir given as a str)")
    assert_field(view, "model.name", name, "read env_dir/.env, not ./.env")
    assert_field(view, "profile", "dev", "env_dir/.env does not set it")
    assert_field(view, "model.max_tokens", 512,
                 "there is no env_dir/.env.dev, and ./.env.dev is not ours")
    view = settings_in(second, "load_settings(env_dir) with APP_PROFILE=staging")
    assert_field(view, "model.max_tokens", tokens, "from .env.staging")
    assert_field(view, "model.temperature", env_temp, "the environment beats .env.staging")


# ---------------------------------------------------------------- settings_validation


@probe
def probe_env_var_names(nb: Any, locs: list[list[str]]) -> Data:
    return [nb.env_var_name(tuple(loc)) for loc in locs]


@exercise("settings_validation", points=1, hint="'APP_' + the parts of loc in capitals, joined with '__'.")
def test_env_var_name(notebook: Any) -> None:
    locs = [["model", "temperature"], ["profile"], ["retry", "max_delay_s"],
            [word()], [word(), f"{word(4)}_{word(3)}"], [word(3), word(4), word(5)]]
    got = probe_env_var_names(notebook, locs)
    assert type(got) is list and len(got) == len(locs), f"expected {len(locs)} names, got {got!r}"
    for loc, name in zip(locs, got, strict=True):
        assert_same(name, "APP_" + "__".join(part.upper() for part in loc),
                    f"env_var_name({tuple(loc)!r})")


@exercise("settings_validation", points=1, hint="load_settings must raise ConfigError (not "
          "ValidationError), and each line of its message starts with env_var_name(error['loc']).")
def test_each_bad_value_fails_at_startup_naming_its_variable(notebook: Any) -> None:
    cases = [
        ("APP_MODEL__TEMPERATURE", above(2.0)),
        ("APP_MODEL__MAX_TOKENS", word()),
        ("APP_RETRY__MAX_ATTEMPTS", "0"),
        ("APP_RETRY__MAX_DELAY_S", "0.1"),
        ("APP_FEATURES__RESPONSE_CACHE", random.choice(["perhaps", "sometimes"])),
        ("APP_LOG_LEVEL", word().upper()),
        ("APP_PROFILE", random.choice(["qa", "test"])),
    ]
    random.shuffle(cases)
    results = probe_settings(notebook, {}, [{"env": {n: v}, "load": "config"} for n, v in cases])
    for (name, value), result in zip(cases, results, strict=True):
        error = error_in(result, f"load_settings() with {name}={value!r}")
        assert error["config_error"], (
            f"{name}={value!r}: load_settings should raise ConfigError, got {error['type']}: "
            f"{error['message']}"
        )
        assert name in error["message"], (
            f"{name}={value!r}: the error should name {name}; it said: {error['message']!r}"
        )


@probe
def probe_config_error(nb: Any) -> Data:
    with scene({}, {"APP_PROFILE": "prod"}):
        try:
            nb.AppSettings()
        except ValidationError as exc:
            error = nb.config_error(exc)
            return {"raised": True, "config_error": isinstance(error, nb.ConfigError),
                    "type": kind(error), "message": shown(error, str, LONG)}
    return {"raised": False}


@exercise("settings_validation", points=1, hint="Loop over every entry of exc.errors(); an entry with an "
          "empty loc (the prod rule) shows its msg alone. Return the ConfigError, do not raise it.")
def test_every_problem_is_listed(notebook: Any) -> None:
    files = {"config/.env.prod": {"APP_MODEL__TEMPERATURE": above(2.0),
                                  "APP_RETRY__BASE_DELAY_S": str(-random.randint(1, 9))}}
    env = {"APP_PROFILE": "prod", "APP_MODEL__MAX_TOKENS": "0"}
    error = error_in(one(notebook, env, files, "config"), "load_settings() with three bad values")
    assert error["config_error"], f"expected a ConfigError, got {error['type']}: {error['message']}"
    for name in ("APP_MODEL__TEMPERATURE", "APP_RETRY__BASE_DELAY_S", "APP_MODEL__MAX_TOKENS"):
        assert name in error["message"], (
            f"every problem should be listed; {name} is missing from: {error['message']!r}"
        )
    got = probe_config_error(notebook)
    assert got["raised"], "AppSettings() in prod without a key should raise a ValidationError"
    assert got["config_error"], f"config_error() should return a ConfigError, got {got['type']}"
    assert "APP_OPENAI_API_KEY" in got["message"], (
        f"the prod rule's message should appear: {got['message']!r}"
    )


@exercise("settings_validation", points=1, hint="Pydantic's str(exc) shows each input_value: build the "
          "message from loc and msg only (exc.errors(include_input=False)).")
def test_error_shows_no_given_value(notebook: Any) -> None:
    value = f"{random.randint(121, 9999)}.{random.randint(100, 999)}"
    files = {"config/.env": {"APP_MODEL__NAME": f"mock-{word()}", "APP_MODEL__TIMEOUT_S": value}}
    error = error_in(one(notebook, {}, files, "config"), f"load_settings() with timeout_s={value}")
    assert error["config_error"], f"expected a ConfigError, got {error['type']}: {error['message']}"
    message = error["message"]
    assert "APP_MODEL__TIMEOUT_S" in message, f"the error should name APP_MODEL__TIMEOUT_S: {message!r}"
    assert value not in message and "input_value" not in message, (
        f"the message repeats the value that was given ({value}; a secret would leak the same "
        f"way): {message!r}"
    )


# ---------------------------------------------------------------- secret_masking


@probe
def probe_views(nb: Any, files: Files, env: dict[str, str]) -> Data:
    with scene(files, env) as root:
        settings = nb.load_settings(root / "config")
        if not isinstance(settings, nb.AppSettings):
            return {"settings": settings_view(nb, settings)}
        return {"settings": settings_view(nb, settings), "views": {
            "repr(settings)": shown(settings, repr, LONG),
            "str(settings)": shown(settings, str, LONG),
            "f'{settings}'": shown(settings, lambda s: f"{s}", LONG),
            "settings.model_dump_json()": shown(settings, lambda s: s.model_dump_json(), LONG),
            "json.dumps(settings.model_dump(mode='json'))":
                shown(settings, lambda s: json.dumps(s.model_dump(mode="json")), LONG),
            "str(settings.model_dump())": shown(settings, lambda s: str(s.model_dump()), LONG),
            "str(settings.openai_api_key)": shown(settings.openai_api_key, str, LONG),
        }}


@exercise("secret_masking", points=1, hint="Type both keys as SecretStr | None: its repr, str and JSON "
          "form are '**********'; get_secret_value() gives the real key.")
def test_secrets_hidden_in_repr_str_and_json(notebook: Any) -> None:
    openai, anthropic = secret(), secret("sk-ant-test-")
    got = probe_views(notebook, {"config/.env": {"APP_ANTHROPIC_API_KEY": anthropic}},
                      {"APP_OPENAI_API_KEY": openai})
    view = settings_in({"settings": got["settings"]}, "load_settings()")
    for where, text in got["views"].items():
        assert_hidden(text, openai, where)
        assert_hidden(text, anthropic, where)
    assert_key(view, "openai_api_key", openai)
    assert_key(view, "anthropic_api_key", anthropic)


@probe
def probe_log_settings(nb: Any, files: Files, logger_name: str) -> Data:
    with scene(files, {}) as root:
        with captured_logs() as loading:
            settings = nb.load_settings(root / "config")
        with captured_logs() as logged:
            nb.log_settings(settings, logging.getLogger(logger_name))
    return {"loading": loading, "logged": logged}


@exercise("secret_masking", points=1, hint="Log one INFO record with the profile, the model name and "
          "'openai_api_key=set' or '=unset' (same for anthropic_api_key), never the key itself.")
def test_log_settings_says_what_matters_and_hides_secrets(notebook: Any) -> None:
    name, key, profile = f"mock-{word()}-{word(4)}", secret(), random.choice(["prod", "staging"])
    which = random.choice(KEYS)
    variable = "APP_" + which.upper()
    files = {"config/.env": {"APP_PROFILE": profile, "APP_MODEL__NAME": name},
             f"config/.env.{profile}": {variable: key}}
    logger_name = f"tests.{word()}"
    got = probe_log_settings(notebook, files, logger_name)
    mine = [r for r in got["logged"] if r["name"] == logger_name]
    assert len(mine) == 1 and same(mine[0]["level"], logging.INFO), (
        f"log_settings should log one INFO record on the logger it is given; got "
        f"{[(r['name'], logging.getLevelName(r['level'])) for r in got['logged']]}"
    )
    text = mine[0]["message"]
    other = "anthropic_api_key" if which == "openai_api_key" else "openai_api_key"
    for needed in (profile, name, f"{which}=set", f"{other}=unset"):
        assert needed in text, f"the log line should contain {needed!r}: {text!r}"
    for record in got["loading"] + got["logged"]:
        assert_hidden(record["message"], key, f"a log record of {record['name']}")


@exercise("secret_masking", points=1, hint="Nothing that loads or rejects the settings may log or print a "
          "key: check your debug logging and the ConfigError message.")
def test_no_secret_in_logs_or_errors(notebook: Any) -> None:
    short = "sk-test-" + "".join(random.choices("0123456789abcdef", k=10))  # too short: rejected
    anthropic = secret("sk-ant-test-")
    files = {"config/.env": {"APP_OPENAI_API_KEY": short, "APP_ANTHROPIC_API_KEY": anthropic}}
    result = one(notebook, {}, files, "config")
    error = error_in(result, "load_settings() with a key that is too short")
    assert error["config_error"], f"expected a ConfigError, got {error['type']}: {error['message']}"
    assert "APP_OPENAI_API_KEY" in error["message"], (
        f"the error should name APP_OPENAI_API_KEY: {error['message']!r}"
    )
    for value in (short, anthropic):
        assert_hidden(error["message"], value, "the ConfigError message")
        assert_hidden(error["args"], value, "the ConfigError's args")
        for record in result["logs"]:
            assert_hidden(record["message"], value, f"a log record of {record['name']}")


# ---------------------------------------------------------------- tool_registry
#
# Each test draws its tools at random (names, fields, bounds, choices), so no fixed answer
# can pass. The loop's requests are read from the judge's own server, never reported by a probe.

VERBS = ["fetch", "lookup", "book", "cancel", "track", "price", "rank", "archive"]
NOUNS = ["weather", "flight", "invoice", "parcel", "ticket", "hotel", "stock", "recipe"]
CITIES = ["Paris", "Lima", "Oslo", "Nairobi", "Kyoto", "Quito", "Dakar", "Perth"]
CHOICES = ["fast", "slow", "cheap", "green", "blue", "north", "south", "amber"]


def random_spec(rng: random.Random, count: int = 3) -> list[dict[str, Any]]:
    """Tools with distinct words in their names, so a question can single one out."""
    tools = []
    for verb, noun in zip(rng.sample(VERBS, count), rng.sample(NOUNS, count), strict=True):
        low = rng.randint(1, 3)
        tools.append(
            {
                "name": f"{verb}_{noun}",
                "description": f"{verb.title()} a {noun}.",
                "text": rng.choice(["city", "label", "query", "region"]),
                "number": rng.choice(["count", "limit", "seats", "nights"]),
                "low": low,
                "high": low + rng.randint(2, 9),
                "choice": rng.choice(["unit", "mode", "tier"]),
                "choices": rng.sample(CHOICES, 3),
                "nested": rng.random() < 0.5,
            }
        )
    return tools


def build_models(spec: list[dict[str, Any]]) -> dict[str, type[BaseModel]]:
    """The argument model of each tool in ``spec`` (built the same way on both sides)."""
    window = create_model("Window", days=(int, Field(ge=1, le=7)))
    models: dict[str, type[BaseModel]] = {}
    for tool in spec:
        fields: dict[str, Any] = {
            tool["text"]: (str, Field(min_length=1)),
            tool["number"]: (int, Field(default=tool["low"], ge=tool["low"], le=tool["high"])),
            tool["choice"]: (Literal[tuple(tool["choices"])], tool["choices"][0]),
        }
        if tool["nested"]:
            fields["window"] = (window, ...)
        models[tool["name"]] = create_model(f"{tool['name'].title().replace('_', '')}Args", **fields)
    return models


def handler_output(name: str, arguments: dict[str, Any]) -> str:
    return f"{name}:{json.dumps(arguments, sort_keys=True)}"


def jsonable(value: Any) -> Any:
    """Plain JSON data: whatever the notebook returned, as json would carry it."""
    return json.loads(json.dumps(value))


def result_of(action: Callable[[], Any]) -> dict[str, Any]:
    """What an action did, as data: its value, or the exception it raised."""
    try:
        return {"value": jsonable(action())}
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str.__str__(str(exc))}


def make_registry(
    notebook: Any, spec: list[dict[str, Any]], failing: str | None = None
) -> tuple[Any, dict[str, type[BaseModel]]]:
    """A notebook ToolRegistry holding the tools of ``spec``, and their argument models."""
    registry = notebook.ToolRegistry()
    models = build_models(spec)
    for name, model in models.items():
        description = next(tool["description"] for tool in spec if tool["name"] == name)

        def handler(args: BaseModel, name: str = name) -> str:
            if name == failing:
                raise RuntimeError(f"boom-{name}")
            return handler_output(name, args.model_dump(mode="json"))

        registry.tool(model, name=name, description=description)(handler)
    return registry, models


@probe
def probe_definitions(notebook: Any, spec: list[dict[str, Any]], doc_name: str) -> dict[str, Any]:
    registry, models = make_registry(notebook, spec)
    model = models[spec[0]["name"]]

    def documented(args: BaseModel) -> str:
        """
        Look something up.
        """
        return ""

    documented.__name__ = doc_name
    by_default = notebook.ToolRegistry()
    return {
        "openai": result_of(lambda: registry.definitions("openai")),
        "anthropic": result_of(lambda: registry.definitions("anthropic")),
        "other_style": result_of(lambda: registry.definitions("gemini")),
        "duplicate": result_of(lambda: registry.tool(model, name=spec[0]["name"])(documented) and None),
        "bad_name": result_of(lambda: registry.tool(model, name="has space")(documented) and None),
        "defaults": result_of(
            lambda: (by_default.tool(model)(documented), by_default.definitions("anthropic"))[1]
        ),
    }


@probe
def probe_parse(notebook: Any, spec: list[dict[str, Any]], calls: list[list[Any]]) -> list[dict[str, Any]]:
    registry, models = make_registry(notebook, spec)
    results = []
    for name, arguments in calls:
        result = result_of(
            lambda name=name, arguments=arguments: registry.parse(name, arguments).model_dump(mode="json")
        )
        if "value" in result:
            result["exact_class"] = type(registry.parse(name, arguments)) is models[name]
        results.append(result)
    return results


@probe
def probe_execute(
    notebook: Any, spec: list[dict[str, Any]], failing: str, calls: list[list[Any]]
) -> list[dict[str, Any]]:
    registry, _ = make_registry(notebook, spec, failing)
    return [
        result_of(lambda name=name, arguments=arguments: registry.execute(name, arguments))
        for name, arguments in calls
    ]


@probe
def probe_loop(
    notebook: Any,
    spec: list[dict[str, Any]],
    question: str,
    max_rounds: int,
    tool_choice: str,
    script: list[dict[str, Any]] | None,
    base_url: str,
    api_key: str,
) -> dict[str, Any]:
    registry, _ = make_registry(notebook, spec)
    extra = {"X-Mock-Tool-Calls": json.dumps(script)} if script is not None else {}
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    with httpx.Client(
        base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {api_key}", **extra}
    ) as client:
        result = result_of(
            lambda: notebook.run_tools(
                client,
                registry,
                messages,
                model="gpt-4o-mini",
                max_rounds=max_rounds,
                tool_choice=tool_choice,
            )
        )
    return {"result": result, "messages": result_of(lambda: messages)}


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    """The judge's server: what the learner's loop sent is read from its log, here."""
    with LLMServer() as running:
        yield running


def loop(notebook: Any, server: LLMServer, *args: Any) -> dict[str, Any]:
    """Run probe_loop against the judge's server; add the requests the server saw."""
    server.clear_log()
    got = probe_loop(notebook, *args, server.base_url, server.api_key)
    got["requests"] = [[record.path, record.status, record.model] for record in server.log]
    return dict(got)


def valid_arguments(rng: random.Random, tool: dict[str, Any], full: bool) -> dict[str, Any]:
    arguments: dict[str, Any] = {tool["text"]: rng.choice(CITIES)}
    if full:
        arguments[tool["number"]] = rng.randint(tool["low"], tool["high"])
        arguments[tool["choice"]] = rng.choice(tool["choices"])
    if tool["nested"]:
        arguments["window"] = {"days": rng.randint(1, 7)}
    return arguments


@exercise(
    "tool_registry",
    points=1,
    hint="definitions() wraps args.model_json_schema() in each provider's "
    "envelope; the decorator reads __name__ and the stripped docstring, and refuses bad or taken names.",
)
def test_tool_definitions(notebook: Any) -> None:
    seed = random.randrange(2**32)
    spec = random_spec(random.Random(seed))
    doc_name = f"{random.Random(seed).choice(VERBS)}_things"
    got = probe_definitions(notebook, spec, doc_name)
    schemas = {name: model.model_json_schema() for name, model in build_models(spec).items()}
    openai = [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t["description"],
                "parameters": schemas[t["name"]],
            },
        }
        for t in spec
    ]
    anthropic = [
        {"name": t["name"], "description": t["description"], "input_schema": schemas[t["name"]]} for t in spec
    ]
    assert same(got["openai"], {"value": openai}), (
        f"definitions('openai') for the tools {[t['name'] for t in spec]} (seed {seed}): "
        f"expected {openai!r}, got {got['openai']!r}"
    )
    assert same(got["anthropic"], {"value": anthropic}), (
        f"definitions('anthropic') (seed {seed}): expected {anthropic!r}, got {got['anthropic']!r}"
    )
    for case in ("other_style", "duplicate", "bad_name"):
        assert same(got[case].get("raised"), "ValueError"), (
            f"{case.replace('_', ' ')}: expected a ValueError, got {got[case]!r}"
        )
    defaults = [
        {"name": doc_name, "description": "Look something up.", "input_schema": schemas[spec[0]["name"]]}
    ]
    assert same(got["defaults"], {"value": defaults}), (
        f"with no name or description, the tool should take the function's __name__ and its stripped "
        f"docstring: expected {defaults!r}, got {got['defaults']!r}"
    )


@exercise(
    "tool_registry",
    points=1,
    hint="parse() validates with the tool's own model and raises "
    "ToolCallError naming the tool: unknown tools list the registered ones, bad fields give their path.",
)
def test_tool_parse(notebook: Any) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    spec = random_spec(rng)
    models = build_models(spec)
    full, partial = rng.sample(spec, 2)
    full_args = valid_arguments(rng, full, full=True)
    partial_args = valid_arguments(rng, partial, full=False)
    wrong = dict(full_args, **{full["number"]: full["high"] + rng.randint(1, 50)})
    calls = [
        [full["name"], json.dumps(full_args)],
        [partial["name"], partial_args],  # a dict, as Anthropic's input arrives
        [full["name"], json.dumps(wrong)],
        ["drop_database", "{}"],
        [full["name"], '{"' + full["text"] + '": "Par'],
        [full["name"], "[1, 2]"],
    ]
    got = probe_parse(notebook, spec, calls)
    for index, (tool, arguments) in enumerate(((full, full_args), (partial, partial_args))):
        expected = models[tool["name"]].model_validate(arguments).model_dump(mode="json")
        assert same(got[index], {"value": expected, "exact_class": True}), (
            f"parse({tool['name']!r}, {arguments!r}) (seed {seed}) should return an instance of the tool's "
            f"own model with the defaults filled in, {expected!r}; got {got[index]!r}"
        )
    bad = got[2]
    assert same(bad.get("raised"), "ToolCallError"), (
        f"an out-of-range {full['number']} should raise ToolCallError: {bad!r}"
    )
    assert full["name"] in bad["message"] and full["number"] in bad["message"], (
        f"the error should name the tool {full['name']!r} and the field {full['number']!r}: "
        f"{bad['message']!r}"
    )
    unknown = got[3]
    assert same(unknown.get("raised"), "ToolCallError"), (
        f"an unknown tool should raise ToolCallError: {unknown!r}"
    )
    for name in ["drop_database", *models]:
        assert name in unknown["message"], (
            f"the error for an unknown tool should mention {name!r}: {unknown!r}"
        )
    for case, what in ((got[4], "cut-off JSON"), (got[5], "a JSON array")):
        assert same(case.get("raised"), "ToolCallError"), (
            f"{what} as arguments should raise ToolCallError: {case!r}"
        )
        assert full["name"] in case["message"] and "JSON" in case["message"], (
            f"the error for {what} should name the tool and say JSON: {case['message']!r}"
        )


@exercise(
    "tool_registry",
    points=1,
    hint="execute() never raises: it returns the tool's result, "
    "'error: ' + the ToolCallError message, or 'error: <name> failed: <message>' when the tool raises.",
)
def test_tool_execute(notebook: Any) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    spec = random_spec(rng)
    good, failing = rng.sample(spec, 2)
    arguments = valid_arguments(rng, good, full=True)
    nested = next((tool for tool in spec if tool["nested"]), None)
    calls = [
        [good["name"], json.dumps(arguments)],
        [good["name"], json.dumps({good["choice"]: "purple"})],
        ["drop_database", "{}"],
        [failing["name"], valid_arguments(rng, failing, full=False)],
    ]
    if nested is not None:
        calls.append([nested["name"], dict(valid_arguments(rng, nested, full=True), window={"days": 99})])
    got = probe_execute(notebook, spec, failing["name"], calls)
    expected = handler_output(
        good["name"], build_models(spec)[good["name"]].model_validate(arguments).model_dump(mode="json")
    )
    assert same(got[0], {"value": expected}), (
        f"execute() should return the tool's result {expected!r}; got {got[0]!r} (seed {seed})"
    )
    for index, needed in ((1, [good["name"], good["text"], good["choice"]]), (2, ["drop_database"])):
        text = got[index].get("value")
        assert isinstance(text, str) and text.startswith("error: "), (
            f"a bad call should come back as a string starting with 'error: ', not raise: {got[index]!r}"
        )
        for part in needed:
            assert part in text, f"the error {text!r} should mention {part!r}"
    assert same(got[3], {"value": f"error: {failing['name']} failed: boom-{failing['name']}"}), (
        f"a tool that raises RuntimeError('boom-{failing['name']}') should give "
        f"'error: {failing['name']} failed: boom-{failing['name']}'; got {got[3]!r}"
    )
    if nested is not None:
        text = got[4].get("value")
        assert isinstance(text, str) and text.startswith("error: ") and "window.days" in text, (
            f"an error in a nested field should give its path, window.days: {got[4]!r}"
        )


@exercise(
    "tool_registry",
    points=1,
    hint="Append the assistant message, then one role 'tool' message per "
    "call with its tool_call_id and execute()'s result; return the content of the first answer "
    "without calls.",
)
def test_tool_loop_runs_the_call_and_sends_the_result_back(notebook: Any, server: LLMServer) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    spec = random_spec(rng)
    target = rng.choice(spec)
    verb, noun = target["name"].split("_")
    question = f"Could you {verb} the {noun} near {rng.choice(CITIES)}?"
    got = loop(notebook, server, spec, question, 4, "auto", None)
    messages = got["messages"].get("value")
    assert isinstance(messages, list), f"the conversation could not be read back: {got['messages']!r}"
    roles = [message.get("role") for message in messages]
    assert same(roles, ["user", "assistant", "tool", "assistant"]), (
        f"for {question!r} the model calls {target['name']} once, then answers: the conversation should "
        f"end with roles user, assistant, tool, assistant; got {roles} (seed {seed})"
    )
    [call] = messages[1]["tool_calls"]
    assert same(call["function"]["name"], target["name"]), f"the model called {call['function']['name']!r}"
    arguments = build_models(spec)[target["name"]].model_validate_json(call["function"]["arguments"])
    result = handler_output(target["name"], arguments.model_dump(mode="json"))
    assert same(messages[2], {"role": "tool", "tool_call_id": call["id"], "content": result}), (
        f"the tool message should be {{'role': 'tool', 'tool_call_id': {call['id']!r}, "
        f"'content': {result!r}}}; "
        f"got {messages[2]!r}"
    )
    final = messages[3]["content"]
    assert f"{target['name']} returned {result[:200]}" in final, (
        f"the server's final answer reports the tool result it received; it says {final!r}, so the result "
        "or its tool_call_id did not reach the server as expected"
    )
    assert same(got["result"], {"value": final}), (
        f"run_tools should return the final answer's text: {got['result']!r}"
    )
    assert same(got["requests"], [["/v1/chat/completions", 200, "gpt-4o-mini"]] * 2), (
        "expected two chat requests with model 'gpt-4o-mini', both answered 200; "
        f"the server saw {got['requests']}"
    )


@exercise(
    "tool_registry",
    points=1,
    hint="Count requests: after max_rounds without a final answer raise "
    "TooManyRounds; a failed call is sent back as an 'error: ...' result, never raised.",
)
def test_tool_loop_stops_after_max_rounds(notebook: Any, server: LLMServer) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    spec = random_spec(rng)
    target = rng.choice(spec)
    max_rounds = rng.randint(1, 3)
    script = [{"name": target["name"], "arguments": {target["text"]: rng.randint(1, 99)}}]  # wrong type
    got = loop(notebook, server, spec, "Hello there", max_rounds, "required", script)
    assert same(got["result"].get("raised"), "TooManyRounds"), (
        f"the model calls a tool on every round: after max_rounds={max_rounds} run_tools should raise "
        f"TooManyRounds; got {got['result']!r} (seed {seed})"
    )
    assert same(got["requests"], [["/v1/chat/completions", 200, "gpt-4o-mini"]] * max_rounds), (
        f"expected exactly {max_rounds} requests (one per round); the server saw {got['requests']}"
    )
    messages = got["messages"].get("value")
    assert isinstance(messages, list), f"the conversation could not be read back: {got['messages']!r}"
    results = [message for message in messages if message.get("role") == "tool"]
    assert len(results) == max_rounds and all(
        isinstance(m.get("content"), str) and m["content"].startswith("error: ") for m in results
    ), f"each invalid call should be answered with an 'error: ...' tool message; got {results!r}"
