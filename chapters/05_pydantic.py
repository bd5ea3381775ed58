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
# # 5. Pydantic and the trust boundary
#
# An LLM service is a machine for taking in data it did not make: a user's request, a
# provider's JSON, text a model wrote, a config file someone edited at midnight. Most
# production bugs in such a service are not in the clever parts. They are a `KeyError`
# three functions away from the response that lacked the key, a `"0.7"` that stayed a
# string until it reached arithmetic, or an API key printed in a log line. This chapter
# is about checking data **once, where it comes in**, and then trusting it.
#
# **What you'll learn**
#
# - where validation belongs: on the boundaries between circles of trust;
# - Pydantic v2 models and `Field` constraints, and how to read the structured errors
#   they raise (`loc`, `type`, `msg`);
# - parsing and serialising (`model_validate`, `model_validate_json`, `model_dump`,
#   `model_dump_json`), your own rules (`field_validator`, `model_validator`), derived
#   values (`computed_field`), strict against lax mode;
# - how to recognise Pydantic v1 code and migrate it;
# - discriminated unions for tool calls, and JSON that a model wrapped in prose or a code
#   fence, parsed from the course's local LLM server;
# - what validation costs against a dataclass, measured;
# - configuration with `pydantic-settings`: environment variables, `.env` files,
#   `SecretStr` and profiles.
#
# The exercises have you build the configuration system of an LLM service:
# [the chapter 5 exercises](../exercises/05_pydantic).

# %% [markdown]
# ## Circles of trust
#
# Draw your system as concentric circles:
#
# 1. **Your own code**, in the middle. It is typed and tested; inside it, a value of type
#    `ChatRequest` *is* a valid chat request.
# 2. **Your dependencies**: libraries you pinned and test against. You trust their
#    behaviour, not every value they hand back.
# 3. **External APIs**: an LLM provider. Its JSON usually has the documented shape, but
#    fields appear and vanish between versions, proxies answer with HTML, and the
#    *content* a model writes follows no schema at all.
# 4. **User input**: anything, including hostile.
#
# ```{graphviz}
# ---
# alt: >-
#   Four nested circles: your own code in the middle, then your dependencies, then
#   external APIs, then user input outermost. Request bodies, provider JSON and
#   environment variables come from outside and are validated once as they cross inward
#   into typed objects.
# caption: >-
#   Circles of trust: validate where data crosses inward, once.
# ---
# digraph trust {
#   rankdir=LR; compound=true; nodesep=0.35; fontname="sans-serif";
#   node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#44546a",
#         fontcolor="#10263d", fontname="sans-serif", fontsize=11];
#   edge [color="#44546a", fontcolor="#33414f", fontname="sans-serif", fontsize=10];
#   user_in [label="a request body,\na form, a prompt"];
#   api_in [label="a provider's JSON,\nthe text a model wrote"];
#   env_in [label="environment\nvariables, .env"];
#   subgraph cluster_user {
#     label="4. user input: anything, including hostile"; labeljust=l; fontsize=11;
#     style="rounded,filled"; fillcolor="#fbe3e0"; color="#b23b2a"; fontcolor="#6b1d12";
#     subgraph cluster_api {
#       label="3. external APIs: usually the documented shape"; labeljust=l;
#       style="rounded,filled"; fillcolor="#fdf0d5"; color="#a57800"; fontcolor="#6b4a00";
#       subgraph cluster_deps {
#         label="2. your dependencies: pinned and tested"; labeljust=l;
#         style="rounded,filled"; fillcolor="#e4f1e1"; color="#2e6b30"; fontcolor="#1f4a22";
#         code [label="1. your own code\ntyped objects: ChatRequest,\nSettings, LLMResponse",
#               fillcolor="#dbe9f6", color="#1f4e79"];
#       }
#     }
#   }
#   user_in -> code [label="validate once,\non the way in"];
#   api_in -> code [label="validate once,\non the way in"];
#   env_in -> code [label="BaseSettings"];
# }
# ```
#
# Validate where data crosses **inward**. Once, at the edge, turn untrusted `dict`s and
# strings into typed objects or reject them with a clear error. Inside, stop checking:
# code that re-validates everywhere hides where the boundary is, and code that never
# validates finds out late, far from the cause.
#
# Here is "finding out late". A provider response lost its `usage` block, and nothing
# complains until a report three layers later:

