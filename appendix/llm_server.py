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
# # The course's LLM API server
#
# Every lesson that talks to a language model talks to this server: a real HTTP server on
# your own machine that answers like the OpenAI and Anthropic APIs, with no real API key
# and no internet. It gives the same answer to the same request, so outputs are stable,
# and it misbehaves on demand (slow answers, rate limits, errors, stalls, broken streams) so
# you can practise handling failures that are rare and hard to provoke against a real provider.
#
# **From a terminal**, start it and leave it running:
#
# ```bash
# course serve --port 8000                       # or: python -m course serve
# course serve --port 8000 --scenario latency:200ms --api-key sk-mine
# ```
#
# **From Python** (a notebook, a test), start it on a free port in the background;
# it stops cleanly when the `with` block ends (`async with` works too):
#
# ```python
# from course.llm_server import LLMServer
#
# with LLMServer() as server:
#     ...  # server.base_url, server.api_key, server.log
# ```
#
# This page keeps one server running from the next cell to the last.

# %%
import json

import httpx
from IPython.display import Markdown, display

from course.llm_server import HEADERS, SCENARIOS, LLMServer

server = LLMServer(replies={"#weather": '{"city": "Oslo", "temp_c": 4}'}).start()
openai_headers = {"Authorization": f"Bearer {server.api_key}"}
anthropic_headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
client = httpx.Client(base_url=server.base_url, timeout=5)
print("the server is listening:", client.get("/health").json())

# %% [markdown]
# ## OpenAI-style chat completions
# `POST /v1/chat/completions` takes and returns the bodies OpenAI documents. The models are
# `mock-gpt`, `mock-gpt-mini`, `mock-claude`, `mock-claude-haiku` (chat) and `mock-embed`
# (embeddings). Real names are answered too, by the matching mock model, and echoed back
# as the request gave them: `gpt-4o`, `gpt-4.1`, `gpt-4o-mini`, `claude-sonnet-4-5`,
# `claude-haiku-4-5`, `text-embedding-3-small` and more, with dated snapshots such as
# `gpt-4o-2024-08-06`. `GET /v1/models` lists every name; an unknown one is a 404 whose
# message lists the names that exist.
#
# Every answer carries rate-limit headers (`x-ratelimit-*`, `anthropic-ratelimit-*`) and
# the usage detail fields (`prompt_tokens_details.cached_tokens`,
# `cache_read_input_tokens`, ...; always 0 here: there is no prompt cache). A parameter
# the server does not know is accepted, as the real APIs keep adding them, and listed in
# the request log's `unknown_params`, so a misspelt one still shows.

# %% tags=["nbval-check-output"]
request = {
    "model": "mock-gpt",
    "messages": [{"role": "user", "content": "Why do retries need jitter?"}],
}
response = client.post("/v1/chat/completions", headers=openai_headers, json=request)
body = response.json()
print(response.status_code, body["choices"][0]["finish_reason"])
print(body["choices"][0]["message"]["content"])
print(body["usage"])

# %% [markdown]
# With `"stream": true` the answer arrives as server-sent events: `data: {...}` chunks whose
# `delta` carries the next words, then `data: [DONE]`. The joined deltas are exactly the
# answer above: same request, same answer.

# %% tags=["nbval-check-output"]
deltas = []
with client.stream(
    "POST",
    "/v1/chat/completions",
    headers=openai_headers,
    json={**request, "stream": True},
) as stream:
    for line in stream.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line.removeprefix("data: "))
            deltas.append(chunk["choices"][0]["delta"].get("content") or "")
print(len(deltas), "chunks; the first few:", deltas[:4])
assert "".join(deltas) == body["choices"][0]["message"]["content"]

# %% [markdown]
# ## Anthropic-style messages
# `POST /v1/messages` wants the key, `anthropic-version` and `max_tokens`, as Anthropic's
# API does. The key goes in `x-api-key`, as Anthropic documents it; `Authorization:
# Bearer`, which the official SDK sends since 2.0, works too. Its stream is made of *named*
# events: `message_start`, `content_block_delta`, ..., `message_stop`.
# `POST /v1/messages/count_tokens` answers `{"input_tokens": N}` for the same body
# (without `max_tokens`).

# %% tags=["nbval-check-output"]
message = {
    "model": "mock-claude",
    "max_tokens": 60,
    "messages": [{"role": "user", "content": "What should a timeout protect?"}],
}
reply = client.post("/v1/messages", headers=anthropic_headers, json=message).json()
print(reply["stop_reason"], reply["usage"])
print(reply["content"][0]["text"])

names = []
with client.stream(
    "POST", "/v1/messages", headers=anthropic_headers, json={**message, "stream": True}
) as stream:
    for line in stream.iter_lines():
        if line.startswith("event: "):
            names.append(line.removeprefix("event: "))
