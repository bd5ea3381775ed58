"""Tool calling and structured output on the local LLM API server, over real HTTP: every
tool_choice form in both formats, streamed argument fragments, scripted calls, tool results
sent back, and answers that are instances of the request's JSON Schema."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, Field

from course.llm_server import LLMServer

TLS = ssl.create_default_context()
OPENAI = {"Authorization": "Bearer sk-tools"}
ANTHROPIC = {"x-api-key": "sk-tools", "anthropic-version": "2023-06-01"}


class Unit(StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str
    unit: Unit = Unit.celsius
    days: int = Field(default=1, ge=1, le=7)


class SearchDocs(BaseModel):
    """Search the documentation for a query."""

    query: str = Field(min_length=3)
    limit: int = Field(default=5, ge=1, le=20)


class Address(BaseModel):
    street: str
    postcode: str = Field(min_length=4, max_length=8)


class Ticket(BaseModel):
    title: str
    priority: Literal["low", "medium", "high"]
    score: float = Field(gt=0, lt=1)
    tags: list[str] = Field(min_length=1, max_length=3)
    reporter: Address
    history: list[Address]
    note: str | None


def strict(schema: Any) -> Any:
    """The schema as strict mode wants it: every object closed and all its keys required
    (what the SDKs' .parse() does to a Pydantic schema before sending it)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fixed = {key: strict(value) for key, value in schema.items()}
    if "properties" in fixed:
        fixed["additionalProperties"] = False
        fixed["required"] = list(fixed["properties"])
    return fixed


def openai_tool(model: type[BaseModel], name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": model.__doc__, "parameters": model.model_json_schema()},
    }


def anthropic_tool(model: type[BaseModel], name: str) -> dict[str, Any]:
    return {"name": name, "description": model.__doc__, "input_schema": model.model_json_schema()}


OPENAI_TOOLS = [openai_tool(GetWeather, "get_weather"), openai_tool(SearchDocs, "search_docs")]
ANTHROPIC_TOOLS = [anthropic_tool(GetWeather, "get_weather"), anthropic_tool(SearchDocs, "search_docs")]
MODELS = {"get_weather": GetWeather, "search_docs": SearchDocs}


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def client(server: LLMServer) -> Iterator[httpx.Client]:
    server.reset()
    with httpx.Client(verify=TLS, base_url=server.base_url, timeout=5) as http:
        yield http


def chat(client: httpx.Client, prompt: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **extra}
    response = client.post("/v1/chat/completions", headers={**OPENAI, **(headers or {})}, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def claude(client: httpx.Client, prompt: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }
    response = client.post("/v1/messages", headers={**ANTHROPIC, **(headers or {})}, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sse_data(text: str) -> list[Any]:
    lines = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


# --- OpenAI: tool_choice forms --------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "choice", "called"),
    [
        ("What is the weather in Paris?", None, "get_weather"),
        ("What is the weather in Paris?", "auto", "get_weather"),
        ("Search the documentation for retries", "auto", "search_docs"),
        ("Tell me a joke", "auto", None),
        ("What is the weather in Paris?", "none", None),
        ("Tell me a joke", "required", "get_weather"),
        (
            "What is the weather in Paris?",
            {"type": "function", "function": {"name": "search_docs"}},
            "search_docs",
        ),
    ],
)
def test_openai_tool_choice_forms(client: httpx.Client, prompt: str, choice: Any, called: str | None) -> None:
    extra = {"tools": OPENAI_TOOLS} | ({"tool_choice": choice} if choice is not None else {})
    choice_body = chat(client, prompt, **extra)["choices"][0]
    message = choice_body["message"]
    if called is None:
        assert choice_body["finish_reason"] == "stop"
        assert "tool_calls" not in message
        assert message["content"]
        return
    assert choice_body["finish_reason"] == "tool_calls"
    assert message["content"] is None
    [call] = message["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == called
    MODELS[called].model_validate_json(call["function"]["arguments"])


def test_arguments_use_the_names_in_the_prompt_and_are_deterministic(client: httpx.Client) -> None:
    first = chat(client, "What is the weather in Paris?", tools=OPENAI_TOOLS)
    again = chat(client, "What is the weather in Paris?", tools=OPENAI_TOOLS)
    [call] = first["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"])["city"] == "Paris"
    assert again["choices"] == first["choices"]


def test_allowed_tools_choice_limits_the_tools(client: httpx.Client) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "search_docs"}}],
        },
    }
    body = chat(client, "What is the weather in Paris?", tools=OPENAI_TOOLS, tool_choice=choice)
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search_docs"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"tools": OPENAI_TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
        ({"tool_choice": "required"}, "no tools"),
        ({"tools": OPENAI_TOOLS, "tool_choice": "sometimes"}, "sometimes"),
    ],
)
def test_impossible_tool_choice_is_400(client: httpx.Client, extra: dict[str, Any], fragment: str) -> None:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = client.post("/v1/chat/completions", headers=OPENAI, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tool_choice"
    assert fragment in error["message"]


def test_tool_results_sent_back_are_answered(client: httpx.Client) -> None:
    first = chat(client, "What is the weather in Paris?", tools=OPENAI_TOOLS)
    assistant = first["choices"][0]["message"]
    call = assistant["tool_calls"][0]
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'},
    ]
    body = {"model": "gpt-4o-mini", "messages": messages, "tools": OPENAI_TOOLS}
    answer = client.post("/v1/chat/completions", headers=OPENAI, json=body).json()["choices"][0]
    assert answer["finish_reason"] == "stop"
    assert "get_weather" in answer["message"]["content"]
    assert '{"temp_c": 21}' in answer["message"]["content"]