# %%
raw = {
    "id": "chatcmpl-1",
    "model": "mock-gpt",
    "choices": [{"message": {"content": "Hi"}}],
}


def tokens_used(response: dict) -> int:
    return response["usage"]["total_tokens"]


def monthly_report(responses: list[dict]) -> int:
    return sum(tokens_used(r) for r in responses)


# %% tags=["raises-exception"]
monthly_report([raw])

# %% [markdown]
# `KeyError: 'usage'`, raised in a report, about a response received long before. With a
# model at the boundary, the same response is rejected on arrival, with its path.

# %% [markdown]
# ## Models and `Field` constraints
#
# A `BaseModel` subclass declares fields with type hints. `Field(...)` adds a default and
# constraints: `ge`/`le` (≥, ≤), `gt`/`lt`, `min_length`/`max_length` for strings and
# lists, `pattern` for a regular expression. `Literal` limits a field to fixed values.

# %%
from typing import Literal

from pydantic import BaseModel, Field, ValidationError


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class ChatRequest(BaseModel):
    model: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)


# %% tags=["nbval-check-output"]
request = ChatRequest(
    model="mock-gpt",
    messages=[{"role": "user", "content": "Name a prime."}],
    temperature="0.5",
)
print(repr(request))
print(type(request.messages[0]).__name__, type(request.temperature).__name__)

# %% [markdown]
# The nested dicts became `ChatMessage` objects, and the string `"0.5"` became a float:
# by default Pydantic is **lax** and converts values when the conversion is unambiguous.
# (More on that below.)

# %% [markdown]
# ## Reading a `ValidationError`
#
# Now a request with four mistakes:

# %% tags=["raises-exception"]
ChatRequest(
    model="Mock GPT",
    messages=[{"role": "user", "content": "Hi"}, {"role": "robot", "content": ""}],
    temperature=3,
)

# %% [markdown]
# Pydantic does not stop at the first problem: one `ValidationError` reports every error.
# The printed form is for people. For code, `exc.errors()` gives a list of dicts, each
# with:
#
# - **`loc`**: where, as a path from the top of the input: `('messages', 1, 'role')` is
#   the `role` of the second message. Turn it into a JSON path, a form field, or (in the
#   exercises) an environment variable name.
# - **`type`**: what kind of error, as a stable identifier (`literal_error`,
#   `less_than_equal`, `string_too_short`). Branch on this, never on the text.
# - **`msg`**: the human sentence. It may change between Pydantic versions.
# - **`input`**: the value that failed, and **`ctx`**: the parameters of the rule, such as
#   the limit `le=2.0`.

# %% tags=["nbval-check-output"]
try:
    ChatRequest(
        model="Mock GPT",
        messages=[{"role": "user", "content": "Hi"}, {"role": "robot", "content": ""}],
        temperature=3,
    )
except ValidationError as exc:
    print(exc.error_count(), "errors")
    for error in exc.errors(include_url=False):
        print(f"{error['loc']!s:28} {error['type']:24} input={error['input']!r}")
        print(f"{'':28} {error['msg']}")

# %% [markdown]
# Two habits follow:
#
# - Log `type` and `loc` of validation failures of model output: counting
#   `('arguments', 'city') missing` across a day tells you how to change a prompt.
# - Be careful with `input` and with `str(exc)`, which includes it: when the value is a
#   secret or personal data, it ends up in your logs. `exc.errors(include_input=False)`
#   leaves it out. You will need this in the exercises.

# %% [markdown]
# ## In and out: `model_validate`, `model_validate_json`, `model_dump`, `model_dump_json`
#
# Four methods cover the boundary in both directions:
#
# | direction | from / to Python objects | from / to JSON text |
# |---|---|---|
# | in | `Model.model_validate(dict)` | `Model.model_validate_json(bytes_or_str)` |
# | out | `model.model_dump()` | `model.model_dump_json()` |
#
# `model_validate_json` parses and validates in one pass in Rust, without building an
# intermediate `dict` first: prefer it when you have the raw body.

# %%
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Choice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]


class ChatCompletion(BaseModel):
    id: str
    model: str
    choices: list[Choice] = Field(min_length=1)
    usage: Usage


