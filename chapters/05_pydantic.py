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
# - structured output: a Pydantic model's JSON Schema sent to the provider, the answer
#   validated (`.parse()` with the official SDK), and a repair prompt, a retry cap and
#   a fallback for the answers that still fail;
# - tool calling with a typed registry: definitions generated from Pydantic models,
#   calls validated as a discriminated union, and a loop that runs the tools and sends
#   the results back, with a cap on rounds; OpenAI and Anthropic shapes side by side;
# - what validation costs against a dataclass, measured;
# - configuration with `pydantic-settings`: environment variables, `.env` files,
#   `SecretStr` and profiles.
#
# The exercises have you build the configuration system of an LLM service, and a tool
# registry with its calling loop: [the chapter 5 exercises](../exercises/05_pydantic).

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

# %% [markdown]
# ## Structured output: send the schema, validate the answer
#
# Extracting JSON from prose is the fallback. The better path is to hand the provider
# the schema and ask it to answer with an instance. Chat Completions takes it as
# `response_format` with `"type": "json_schema"`; the Responses API as
# `text.format`; Anthropic's Messages API as `output_config.format`. The schema is the
# one Pydantic already writes for you:

# %% tags=["nbval-check-output"]
print(json.dumps(TicketLabel.model_json_schema()))


# %% tags=["nbval-check-output"]
def schema_request(messages: list[dict], model: type[BaseModel]) -> dict:
    """A chat request whose answer must be an instance of `model`'s JSON Schema."""
    form = {"name": model.__name__, "schema": model.model_json_schema()}
    return {
        "model": "gpt-4o-mini",  # a real name: the local server answers it too
        "messages": messages,
        "response_format": {"type": "json_schema", "json_schema": form},
    }


question = [{"role": "user", "content": "Classify: I want my money back."}]
reply = client.post("/v1/chat/completions", json=schema_request(question, TicketLabel))
content = reply.json()["choices"][0]["message"]["content"]
print(content)
print(TicketLabel.model_validate_json(content))

# %% [markdown]
# The local server answers with a deterministic instance of whatever schema you send
# (required fields, types, enums, bounds, nested models), so this runs offline and
# gives the same answer every time. A real model picks the values; the shape is what
# the schema guarantees.
#
# Add `"strict": true` and the provider promises the answer matches the schema, with
# two conditions on the schema: every property is listed in `required`, and every
# object says `"additionalProperties": false`. Pydantic's schema leaves fields with
# defaults out of `required` and does not close objects. The local server checks both
# conditions as OpenAI does, so the mistake shows up here first:

# %% tags=["nbval-check-output"]
strict_body = schema_request(question, TicketLabel)
strict_body["response_format"]["json_schema"]["strict"] = True
refused = client.post("/v1/chat/completions", json=strict_body)
print(refused.status_code, refused.json()["error"]["message"])

# %% [markdown]
# The official `openai` package rewrites the schema for you (closing every object and
# listing every field as required) and parses the answer back into your model:
# `.parse()` is the whole round trip in one call. The client points at the local server
# through `base_url`:

# %% tags=["nbval-check-output"]
from openai import OpenAI

sdk = OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key)
parsed = sdk.chat.completions.parse(
    model="gpt-4o-mini", messages=question, response_format=TicketLabel
)
label = parsed.choices[0].message.parsed
print(type(label).__name__, label)

# %% [markdown]
# ### When the answer does not validate
#
# A schema makes a bad answer rare, not impossible. Validate anyway, because:
#
# - the answer may be **cut short**: `finish_reason == "length"` at `max_tokens`, and
#   half an object is not JSON (`.parse()` raises `LengthFinishReasonError` for it);
# - the model may **refuse** (`message.refusal` is set and there is no JSON);
# - not every provider, model or gateway enforces the schema; JSON mode
#   (`"type": "json_object"`) promises JSON, not your fields;
# - your model has rules a JSON Schema cannot say (a `model_validator` that compares two
#   fields), so a schema-valid answer can still fail `model_validate_json`.
#
# The recipe: validate; on failure send the errors back and ask once more (a **repair
# prompt**); stop after a fixed number of attempts; then fall back to something safe
# that says so, such as routing the ticket to a person. Never loop until it works.
#
# To show it offline, this server scripts a model that gets it wrong the first time: a
# prompt with the marker `[triage]` gets a bad label, and a prompt that contains the
# repair message gets a good one. `[stubborn]` never learns.