def test_streamed_tool_call_arrives_in_argument_fragments(client: httpx.Client) -> None:
    plain = chat(client, "What is the weather in Oslo?", tools=OPENAI_TOOLS)
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
        "tools": OPENAI_TOOLS,
        "stream": True,
    }
    with client.stream("POST", "/v1/chat/completions", headers=OPENAI, json=body) as response:
        chunks = sse_data(response.read().decode())
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    calls = [call for delta in deltas for call in delta.get("tool_calls", [])]
    fragments = [call["function"]["arguments"] for call in calls]
    assert calls[0]["id"] == plain["choices"][0]["message"]["tool_calls"][0]["id"]
    assert calls[0]["function"]["name"] == "get_weather"
    assert len([piece for piece in fragments if piece]) > 1
    joined = "".join(fragments)
    assert joined == plain["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_scripted_tool_calls_header(client: httpx.Client) -> None:
    script = json.dumps(
        [
            {"name": "get_weather", "arguments": {"city": 5}},
            {"name": "search_docs", "arguments": '{"query": "retr'},
        ]
    )
    body = chat(client, "Tell me a joke", {"X-Mock-Tool-Calls": script}, tools=OPENAI_TOOLS)
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [call["function"]["name"] for call in calls] == ["get_weather", "search_docs"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": 5}  # invalid on purpose
    assert calls[1]["function"]["arguments"] == '{"query": "retr'  # broken on purpose
    assert calls[0]["id"] != calls[1]["id"]
    refused = chat(client, "hi", {"X-Mock-Tool-Calls": script}, tools=OPENAI_TOOLS, tool_choice="none")
    assert "tool_calls" not in refused["choices"][0]["message"]


def test_bad_scripted_tool_calls_header_is_400(client: httpx.Client) -> None:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post(
        "/v1/chat/completions", headers={**OPENAI, "X-Mock-Tool-Calls": "{oops"}, json=body
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-mock-tool-calls"


# --- Anthropic: tool_choice forms -----------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "choice", "called"),
    [
        ("What is the weather in Rome?", None, "get_weather"),
        ("Tell me a joke", {"type": "auto"}, None),
        ("Tell me a joke", {"type": "any"}, "get_weather"),
        ("What is the weather in Rome?", {"type": "tool", "name": "search_docs"}, "search_docs"),
        ("What is the weather in Rome?", {"type": "none"}, None),
    ],
)
def test_anthropic_tool_choice_forms(
    client: httpx.Client, prompt: str, choice: Any, called: str | None
) -> None:
    extra = {"tools": ANTHROPIC_TOOLS} | ({"tool_choice": choice} if choice is not None else {})
    body = claude(client, prompt, **extra)
    if called is None:
        assert body["stop_reason"] == "end_turn"
        assert [block["type"] for block in body["content"]] == ["text"]
        return
    assert body["stop_reason"] == "tool_use"
    [block] = body["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert block["name"] == called
    MODELS[called].model_validate(block["input"])


def test_anthropic_tool_result_is_answered(client: httpx.Client) -> None:
    first = claude(client, "What is the weather in Rome?", tools=ANTHROPIC_TOOLS)
    use = first["content"][0]
    messages = [
        {"role": "user", "content": "What is the weather in Rome?"},
        {"role": "assistant", "content": first["content"]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "sunny, 24 C"}],
        },
    ]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": messages, "tools": ANTHROPIC_TOOLS}
    answer = client.post("/v1/messages", headers=ANTHROPIC, json=body).json()
    assert answer["stop_reason"] == "end_turn"
    assert "get_weather returned sunny, 24 C" in answer["content"][0]["text"]


def test_anthropic_streamed_tool_use_sends_input_json_deltas(client: httpx.Client) -> None:
    plain = claude(client, "What is the weather in Rome?", tools=ANTHROPIC_TOOLS)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "What is the weather in Rome?"}],
        "tools": ANTHROPIC_TOOLS,
        "stream": True,
    }
    with client.stream("POST", "/v1/messages", headers=ANTHROPIC, json=body) as response:
        events = sse_data(response.read().decode())
    kinds = [item["type"] for item in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    start = next(item for item in events if item["type"] == "content_block_start")
    assert start["content_block"] == {**plain["content"][0], "input": {}}
    parts = [item["delta"] for item in events if item["type"] == "content_block_delta"]
    assert {part["type"] for part in parts} == {"input_json_delta"}
    assert len(parts) > 1
    assert json.loads("".join(part["partial_json"] for part in parts)) == plain["content"][0]["input"]
    delta = next(item for item in events if item["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"


def test_count_tokens_matches_the_message_usage(client: httpx.Client) -> None:
    request = {
        "model": "claude-haiku-4-5",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Tell me a joke"}],
        "tools": ANTHROPIC_TOOLS,
    }
    counted = client.post("/v1/messages/count_tokens", headers=ANTHROPIC, json=request)
    used = claude(
        client, "Tell me a joke", system="Be brief.", tools=ANTHROPIC_TOOLS, model="claude-haiku-4-5"
    )
    assert counted.status_code == 200
    assert counted.json() == {"input_tokens": used["usage"]["input_tokens"]}
    without_tools = client.post(
        "/v1/messages/count_tokens", headers=ANTHROPIC, json={**request, "tools": []}
    ).json()
    assert without_tools["input_tokens"] < counted.json()["input_tokens"]


# --- structured output ----------------------------------------------------------------------


def test_json_schema_answer_is_an_instance_of_the_schema(client: httpx.Client) -> None:
    schema = strict(Ticket.model_json_schema())
    assert "$defs" in schema  # nested models arrive as $ref, as Pydantic emits them
    form = {"type": "json_schema", "json_schema": {"name": "Ticket", "schema": schema, "strict": True}}
    body = chat(client, "File a ticket for the login bug", response_format=form)
    content = body["choices"][0]["message"]["content"]
    ticket = Ticket.model_validate_json(content)
    assert 1 <= len(ticket.tags) <= 3
    again = chat(client, "File a ticket for the login bug", response_format=form)
    assert again["choices"][0]["message"]["content"] == content


def test_json_schema_answer_streams_as_text(client: httpx.Client) -> None:
    form = {"type": "json_schema", "json_schema": {"name": "Ticket", "schema": Ticket.model_json_schema()}}
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "File a ticket"}],
        "response_format": form,
        "stream": True,
    }
    with client.stream("POST", "/v1/chat/completions", headers=OPENAI, json=body) as response:
        chunks = sse_data(response.read().decode())
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    Ticket.model_validate_json(text)