body = b"""{"id": "chatcmpl-7", "model": "mock-gpt", "object": "chat.completion",
 "choices": [{"index": 0, "message": {"role": "assistant", "content": "Seven."},
              "finish_reason": "stop"}],
 "usage": {"prompt_tokens": 12, "completion_tokens": 2}}"""

# %% tags=["nbval-check-output"]
completion = ChatCompletion.model_validate_json(body)
print(completion.choices[0].message.content, completion.usage.completion_tokens)
print(completion.model_dump(include={"id", "usage"}))
print(completion.model_dump_json(exclude={"choices"}))

# %% [markdown]
# Notice the `"object": "chat.completion"` key: it is not a field, so it was dropped.
# That is the default (`extra="ignore"`), and the right one for a provider's responses:
# a new field in their API must not break your service. For **your own** inputs (a
# config section, a tool's arguments) `model_config = ConfigDict(extra="forbid")` turns
# a typo into an error instead of a silently ignored key.
#
# `model_dump` takes `include`, `exclude`, `exclude_none`, `by_alias` and
# `mode="json"` (which turns datetimes and decimals into JSON-friendly values).

# %% [markdown]
# ## Your own rules: `field_validator`, `model_validator`, `computed_field`
#
# - `@field_validator("name")` checks or normalises one field. In the default `after`
#   mode it receives the already-typed value; in `mode="before"` it sees the raw input,
#   which is the place to accept a second input shape.
# - `@model_validator(mode="after")` sees the whole, typed model: the place for rules
#   between fields.
# - `@computed_field` turns a property into something `model_dump` and JSON include.
#
# A validator raises `ValueError` (or `AssertionError`) and Pydantic turns it into an
# entry of the `ValidationError`, with the field's `loc`.

# %%
from datetime import UTC, datetime
from typing import Self

from pydantic import computed_field, field_validator, model_validator

CONTEXT_WINDOW = {"mock-gpt": 8192, "mock-gpt-mini": 4096}
PRICE_PER_1K = {"mock-gpt": 0.01, "mock-gpt-mini": 0.002}