# %%
def triage_model(prompt: str) -> str:
    if "did not validate" in prompt:
        return '{"label": "refund_request", "confidence": 0.9, "needs_human": false}'
    return '{"label": "complaint", "confidence": 1.4, "needs_human": false}'


def stubborn_model(prompt: str) -> str:
    return '```json\n{"label": "refund"}\n```'


from typing import TypeVar

scripted = LLMServer(replies={"[triage]": triage_model, "[stubborn]": stubborn_model})
scripted.start()
triage_http = httpx.Client(
    base_url=scripted.base_url, headers={"Authorization": f"Bearer {scripted.api_key}"}
)


M = TypeVar("M", bound=BaseModel)


def problems_of(exc: ValidationError, whole: str = "the answer") -> str:
    """Each error as `where: what`, for a person or a model to act on."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or whole}: {e['msg']}" for e in exc.errors()
    )


def ask_structured(
    prompt: str, model: type[M], *, attempts: int = 3, fallback: M | None = None
) -> M:
    """Ask for an instance of `model`; repair up to `attempts`, then fall back."""
    messages = [{"role": "user", "content": prompt}]
    for attempt in range(1, attempts + 1):
        response = triage_http.post(
            "/v1/chat/completions", json=schema_request(messages, model)
        )
        choice = response.json()["choices"][0]
        text = choice["message"]["content"] or ""
        if choice["finish_reason"] == "length":
            problems = "the answer was cut at max_tokens"
        else:
            try:
                return model.model_validate_json(text)
            except ValidationError as exc:
                problems = problems_of(exc)
        print(f"attempt {attempt} failed: {problems}")
        messages += [
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": f"Your JSON did not validate: {problems}. "
                "Answer again with corrected JSON only.",
            },
        ]
    if fallback is None:
        raise ValueError(f"no valid {model.__name__} after {attempts} attempts")
    print("falling back")
    return fallback


# %% tags=["nbval-check-output"]
print(ask_structured("[triage] I want my money back.", TicketLabel))

# %% tags=["nbval-check-output"]
safe = TicketLabel(label="other", confidence=0.0, needs_human=True)
print(
    ask_structured(
        "[stubborn] Where is my order?", TicketLabel, attempts=2, fallback=safe
    )
)

# %% [markdown]
# The repair prompt carries the errors' `loc` and `msg`, never the raw `str(exc)`: the
# model needs to know which field is wrong and why, and `input_value=...` would repeat
# whatever the user typed. Notice also what `[stubborn]` shows: a fenced answer does
# not even parse. In production, run `extract_json` before `model_validate_json`, and
# count the attempts in a metric: a rising repair rate is an early sign of a prompt or
# model change.

# %% [markdown]
# ## Tool calling with a typed registry
#
# With tools, the model does not answer; it asks **your code** to run a function and
# send back the result. The request lists the tools with a JSON Schema for each one's
# arguments; the answer names a tool and carries the arguments as JSON **text**, which
# you must parse and validate like any other model output. The round trip:
#
# 1. send the conversation and the tool definitions;
# 2. if the answer has tool calls, run each one and append its result to the
#    conversation, then go back to 1;
# 3. if the answer is text, that is the final answer.
#
# A **registry** keeps everything about a tool in one place: its name, its description,
# a Pydantic model for its arguments and the function that runs it. The definitions the
# provider needs are generated from the models, so they cannot drift from the code.

# %%
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import create_model


class WeatherArgs(BaseModel):
    city: str = Field(description="A city name, such as Paris")
    unit: Literal["celsius", "fahrenheit"] = "celsius"


class DocsArgs(BaseModel):
    query: str = Field(min_length=3)
    top_k: int = Field(default=3, ge=1, le=10)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    run: Callable[[Any], str]


class ToolRegistry:
    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}

    def tool(self, args: type[BaseModel]) -> Callable[[Callable], Callable]:
        """Decorator: register a function under its name; its docstring describes it."""

        def register(function: Callable[[Any], str]) -> Callable[[Any], str]:
            doc = (function.__doc__ or "").strip()
            self.tools[function.__name__] = Tool(function.__name__, doc, args, function)
            return function

        return register

    def openai_tools(self) -> list[dict]:
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.args.model_json_schema(),
                },
            }
            for t in self.tools.values()
        ]

    def anthropic_tools(self) -> list[dict]:
        return [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": t.args.model_json_schema(),
            }
            for t in self.tools.values()
        ]


registry = ToolRegistry()


@registry.tool(WeatherArgs)
def get_weather(args: WeatherArgs) -> str:
    """The current weather in a city."""
    return json.dumps({"city": args.city, "temperature": 21, "unit": args.unit})


@registry.tool(DocsArgs)
def search_docs(args: DocsArgs) -> str:
    """Search the product documentation."""
    return json.dumps(
        [f"doc-{i}: about {args.query}" for i in range(1, args.top_k + 1)]
    )


# %% [markdown]
# The same tool, as each provider wants it. The schema is identical; the envelope is
# not:

# %% tags=["nbval-check-output"]
print(json.dumps(registry.openai_tools()[0])[:150], "...")
print(json.dumps(registry.anthropic_tools()[0])[:150], "...")

# %% [markdown]
# A call arrives as a tool name plus arguments. That is a tagged union, exactly the
# shape of the discriminated union earlier in the chapter, with the tool name as the
# tag. `create_model` builds one model per tool (its arguments plus a `tool` field
# fixed to its name), and a `TypeAdapter` over their union validates a call against the
# one tool it names. One more method on the registry runs a call and turns every
# failure into a message for the model, because the model can fix its own mistakes if
# it is told what they were:


# %%
def call_adapter(registry: ToolRegistry) -> TypeAdapter:
    members = [
        create_model(f"{t.name}_call", __base__=t.args, tool=(Literal[t.name], ...))
        for t in registry.tools.values()
    ]
    union = functools.reduce(operator.or_, members)  # A | B | C, built at run time
    return TypeAdapter(Annotated[union, Field(discriminator="tool")])


def execute(registry: ToolRegistry, name: str, arguments: str) -> str:
    """Run one call; a bad call becomes an error message the model can act on."""
    try:
        data = json.loads(arguments)
        call = call_adapter(registry).validate_python({**data, "tool": name})
    except json.JSONDecodeError as exc:
        return f"error: the arguments of {name} are not JSON ({exc.msg})"
    except ValidationError as exc:
        return f"error: bad call to {name}: {problems_of(exc, 'the call')}"
    return registry.tools[call.tool].run(call)


# %% tags=["nbval-check-output"]
print(execute(registry, "get_weather", '{"city": "Lyon"}'))
print(execute(registry, "get_weather", '{"city": 5}'))
print(execute(registry, "delete_database", "{}"))
print(execute(registry, "search_docs", '{"query": "refunds", "top'))

# %% [markdown]
# Now the loop. It must end even when the model keeps calling tools, so it has a cap on
# rounds: a model stuck in a loop costs money on every round and never answers.


# %%
class TooManyRounds(Exception):
    """The model kept calling tools; no final answer within the cap."""


def run_with_tools(
    prompt: str, *, max_rounds: int = 4, tool_choice: str = "auto"
) -> str:
    messages: list[dict] = [{"role": "user", "content": prompt}]
    for round_number in range(1, max_rounds + 1):
        body = {
            "model": "gpt-4o-mini",
            "messages": messages,
            "tools": registry.openai_tools(),
            "tool_choice": tool_choice,
        }
        response = client.post("/v1/chat/completions", json=body)
        response.raise_for_status()
        message = response.json()["choices"][0]["message"]
        messages.append(message)  # the assistant turn, tool calls included
        if not message.get("tool_calls"):
            return message["content"]
        for call in message["tool_calls"]:
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            result = execute(registry, name, arguments)
            print(f"round {round_number}: {name}({arguments}) -> {result}")
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": result}
            )
    raise TooManyRounds(f"no final answer after {max_rounds} rounds")


# %% tags=["nbval-check-output"]
print(run_with_tools("What is the weather in Paris?"))

# %% [markdown]
# The local server decides like a cautious model: with `tool_choice="auto"` it calls the
# tool whose name or description shares a word with the question, and answers in text
# once tool results come back. `"required"` forces a call on every round, which is how
# to see the cap work:

# %% tags=["nbval-check-output"]
try:
    run_with_tools("Find the docs about refunds", max_rounds=2, tool_choice="required")
except TooManyRounds as exc:
    print("stopped:", exc)

# %% [markdown]
# Three details in the loop matter with every provider. The assistant message that made
# the calls goes back into the conversation **before** the results. Each result carries
# the `tool_call_id` of its call, since a model may call several tools at once. And a
# failed call is sent back as a result, not raised, so the model can correct itself
# (count those too: a tool that fails often has a bad description or schema).
#
# Anthropic's Messages API has the same loop in other shapes:
#
# - **definition**: OpenAI wraps it, `{"type": "function", "function": {name,
#   description, parameters}}`; Anthropic does not, `{name, description, input_schema}`.
# - **forcing a call**: `tool_choice="required"` or `{"type": "function", "function":
#   {"name": ...}}`; Anthropic says `{"type": "any"}` or `{"type": "tool", "name":
#   ...}`. No calls: `"none"` against `{"type": "none"}`.
# - **the call**: `message.tool_calls[i].function.arguments` is JSON **text**; a
#   `tool_use` content block's `input` is already an **object**.
# - **why it stopped**: `finish_reason == "tool_calls"` against
#   `stop_reason == "tool_use"`.
# - **the result**: a message with `role: "tool"` and `tool_call_id`, against a
#   `tool_result` block with `tool_use_id` inside a `user` message.
#
# One round trip in Anthropic's format, through the same registry:

# %% tags=["nbval-check-output"]
anthropic_headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
turns: list[dict] = [{"role": "user", "content": "What is the weather in Oslo?"}]
body = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 300,
    "tools": registry.anthropic_tools(),
}
first = client.post(
    "/v1/messages", headers=anthropic_headers, json=body | {"messages": turns}
)
first = first.json()
use = next(block for block in first["content"] if block["type"] == "tool_use")
print(first["stop_reason"], use["name"], use["input"])
result = execute(registry, use["name"], json.dumps(use["input"]))
turns += [
    {"role": "assistant", "content": first["content"]},
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": use["id"], "content": result}
        ],
    },
]
final = client.post(
    "/v1/messages", headers=anthropic_headers, json=body | {"messages": turns}
)
print(final.json()["stop_reason"], final.json()["content"][0]["text"])

# %%
triage_http.close()
scripted.stop()
sdk.close()
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
# **7.** Your tool loop sent back a tool result, and the provider answered 400. The
# result message had the right `tool_call_id`. What is the likely mistake?
#
# ```{admonition} Answer
# :class: dropdown
# The assistant message that made the calls is missing from the conversation: each
# result must follow the assistant turn whose `tool_calls` (or `tool_use` blocks) it
# answers. Append the assistant message first, then one result per call.
# ```
#
# **8.** Name two ways an API key typed as `SecretStr` can still leak.
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
# - Send the schema (`response_format`, `output_config.format`) and still validate the
#   answer; repair with the errors, cap the attempts, fall back on purpose.
# - Tools: generate definitions from models, validate each call before running it, send
#   failures back as results, and cap the rounds of the loop.
# - Validation costs microseconds per record; measure before reaching for a dataclass.
# - `BaseSettings` reads the environment and `.env` files; `SecretStr` masks keys;
#   profiles live in files.

# %% [markdown]
# ## Next
#
# Build the configuration system of an LLM service in
# [the exercises](../exercises/05_pydantic): API keys, model parameters, a retry policy
# and feature flags, loaded from the environment and `.env`, with profiles and masked
# secrets; then a typed tool registry and the loop that lets a model call it.
#
# Then [Chapter 6](06_resilience) deals with the provider on the other side of the
# boundary failing: retries, rate limits, circuit breakers and fallbacks.