@pytest.mark.parametrize("where", ["output_config", "output_format"])
def test_anthropic_structured_output(client: httpx.Client, where: str) -> None:
    form = {"type": "json_schema", "schema": Ticket.model_json_schema()}
    extra = {"output_config": {"format": form}} if where == "output_config" else {"output_format": form}
    body = claude(client, "File a ticket", **extra)
    Ticket.model_validate_json(body["content"][0]["text"])


def test_scripted_reply_beats_the_schema(client: httpx.Client) -> None:
    form = {"type": "json_schema", "json_schema": {"name": "Ticket", "schema": Ticket.model_json_schema()}}
    body = chat(client, "File a ticket", {"X-Mock-Reply": '{"title": 3}'}, response_format=form)
    assert body["choices"][0]["message"]["content"] == '{"title": 3}'


def test_schema_with_a_dangling_ref_is_400(client: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}, "required": ["a"]}
    form = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "response_format": form}
    response = client.post("/v1/chat/completions", headers=OPENAI, json=body)
    assert response.status_code == 400
    assert "Missing" in response.json()["error"]["message"]


# --- the Responses API ----------------------------------------------------------------------

RESPONSE_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": GetWeather.__doc__,
        "parameters": GetWeather.model_json_schema(),
    }
]


def responses(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/responses", headers=OPENAI, json={"model": "gpt-4.1", **body})


def named_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_responses_plain_text(client: httpx.Client) -> None:
    body = responses(client, input="What is a timeout?", instructions="Be brief.").json()
    assert body["object"] == "response"
    assert body["id"].startswith("resp_")
    assert body["status"] == "completed"
    assert body["model"] == "gpt-4.1"
    [item] = body["output"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert item["content"][0]["type"] == "output_text"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0


def test_responses_stream_events_rebuild_the_plain_answer(client: httpx.Client) -> None:
    plain = responses(client, input="What is a timeout?").json()
    with client.stream(
        "POST",
        "/v1/responses",
        headers=OPENAI,
        json={"model": "gpt-4.1", "input": "What is a timeout?", "stream": True},
    ) as response:
        events = named_events(response.read().decode())
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [payload["sequence_number"] for _, payload in events] == list(range(len(events)))
    assert all(payload["type"] == name for name, payload in events)
    text = "".join(payload["delta"] for name, payload in events if name == "response.output_text.delta")
    assert text == plain["output"][0]["content"][0]["text"]
    assert events[-1][1]["response"]["output"] == plain["output"]


def test_responses_function_call_and_its_output(client: httpx.Client) -> None:
    first = responses(
        client, input="What is the weather in Lima?", tools=RESPONSE_TOOLS, tool_choice="required"
    )
    [call] = first.json()["output"]
    assert call["type"] == "function_call"
    assert GetWeather.model_validate_json(call["arguments"]).city == "Lima"
    items = [
        {"role": "user", "content": "What is the weather in Lima?"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "foggy"},
    ]
    second = responses(client, input=items, tools=RESPONSE_TOOLS).json()
    assert "get_weather returned foggy" in second["output"][0]["content"][0]["text"]


def test_responses_streamed_function_call_arguments(client: httpx.Client) -> None:
    body = {
        "model": "gpt-4.1",
        "input": "What is the weather in Lima?",
        "tools": RESPONSE_TOOLS,
        "stream": True,
    }
    with client.stream("POST", "/v1/responses", headers=OPENAI, json=body) as response:
        events = named_events(response.read().decode())
    deltas = [p["delta"] for name, p in events if name == "response.function_call_arguments.delta"]
    done = next(p for name, p in events if name == "response.function_call_arguments.done")
    assert len(deltas) > 1
    assert "".join(deltas) == done["arguments"]


def test_responses_cut_by_max_output_tokens_is_incomplete(client: httpx.Client) -> None:
    body = responses(client, input="What is a timeout?", max_output_tokens=3).json()
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] <= 3


def test_responses_structured_output(client: httpx.Client) -> None:
    form = {
        "type": "json_schema",
        "name": "Ticket",
        "schema": strict(Ticket.model_json_schema()),
        "strict": True,
    }
    body = responses(client, input="File a ticket", text={"format": form}).json()
    Ticket.model_validate_json(body["output"][0]["content"][0]["text"])


def test_required_picks_the_tool_by_the_users_question_not_by_a_tool_result(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "Search the documentation for retries"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "search_docs", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "the weather is sunny"},
    ]
    body = {"model": "mock-gpt", "messages": messages, "tools": OPENAI_TOOLS, "tool_choice": "required"}
    answer = client.post("/v1/chat/completions", headers=OPENAI, json=body).json()
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search_docs"