class CompletionRequest(BaseModel):
    model: str
    prompt: str
    max_tokens: int = Field(default=256, gt=0)
    stop: list[str] = Field(default_factory=list)
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("model")
    @classmethod
    def known_model(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in CONTEXT_WINDOW:
            raise ValueError(f"unknown model; choose one of {sorted(CONTEXT_WINDOW)}")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def comma_separated(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value

    @model_validator(mode="after")
    def fits_the_window(self) -> Self:
        if self.max_tokens > CONTEXT_WINDOW[self.model]:
            raise ValueError(
                f"max_tokens {self.max_tokens} exceeds {self.model}'s window"
            )
        return self

    @computed_field
    @property
    def max_cost_usd(self) -> float:
        return round(self.max_tokens / 1000 * PRICE_PER_1K[self.model], 6)


# %% tags=["nbval-check-output"]
req = CompletionRequest(
    model=" Mock-GPT-Mini ", prompt="Hi", max_tokens=1000, stop="\n,END"
)
print(req.model, req.stop, req.max_cost_usd)
print(req.model_dump(exclude={"created"}))

# %% tags=["raises-exception"]
CompletionRequest(model="mock-gpt-mini", prompt="Hi", max_tokens=5000)

# %% [markdown]
# The model-level error has `loc` `()`: it belongs to no single field. When the rule is
# "this field is wrong given that one", a `field_validator` that reads the earlier field
# from `info.data` reports it on the right field instead; you will use that in the
# exercises.
#
# Note `datetime.now(UTC)`: a timezone-aware timestamp. The old `datetime.utcnow()`
# returns a *naive* datetime that only pretends to be UTC, and is deprecated since
# Python 3.12.

# %% [markdown]
# ## Strict and lax modes
#
# Lax mode (the default) converts: `"3"` → `3`, `"true"` → `True`, `1.0` → `1`. That
# suits input that arrives as text: environment variables, query strings, forms. Strict
# mode accepts only the declared type. Turn it on for a whole model
# (`ConfigDict(strict=True)`), one field (`Field(strict=True)`) or one call
# (`model_validate(data, strict=True)`).

# %% tags=["nbval-check-output"]
from pydantic import ConfigDict


class ToolArgs(BaseModel):
    top_k: int
    rerank: bool


class StrictToolArgs(ToolArgs):
    model_config = ConfigDict(strict=True)


data = {"top_k": "5", "rerank": "true"}
print("lax:   ", ToolArgs.model_validate(data))
try:
    StrictToolArgs.model_validate(data)
except ValidationError as exc:
    print("strict:", [(e["loc"], e["type"]) for e in exc.errors()])

# %% [markdown]
# Which to choose at an LLM boundary? A model that writes `"top_k": "5"` meant 5; lax
# mode saves you a retry. But lax mode also turns `1.0` into `1` and `"yes"` into `True`
# without telling you. A fair rule: lax for text-born input (env vars, forms, model
# output you will check further), strict for data between your own services, where a
# wrong type means a bug you want to hear about.
#
# One subtlety: strict mode on **JSON** input still accepts what JSON cannot express,
# such as an ISO string for a `datetime`, because there is no other way to send it.

# %% [markdown]
# ## Legacy: Pydantic v1 code you will meet
#
# Pydantic 2 (2023) rewrote the core in Rust and renamed most of the API. Tutorials,
# answers on forums and many code bases still use v1 names. In v2 most of them still
# work, with a `PydanticDeprecatedSince20` warning, and they will be removed in v3. One of
# them does something worse than warn:

# %% tags=["nbval-check-output"]
import warnings

from pydantic import validator

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")

    class LegacyMessage(BaseModel):
        role: str
        content: str

        @validator("content")  # v1: @field_validator in v2
        def not_blank(cls, value):
            if not value.strip():
                raise ValueError("blank")
            return value

        class Config:  # v1: model_config = ConfigDict(...) in v2
            anystr_lower = True  # v1 name; v2 calls it str_to_lower

    # v1: model_validate
    message = LegacyMessage.parse_obj({"role": "USER", "content": "Hi"})
    print(message.dict())  # v1: model_dump

for warning in caught:
    print(f"{warning.category.__name__}: {str(warning.message).splitlines()[0][:70]}")

# %% [markdown]
# Everything ran and printed warnings, but look at the output: `'USER'` was not lowered.
# The v1 config key `anystr_lower` is only *reported* as renamed, and the setting is
# not applied. Migrating is more than silencing warnings. The main renames:
#
# | Pydantic v1 | Pydantic v2 |
# |---|---|
# | `@validator("f")` | `@field_validator("f")` plus `@classmethod` |
# | `@root_validator` | `@model_validator(mode="before" or "after")` |
# | `class Config: ...` | `model_config = ConfigDict(...)` |
# | `orm_mode = True` | `from_attributes=True` |
# | `anystr_lower`, `anystr_strip_whitespace` | `str_to_lower`, `str_strip_whitespace` |
# | `.dict()`, `.json()` | `.model_dump()`, `.model_dump_json()` |
# | `.parse_obj()`, `.parse_raw()` | `.model_validate()`, `.model_validate_json()` |
# | `.copy(update=...)` | `.model_copy(update=...)` |
# | `.schema()` | `.model_json_schema()` |
# | `BaseSettings` in `pydantic` | `BaseSettings` in the `pydantic-settings` package |
# | `Optional[X]` meant "may be omitted" | `X \| None` is required unless it has a default |
#
# To migrate a code base: run the `bump-pydantic` tool for the mechanical renames, turn
# warnings into errors in the tests (`-W error::pydantic.PydanticDeprecatedSince20`),
# and fix the rest by hand. Code that cannot move yet can import the old API from
# `pydantic.v1`, a frozen copy of v1 shipped inside v2.

# %% [markdown]
# ## Discriminated unions: tool calls
#
# When a model calls a tool, its output is one of several shapes, one per tool. A
# **discriminated union** says which field tells them apart. Pydantic then reads that
# field first and validates against that one model only.

# %%
from typing import Annotated

from pydantic import TypeAdapter


class GetWeather(BaseModel):
    tool: Literal["get_weather"]
    city: str
    unit: Literal["celsius", "fahrenheit"] = "celsius"


class SearchDocs(BaseModel):
    tool: Literal["search_docs"]
    query: str = Field(min_length=1)
    top_k: int = Field(default=5, ge=1, le=50)


class Escalate(BaseModel):
    tool: Literal["escalate_to_human"]
    reason: str


ToolCall = Annotated[GetWeather | SearchDocs | Escalate, Field(discriminator="tool")]
tool_call_adapter = TypeAdapter(ToolCall)

# %% [markdown]
# `TypeAdapter` gives any type (not just a model) the `validate_python`,
# `validate_json` and `dump_json` methods. Dispatch with `match` on the class:

# %% tags=["nbval-check-output"]
def run_tool(call: GetWeather | SearchDocs | Escalate) -> str:
    match call:
        case GetWeather(city=city, unit=unit):
            return f"weather in {city} ({unit})"
        case SearchDocs(query=query, top_k=k):
            return f"top {k} documents for {query!r}"
        case Escalate(reason=reason):
            return f"handing over: {reason}"


for raw_call in ['{"tool": "search_docs", "query": "refund policy", "top_k": 3}',
                 '{"tool": "get_weather", "city": "Lyon"}']:
    print(run_tool(tool_call_adapter.validate_json(raw_call)))

# %% [markdown]
# The payoff is in the errors. With the discriminator, a bad call reports one problem
# in the tool it names, or says the tool does not exist:

# %% tags=["nbval-check-output"]
PlainUnion = TypeAdapter(GetWeather | SearchDocs | Escalate)

for raw_call in ['{"tool": "search_docs", "query": "refunds", "top_k": 500}',
                 '{"tool": "delete_database"}']:
    for name, adapter in (
        ("discriminated", tool_call_adapter),
        ("plain union", PlainUnion),
    ):
        try:
            adapter.validate_json(raw_call)
        except ValidationError as exc:
            print(
                f"{name:14} {exc.error_count()} errors, first: "
                f"{exc.errors()[0]['loc']} {exc.errors()[0]['type']}"
            )

# %% [markdown]
# A plain union tries every member and reports why each one failed: one mistake in
# `top_k` becomes errors about weather and escalation too. That is noise when you log
# it, and noise when you feed the errors back to the model to ask for a correction.
# The discriminated union is also faster, because it validates one member instead of
# all of them.

# %% [markdown]
# ## Parsing JSON that a model wrote
#
# Ask a model for JSON and you will often get JSON *plus* something: a sentence before
# it, a Markdown code fence around it, or both. The course's local LLM server can play
# that model. It answers OpenAI-style requests at `/v1/chat/completions`, and two
# request headers script its answer: `X-Mock-Reply` is the text to return, and
# `X-Mock-Reply-Style` wraps it (`plain`, `fence`, `prose` or `prose_fence`).
#
# Start the server for the rest of this section (a real HTTP server on localhost, in a
# background thread):

# %%
import httpx

from course.llm_server import LLMServer

server = LLMServer()
server.start()
client = httpx.Client(
    base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
)

# %%
verdict = '{"label": "refund_request", "confidence": 0.92, "needs_human": false}'


def ask(style: str) -> str:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "mock-gpt",
            "messages": [{"role": "user", "content": "Classify this ticket."}],
        },
        headers={"X-Mock-Reply": verdict, "X-Mock-Reply-Style": style},
    )
    response.raise_for_status()
    return (
        ChatCompletion.model_validate_json(response.content).choices[0].message.content
    )


