"""The contract suite: the official ``openai`` and ``anthropic`` packages, pinned in
requirements.txt, against ``course serve``'s app on 127.0.0.1 over their own real HTTP.

Whatever a learner copies from the providers' documentation (create, stream, tool calls,
parse, the Responses API, count_tokens, typed errors, retries with Retry-After) must work
unchanged with only ``base_url`` and a dummy key. Sync, async and streamed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import anthropic
import openai
import pytest
from pydantic import BaseModel, Field

from course.llm_server import LLMServer

KEY = "sk-contract"


class Weather(BaseModel):
    """Current weather for a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"] = "celsius"


class Step(BaseModel):
    action: str
    minutes: int = Field(ge=1, le=120)


class Plan(BaseModel):
    title: str
    priority: Literal["low", "medium", "high"]
    steps: list[Step] = Field(min_length=1)


WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": Weather.__doc__,
    "input_schema": Weather.model_json_schema(),
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY) as running:
        yield running


@pytest.fixture
def oai(server: LLMServer) -> Iterator[openai.OpenAI]:
    server.reset()
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def claude(server: LLMServer) -> Iterator[anthropic.Anthropic]:
    server.reset()
    with anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def aoai(server: LLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def aclaude(server: LLMServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        yield client


# --- OpenAI: chat completions ---------------------------------------------------------------


def test_openai_create_and_stream_agree(oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What is a timeout?"}]
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert plain.model == "gpt-4o-mini"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None and plain.usage.prompt_tokens_details is not None
    assert plain.usage.prompt_tokens_details.cached_tokens == 0
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage == plain.usage


def test_openai_tool_call_round_trip(oai: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(Weather, name="get_weather")
    first = oai.chat.completions.create(
        model="gpt-4o", messages=QUESTION, tools=[tool], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert Weather.model_validate_json(call.function.arguments).city == "Paris"
    history: Any = [
        *QUESTION,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 18}'},
    ]
    second = oai.chat.completions.create(model="gpt-4o", messages=history, tools=[tool])
    assert second.choices[0].finish_reason == "stop"
    assert '{"celsius": 18}' in (second.choices[0].message.content or "")


def test_openai_stream_helper_assembles_tool_arguments(oai: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(Weather, name="get_weather")
    with oai.chat.completions.stream(model="gpt-4o", messages=QUESTION, tools=[tool]) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds
    [call] = final.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Weather)
    assert call.function.parsed_arguments.city == "Paris"


def test_openai_parse_gives_a_typed_object(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Plan the release of Atlas"}],
        response_format=Plan,
    )
    plan = completion.choices[0].message.parsed
    assert isinstance(plan, Plan)
    assert plan.steps and all(1 <= step.minutes <= 120 for step in plan.steps)


def test_openai_parse_raises_when_the_answer_is_cut(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.LengthFinishReasonError):
        oai.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Plan it"}],
            response_format=Plan,
            max_completion_tokens=3,
        )


def test_openai_embeddings_with_a_real_model_name(oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input=["cat", "dog"], dimensions=8)
    assert result.model == "text-embedding-3-small"
    assert [len(item.embedding) for item in result.data] == [8, 8]


def test_openai_models_list_holds_real_names(oai: openai.OpenAI) -> None:
    names = {model.id for model in oai.models.list()}
    assert {"mock-gpt", "gpt-4o-mini", "text-embedding-3-small"} <= names


# --- OpenAI: the Responses API --------------------------------------------------------------


def test_openai_responses_create_stream_and_parse(oai: openai.OpenAI) -> None:
    plain = oai.responses.create(model="gpt-4.1", input="What is a timeout?", instructions="Be brief.")
    assert plain.status == "completed"
    assert plain.output_text
    with oai.responses.stream(
        model="gpt-4.1", input="What is a timeout?", instructions="Be brief."
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == plain.output_text == final.output_text
    parsed = oai.responses.parse(model="gpt-4.1", input="Plan the release", text_format=Plan)
    assert isinstance(parsed.output_parsed, Plan)


def test_openai_responses_function_call_round_trip(oai: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "name": "get_weather",
            "description": Weather.__doc__,
            "parameters": Weather.model_json_schema(),
            "strict": False,
        }
    ]
    first = oai.responses.create(model="gpt-4.1", input="What is the weather in Paris?", tools=tools)
    [call] = first.output
    assert call.type == "function_call"
    follow: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
    ]
    second = oai.responses.create(model="gpt-4.1", input=follow, tools=tools)
    assert "get_weather returned rain" in second.output_text


# --- OpenAI: errors and retries -------------------------------------------------------------


def test_openai_typed_errors(server: LLMServer, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="gpt-4o-mini"):  # the 404 lists real names
        oai.chat.completions.create(model="gpt-99", messages=QUESTION)
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="gpt-4o", messages=QUESTION)
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="gpt-4o", messages=QUESTION, temperature=5)
    assert bad.value.body is not None
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(
            model="gpt-4o", messages=QUESTION, extra_headers={"X-Mock-Scenario": "rate_limited:retry_after=3"}
        )
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.status_code == 429


