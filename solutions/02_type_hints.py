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
# # Exercises 2: a type-safe response handler
#
# Your service talks to two providers. One answers in the OpenAI chat-completions shape,
# the other in the Anthropic messages shape. The rest of your code should see neither:
# it should get one validated `LLMResponse`. You will build that boundary in four steps.
#
# | exercise | what you build | points |
# |---|---|---|
# | `typed_responses` | `TypedDict`s for both raw response shapes | 3 |
# | `unified_response` | the Pydantic model `LLMResponse` | 2 |
# | `response_converters` | `from_openai()` and `from_anthropic()` | 4 |
# | `mypy_clean` | the whole notebook passes `mypy --strict` | 3 |
#
# Everything you need is in [the lesson, chapter 2](../chapters/02_type_hints). Write your answers
# where a cell raises `NotImplementedError`, save the notebook, and run the `check(...)`
# cell at the end of each exercise: it runs the same tests the grader runs, on the saved
# file.
#
# **Running mypy yourself.** The grader runs `mypy --strict` on this notebook. From the
# course folder, in a terminal:
#
# ```bash
# .venv/bin/mypy --strict exercises/02_type_hints.py   # a .py notebook
# .venv/bin/python -m course.typecheck exercises/02_type_hints.py
# .venv/bin/python -m course.typecheck my_copy/02_type_hints.ipynb
# .venv/bin/python -m course.typecheck --no-any-in=from_openai,from_anthropic \
#     exercises/02_type_hints.py
# ```
#
# The second form works for `.py` and `.ipynb` alike and names the cell each error is in;
# the third is exactly what the grader runs for `mypy_clean` (see that exercise).

# %%
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # Pydantic on 3.11 needs this, not typing's

# %% [markdown]
# Here is one response of each kind, already parsed from JSON. Both say "Paris".

# %%
OPENAI_SAMPLE = {
    "id": "chatcmpl-9x1",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16},
}

ANTHROPIC_SAMPLE = {
    "id": "msg_01A",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Paris."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 14, "output_tokens": 2},
}

# %% [markdown]
# ## Exercise 1: the raw response shapes (`typed_responses`, 3 points)
#
# Write a `TypedDict` for every object in the two shapes, with exactly these names and
# keys. Use `Literal` for the fixed strings; every key is required unless it says
# otherwise.
#
# OpenAI style:
# - `OpenAIMessage`: `role` (always `"assistant"`), `content` (a string, or `None` when
#   the model called a tool instead of answering).
# - `OpenAIChoice`: `index` (int), `message` (an `OpenAIMessage`), `finish_reason`
#   (one of `"stop"`, `"length"`, `"tool_calls"`, `"content_filter"`).
# - `OpenAIUsage`: `prompt_tokens`, `completion_tokens`, `total_tokens` (ints).
# - `OpenAIResponse`: `id` (str), `object` (always `"chat.completion"`), `created` (int),
#   `model` (str), `choices` (a list of `OpenAIChoice` that must hold **at least one**:
#   say so with `Annotated[..., Field(min_length=1)]`), `usage` (an `OpenAIUsage`,
#   **not required**: some servers leave it out).
#
# Anthropic style:
# - `AnthropicTextBlock`: `type` (always `"text"`), `text` (str).
# - `AnthropicUsage`: `input_tokens`, `output_tokens` (ints).
# - `AnthropicResponse`: `id` (str), `type` (always `"message"`), `role` (always
#   `"assistant"`), `model` (str), `content` (a list of `AnthropicTextBlock`),
#   `stop_reason` (one of `"end_turn"`, `"max_tokens"`, `"stop_sequence"`,
#   `"tool_use"`), `stop_sequence` (a string or `None`: required, but may be null),
#   `usage` (an `AnthropicUsage`).
#
# Define each nested type before the type that uses it.

# %%
class OpenAIMessage(TypedDict):
    # BEGIN SOLUTION
    role: Literal["assistant"]
    content: str | None
    # STUB: pass
    # END SOLUTION