# %% tags=["nbval-check-output"]
for style in ("plain", "fence", "prose", "prose_fence"):
    print(f"--- {style}\n{ask(style)}")

# %% [markdown]
# `model_validate_json` on the whole text works only for `plain`. A robust extractor
# tries, in order: the whole text; the first fenced block; the first JSON value that
# starts somewhere in the text. For the last step, `json.JSONDecoder().raw_decode`
# parses one JSON value from a position and returns where it stopped, so trailing prose
# does not matter.

# %%
import json
import re

FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)
_decoder = json.JSONDecoder()


def extract_json(text: str) -> str:
    """The JSON in a model's answer: the whole text, a fenced block, or the first
    object."""
    candidates = [text.strip(), *(m.group(1) for m in FENCE.finditer(text))]
    candidates += [text[i:] for i, ch in enumerate(text) if ch in "{["]
    for candidate in candidates:
        try:
            value, _ = _decoder.raw_decode(candidate)
        except json.JSONDecodeError:
            continue
        return json.dumps(value)
    raise ValueError(f"no JSON value in the model's answer: {text[:80]!r}")


# %% tags=["nbval-check-output"]
class TicketLabel(BaseModel):
    label: Literal["refund_request", "bug_report", "question", "other"]
    confidence: float = Field(ge=0, le=1)
    needs_human: bool