print([name for name in names if name != "content_block_delta"])
print(names.count("content_block_delta"), "content_block_delta events")

# %% [markdown]
# ## Tool calls
# Send `tools` and the answer may be a tool call instead of text, in either format, plain or
# streamed (OpenAI: `delta.tool_calls` with argument fragments; Anthropic: `tool_use`
# blocks with `input_json_delta`). Every `tool_choice` form is honoured: `auto`, `none`,
# `required` or a named function (Anthropic: `auto`, `any`, `tool`, `none`). The server
# decides like a cautious model: with `auto` it calls the tool whose name or description
# shares a word with the last user message, and once tool results come back it answers
# in text that reports them. The arguments are a deterministic instance of the tool's JSON
# Schema, preferring names from the prompt. `X-Mock-Tool-Calls` scripts the calls instead,
# even invalid ones, to test a client's validation.

# %% tags=["nbval-check-output"]
weather_tool = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
question = {"role": "user", "content": "What is the weather in Oslo?"}
call_request = {"model": "gpt-4o-mini", "messages": [question], "tools": [weather_tool]}
choice = client.post("/v1/chat/completions", headers=openai_headers, json=call_request)
choice = choice.json()["choices"][0]
call = choice["message"]["tool_calls"][0]
print(choice["finish_reason"], call["function"])

follow_up = [
    question,
    choice["message"],
    {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 4}'},
]
answer = client.post(
    "/v1/chat/completions",
    headers=openai_headers,
    json={**call_request, "messages": follow_up},
)
print(answer.json()["choices"][0]["message"]["content"])