class OpenAIChoice(TypedDict):
    # BEGIN SOLUTION
    index: int
    message: OpenAIMessage
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]
    # STUB: pass
    # END SOLUTION


class OpenAIUsage(TypedDict):
    # BEGIN SOLUTION
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # STUB: pass
    # END SOLUTION


class OpenAIResponse(TypedDict):
    # BEGIN SOLUTION
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: Annotated[list[OpenAIChoice], Field(min_length=1)]
    usage: NotRequired[OpenAIUsage]
    # STUB: pass
    # END SOLUTION


# %%
class AnthropicTextBlock(TypedDict):
    # BEGIN SOLUTION
    type: Literal["text"]
    text: str
    # STUB: pass
    # END SOLUTION


class AnthropicUsage(TypedDict):
    # BEGIN SOLUTION
    input_tokens: int
    output_tokens: int
    # STUB: pass
    # END SOLUTION


class AnthropicResponse(TypedDict):
    # BEGIN SOLUTION
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[AnthropicTextBlock]
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
    stop_sequence: str | None
    usage: AnthropicUsage
    # STUB: pass
    # END SOLUTION


# %% [markdown]
# A `TypedDict` is only a promise to the type checker. Pydantic can hold a dict to it at
# run time: `TypeAdapter(OpenAIResponse).validate_python(data)` returns the data if it
# fits and raises `ValidationError` if it does not. Try it on the samples.

# %%
openai_data = TypeAdapter(OpenAIResponse).validate_python(OPENAI_SAMPLE)
anthropic_data = TypeAdapter(AnthropicResponse).validate_python(ANTHROPIC_SAMPLE)
print(
    openai_data["choices"][0]["message"]["content"],
    anthropic_data["content"][0]["text"],
)

# %%
from course.check import check

check("typed_responses")

# %% [markdown]
# ## Exercise 2: one response model (`unified_response`, 2 points)
#
# Write the Pydantic model `LLMResponse` that the rest of the service sees:
#
# | field | type | rule |
# |---|---|---|
# | `provider` | `Literal["openai", "anthropic"]` | |
# | `model` | `str` | not empty |
# | `text` | `str` | may be empty |
# | `finish_reason` | `Literal["stop", "length", "tool_use", "content_filter"]` | |
# | `input_tokens` | `int \| None` | `None` when unknown, otherwise `>= 0` |
# | `output_tokens` | `int \| None` | `None` when unknown, otherwise `>= 0` |
#
# Every field is required (pass `None` explicitly when a count is unknown). Unknown
# extra fields are an error, and a response cannot be changed once made
# (`model_config = ConfigDict(extra="forbid", frozen=True)`). Add a property
# `total_tokens` that returns the sum of the two counts, or `None` if either is unknown.

# %%
class LLMResponse(BaseModel):
    """One chat response, whichever provider produced it."""

    # BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["openai", "anthropic"]
    model: str = Field(min_length=1)
    text: str
    finish_reason: Literal["stop", "length", "tool_use", "content_filter"]
    input_tokens: int | None = Field(ge=0)
    output_tokens: int | None = Field(ge=0)

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens
    # STUB: pass
    # END SOLUTION


# %%
LLMResponse(
    provider="openai", model="gpt-4o-mini", text="Paris.", finish_reason="stop",
    input_tokens=14, output_tokens=2,
)

# %%
from course.check import check

check("unified_response")

# %% [markdown]
# ## Exercise 3: the converters (`response_converters`, 4 points)
#
# Write `from_openai(raw)` and `from_anthropic(raw)`. Each takes a raw parsed JSON value
# (typed `object`: you do not know what the network sent) and returns an `LLMResponse`.
#
# 1. Validate `raw` against your `TypedDict` first (a module-level `TypeAdapter` is
#    built once and reused). Anything that does not fit raises pydantic's
#    `ValidationError`, whose message names the bad field. No `KeyError`, `IndexError`
#    or `TypeError` may escape.
# 2. OpenAI: the text is the first choice's `content` (`None` becomes `""`). Anthropic:
#    the text is every text block joined in order, with nothing between them.
# 3. Map the finish reasons:
#
#    | OpenAI | Anthropic | `LLMResponse` |
#    |---|---|---|
#    | `stop` | `end_turn`, `stop_sequence` | `stop` |
#    | `length` | `max_tokens` | `length` |
#    | `tool_calls` | `tool_use` | `tool_use` |
#    | `content_filter` | | `content_filter` |
#
# 4. Token counts: OpenAI's `prompt_tokens` and `completion_tokens`, Anthropic's
#    `input_tokens` and `output_tokens`; both `None` when OpenAI's `usage` is missing.

