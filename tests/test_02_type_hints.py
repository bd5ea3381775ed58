"""Graded tests for chapter 2's exercise: a type-safe response handler."""

from __future__ import annotations

import copy
import re
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest
import typing_extensions
from pydantic import TypeAdapter, ValidationError

from course.pytest_plugin import exercise
from course.testing import assert_same, same
from course.typecheck import typecheck_notebook

OPENAI: dict[str, Any] = {
    "id": "chatcmpl-t1",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Bonjour"}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "Salut"}, "finish_reason": "stop"},
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
}
ANTHROPIC: dict[str, Any] = {
    "id": "msg_t1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "Bon"}, {"type": "text", "text": "jour"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 4},
}


def openai(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(OPENAI)
    data.update(changes)
    return data


def anthropic(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(ANTHROPIC)
    data.update(changes)
    return data


def is_optional_str(hint: Any) -> bool:
    """``str | None`` or ``Optional[str]``, checked without trusting the hint's own ``==``."""
    origin = typing.get_origin(hint)
    return (origin is typing.Union or origin is types.UnionType) and same(
        frozenset(typing.get_args(hint)), frozenset({str, type(None)})
    )


def mentions(exc: BaseException, word: str) -> bool:
    """Whether the error's text holds ``word``; a regex reads the characters themselves, so
    a string subclass with a lying ``__contains__`` cannot fake it."""
    return re.search(re.escape(word), str(exc)) is not None


def hints_of(notebook: types.ModuleType, name: str) -> dict[str, Any]:
    cls = getattr(notebook, name, None)
    assert cls is not None, f"the notebook defines no {name}"
    assert typing_extensions.is_typeddict(cls), f"{name} should be a TypedDict, got {cls!r}"
    return typing.get_type_hints(cls)


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


@exercise("typed_responses", points=1, hint=TYPED_HINT)
def test_typeddicts_have_the_documented_keys(notebook: types.ModuleType) -> None:
    for name, keys in EXPECTED_KEYS.items():
        found = set(hints_of(notebook, name))
        assert same(found, keys), (
            f"{name}: expected keys {sorted(keys)}, found {sorted(found)}"
        )


@exercise(
    "typed_responses", points=1,
    hint="Look at which keys may be missing (NotRequired) and which may be null (X | None); "
    "they are different things.",
)
def test_optional_keys_and_nullable_values(notebook: types.ModuleType) -> None:
    response = notebook.OpenAIResponse
    assert same(response.__optional_keys__, frozenset({"usage"})), (
        f"OpenAIResponse: only 'usage' may be missing; optional keys are "
        f"{sorted(response.__optional_keys__)}"
    )
    message = hints_of(notebook, "OpenAIMessage")
    assert is_optional_str(message["content"]), (
        f"OpenAIMessage.content should be str | None, got {message['content']!r}"
    )
    block = notebook.AnthropicResponse
    assert any(same(key, "stop_sequence") for key in block.__required_keys__), (
        "AnthropicResponse.stop_sequence is always present (it may be null): it must be required"
    )
    stop = hints_of(notebook, "AnthropicResponse")["stop_sequence"]
    assert is_optional_str(stop), f"AnthropicResponse.stop_sequence should be str | None, got {stop!r}"


@exercise(
    "typed_responses", points=1,
    hint="Use Literal[...] for fixed strings, nest the TypedDicts, and give 'choices' a "
    "minimum length with Annotated; then try TypeAdapter(...).validate_python on bad data.",
)
def test_typeddicts_validate_at_runtime(notebook: types.ModuleType) -> None:
    openai_adapter = TypeAdapter(notebook.OpenAIResponse)
    anthropic_adapter = TypeAdapter(notebook.AnthropicResponse)
    openai_adapter.validate_python(OPENAI)
    anthropic_adapter.validate_python(ANTHROPIC)
    bad_cases = [
        (openai_adapter, openai(object="completion"), "object must be 'chat.completion'"),
        (openai_adapter, openai(choices=[]), "choices must hold at least one choice"),
        (openai_adapter, openai(choices=[{"index": 0, "message": {"role": "assistant",
            "content": "x"}, "finish_reason": "done"}]), "finish_reason 'done' is not allowed"),
        (openai_adapter, openai(usage={"prompt_tokens": 1}), "usage needs all three counts"),
        (anthropic_adapter, anthropic(stop_reason="stop"), "stop_reason 'stop' is OpenAI's"),
        (anthropic_adapter, anthropic(content=[{"type": "image", "text": "x"}]),
         "a content block's type must be 'text'"),
        (anthropic_adapter, anthropic(usage={"input_tokens": "many", "output_tokens": 1}),
         "token counts are ints"),
    ]
    for adapter, data, why in bad_cases:
        with pytest.raises(ValidationError):
            adapter.validate_python(data)
            pytest.fail(f"validation accepted bad data: {why}")


# --- unified_response ------------------------------------------------------------------

def good_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "provider": "openai", "model": "gpt-4o-mini", "text": "hi",
        "finish_reason": "stop", "input_tokens": 3, "output_tokens": 1,
    }
    fields.update(changes)
    return fields


@exercise(
    "unified_response", points=1,
    hint="Check the field types and constraints in the table (Literal, min_length, ge=0), "
    "and the total_tokens property.",
)
def test_llm_response_accepts_good_data(notebook: types.ModuleType) -> None:
    assert issubclass(notebook.LLMResponse, pydantic.BaseModel), "LLMResponse must be a BaseModel"
    response = notebook.LLMResponse(**good_fields())
    assert_same((response.provider, response.text, response.input_tokens), ("openai", "hi", 3),
                "(provider, text, input_tokens)")
    assert_same(response.total_tokens, 4, "total_tokens")
    zero = notebook.LLMResponse(**good_fields(input_tokens=0, output_tokens=0))
    assert_same(zero.total_tokens, 0, "total_tokens with both counts 0 (>= 0 allows 0)")
    unknown = notebook.LLMResponse(**good_fields(input_tokens=None, output_tokens=None, text=""))
    assert unknown.total_tokens is None, (
        f"total_tokens with unknown counts: expected None, got {unknown.total_tokens!r}"
    )


@exercise(
    "unified_response", points=1,
    hint="Every bad value must raise ValidationError naming its field: look at constraints, "
    "extra='forbid' and frozen=True in model_config.",
)
def test_llm_response_rejects_bad_data(notebook: types.ModuleType) -> None:
    bad = [
        (good_fields(provider="mistral"), "provider"),
        (good_fields(model=""), "model"),
        (good_fields(finish_reason="end_turn"), "finish_reason"),
        (good_fields(input_tokens=-1), "input_tokens"),
        (good_fields(output_tokens=-1), "output_tokens"),
        (good_fields(output_tokens="lots"), "output_tokens"),
        (good_fields(temperature=0.2), "temperature"),
        ({k: v for k, v in good_fields().items() if k != "text"}, "text"),
    ]
    for fields, field in bad:
        with pytest.raises(ValidationError) as caught:
            notebook.LLMResponse(**fields)
            pytest.fail(f"LLMResponse accepted a bad {field!r}: {fields.get(field, '(missing)')!r}")
        assert mentions(caught.value, field), (
            f"the ValidationError should name {field!r}; it says: {caught.value}"
        )
    response = notebook.LLMResponse(**good_fields())
    with pytest.raises(ValidationError):
        response.text = "changed"
        pytest.fail("an LLMResponse could be changed after it was made: it should be frozen")


# --- response_converters ---------------------------------------------------------------

FIELDS = ("provider", "model", "text", "finish_reason", "input_tokens", "output_tokens")


def fields_of(notebook: types.ModuleType, response: Any) -> dict[str, Any]:
    """The response's fields as plain values, for ``same()``; an LLMResponse is required."""
    assert type(response) is notebook.LLMResponse, (
        f"expected an LLMResponse, got {response!r} ({type(response).__name__})"
    )
    return {name: getattr(response, name, None) for name in FIELDS}


@exercise(
    "response_converters", points=1,
    hint="Compare each field of your result with the raw response: the first choice's text, "
    "OpenAI's prompt/completion counts, and the provider name.",
)
def test_openai_converts(notebook: types.ModuleType) -> None:
    want = {"provider": "openai", "model": "gpt-4o-mini", "text": "Bonjour",
            "finish_reason": "stop", "input_tokens": 11, "output_tokens": 3}
    assert_same(fields_of(notebook, notebook.from_openai(openai())), want, "from_openai")
    no_usage = openai()
    del no_usage["usage"]
    tool_call = openai(choices=[{"index": 0, "message": {"role": "assistant", "content": None},
                                 "finish_reason": "tool_calls"}])
    got = notebook.from_openai(no_usage)
    assert same((got.input_tokens, got.output_tokens), (None, None)), (
        f"without usage the counts should be None, got {(got.input_tokens, got.output_tokens)}"
    )
    got = notebook.from_openai(tool_call)
    assert same((got.text, got.finish_reason), ("", "tool_use")), (
        f"content None with tool_calls: expected text '' and 'tool_use', got "
        f"{got.text!r} and {got.finish_reason!r}"
    )


@exercise(
    "response_converters", points=1,
    hint="An Anthropic response can hold several text blocks: look at how you build the text.",
)
def test_anthropic_converts(notebook: types.ModuleType) -> None:
    want = {"provider": "anthropic", "model": "claude-haiku-4-5", "text": "Bonjour",
            "finish_reason": "stop", "input_tokens": 9, "output_tokens": 4}
    assert_same(fields_of(notebook, notebook.from_anthropic(anthropic())), want, "from_anthropic")
    empty = notebook.from_anthropic(anthropic(content=[], stop_reason="max_tokens"))
    assert same((empty.text, empty.finish_reason), ("", "length")), (
        f"no content blocks and max_tokens: expected '' and 'length', got "
        f"{empty.text!r} and {empty.finish_reason!r}"
    )


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
def test_finish_reasons_map(notebook: types.ModuleType) -> None:
    for provider, raw_reason, unified in FINISH_REASONS:
        if provider == "openai":
            data = openai()
            data["choices"][0]["finish_reason"] = raw_reason
            got = notebook.from_openai(data).finish_reason
        else:
            data = anthropic(stop_reason=raw_reason)
            if raw_reason == "stop_sequence":
                data["stop_sequence"] = "\n\nHuman:"
            got = notebook.from_anthropic(data).finish_reason
        assert same(got, unified), f"{provider} {raw_reason!r}: expected {unified!r}, got {got!r}"


INVALID = [
    ("openai", "no choices", openai(choices=[]), "choices"),
    ("openai", "no model", {k: v for k, v in OPENAI.items() if k != "model"}, "model"),
    ("openai", "a message without content", openai(choices=[{"index": 0, "message": {
        "role": "assistant"}, "finish_reason": "stop"}]), "content"),
    ("openai", "a string", "not a response", "dict"),
    ("anthropic", "a block without text", anthropic(content=[{"type": "text"}]), "text"),
    ("anthropic", "null usage", anthropic(usage=None), "usage"),
    ("anthropic", "OpenAI's stop reason", anthropic(stop_reason="stop"), "stop_reason"),
    ("anthropic", "a list", [ANTHROPIC], "dict"),
]


@exercise(
    "response_converters", points=1,
    hint="Validate the raw input with a TypeAdapter of your TypedDict before you index into "
    "it: a KeyError, IndexError or TypeError means something was read before validation.",
)
def test_invalid_input_raises_validation_error(notebook: types.ModuleType) -> None:
    for provider, what, raw, names in INVALID:
        convert = notebook.from_openai if provider == "openai" else notebook.from_anthropic
        label = f"from_{provider}({what})"
        try:
            result = convert(raw)
        except ValidationError as exc:
            assert mentions(exc, names), f"{label}: the error should mention {names!r}; it says: {exc}"
            continue
        except NotImplementedError:
            raise
        except Exception as exc:
            pytest.fail(f"{label}: expected a pydantic ValidationError, got "
                        f"{type(exc).__name__}: {exc}")
        pytest.fail(f"{label}: invalid input was converted instead of rejected: {result!r}")


# --- mypy_clean ------------------------------------------------------------------------

@exercise(
    "mypy_clean", points=3,
    hint="Run `python -m course.typecheck <your notebook>` and fix each error it lists; "
    "the cell and line are given.",
)
def test_notebook_passes_mypy_strict(notebook: types.ModuleType) -> None:
    # A notebook that does nothing type-checks trivially: the converters must work first.
    assert same(notebook.from_openai(openai()).text, "Bonjour"), "from_openai does not work yet"
    assert same(notebook.from_anthropic(anthropic()).text, "Bonjour"), (
        "from_anthropic does not work yet"
    )
    path = Path(str(notebook.__file__))
    # Typed all the way: an expression of type Any in a converter (a TypeAdapter[Any], a
    # cast) would leave mypy nothing to check there, so it does not count as clean.
    errors = typecheck_notebook(path, no_any_in=("from_openai", "from_anthropic"))
    assert not errors, "mypy --strict reports:\n" + "\n".join(errors)