def test_openai_retries_a_429_after_retry_after(server: LLMServer) -> None:
    client = openai.OpenAI(
        base_url=f"{server.base_url}/v1",
        api_key=KEY,
        max_retries=2,
        default_headers={
            "X-Mock-Scenario": "fail_first:1:rate_limited:retry_after=0.05",
            "X-Mock-Key": "retry",
        },
    )
    server.reset()
    answer = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert answer.choices[0].message.content
    assert [record.status for record in server.log] == [429, 200]


def test_openai_in_stream_error_is_raised(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=QUESTION,
        stream=True,
        extra_headers={"X-Mock-Scenario": "stream_error:after=2"},
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        list(stream)


async def test_openai_async_create_stream_and_parse(aoai: openai.AsyncOpenAI) -> None:
    plain = await aoai.chat.completions.create(model="gpt-4o", messages=QUESTION)
    stream = await aoai.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == plain.choices[0].message.content
    parsed = await aoai.chat.completions.parse(model="gpt-4o", messages=QUESTION, response_format=Plan)
    assert isinstance(parsed.choices[0].message.parsed, Plan)
    response = await aoai.responses.create(model="gpt-4.1", input="hi", stream=True)
    kinds = [event.type async for event in response]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_sdk_authenticates_and_creates(claude: anthropic.Anthropic, server: LLMServer) -> None:
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=QUESTION)
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.usage.cache_read_input_tokens == 0
    assert server.log[-1].status == 200


def test_anthropic_stream_text_matches_create(claude: anthropic.Anthropic) -> None:
    plain = claude.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=QUESTION)
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=200, messages=QUESTION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert plain.content[0].type == "text"
    assert text == plain.content[0].text
    assert final.usage.output_tokens == plain.usage.output_tokens


@pytest.mark.parametrize(
    "choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}, {"type": "auto"}]
)
def test_anthropic_tool_use_round_trip(claude: anthropic.Anthropic, choice: Any) -> None:
    first = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=QUESTION, tools=[WEATHER_TOOL], tool_choice=choice
    )
    assert first.stop_reason == "tool_use"
    [use] = [block for block in first.content if block.type == "tool_use"]
    assert Weather.model_validate(use.input).city == "Paris"
    history: Any = [
        *QUESTION,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C"}]},
    ]
    second = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=history, tools=[WEATHER_TOOL]
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and "18 C" in second.content[0].text


def test_anthropic_stream_assembles_tool_input(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, messages=QUESTION, tools=[WEATHER_TOOL]
    ) as stream:
        partial = [event.partial_json for event in stream if event.type == "input_json"]
        final = stream.get_final_message()
    [use] = final.content
    assert use.type == "tool_use"
    assert len(partial) > 1
    assert json.loads("".join(partial)) == use.input


def test_anthropic_parse_and_count_tokens(claude: anthropic.Anthropic) -> None:
    parsed = claude.messages.parse(
        model="claude-sonnet-4-5", max_tokens=500, messages=QUESTION, output_format=Plan
    )
    assert isinstance(parsed.parsed_output, Plan)
    counted = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=QUESTION)
    used = claude.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=QUESTION)
    assert counted.input_tokens == used.usage.input_tokens


def test_anthropic_typed_errors_and_in_stream_error(claude: anthropic.Anthropic, server: LLMServer) -> None:
    with pytest.raises(anthropic.NotFoundError, match="claude-haiku-4-5"):
        claude.messages.create(model="claude-nope", max_tokens=10, messages=QUESTION)
    wrong = anthropic.Anthropic(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=QUESTION)
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=QUESTION,
            extra_headers={"X-Mock-Scenario": "error:529"},
        )
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=QUESTION,
            extra_headers={"X-Mock-Scenario": "rate_limited:retry_after=2"},
        )
    assert limited.value.response.headers["retry-after"] == "2"
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        claude.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=200,
            messages=QUESTION,
            extra_headers={"X-Mock-Scenario": "stream_error:after=3"},
        ) as stream,
    ):
        list(stream)


def test_anthropic_retries_after_retry_after(server: LLMServer) -> None:
    client = anthropic.Anthropic(
        base_url=server.base_url,
        api_key=KEY,
        max_retries=2,
        default_headers={
            "X-Mock-Scenario": "fail_first:1:rate_limited:retry_after=0.05",
            "X-Mock-Key": "retry-a",
        },
    )
    server.reset()
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=QUESTION)
    assert message.stop_reason == "end_turn"
    assert [record.status for record in server.log] == [429, 200]


async def test_anthropic_async_create_stream_and_tools(aclaude: anthropic.AsyncAnthropic) -> None:
    plain = await aclaude.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=QUESTION)
    async with aclaude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, messages=QUESTION
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert plain.content[0].type == "text" and text == plain.content[0].text
    used = await aclaude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
    )
    assert used.content[0].type == "tool_use"
    counted = await aclaude.messages.count_tokens(model="claude-sonnet-4-5", messages=QUESTION)
    assert counted.input_tokens > 0
