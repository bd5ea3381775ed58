# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 5: a configuration system
#
# Every service you ship reads its configuration at start-up: API keys, which model to
# call with which parameters, how hard to retry, which features are on. Get this wrong
# and you find out at 3 a.m., on the first request that needs the bad value, with a key
# printed in the logs. You will build the configuration of an LLM service so that it
# **loads** from environment variables and `.env` files, **switches** between dev,
# staging and prod without code changes, **never shows** a secret, and **refuses to
# start** on a bad value with a message that names the setting to fix.
#
# | exercise | what you build | points |
# |---|---|---|
# | `settings_sources` | the settings models, read from the environment and `.env` | 5 |
# | `settings_profiles` | `load_settings()`: dev, staging and prod override files | 3 |
# | `settings_validation` | `ConfigError` and `config_error()`: fail fast, name the setting | 4 |
# | `secret_masking` | secrets hidden everywhere; `log_settings()` | 3 |
# | `tool_registry` | a typed tool registry and the loop that lets a model call it | 5 |
#
# Everything you need is in [the lesson](../chapters/05_pydantic). Write your answers
# where a cell raises `NotImplementedError`, save the notebook, then run the `check(...)`
# cell at the end of each exercise: it runs the grader's tests on the saved file.
#
# The tests set environment variables and write `.env` files in temporary folders, so
# your code must read the environment **when it is called**, not when the notebook
# is imported.

# %%
import logging
import os
from pathlib import Path
from typing import Literal, Self

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# %% [markdown]
# ## Exercise `settings_sources` (5 points)
#
# Write four models. Every setting is read from an environment variable named
# `APP_` + the field path in capitals, with `__` between a section and its field:
# `model.temperature` is `APP_MODEL__TEMPERATURE`.
#
# **`ModelParams`** (a `BaseModel`; unknown keys are an error: `extra="forbid"`)
#
# | field | type | default | rule |
# |---|---|---|---|
# | `name` | `str` | `"mock-gpt"` | at least 1 character |
# | `temperature` | `float` | `0.2` | from 0.0 to 2.0 inclusive |
# | `max_tokens` | `int` | `512` | from 1 to 32000 inclusive |
# | `timeout_s` | `float` | `30.0` | greater than 0, at most 120 |
#
# **`RetryPolicy`** (a `BaseModel`, `extra="forbid"`)
#
# | field | type | default | rule |
# |---|---|---|---|
# | `max_attempts` | `int` | `3` | from 1 to 10 inclusive |
# | `base_delay_s` | `float` | `0.5` | greater than 0, at most 60 |
# | `max_delay_s` | `float` | `8.0` | greater than 0, at most 300, **and at least `base_delay_s`** |
#
# Report the last rule as an error **on `max_delay_s`** (a `field_validator` that reads
# the already-validated `base_delay_s` from `info.data`), so the message can name
# `APP_RETRY__MAX_DELAY_S`.
#
# **`FeatureFlags`** (a `BaseModel`, `extra="forbid"`): three `bool`s, `streaming`
# (default `False`), `response_cache` (default `True`), `fallback_provider` (default
# `False`).
#
# **`AppSettings`** (a `BaseSettings`)
#
# | field | type | default | rule |
# |---|---|---|---|
# | `profile` | `Literal["dev", "staging", "prod"]` | `"dev"` | |
# | `openai_api_key` | `SecretStr \| None` | `None` | at least 20 characters when set |
# | `anthropic_api_key` | `SecretStr \| None` | `None` | at least 20 characters when set |
# | `log_level` | `Literal["DEBUG", "INFO", "WARNING", "ERROR"]` | `"INFO"` | |
# | `model` | `ModelParams` | all defaults | |
# | `retry` | `RetryPolicy` | all defaults | |
# | `features` | `FeatureFlags` | all defaults | |
#
# Its `model_config`: prefix `APP_`, nested delimiter `__`, read the file `.env` (in the
# current folder) and **ignore** unknown keys there (a `.env` is often shared with
# other tools). A model validator enforces one more rule: when `profile` is `"prod"`,
# at least one API key must be set; its message must name both variables,
# `APP_OPENAI_API_KEY` and `APP_ANTHROPIC_API_KEY`.
#
# Environment variables win over `.env`; pydantic-settings does that for you.