# %%
FinishReason = Literal["stop", "length", "tool_use", "content_filter"]

# BEGIN SOLUTION
OPENAI_ADAPTER = TypeAdapter(OpenAIResponse)
ANTHROPIC_ADAPTER = TypeAdapter(AnthropicResponse)

OPENAI_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_use",
    "content_filter": "content_filter",
}
ANTHROPIC_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_use",
}
# STUB: # Module-level helpers for the converters (adapters, lookup tables) go here.
# END SOLUTION


def from_openai(raw: object) -> LLMResponse:
    """An OpenAI-style chat completion as an LLMResponse; ValidationError if malformed.
    """
    # BEGIN SOLUTION
    data = OPENAI_ADAPTER.validate_python(raw)
    choice = data["choices"][0]
    usage = data.get("usage")
    return LLMResponse(
        provider="openai",
        model=data["model"],
        text=choice["message"]["content"] or "",
        finish_reason=OPENAI_FINISH[choice["finish_reason"]],
        input_tokens=usage["prompt_tokens"] if usage is not None else None,
        output_tokens=usage["completion_tokens"] if usage is not None else None,
    )
    # END SOLUTION


def from_anthropic(raw: object) -> LLMResponse:
    """An Anthropic-style message as an LLMResponse; ValidationError if malformed."""
    # BEGIN SOLUTION
    data = ANTHROPIC_ADAPTER.validate_python(raw)
    return LLMResponse(
        provider="anthropic",
        model=data["model"],
        text="".join(block["text"] for block in data["content"]),
        finish_reason=ANTHROPIC_FINISH[data["stop_reason"]],
        input_tokens=data["usage"]["input_tokens"],
        output_tokens=data["usage"]["output_tokens"],
    )
    # END SOLUTION


# %%
print(from_openai(OPENAI_SAMPLE))
print(from_anthropic(ANTHROPIC_SAMPLE))

# %% [markdown]
# A malformed response must fail with a message that says where:

# %%
try:
    from_anthropic({**ANTHROPIC_SAMPLE, "content": [{"type": "text"}]})
except ValidationError as exc:
    print(exc)

# %%
from course.check import check

check("response_converters")

# %% [markdown]
# ## Exercise 4: clean under `mypy --strict` (`mypy_clean`, 3 points)
#
# The grader runs `mypy --strict` on this whole notebook, after checking that both
# converters work. Run it yourself (see the top of this notebook) and fix what it
# reports. One more rule, for `from_openai` and `from_anthropic` only: no expression in
# them may have type `Any` (mypy's `--disallow-any-expr`, which the grader adds there).
# A `TypeAdapter[Any]` or a `cast(Any, ...)` would silence mypy by leaving it nothing to
# check; `TypeAdapter(OpenAIResponse)` gives it your TypedDicts to check against.
#
# The usual findings: a function without annotations, `content` used as a
# `str` when it can be `None`, `data.get("usage")` used without checking for `None`, a
# `dict[str, str]` passed where a `Literal` is expected.

# %% tags=["demo"]
from pathlib import Path

from course.typecheck import typecheck_notebook

# .py or .ipynb, whichever you use
this_notebook = next(Path(".").glob("02_type_hints.*"))
errors = typecheck_notebook(this_notebook, no_any_in=("from_openai", "from_anthropic"))
print("\n".join(errors) or "mypy --strict: no errors")

# %%
from course.check import check

check("mypy_clean")