for style in ("plain", "fence", "prose", "prose_fence"):
    print(f"{style:12}", TicketLabel.model_validate_json(extract_json(ask(style))))

# %% [markdown]
# Two steps, two kinds of failure, and keep them apart: `extract_json` fails when there
# is no JSON (ask again), `model_validate_json` fails when the JSON has the wrong shape
# (ask again **with the errors**, which tell the model exactly what to fix). Give the
# model the schema in the first place, too: `TicketLabel.model_json_schema()` is a JSON
# Schema you can paste into the prompt, and providers' structured-output modes accept it
# directly.

# %% tags=["nbval-check-output"]
bad = client.post(
    "/v1/chat/completions",
    json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Classify."}]},
    headers={
        "X-Mock-Reply": '{"label": "complaint", "confidence": 1.4}',
        "X-Mock-Reply-Style": "fence",
    },
).json()["choices"][0]["message"]["content"]
try:
    TicketLabel.model_validate_json(extract_json(bad))
except ValidationError as exc:
    feedback = "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
    )
    print("Your JSON was invalid:", feedback)

# %%
client.close()
server.stop()

# %% [markdown]
# ## What validation costs, and when a dataclass is enough
#
# Validation is not free. Here are 20,000 retrieval hits, as dicts and as JSON bytes,
# turned into objects several ways: a plain dataclass (no checks at all), a Pydantic
# model one record at a time, a `TypeAdapter` over the whole list (one call into
# Pydantic's Rust core), and `model_construct`, which builds a model **without**
# validating. Each is timed with `time.perf_counter`, best of three runs.

# %%
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass


@dataclass(slots=True)
class HitDC:
    doc_id: str
    score: float
    text: str
    page: int


class HitModel(BaseModel):
    doc_id: str
    score: float = Field(ge=0, le=1)
    text: str
    page: int = Field(ge=1)


records = [
    {
        "doc_id": f"doc-{i}",
        "score": (i % 100) / 100,
        "text": "lorem ipsum " * 4,
        "page": i % 300 + 1,
    }
    for i in range(20_000)
]
hits_json = json.dumps(records).encode()
hits_adapter = TypeAdapter(list[HitModel])  # build once: building it is the slow part


def timed(label: str, build: Callable[[], Sized], runs: int = 3) -> None:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = build()
        best = min(best, time.perf_counter() - start)
    print(
        f"{label:38} {best * 1000:6.1f} ms  {best / len(result) * 1e6:5.2f} µs/record"
    )


# %%
timed("dataclass(**d)", lambda: [HitDC(**r) for r in records])
timed(
    "HitModel.model_validate(d), one by one",
    lambda: [HitModel.model_validate(r) for r in records],
)
timed(
    "hits_adapter.validate_python(list)", lambda: hits_adapter.validate_python(records)
)
timed("json.loads + dataclass", lambda: [HitDC(**r) for r in json.loads(hits_json)])
timed(
    "hits_adapter.validate_json(bytes)", lambda: hits_adapter.validate_json(hits_json)
)
timed(
    "HitModel.model_construct(**d)",
    lambda: [HitModel.model_construct(**r) for r in records],
)

# %% [markdown]
# Your numbers depend on the machine; read the proportions. Typically:
#
# - Validating a record costs a microsecond or two: several times a bare dataclass, and
#   nothing next to the hundreds of milliseconds of the LLM call that produced it.
# - One call over the whole list is cheaper than a Python loop of `model_validate`.
# - From JSON bytes, `validate_json` parses *and* checks in about the time
#   `json.loads` plus a dataclass takes to parse and check nothing.
# - `model_construct` is no speed trick in Pydantic v2 (it runs in Python, and is
#   often slower than validating). It exists to rebuild models from data you validated
#   before, not to skip a cost.
#
# So: **at a boundary, always validate**; the cost is tiny next to the I/O that brought
# the data. **Inside**, a dataclass is enough for data your own code made and mypy
# checks, and it is the cheaper choice in a hot loop over millions of items (scoring,
# deduplication) where microseconds add up. Measure before you trade safety for speed.