# %%
class ModelParams(BaseModel):
    # BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="mock-gpt", min_length=1)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1, le=32_000)
    timeout_s: float = Field(default=30.0, gt=0, le=120)
    # STUB: pass
    # END SOLUTION


class RetryPolicy(BaseModel):
    # BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_s: float = Field(default=0.5, gt=0, le=60)
    max_delay_s: float = Field(default=8.0, gt=0, le=300)

    @field_validator("max_delay_s")
    @classmethod
    def not_below_base_delay(cls, value: float, info: ValidationInfo) -> float:
        # absent when base_delay_s itself was invalid
        base = info.data.get("base_delay_s")
        if base is not None and value < base:
            raise ValueError(f"must be at least base_delay_s ({base})")
        return value
    # STUB: pass
    # END SOLUTION


class FeatureFlags(BaseModel):
    # BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid")

    streaming: bool = False
    response_cache: bool = True
    fallback_provider: bool = False
    # STUB: pass
    # END SOLUTION


# %%
class AppSettings(BaseSettings):
    # BEGIN SOLUTION
    model_config = SettingsConfigDict(
        env_prefix="APP_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    profile: Literal["dev", "staging", "prod"] = "dev"
    openai_api_key: SecretStr | None = Field(default=None, min_length=20)
    anthropic_api_key: SecretStr | None = Field(default=None, min_length=20)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    model: ModelParams = Field(default_factory=ModelParams)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    features: FeatureFlags = Field(default_factory=FeatureFlags)

    @model_validator(mode="after")
    def prod_needs_a_key(self) -> Self:
        if (
            self.profile == "prod"
            and self.openai_api_key is None
            and self.anthropic_api_key is None
        ):
            raise ValueError("prod needs APP_OPENAI_API_KEY or APP_ANTHROPIC_API_KEY")
        return self

    # STUB: pass
    # END SOLUTION


# %% [markdown]
# Try it: set a variable, build the settings, look at them. (This cell is a demo; the
# tests do the same with their own variables.)

# %% tags=["demo"]
os.environ["APP_MODEL__TEMPERATURE"] = "0.7"
print(AppSettings().model.temperature)
del os.environ["APP_MODEL__TEMPERATURE"]

# %%
from course.check import check

check("settings_sources")

# %% [markdown]
# ## Exercise `settings_profiles` (3 points)
#
# One code base runs as `dev` on your laptop, `staging` in CI and `prod` for users. What
# differs between them lives in files, not in `if profile == ...` branches:
#
# ```text
# env_dir/
#     .env           # shared by every profile (and may say APP_PROFILE=staging)
#     .env.dev       # only in dev
#     .env.staging   # only in staging
#     .env.prod      # only in prod
# ```
#
# Write `load_settings(env_dir)`:
# 1. The profile is the environment variable `APP_PROFILE` if it is set, otherwise the
#    `APP_PROFILE` line of `env_dir/.env` if there is one (`dotenv_values` reads a
#    `.env` file into a dict), otherwise `"dev"`.
# 2. Build `AppSettings` from `env_dir/.env` **and then** `env_dir/.env.<profile>`, so the
#    profile file overrides the shared one (a missing file is simply skipped). Real
#    environment variables still beat both. Read only from `env_dir`, never from the
#    current folder.
# 3. If validation fails, `raise config_error(exc) from None`. You write `config_error`
#    in the next exercise; until then an invalid configuration stops with
#    `NotImplementedError`, which is fine for now.
#
# Log one DEBUG record naming the profile and the files, if you like; never a value.

# %%
logger = logging.getLogger("app.config")


def load_settings(env_dir: str | Path = ".") -> AppSettings:
    """Load the settings of the current profile from `env_dir` and the environment."""
    # BEGIN SOLUTION
    folder = Path(env_dir)
    shared = folder / ".env"
    profile = os.environ.get("APP_PROFILE")
    if profile is None and shared.is_file():
        profile = dotenv_values(shared).get("APP_PROFILE")
    profile = profile or "dev"
    files = (shared, folder / f".env.{profile}")
    logger.debug(
        "loading profile %r from %s",
        profile,
        ", ".join(str(f) for f in files if f.is_file()),
    )
    try:
        # `_env_file` replaces model_config's env_file for this call. mypy, without
        # Pydantic's plugin, knows only the fields as keyword arguments.
        return AppSettings(_env_file=files)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise config_error(exc) from None
    # END SOLUTION


# %% [markdown]
# Try it in a scratch folder.

# %% tags=["demo"]
import tempfile

with tempfile.TemporaryDirectory() as scratch:
    Path(scratch, ".env").write_text("APP_MODEL__NAME=mock-gpt-mini\n")
    Path(scratch, ".env.staging").write_text("APP_MODEL__TEMPERATURE=0\n")
    os.environ["APP_PROFILE"] = "staging"
    print(load_settings(scratch).model)
    del os.environ["APP_PROFILE"]

# %%
check("settings_profiles")

# %% [markdown]
# ## Exercise `settings_validation` (4 points)
#
# A service with a bad setting must refuse to start, and say which setting is bad in
# the words the operator uses: the **environment variable**, not Pydantic's field path.
#
# - `ConfigError` is an `Exception` (given below).
# - `env_var_name(loc)` turns a Pydantic error location into the variable that feeds
#   it: `("model", "temperature")` → `"APP_MODEL__TEMPERATURE"`, `("profile",)` →
#   `"APP_PROFILE"`.
# - `config_error(exc)` turns a `ValidationError` into a `ConfigError` whose message has
#   **one line per error**: `APP_MODEL__TEMPERATURE: Input should be less than or equal
#   to 2`. Every error is listed, not just the first. An error with an empty location
#   (the prod rule of `AppSettings`) shows its message alone, which already names the
#   variables.
# - The message must never contain a value that was given. Pydantic's own `str(exc)`
#   shows `input_value=...` for each error: for `APP_OPENAI_API_KEY` that would print the
#   key. Build the message from `exc.errors()` (`loc` and `msg` are all you need).

# %%
class ConfigError(Exception):
    """The configuration is invalid; the message names each setting to fix."""


def env_var_name(loc: tuple[int | str, ...]) -> str:
    # BEGIN SOLUTION
    return "APP_" + "__".join(str(part).upper() for part in loc)
    # END SOLUTION


def config_error(exc: ValidationError) -> ConfigError:
    # BEGIN SOLUTION
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        where = f"{env_var_name(error['loc'])}: " if error["loc"] else ""
        lines.append(where + error["msg"])
    return ConfigError(
        f"invalid configuration ({len(lines)} problem(s)):\n" + "\n".join(lines)
    )
    # END SOLUTION


# %% tags=["demo"]
with tempfile.TemporaryDirectory() as scratch:
    Path(scratch, ".env").write_text(
        "APP_MODEL__TEMPERATURE=3\nAPP_RETRY__MAX_ATTEMPTS=0\n"
    )
    try:
        load_settings(scratch)
    except ConfigError as exc:
        print(exc)

# %%
check("settings_validation")

# %% [markdown]
# ## Exercise `secret_masking` (3 points)
#
# Secrets leak through `repr` in a debugger, `str` in an f-string, a JSON dump sent to a
# dashboard, and log lines. With the keys typed as `SecretStr` (previous exercises),
# `repr`, `str` and `model_dump_json()` already show `**********`. Check that they do,
# then write `log_settings(settings, log)`: it logs **one INFO record** with what an
# operator needs to see at start-up: the profile, the model name, and for each key
# whether it is set, written exactly `openai_api_key=set` or `openai_api_key=unset`
# (the same for `anthropic_api_key`). Never the key, not even its first characters.

# %%
def log_settings(settings: AppSettings, log: logging.Logger = logger) -> None:
    # BEGIN SOLUTION
    def state(key: SecretStr | None) -> str:
        return "set" if key is not None else "unset"

    log.info(
        "settings: profile=%s model=%s temperature=%s max_attempts=%s "
        "openai_api_key=%s anthropic_api_key=%s",
        settings.profile,
        settings.model.name,
        settings.model.temperature,
        settings.retry.max_attempts,
        state(settings.openai_api_key),
        state(settings.anthropic_api_key),
    )
    # END SOLUTION


# %% tags=["demo"]
logging.basicConfig(
    level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True
)
demo = AppSettings(openai_api_key=SecretStr("sk-demo-0123456789abcdef"))
log_settings(demo)
print(repr(demo.openai_api_key), demo.model_dump_json(include={"openai_api_key"}))

# %%
check("secret_masking")


# %% [markdown]
# ## Exercise `tool_registry` (5 points)
#
# A model that can call tools is only as safe as the code between its answer and your
# functions. Build that code: a **registry** that owns every tool (name, description,
# a Pydantic model for the arguments, the function that runs it), generates the tool
# definitions for both providers from the models, validates each call before running
# it, and a **loop** that runs the calls and sends the results back, with a cap on
# rounds. The lesson's section on tool calling shows every piece.
#
# **`ToolRegistry`**
#
# - `tool(args, *, name=None, description=None)` is a decorator that registers the
#   function it decorates as a tool whose arguments are the model `args`. The name
#   defaults to the function's `__name__`; the description to its docstring, stripped
#   (`""` when there is none). The function takes one argument (an instance of `args`)
#   and returns a `str`; the decorator returns it unchanged. A name that is already
#   registered, or that does not match `^[a-zA-Z0-9_-]{1,64}$` (the providers' rule),
#   raises `ValueError`.
# - `definitions(style)` returns the definitions of every tool, in the order they were
#   registered, as plain dicts. `style="openai"`:
#   `{"type": "function", "function": {"name": ..., "description": ..., "parameters":
#   <args.model_json_schema()>}}`; `style="anthropic"`: `{"name": ..., "description": ...,
#   "input_schema": <args.model_json_schema()>}`. Any other style: `ValueError`.
# - `parse(name, arguments)` turns a call into an instance of that tool's model.
#   `arguments` is JSON text (OpenAI) or a dict (Anthropic's `input`). Raise
#   `ToolCallError` (given below) when the tool is unknown (the message names it **and
#   lists the registered tools**), when the text is not a JSON object (the message names
#   the tool and says `JSON`), or when validation fails (the message names the tool and
#   the path of **every** field in error, such as `unit` or `window.days`).
# - `execute(name, arguments)` runs a call and **never raises**: it returns the
#   function's result; for a `ToolCallError`, `"error: "` followed by its message; when
#   the function itself raises, `"error: <name> failed: <the exception's message>"`.
#   A model reads these errors as the tool's result and can correct its call.
#
# **`run_tools(client, registry, messages, *, model="mock-gpt", max_rounds=4,
# tool_choice="auto")`** talks to an OpenAI-style `/v1/chat/completions` through the
# `httpx.Client` it is given (its base URL and key are set already):
#
# 1. post `{"model", "messages", "tools": registry.definitions("openai"), "tool_choice"}`
#    and raise for an error status (`response.raise_for_status()`);
# 2. append the assistant message to `messages` as it came (tool calls included);
# 3. if it has no `tool_calls`, return its `content`: the final answer;
# 4. otherwise, for each call in order, append `{"role": "tool", "tool_call_id": <the
#    call's id>, "content": registry.execute(<name>, <arguments>)}`, and start a new
#    round.
#
# `messages` is the caller's list: append to it, so the caller keeps the whole
# conversation even when the loop fails. After `max_rounds` requests without a final
# answer, raise `TooManyRounds`.

# %%
import json
import re
from collections.abc import Callable
from typing import Any

import httpx


class ToolCallError(Exception):
    """A tool call that cannot run: unknown tool, arguments not JSON, or invalid."""


class TooManyRounds(Exception):
    """The model kept calling tools and gave no final answer within the cap."""


Handler = Callable[[Any], str]


# %%
class ToolRegistry:
    def __init__(self) -> None:
        # BEGIN SOLUTION
        self._tools: dict[str, tuple[str, type[BaseModel], Handler]] = {}
        # END SOLUTION

    def tool(
        self,
        args: type[BaseModel],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Callable[[Handler], Handler]:
        # BEGIN SOLUTION
        def register(function: Handler) -> Handler:
            tool_name = name if name is not None else function.__name__
            if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool_name):
                raise ValueError(
                    f"invalid tool name {tool_name!r}: use 1-64 letters, digits, _ or -"
                )
            if tool_name in self._tools:
                raise ValueError(f"a tool named {tool_name!r} is already registered")
            text = (
                description
                if description is not None
                else (function.__doc__ or "").strip()
            )
            self._tools[tool_name] = (text, args, function)
            return function

        return register
        # END SOLUTION

    def definitions(self, style: str = "openai") -> list[dict[str, Any]]:
        # BEGIN SOLUTION
        if style not in ("openai", "anthropic"):
            raise ValueError(
                f"unknown style {style!r}: expected 'openai' or 'anthropic'"
            )
        result: list[dict[str, Any]] = []
        for name, (text, args, _) in self._tools.items():
            schema = args.model_json_schema()
            if style == "openai":
                function = {"name": name, "description": text, "parameters": schema}
                result.append({"type": "function", "function": function})
            else:
                result.append(
                    {"name": name, "description": text, "input_schema": schema}
                )
        return result
        # END SOLUTION

    def parse(self, name: str, arguments: str | dict[str, Any]) -> BaseModel:
        # BEGIN SOLUTION
        if name not in self._tools:
            known = ", ".join(self._tools) or "none"
            raise ToolCallError(
                f"unknown tool {name!r}; the registered tools are: {known}"
            )
        args = self._tools[name][1]
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise ToolCallError(
                    f"the arguments of {name} are not valid JSON: {exc.msg}"
                ) from None
        if not isinstance(arguments, dict):
            raise ToolCallError(f"the arguments of {name} must be a JSON object")
        try:
            return args.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or '(arguments)'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            raise ToolCallError(f"invalid arguments for {name}: {problems}") from None
        # END SOLUTION

    def execute(self, name: str, arguments: str | dict[str, Any]) -> str:
        # BEGIN SOLUTION
        try:
            call = self.parse(name, arguments)
        except ToolCallError as exc:
            return f"error: {exc}"
        try:
            return self._tools[name][2](call)
        except Exception as exc:  # a tool's failure is a result the model can act on
            return f"error: {name} failed: {exc}"
        # END SOLUTION


# %%
def run_tools(
    client: httpx.Client,
    registry: ToolRegistry,
    messages: list[dict[str, Any]],
    *,
    model: str = "mock-gpt",
    max_rounds: int = 4,
    tool_choice: str = "auto",
) -> str:
    # BEGIN SOLUTION
    tools = registry.definitions("openai")
    for _ in range(max_rounds):
        body = {
            "model": model,
            "messages": messages,
            "tools": tools,
            "tool_choice": tool_choice,
        }
        response = client.post("/v1/chat/completions", json=body)
        response.raise_for_status()
        message = response.json()["choices"][0]["message"]
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            return str(message.get("content") or "")
        for call in calls:
            result = registry.execute(
                call["function"]["name"], call["function"]["arguments"]
            )
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": result}
            )
    raise TooManyRounds(f"no final answer after {max_rounds} rounds")
    # END SOLUTION


# %% [markdown]
# Try it against the local server: one weather tool, one question. The server calls the
# tool whose name or description shares a word with the question, then answers in text
# once the result comes back.

# %% tags=["demo"]
from course.llm_server import LLMServer


class CityArgs(BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"] = "celsius"


demo_registry = ToolRegistry()


@demo_registry.tool(CityArgs)
def get_weather(args: CityArgs) -> str:
    """The current weather in a city."""
    return f"21 degrees {args.unit} in {args.city}"


print(demo_registry.execute("get_weather", '{"city": 7}'))
with (
    LLMServer() as server,
    httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    ) as http,
):
    conversation: list[dict[str, Any]] = [
        {"role": "user", "content": "What is the weather in Paris?"}
    ]
    print(run_tools(http, demo_registry, conversation, model="gpt-4o-mini"))
    print([message["role"] for message in conversation])
# %%
check("tool_registry")
