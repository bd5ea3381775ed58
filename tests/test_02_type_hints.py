"""Graded tests for chapter 2's exercise: a type-safe response handler.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data. The raw responses
(ids, models, texts, token counts, how many choices and blocks) are drawn at random per
run, so converters that return the published example values earn nothing. mypy reads
the submitted file in a fresh process of the judge's (it never runs the code), not in
the worker, where the learner's code could replace it.
"""

from __future__ import annotations

import copy
import random
import string
import subprocess
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from course.probing import kind, probe, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def words(count: int) -> str:
    return " ".join(word(random.randint(2, 7)) for _ in range(count))


def openai_raw(text: str | None = None, reason: str = "stop") -> dict[str, Any]:
    """A valid OpenAI-style response with random values; the first choice says ``text``."""
    first = words(random.randint(1, 5)) if text is None else text
    choices = [{"index": 0, "message": {"role": "assistant", "content": first},
                "finish_reason": reason}]
    for index in range(1, random.randint(1, 3)):  # later choices must be ignored
        choices.append({"index": index, "message": {"role": "assistant", "content": words(2)},
                        "finish_reason": "stop"})
    prompt, completion = random.randint(1, 900), random.randint(1, 900)
    return {"id": f"chatcmpl-{word(8)}", "object": "chat.completion",
            "created": random.randint(1_700_000_000, 1_900_000_000),
            "model": f"gpt-{word(4)}-{random.randint(1, 9)}", "choices": choices,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


def anthropic_raw(blocks: int | None = None, reason: str = "end_turn") -> dict[str, Any]:
    """A valid Anthropic-style response with random values and ``blocks`` text blocks."""
    count = random.randint(2, 4) if blocks is None else blocks
    return {"id": f"msg_{word(8)}", "type": "message", "role": "assistant",
            "model": f"claude-{word(5)}-{random.randint(1, 9)}",
            "content": [{"type": "text", "text": word(random.randint(2, 6))}
                        for _ in range(count)],
            "stop_reason": reason, "stop_sequence": None,
            "usage": {"input_tokens": random.randint(1, 900),
                      "output_tokens": random.randint(1, 900)}}


def changed(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    data.update(changes)
    return data


def without(raw: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k != key}


# --------------------------------------------------------------- worker-side helpers


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Data:
    """What a call did, as data: the error it raised (its type, whether it is pydantic's
    ValidationError, its full message) or what it returned. NotImplementedError
    propagates: the test then fails with "not written yet"."""
    from pydantic import ValidationError

    try:
        value = call(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:
        return {"error": kind(exc), "validation": isinstance(exc, ValidationError),
                "message": shown(exc, str, limit=4000)}
    return {"error": None, "returned": shown(value)}


def key_text(key: Any) -> str:
    return key if type(key) is str else f"<{kind(key)}> {shown(key)}"


def text_or_shown(value: Any) -> Data:
    """A plain value as itself; anything else (a str subclass...) as its type and repr."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return f"<{kind(value)}> {shown(value)}"


def is_optional_str(hint: Any) -> bool:
    """``str | None`` or ``Optional[str]``, checked without trusting the hint's own ``==``."""
    origin = typing.get_origin(hint)
    return (origin is typing.Union or origin is types.UnionType) and same(
        frozenset(typing.get_args(hint)), frozenset({str, type(None)})
    )


def typeddict_info(nb: Any, name: str) -> Data:
    """A TypedDict's keys as data, or why it is not one."""
    import typing_extensions

    cls = getattr(nb, name, None)
    if cls is None:
        return {"problem": f"the notebook defines no {name}"}
    if not typing_extensions.is_typeddict(cls):
        return {"problem": f"{name} should be a TypedDict, got {shown(cls)}"}
    hints = typing.get_type_hints(cls)
    return {"problem": None, "keys": sorted(map(key_text, hints)),
            "hints": {key_text(key): shown(hint) for key, hint in hints.items()},
            "optional_str": sorted(key_text(key) for key, hint in hints.items()
                                   if is_optional_str(hint)),
            "optional_keys": sorted(map(key_text, cls.__optional_keys__)),
            "required_keys": sorted(map(key_text, cls.__required_keys__))}


FIELDS = ("provider", "model", "text", "finish_reason", "input_tokens", "output_tokens")


def fields_of(nb: Any, response: Any) -> Data:
    """An LLMResponse's fields as data, or a description of what came back instead."""
    if type(response) is not nb.LLMResponse:
        return f"not an LLMResponse: {shown(response)} ({kind(response)})"
    return {name: text_or_shown(getattr(response, name, None)) for name in FIELDS}


def converter(nb: Any, provider: str) -> Callable[[Any], Any]:
    function: Callable[[Any], Any] = nb.from_openai if provider == "openai" else nb.from_anthropic
    return function


def need(data: Data) -> Data:
    """Fail with the worker's description when a TypedDict could not be read."""
    assert data["problem"] is None, data["problem"]
    return data


# --- typed_responses -------------------------------------------------------------------

TYPED_HINT = "Compare each TypedDict's keys and types with the table in the instructions."

EXPECTED_KEYS = {
    "OpenAIMessage": {"role", "content"},
    "OpenAIChoice": {"index", "message", "finish_reason"},
    "OpenAIUsage": {"prompt_tokens", "completion_tokens", "total_tokens"},
    "OpenAIResponse": {"id", "object", "created", "model", "choices", "usage"},
    "AnthropicTextBlock": {"type", "text"},
    "AnthropicUsage": {"input_tokens", "output_tokens"},
    "AnthropicResponse": {
        "id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage",
    },
}


@probe
def probe_typeddicts(nb: Any, names: list[str]) -> Data:
    return {name: typeddict_info(nb, name) for name in names}


@exercise("typed_responses", points=1, hint=TYPED_HINT)
def test_typeddicts_have_the_documented_keys(notebook: Any) -> None:
    got = probe_typeddicts(notebook, list(EXPECTED_KEYS))
    for name, keys in EXPECTED_KEYS.items():
        info = need(got[name])
        assert same(info["keys"], sorted(keys)), (
            f"{name}: expected keys {sorted(keys)}, found {info['keys']}"
        )


@exercise(
    "typed_responses", points=1,
    hint="Look at which keys may be missing (NotRequired) and which may be null (X | None); "
    "they are different things.",
)
def test_optional_keys_and_nullable_values(notebook: Any) -> None:
    got = probe_typeddicts(notebook, ["OpenAIResponse", "OpenAIMessage", "AnthropicResponse"])
    response = need(got["OpenAIResponse"])
    assert same(response["optional_keys"], ["usage"]), (
        f"OpenAIResponse: only 'usage' may be missing; optional keys are "
        f"{response['optional_keys']}"
    )
    message = need(got["OpenAIMessage"])
    assert "content" in message["optional_str"], (
        f"OpenAIMessage.content should be str | None, got {message['hints'].get('content')!r}"
    )
    anthropic = need(got["AnthropicResponse"])
    assert "stop_sequence" in anthropic["required_keys"], (
        "AnthropicResponse.stop_sequence is always present (it may be null): it must be required"
    )
    assert "stop_sequence" in anthropic["optional_str"], (
        f"AnthropicResponse.stop_sequence should be str | None, got "
        f"{anthropic['hints'].get('stop_sequence')!r}"
    )


@probe
def probe_validate(nb: Any, good: list[list[Any]], bad: list[list[Any]]) -> Data:
    """Validate each ``[TypedDict name, data]`` with a TypeAdapter of the learner's type."""
    from pydantic import TypeAdapter

    adapters = {name: TypeAdapter(getattr(nb, name)) for name in
                {name for name, _ in good + bad}}
    return {"good": [outcome(adapters[name].validate_python, data) for name, data in good],
            "bad": [outcome(adapters[name].validate_python, data) for name, data in bad]}


@exercise(
    "typed_responses", points=1,
    hint="Use Literal[...] for fixed strings, nest the TypedDicts, and give 'choices' a "
    "minimum length with Annotated; then try TypeAdapter(...).validate_python on bad data.",
)
def test_typeddicts_validate_at_runtime(notebook: Any) -> None:
    o, a = openai_raw(), anthropic_raw()
    choice = copy.deepcopy(o["choices"][0])
    choice["finish_reason"] = word(5)
    bad_cases = [
        ("OpenAIResponse", changed(o, object=word(10)), "object must be 'chat.completion'"),
        ("OpenAIResponse", changed(o, choices=[]), "choices must hold at least one choice"),
        ("OpenAIResponse", changed(o, choices=[choice]),
         f"finish_reason {choice['finish_reason']!r} is not allowed"),
        ("OpenAIResponse", changed(o, usage={"prompt_tokens": random.randint(1, 99)}),
         "usage needs all three counts"),
        ("AnthropicResponse", changed(a, stop_reason="stop"), "stop_reason 'stop' is OpenAI's"),
        ("AnthropicResponse", changed(a, content=[{"type": word(5), "text": word()}]),
         "a content block's type must be 'text'"),
        ("AnthropicResponse", changed(a, usage={"input_tokens": word(4),
                                                "output_tokens": random.randint(1, 99)}),
         "token counts are ints"),
    ]
    got = probe_validate(notebook, [["OpenAIResponse", o], ["AnthropicResponse", a]],
                         [[name, data] for name, data, _ in bad_cases])
    for (name, data), result in zip((("OpenAIResponse", o), ("AnthropicResponse", a)),
                                    got["good"], strict=True):
        assert result["error"] is None, (
            f"{name} rejected a valid response: {result['error']}: {result['message']}\n"
            f"the response: {data}"
        )
    for (name, _, why), result in zip(bad_cases, got["bad"], strict=True):
        assert result["error"] is not None, f"{name}: validation accepted bad data: {why}"
        assert result["validation"], (
            f"{name}: bad data ({why}) should raise ValidationError, got "
            f"{result['error']}: {result['message']}"
        )


# --- unified_response ------------------------------------------------------------------

def good_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "provider": random.choice(["openai", "anthropic"]), "model": f"m-{word(5)}",
        "text": words(random.randint(1, 4)),
        "finish_reason": random.choice(["stop", "length", "tool_use", "content_filter"]),
        "input_tokens": random.randint(0, 900), "output_tokens": random.randint(0, 900),
    }
    fields.update(changes)
    return fields


@probe
def probe_llm_response(nb: Any, fields: dict[str, Any], unknown: dict[str, Any],
                       zero: dict[str, Any]) -> Data:
    import pydantic

    cls = nb.LLMResponse
    model = isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)
    if not model:
        return {"model": False, "shown": shown(cls)}
    response = cls(**fields)
    return {"model": True, "fields": fields_of(nb, response),
            "total": text_or_shown(response.total_tokens),
            "unknown_total": text_or_shown(cls(**unknown).total_tokens),
            "zero_total": text_or_shown(cls(**zero).total_tokens)}


@exercise(
    "unified_response", points=1,
    hint="Check the field types and constraints in the table (Literal, min_length, ge=0), "
    "and the total_tokens property.",
)
def test_llm_response_accepts_good_data(notebook: Any) -> None:
    fields = good_fields()
    unknown = good_fields(input_tokens=None, output_tokens=None, text="")
    if random.random() < 0.5:  # one unknown count is enough to make the total unknown
        unknown[random.choice(["input_tokens", "output_tokens"])] = random.randint(0, 50)
    zero = good_fields(input_tokens=0, output_tokens=0)
    got = probe_llm_response(notebook, fields, unknown, zero)
    assert got["model"], f"LLMResponse must be a pydantic BaseModel, got {got.get('shown')}"
    assert_same(got["fields"], fields, "the fields of LLMResponse(**fields)")
    assert_same(got["total"], fields["input_tokens"] + fields["output_tokens"], "total_tokens")
    assert_same(got["zero_total"], 0, "total_tokens with both counts 0 (>= 0 allows 0)")
    assert got["unknown_total"] is None, (
        f"total_tokens with an unknown count ({unknown['input_tokens']!r}, "
        f"{unknown['output_tokens']!r}): expected None, got {got['unknown_total']!r}"
    )


@probe
def probe_llm_response_rejects(nb: Any, cases: list[dict[str, Any]], good: dict[str, Any],
                               new_text: str) -> Data:
    results = [outcome(nb.LLMResponse, **fields) for fields in cases]
    response = nb.LLMResponse(**good)
    return {"cases": results, "frozen": outcome(setattr, response, "text", new_text)}


@exercise(
    "unified_response", points=1,
    hint="Every bad value must raise ValidationError naming its field: look at constraints, "
    "extra='forbid' and frozen=True in model_config.",
)
def test_llm_response_rejects_bad_data(notebook: Any) -> None:
    extra = random.choice(["temperature", "top_p", "seed"]) + "_" + word(3)
    bad = [
        (good_fields(provider=word(7)), "provider"),
        (good_fields(model=""), "model"),
        (good_fields(finish_reason=random.choice(["end_turn", "max_tokens", word(7)])),
         "finish_reason"),
        (good_fields(input_tokens=-random.randint(1, 99)), "input_tokens"),
        (good_fields(output_tokens=-random.randint(1, 99)), "output_tokens"),
        (good_fields(output_tokens=word(4)), "output_tokens"),
        (good_fields(**{extra: random.random()}), extra),
        (without(good_fields(), "text"), "text"),
    ]
    got = probe_llm_response_rejects(notebook, [fields for fields, _ in bad], good_fields(),
                                     words(2))
    for (fields, field), result in zip(bad, got["cases"], strict=True):
        assert result["error"] is not None, (
            f"LLMResponse accepted a bad {field!r}: {fields.get(field, '(missing)')!r}"
        )
        assert result["validation"], (
            f"a bad {field!r} should raise ValidationError, got {result['error']}: "
            f"{result['message']}"
        )
        assert field in result["message"], (
            f"the ValidationError should name {field!r}; it says: {result['message']}"
        )
    frozen = got["frozen"]
    assert frozen["error"] is not None and frozen["validation"], (
        "an LLMResponse could be changed after it was made: it should be frozen "
        f"(setting .text gave {frozen['error'] or 'no error'})"
    )


# --- response_converters ---------------------------------------------------------------

@probe
def probe_convert(nb: Any, cases: list[list[Any]]) -> Data:
    """Each ``[provider, raw]`` through the learner's converter: its fields as data."""
    return [fields_of(nb, converter(nb, provider)(raw)) for provider, raw in cases]


def want(provider: str, raw: dict[str, Any], text: str, reason: str) -> dict[str, Any]:
    usage = raw.get("usage")
    counts = ((None, None) if usage is None else
              (usage["prompt_tokens"], usage["completion_tokens"]) if provider == "openai" else
              (usage["input_tokens"], usage["output_tokens"]))
    return {"provider": provider, "model": raw["model"], "text": text, "finish_reason": reason,
            "input_tokens": counts[0], "output_tokens": counts[1]}


@exercise(
    "response_converters", points=1,
    hint="Compare each field of your result with the raw response: the first choice's text, "
    "OpenAI's prompt/completion counts, and the provider name.",
)
def test_openai_converts(notebook: Any) -> None:
    full = openai_raw()
    no_usage = without(openai_raw(), "usage")
    tool_call = openai_raw(reason="tool_calls")
    tool_call["choices"][0]["message"]["content"] = None
    got = probe_convert(notebook, [["openai", full], ["openai", no_usage],
                                   ["openai", tool_call]])
    first = full["choices"][0]["message"]["content"]
    assert_same(got[0], want("openai", full, first, "stop"), "from_openai")
    assert_same(got[1], want("openai", no_usage, no_usage["choices"][0]["message"]["content"],
                             "stop"), "from_openai without usage (the counts should be None)")
    assert_same(got[2], want("openai", tool_call, "", "tool_use"),
                "from_openai with content None and finish_reason 'tool_calls'")


@exercise(
    "response_converters", points=1,
    hint="An Anthropic response can hold several text blocks: look at how you build the text.",
)
def test_anthropic_converts(notebook: Any) -> None:
    raw = anthropic_raw(reason=random.choice(["end_turn", "stop_sequence"]))
    empty = changed(anthropic_raw(), content=[], stop_reason="max_tokens")
    got = probe_convert(notebook, [["anthropic", raw], ["anthropic", empty]])
    text = "".join(block["text"] for block in raw["content"])
    assert_same(got[0], want("anthropic", raw, text, "stop"), "from_anthropic")
    assert_same(got[1], want("anthropic", empty, "", "length"),
                "from_anthropic with no content blocks and stop_reason 'max_tokens'")


FINISH_REASONS = [
    ("openai", "stop", "stop"),
    ("openai", "length", "length"),
    ("openai", "tool_calls", "tool_use"),
    ("openai", "content_filter", "content_filter"),
    ("anthropic", "end_turn", "stop"),
    ("anthropic", "stop_sequence", "stop"),
    ("anthropic", "max_tokens", "length"),
    ("anthropic", "tool_use", "tool_use"),
]


@exercise(
    "response_converters", points=1,
    hint="Check your finish-reason table against the instructions, row by row, for both providers.",
)
def test_finish_reasons_map(notebook: Any) -> None:
    cases = []
    for provider, raw_reason, _ in FINISH_REASONS:
        if provider == "openai":
            cases.append([provider, openai_raw(reason=raw_reason)])
        else:
            raw = anthropic_raw(reason=raw_reason)
            if raw_reason == "stop_sequence":
                raw["stop_sequence"] = "\n\n" + word(5).capitalize() + ":"
            cases.append([provider, raw])
    got = probe_convert(notebook, cases)
    for (provider, raw_reason, unified), fields in zip(FINISH_REASONS, got, strict=True):
        reason = fields["finish_reason"] if isinstance(fields, dict) else fields
        assert same(reason, unified), (
            f"{provider} {raw_reason!r}: expected {unified!r}, got {reason!r}"
        )


@probe
def probe_invalid(nb: Any, cases: list[list[Any]]) -> Data:
    return [outcome(converter(nb, provider), raw) for provider, raw in cases]


@exercise(
    "response_converters", points=1,
    hint="Validate the raw input with a TypeAdapter of your TypedDict before you index into "
    "it: a KeyError, IndexError or TypeError means something was read before validation.",
)
def test_invalid_input_raises_validation_error(notebook: Any) -> None:
    o, a = openai_raw(), anthropic_raw()
    no_content = copy.deepcopy(o["choices"][0])
    del no_content["message"]["content"]
    invalid = [
        ("openai", "no choices", changed(o, choices=[]), "choices"),
        ("openai", "no model", without(o, "model"), "model"),
        ("openai", "a message without content", changed(o, choices=[no_content]), "content"),
        ("openai", "a string", words(3), "dict"),
        ("anthropic", "a block without text", changed(a, content=[{"type": "text"}]), "text"),
        ("anthropic", "null usage", changed(a, usage=None), "usage"),
        ("anthropic", "OpenAI's stop reason", changed(a, stop_reason="stop"), "stop_reason"),
        ("anthropic", "a list", [a], "dict"),
    ]
    got = probe_invalid(notebook, [[provider, raw] for provider, _, raw, _ in invalid])
    for (provider, what, _, names), result in zip(invalid, got, strict=True):
        label = f"from_{provider}({what})"
        assert result["error"] is not None, (
            f"{label}: invalid input was converted instead of rejected: {result['returned']}"
        )
        assert result["validation"], (
            f"{label}: expected a pydantic ValidationError, got {result['error']}: "
            f"{result['message']}"
        )
        assert names in result["message"], (
            f"{label}: the error should mention {names!r}; it says: {result['message']}"
        )


# --- mypy_clean ------------------------------------------------------------------------

@probe
def probe_texts(nb: Any, openai_data: dict[str, Any], anthropic_data: dict[str, Any]) -> Data:
    return [text_or_shown(nb.from_openai(openai_data).text),
            text_or_shown(nb.from_anthropic(anthropic_data).text)]


def mypy_errors(path: Path, no_any_in: tuple[str, ...]) -> list[str]:
    """mypy --strict on the submitted file, in a fresh process that never ran its code."""
    command = [sys.executable, "-I", "-m", "course.typecheck",
               f"--no-any-in={','.join(no_any_in)}", str(path)]
    try:
        done = subprocess.run(command,
                              capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("mypy did not finish within 120 s on this notebook", pytrace=False)
    if done.returncode not in (0, 1):
        pytest.fail(f"mypy could not check the notebook: {done.stderr.strip()[-500:]}",
                    pytrace=False)
    prefix = f"{path}: "
    return [line.removeprefix(prefix) for line in done.stdout.splitlines()
            if line.startswith(prefix) and not line.endswith("mypy --strict finds no errors")]


@exercise(
    "mypy_clean", points=3,
    hint="Run `python -m course.typecheck <your notebook>` and fix each error it lists; "
    "the cell and line are given.",
)
def test_notebook_passes_mypy_strict(notebook: Any, submission_file: Path) -> None:
    # A notebook that does nothing type-checks trivially: the converters must work first.
    o, a = openai_raw(), anthropic_raw()
    texts = probe_texts(notebook, o, a)
    assert_same(texts[0], o["choices"][0]["message"]["content"],
                "from_openai(...).text (the converters must work first)")
    assert_same(texts[1], "".join(block["text"] for block in a["content"]),
                "from_anthropic(...).text (the converters must work first)")
    # mypy reads the submitted file here, in the judge's own process tree, never in the
    # worker, where the learner's code could replace it. Typed all the way: an expression
    # of type Any in a converter (a TypeAdapter[Any], a cast) would leave mypy nothing to
    # check there, so it does not count as clean.
    errors = mypy_errors(submission_file, no_any_in=("from_openai", "from_anthropic"))
    if errors:  # raised, not asserted: pytest would append the list's repr to the message
        raise AssertionError("mypy --strict reports:\n" + "\n".join(errors))