# %% [markdown]
# ## Settings: `pydantic-settings`
#
# Configuration is input too, from the outermost circle: whoever set the environment.
# `pydantic-settings` adds `BaseSettings`, a model that fills its fields from
# environment variables and `.env` files, then validates them like any other input.
#
# The priority, highest first: arguments passed to the constructor, environment
# variables, `.env` files, then field defaults.

# %%
import os
import tempfile
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RetrySettings(BaseModel):
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_s: float = Field(default=0.5, gt=0)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEMO_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    model_name: str = "mock-gpt"
    api_key: SecretStr
    timeout_s: float = Field(default=30.0, gt=0)
    retry: RetrySettings = Field(default_factory=RetrySettings)


# %% [markdown]
# Environment variables are matched case-insensitively after the prefix, and `__`
# reaches into a nested model: `DEMO_RETRY__ATTEMPTS` sets `retry.attempts`. Each value
# arrives as a string and is converted (lax mode is exactly right here). To keep the
# demonstration tidy, work in a scratch folder and put the environment back afterwards.

# %% tags=["nbval-check-output"]
scratch = Path(tempfile.mkdtemp())
(scratch / ".env").write_text(
    "DEMO_API_KEY=sk-from-dotenv-123\nDEMO_TIMEOUT_S=12\nEDITOR=vim\n"
)
previous_dir = Path.cwd()
os.chdir(scratch)
os.environ["DEMO_RETRY__ATTEMPTS"] = "5"
os.environ["DEMO_TIMEOUT_S"] = "20"

settings = ServiceSettings()
print(repr(settings))

# %% [markdown]
# `timeout_s` came from the environment (20 beat the file's 12), `api_key` from `.env`,
# `retry.attempts` from a nested variable, and `EDITOR` in the file was ignored. The key
# shows as `**********`: `SecretStr` masks its value in `repr`, `str` and JSON. The
# code that needs the key asks for it explicitly:

# %% tags=["nbval-check-output"]
print(settings.api_key)
print(settings.model_dump_json())
print(settings.api_key.get_secret_value()[:8] + "...")

# %% [markdown]
# Masking covers the model's own output, not everything. Two leaks remain. You can
# still log `get_secret_value()` yourself; and Pydantic's error message prints the input
# that failed. Make the key fail a rule and look:

# %%
class KeyedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")
    api_key: SecretStr = Field(min_length=20)


os.environ["DEMO_API_KEY"] = "sk-short-but-secret"

# %% tags=["nbval-check-output"]
try:
    KeyedSettings()
except ValidationError as exc:
    print("str(exc) shows it:", "sk-short-but-secret" in str(exc))
    print(exc.errors(include_input=False, include_url=False))

# %% [markdown]
# ### Profiles: dev, staging, prod
#
# The same code runs on a laptop, in CI and in production; what changes is
# configuration. Keep the differences in files, one per profile, and choose the profile
# with one variable. `_env_file` (a constructor argument) overrides `env_file` for one
# call, and when given several files, **later files win**:

# %% tags=["nbval-check-output"]
(scratch / ".env.prod").write_text("DEMO_MODEL_NAME=mock-gpt\nDEMO_TIMEOUT_S=60\n")
(scratch / ".env.dev").write_text("DEMO_MODEL_NAME=mock-gpt-mini\n")
del os.environ["DEMO_TIMEOUT_S"], os.environ["DEMO_API_KEY"]

for profile in ("dev", "prod"):
    s = ServiceSettings(_env_file=(scratch / ".env", scratch / f".env.{profile}"))
    print(
        f"{profile:5} model={s.model_name} timeout={s.timeout_s} "
        f"attempts={s.retry.attempts}"
    )

# %% [markdown]
# Nothing in the code says "if prod": the file does. Secrets follow the same path but
# live elsewhere: in production they come from the platform's secret store as
# environment variables, and `.env` files stay out of version control.
#
# Finally, a settings object is built **once**, at start-up, and passed to what needs it.
# If it is invalid, the service must not start: better a crash with a clear message
# during a deploy than a 500 on the first request that touches the bad value.