scripted_call = {
    **openai_headers,
    "X-Mock-Tool-Calls": '{"name": "get_weather", "arguments": "{oops"}',
}
forced = client.post(
    "/v1/chat/completions", headers=scripted_call, json=call_request
).json()
print(forced["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])

# %% [markdown]
# ## Structured output
# `response_format` with `"type": "json_schema"` (Chat Completions), `text.format` (the
# Responses API) and `output_config.format` or the older `output_format` (Anthropic) are
# answered with a deterministic instance of the schema: required fields, types, enums,
# bounds, nested objects and arrays, `$defs`/`$ref` as Pydantic writes them. So
# `client.chat.completions.parse(response_format=Model)` and
# `client.messages.parse(output_format=Model)` work. A scripted reply (`X-Mock-Reply`)
# wins over the schema, to test what a client does with an answer that does not fit.

# %% tags=["nbval-check-output"]
schema = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "priority": {"enum": ["low", "high"]},
        "steps": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["title", "priority", "steps"],
    "additionalProperties": False,  # strict mode wants every object closed
}
form = {
    "type": "json_schema",
    "json_schema": {"name": "plan", "schema": schema, "strict": True},
}
planned = client.post(
    "/v1/chat/completions",
    headers=openai_headers,
    json={**request, "response_format": form},
).json()
print(planned["choices"][0]["message"]["content"])

# %% [markdown]
# ## The Responses API
# `POST /v1/responses` takes `input` (a string or a list of items), `instructions`,
# function `tools`, `tool_choice`, `text.format` and `max_output_tokens`. Streamed, it sends
# named events: `response.created`, `response.in_progress`, `response.output_item.added`,
# `response.content_part.added`, `response.output_text.delta`, ..., `response.completed`
# (`response.function_call_arguments.delta` for a call). It keeps no past responses:
# `previous_response_id` is accepted but ignored, so send the whole conversation.

# %% tags=["nbval-check-output"]
responded = client.post(
    "/v1/responses",
    headers=openai_headers,
    json={
        "model": "gpt-4.1",
        "input": "What should a timeout protect?",
        "stream": True,
    },
)
kinds = [
    line.removeprefix("event: ")
    for line in responded.text.splitlines()
    if line.startswith("event: ")
]
print([kind for kind in kinds if kind != "response.output_text.delta"])

# %% [markdown]
# The official `openai` and `anthropic` packages work against the server unchanged: give
# them `base_url` (`f"{server.base_url}/v1"` for OpenAI, `server.base_url` for Anthropic)
# and any key. Chapter 7 shows them next to raw `httpx`.
# %% [markdown]
# ## Embeddings
# `POST /v1/embeddings` returns unit vectors seeded by the text: equal texts, equal vectors.
# Their length is 64 unless the request asks for `dimensions`.

# %% tags=["nbval-check-output"]
data = client.post(
    "/v1/embeddings",
    headers=openai_headers,
    json={"model": "mock-embed", "input": ["cat", "cat", "dog"], "dimensions": 4},
).json()["data"]
for item in data:
    print(item["index"], [round(x, 3) for x in item["embedding"]])

# %% [markdown]
# ## Faults on demand
# A request names a *scenario* in the `X-Mock-Scenario` header. Here the first two calls
# fail with a 503 and the third succeeds, which is what a retry lesson needs. The counter
# belongs to the `X-Mock-Key` you send, so every exercise can have its own.

# %% tags=["nbval-check-output"]
flaky = {
    **openai_headers,
    "X-Mock-Scenario": "fail_first:2:503",
    "X-Mock-Key": "appendix",
}
for attempt in range(1, 4):
    response = client.post("/v1/chat/completions", headers=flaky, json=request)
    print(
        attempt,
        response.status_code,
        response.json().get("error", {}).get("message", "ok"),
    )

# %% [markdown]
# Transport faults surface as the exceptions your code must handle: a stall becomes a
# timeout, a dropped stream a protocol error.

# %% tags=["nbval-check-output"]
try:
    client.post(
        "/v1/chat/completions",
        headers={**openai_headers, "X-Mock-Scenario": "stall"},
        json=request,
        timeout=0.2,
    )
except httpx.TimeoutException as error:
    print("stall ->", type(error).__name__)

try:
    with client.stream(
        "POST",
        "/v1/chat/completions",
        headers={**openai_headers, "X-Mock-Scenario": "drop_stream:after=3"},
        json={**request, "stream": True},
    ) as stream:
        received = [line for line in stream.iter_lines() if line]
except httpx.RemoteProtocolError as error:
    print("drop_stream ->", type(error).__name__)

# %% [markdown]
# ## Scripted answers
# For a parsing lesson, make the model "say" exactly what you need. `X-Mock-Reply` is the
# answer text; `X-Mock-Reply-Style` wraps it the way models often do (`fence`, `prose`,
# `prose_fence`). A server can also be started with `replies={marker: text}`: a prompt that
# contains the marker gets that text, which suits code that cannot set headers.

# %% tags=["nbval-check-output"]
scripted = {
    **openai_headers,
    "X-Mock-Reply": json.dumps({"name": "Ada", "languages": ["Python"]}),
    "X-Mock-Reply-Style": "prose_fence",
}
response = client.post("/v1/chat/completions", headers=scripted, json=request)
print(response.json()["choices"][0]["message"]["content"])

marked = {**request, "messages": [{"role": "user", "content": "#weather in Oslo?"}]}
response = client.post("/v1/chat/completions", headers=openai_headers, json=marked)
print(json.loads(response.json()["choices"][0]["message"]["content"]))

# %% [markdown]
# ## What the server saw
# `server.log` lists every request: arrival time (UTC and monotonic), method, path, status,
# the request ID (yours from `X-Request-ID`, echoed back, or one it made up), the scenario,
# the fault that fired, whether it streamed, and how many requests were in progress. A test
# can check from it that a client respected a rate limit or spaced its retries.

# %%
start = server.log[0].monotonic
for record in server.log:
    print(
        f"+{record.monotonic - start:6.3f}s {record.method:4} {record.path:22}"
        f" {record.status!s:4} streamed={record.streamed!s:5} fault={record.fault}"
    )

# %% tags=["nbval-check-output"]
retries = [record for record in server.log if record.key == "appendix"]
print([(record.status, record.fault) for record in retries])

# %% [markdown]
# ## Reference
# Scenarios combine with commas (`latency:100ms,fail_first:1:503`). A server started with
# `scenario=...` (or `course serve --scenario ...`) applies it to every request that names
# none; `X-Mock-Scenario: ok` turns it off for one request. An unknown scenario is a 400
# whose message names it. A base URL from `server.url("rpm:60", key="me")` carries a
# scenario for client code that cannot set headers.


# %% tags=["hide-input"]
def table(heading: tuple[str, str], rows: list[tuple[str, str]]) -> Markdown:
    """A two-column Markdown table: Jupyter and the book both render it, with the
    summaries' `code` spans as code."""
    lines = [f"| {heading[0]} | {heading[1]} |", "|---|---|"]
    for key, text in rows:
        cell = text.replace("|", "\\|")  # a pipe would end the cell
        lines.append(f"| `{key}` | {cell} |")
    return Markdown("\n".join(lines))


display(
    table(
        ("scenario", "what the server does"), [(i.syntax, i.summary) for i in SCENARIOS]
    )
)

# %% tags=["hide-input"]
display(table(("request header", "meaning"), list(HEADERS.items())))

# %% [markdown]
# For fast unit tests there is no need for a socket: `create_app()` is an ordinary ASGI app
# and `request_log(app)` its log.
#
# ```python
# app = create_app()
# transport = httpx.ASGITransport(app=app)
# async with httpx.AsyncClient(transport=transport, base_url="http://llm") as c:
#     await c.post("/v1/chat/completions", headers=..., json=...)
# request_log(app).records()
# ```
#
# Stalls, dropped streams and trickles need a real connection, so test those against
# `LLMServer`.

# %%
client.close()
server.stop()