@pytest.mark.parametrize(
    ("where", "param"),
    [("response_format", "response_format"), ("tool", "tools[0].function.parameters")],
)
def test_strict_mode_refuses_a_schema_it_cannot_enforce(client: httpx.Client, where: str, param: str) -> None:
    schema = GetWeather.model_json_schema()  # unit and days have defaults: not required
    extra: dict[str, Any]
    if where == "response_format":
        extra = {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": schema, "strict": True},
            }
        }
    else:
        function = {"name": "get_weather", "parameters": schema, "strict": True}
        extra = {"tools": [{"type": "function", "function": function}]}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Oslo?"}], **extra}
    response = client.post("/v1/chat/completions", headers=OPENAI, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert "additionalProperties" in error["message"]
    closed = {**schema, "additionalProperties": False}
    extra_closed = json.loads(json.dumps(extra).replace(json.dumps(schema), json.dumps(closed)))
    still = client.post("/v1/chat/completions", headers=OPENAI, json={**body, **extra_closed})
    assert still.status_code == 400
    assert "Missing 'unit'" in still.json()["error"]["message"]
    fixed = json.loads(json.dumps(extra).replace(json.dumps(schema), json.dumps(strict(schema))))
    assert client.post("/v1/chat/completions", headers=OPENAI, json={**body, **fixed}).status_code == 200


def test_parallel_tool_calls_false_keeps_one_call(client: httpx.Client) -> None:
    script = json.dumps([{"name": "get_weather", "arguments": {}}, {"name": "search_docs", "arguments": {}}])
    one = chat(client, "hi", {"X-Mock-Tool-Calls": script}, tools=OPENAI_TOOLS, parallel_tool_calls=False)
    assert len(one["choices"][0]["message"]["tool_calls"]) == 1
    claude_one = claude(
        client,
        "hi",
        {"X-Mock-Tool-Calls": script},
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [block["type"] for block in claude_one["content"]] == ["tool_use"]