# %%
del os.environ["DEMO_RETRY__ATTEMPTS"]
os.chdir(previous_dir)

# %% [markdown]
# ## Check your understanding
#
# **1.** Your service receives a webhook from a partner, calls an LLM, and stores the
# model's JSON answer. Where do you validate, and with which `extra` setting?
#
# ```{admonition} Answer
# :class: dropdown
# Twice, at the two places data crosses inward: the webhook body on arrival (partner
# input; `extra="forbid"` if you own the contract, `"ignore"` if they may add fields)
# and the model's answer before you store it (model output is the least trusted
# data in the system). The provider's response envelope is a third crossing; validate
# the fields you use and ignore extra ones so that their API can grow.
# ```
#
# **2.** Your code checks `if error["msg"].startswith("Input should be less")`. What is
# wrong, and what should it check?
#
# ```{admonition} Answer
# :class: dropdown
# `msg` is prose for people and may change in any Pydantic release. Branch on
# `error["type"]` (`less_than_equal`), a stable identifier, and read the limit from
# `error["ctx"]`.
# ```
#
# **3.** Why does a discriminated union give better errors than a plain union for tool
# calls?
#
# ```{admonition} Answer
# :class: dropdown
# It reads the discriminator first and validates only the member it names, so an error
# is reported once, in that tool's terms (`('search_docs', 'top_k')`), or as an unknown
# tag. A plain union tries every member and reports every member's failure. The
# discriminated one is faster for the same reason.
# ```
#
# **4.** Strict or lax for settings read from environment variables? For messages
# between two of your own services?
#
# ```{admonition} Answer
# :class: dropdown
# Lax for environment variables: every value is a string, and the conversion is the
# point. Strict between your own services: a string where an int belongs is a bug in
# the sender, and you want it reported, not quietly converted.
# ```
#
# **5.** A v1 model has `class Config: anystr_strip_whitespace = True`. It runs on v2
# with a warning. Is the behaviour the same?
#
# ```{admonition} Answer
# :class: dropdown
# No. v2 warns that the key was renamed (`str_strip_whitespace`) and does not apply it:
# whitespace is no longer stripped. Migrate config keys by hand (or with
# `bump-pydantic`) and run the tests with deprecation warnings as errors.
# ```
#
# **6.** A colleague says: "Pydantic is slow, use dataclasses for the 50,000 chunks we
# load from the vector store on each request." What do you measure, and what do you
# answer?
#
# ```{admonition} Answer
# :class: dropdown
# Measure validation per record against the rest of the request (the vector-store call,
# the LLM call). Validation costs microseconds per record; if the chunks come from your
# own store, written by your own validated code, a dataclass is defensible in that
# hot path (`model_construct` is not: it is rarely faster). If they come from outside,
# validate, preferably in one `TypeAdapter(list[Chunk]).validate_json(...)` call.
# ```
#
# **7.** Name two ways an API key typed as `SecretStr` can still leak.
#
# ```{admonition} Answer
# :class: dropdown
# Your own code logging or printing `get_secret_value()`, and a `ValidationError`
# message, which includes the rejected input (`input_value=...`) for the key. Build
# error messages from `exc.errors(include_input=False)`.
# ```

# %% [markdown]
# ## Summary
#
# - Validate where data crosses inward, once; inside, pass typed objects.
# - A `ValidationError` lists every problem; read `loc` (where), `type` (what, stable),
#   `msg` (for people), and beware of `input` in logs.
# - `model_validate_json` for raw bodies; `model_dump(_json)` on the way out; validators
#   for rules, `computed_field` for derived values; lax for text-born input, strict
#   between your own services.
# - Discriminated unions for tool calls; extract JSON from prose and fences before
#   validating it.
# - Validation costs microseconds per record; measure before reaching for a dataclass.
# - `BaseSettings` reads the environment and `.env` files; `SecretStr` masks keys;
#   profiles live in files.

# %% [markdown]
# ## Next
#
# Build the configuration system of an LLM service in
# [the exercises](../exercises/05_pydantic): API keys, model parameters, a retry policy
# and feature flags, loaded from the environment and `.env`, with profiles and masked
# secrets.
#
# Then [Chapter 6](06_resilience) deals with the provider on the other side of the
# boundary failing: retries, rate limits, circuit breakers and fallbacks.
