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
# # 7. Streaming responses
#
# A model writes its answer one token at a time, at tens of tokens per second. A long
# answer takes many seconds to write, and without streaming your user stares at a spinner
# for all of them. With streaming the provider sends each piece of text as soon as it
# exists, and the first words are on screen while the model is still writing the rest.
#
# Every chat interface streams. So do voice assistants (speech starts with the first
# sentence), agents (a tool call can start before the explanation around it ends) and
# pipelines that extract structured records (the first record is stored while the model
# writes the tenth). Streaming also brings new ways to fail: a connection that drops
# halfway, a stream that stops moving, a chunk that is not valid JSON, an answer you
# cannot parse until it is complete.
#
# **What you'll learn**
#
# - why stream: time to first token against total time, measured;
# - server-sent events on the wire: `data:` and `event:` lines, blank-line framing,
#   `[DONE]`;
# - the OpenAI-style chunk format and the Anthropic-style event format;
# - `httpx.AsyncClient.stream()`, `aiter_lines()` and `aiter_bytes()`, and why lines are
#   not network chunks;
# - async generators that yield text as it arrives, consumed with `async for`;
# - closing a stream early (`aclose()`, `contextlib.aclosing`) and why the connection
#   depends on it;
# - the faults a stream meets in production (dropped connections, stalls, slow trickles,
#   broken chunks), the exceptions they raise, and total against gap timeouts;
# - why partial JSON cannot be parsed until it is complete, and how streamed tool-call
#   arguments are assembled, one buffer per call;
# - the official `openai` and `anthropic` SDKs pointed at the same server: what they do
#   for you (retries, `Retry-After`, typed errors, stream helpers) and what they hide.
#
# In [the exercises](../exercises/07_streaming) you build a streaming processor that
# handles both formats, times out when a stream stalls, reports progress and emits each
# complete JSON object as it arrives.

# %% [markdown]
# ## The local server
#
# The course's local LLM server streams exactly as the two providers do. Start it, with a few
# scripted replies for the JSON section near the end (a prompt containing a marker such
# as `#tickets` gets that text as its answer). One `httpx.AsyncClient` serves the whole
# chapter.
#
# `open_stream()` sends a chat request with `"stream": true` to either API and returns
# `http.stream(...)`, which you enter with `async with`. Its parts are explained as the
# chapter goes.

# %%
import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing

import httpx

from course.llm_server import LLMServer

REPLIES = {
    "#tickets": (
        '{"id": 101, "title": "Login fails after password reset", "priority": "high"}\n'
        '{"id": 102, "title": "Export button does nothing", "priority": "low"}\n'
        '{"id": 103, "title": "Typo on the pricing page", "priority": "low"}'
    ),
    "#steps": (
        '{\n  "step": 1,\n  "say": "Close the template with }"\n}\n'
        '{\n  "step": 2,\n  "say": "Type \\"save\\" and press Enter"\n}'
    ),
    "#cafe": "Meet me at the café in Zürich ☕ at noon.",
}
server = LLMServer(replies=REPLIES).start()
http = httpx.AsyncClient(base_url=server.base_url, timeout=5.0)
OPENAI_HEADERS = {"Authorization": f"Bearer {server.api_key}"}
ANTHROPIC_HEADERS = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}


def open_stream(
    prompt: str,
    *,
    api: str = "openai",
    scenario: str = "ok",
    client: httpx.AsyncClient | None = None,
    timeout: float | httpx.Timeout | None = None,
    **options: object,
) -> AbstractAsyncContextManager[httpx.Response]:
    """A streamed chat request; `options` go into the JSON body (max_tokens,
    stream_options)."""
    messages = [{"role": "user", "content": prompt}]
    if api == "openai":
        path, headers = "/v1/chat/completions", OPENAI_HEADERS
        body = {"model": "mock-gpt", "messages": messages}
    else:
        path, headers = "/v1/messages", ANTHROPIC_HEADERS
        body = {"model": "mock-claude", "max_tokens": 300, "messages": messages}
    return (client or http).stream(
        "POST",
        path,
        json=body | {"stream": True} | options,
        headers=headers | {"X-Mock-Scenario": scenario},
        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
    )


# %% [markdown]
# ## Why stream: time to first token
#
# Two numbers describe the latency of an LLM answer:
#
# - **time to first token** (TTFT): from sending the request to the first piece of text;
# - **total time**: to the last piece.
#
# Streaming does not make the model write faster, so it barely changes the total time.
# It changes what the user waits for: the first words instead of the last. Measure both.
# The `trickle:20ms` scenario makes the server send each piece of the stream 20 ms after
# the previous one, like a model writing about 50 pieces per second. (The parsing is
# explained in the next sections.)

# %%
start = time.perf_counter()
arrivals = []  # (seconds since the request, text so far)
text = ""
async with open_stream(
    "Why should a chat UI stream?", scenario="trickle:20ms"
) as response:
    async for line in response.aiter_lines():
        if line.startswith("data: {"):
            delta = json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
            if delta.get("content"):
                text += delta["content"]
                arrivals.append((time.perf_counter() - start, text))

# what the screen shows, now and then
for seconds, so_far in arrivals[::6] + arrivals[-1:]:
    print(f"{seconds * 1000:5.0f} ms {len(so_far.split()):3} words  ...{so_far[-50:]}")
print(
    f"\nstreamed: first words after {arrivals[0][0] * 1000:.0f} ms, "
    f"last after {arrivals[-1][0] * 1000:.0f} ms ({len(arrivals)} pieces)"
)

# %% [markdown]
# Now the same request, but read the way a non-streaming client reads: wait for the whole
# body, then show it. `response.aread()` returns only when the last byte is in.

# %%
start = time.perf_counter()
async with open_stream(
    "Why should a chat UI stream?", scenario="trickle:20ms"
) as response:
    body = await response.aread()
print(
    f"buffered: nothing to show until {(time.perf_counter() - start) * 1000:.0f} ms "
    f"({len(body):,} bytes at once)"
)

# %% [markdown]
# Same server, same answer, same total time. Streamed, the first words appear after a small
# fraction of the total (the first request also pays for opening the connection);
# buffered, the screen stays empty until the very end, about half a second here.
# Scale that to a real model and a long answer, and it is the difference between a
# reply that starts in under a second and one that appears, all at once, ten or twenty
# seconds later.
#
# Streaming costs the same tokens, but it makes the client more complex, which is what the
# rest of this chapter is about. Stream when a person (or a downstream step) can use the
# beginning before the end exists: chat UIs, speech, long reports, lists of records. Do not
# bother for a batch job that stores finished answers, or for a short classification label:
# there, a plain request is simpler to retry, time out and test.

# %% [markdown]
# ## Server-sent events on the wire
#
# Both providers stream with **server-sent events** (SSE), a plain-text format over an
# ordinary HTTP response. The response announces it in its headers:

# %% tags=["nbval-check-output"]
async with open_stream("What is SSE?", api="anthropic") as response:
    for name in ("content-type", "transfer-encoding", "cache-control"):
        print(f"{name}: {response.headers[name]}")
    raw = await response.aread()

# %% [markdown]
# `text/event-stream` names the format. `transfer-encoding: chunked` means the body has no
# declared length: it ends when the server sends the final empty chunk, so a client
# cannot know from the headers how much is coming. `no-cache` asks proxies not to hold
# the body back. Here are two events from the body, as bytes, so that the line breaks are
# visible:

# %% tags=["nbval-check-output"]
print(
    raw[
        raw.index(b"event: content_block_start") : raw.index(
            b"event: content_block_delta"
        )
    ]
)

# %% [markdown]
# And the start and end of the same body as text:

# %% tags=["nbval-check-output"]
events = raw.decode().strip().split("\n\n")
print("\n\n".join(events[:4]))
print("\n...", len(events) - 8, "more events ...\n")
print("\n\n".join(events[-4:]))

# %% [markdown]
# The framing rules, which are the whole of SSE that an LLM client needs:
#
# - The body is lines of text. A line is `field: value`; the space after the colon is
#   optional.
# - `event:` names the event. Anthropic names every event; OpenAI names none (an unnamed
#   event is a `message`).
# - `data:` carries the payload: one JSON document per event for both providers. An event
#   may have several `data:` lines, which are joined with newlines.
# - A **blank line ends an event**. Nothing is dispatched until it arrives, so an event
#   cut off before its blank line never happened.
# - A line starting with `:` is a comment. Servers and proxies send comments such as
#   `: keep-alive` so that idle connections are not closed.
# - (`id:` and `retry:` let a browser reconnect and resume; LLM APIs do not support
#   resuming, so you can ignore them.)
#
# The OpenAI-style body follows the same rules with unnamed events, and ends with a
# sentinel that is not JSON at all:

# %%
async with open_stream("What is SSE?") as response:
    openai_raw = (await response.aread()).decode()
openai_events = openai_raw.split("\n\n")
print("\n\n".join(openai_events[:2]))
print("\n...\n")
print("\n\n".join(openai_events[-3:]))

# %% [markdown]
# `data: [DONE]` is OpenAI's end-of-stream marker; the blank lines at the very end are
# the framing of the last event.
#
# A parser that follows those rules is short. It takes lines (how to get them from the
# network comes later) and yields `(event name, data)` pairs:

# %%
async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Group SSE lines into events: (name, data). The name is "message" when none is
    given."""
    name, data = "message", []
    async for line in lines:
        if not line:  # a blank line dispatches the event
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif not line.startswith(":"):  # ":" starts a comment, e.g. a keep-alive
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    # Lines left over here belong to an event whose blank line never came: drop them.


# %% [markdown]
# Try it on a hand-written stream with the awkward cases: a comment, `data:` with no
# space, a two-line `data`, and a last event cut off before its blank line.

# %% tags=["nbval-check-output"]
async def lines_of(text: str) -> AsyncIterator[str]:
    for line in text.split("\n"):
        yield line


tricky = (
    ": keep-alive\n\n"
    "event: greeting\ndata:hello\n\n"
    'data: {"part":\ndata: 2}\n\n'
    "data: [DONE]\n\n"
    "data: never finished"
)
async for name, data in sse_events(lines_of(tricky)):
    print(f"{name!r:12} {data!r}")

# %% [markdown]
# ## The OpenAI-style chunk format
#
# `POST /v1/chat/completions` with `"stream": true` sends one `chat.completion.chunk` per
# event. A chunk has the same `choices` list as a normal response, but each choice carries
# a **`delta`** (what is new) instead of a `message` (the whole answer):
#
# - the first chunk's delta holds the role (`"role": "assistant"`) and empty content;
# - the middle chunks' deltas hold the next piece of text in `content`;
# - the last chunk's delta is empty and its `finish_reason` says why the answer ended
#   (`stop`, or `length` when `max_tokens` cut it off);
# - with `"stream_options": {"include_usage": true}`, one more chunk follows with an
#   **empty `choices` list** and the token `usage`;
# - then `data: [DONE]`.

# %%
async def openai_chunks(response: httpx.Response) -> AsyncIterator[dict]:
    """The JSON chunks of an OpenAI-style stream, up to [DONE]."""
    async for _, data in sse_events(response.aiter_lines()):
        if data == "[DONE]":
            return
        yield json.loads(data)


# %% tags=["nbval-check-output"]
pieces = []
async with open_stream(
    "What is SSE?", stream_options={"include_usage": True}
) as response:
    async for chunk in openai_chunks(response):
        if not chunk["choices"]:  # the usage chunk: choices is empty, so [0] would fail
            print("usage chunk:", chunk["usage"])
            continue
        choice = chunk["choices"][0]
        if choice["finish_reason"]:
            print(
                "final chunk: delta =",
                choice["delta"],
                "finish_reason =",
                choice["finish_reason"],
            )
        elif "role" in choice["delta"]:
            print("first chunk: delta =", choice["delta"])
        else:
            pieces.append(choice["delta"]["content"])
print(len(pieces), "content chunks:", pieces[:6], "...")
print("joined:", "".join(pieces))

# %% [markdown]
# Two things to notice for **token counting**. The number of chunks is not the number of
# tokens: here a chunk is a word with its leading space, and a word with punctuation is
# more than one token to this server's tokenizer. Count chunks for a progress indicator;
# take the bill from `usage`, which you only get in a stream when you ask for it with
# `include_usage`. And the usage chunk's empty `choices` is a classic crash:
# `chunk["choices"][0]` raises `IndexError` on it, at the end of every stream that asked
# for usage.

# %% [markdown]
# ## The Anthropic-style event format
#
# `POST /v1/messages` with `"stream": true` sends **named** events, and the name says how
# to read the data. The API also requires an `anthropic-version` header (and `max_tokens`
# in the body); without the header the request fails before anything streams:

# %% tags=["nbval-check-output"]
request = {"model": "mock-claude", "max_tokens": 100, "stream": True,
           "messages": [{"role": "user", "content": "What is SSE?"}]}
response = await http.post(
    "/v1/messages", json=request, headers={"x-api-key": server.api_key}
)
print(response.status_code, response.json()["error"])

# %% [markdown]
# With the header, the events come in a fixed order:
#
# | event | carries |
# |---|---|
# | `message_start` | the message `id`, `model`, and `usage.input_tokens` |
# | `content_block_start` | the start of content block 0 (text here; a tool call is a block too) |
# | `ping` | nothing: a keep-alive |
# | `content_block_delta` | `delta.type == "text_delta"` and the next piece of text in `delta.text` |
# | `content_block_stop` | the end of block 0 |
# | `message_delta` | `delta.stop_reason` (`end_turn`, `max_tokens`, ...), final `usage.output_tokens` |
# | `message_stop` | the end of the stream |

# %% tags=["nbval-check-output"]
pieces = []
async with open_stream("What is SSE?", api="anthropic") as response:
    async for name, data in sse_events(response.aiter_lines()):
        event = json.loads(data)
        if name == "content_block_delta" and event["delta"]["type"] == "text_delta":
            pieces.append(event["delta"]["text"])
        elif name == "message_start":
            print(f"{name:20} usage = {event['message']['usage']}")
        elif name == "message_delta":
            print(f"{name:20} delta = {event['delta']}, usage = {event['usage']}")
        else:
            print(name)
print(len(pieces), "text deltas:", "".join(pieces))

# %% [markdown]
# The same content, framed differently:
#
# | | OpenAI style | Anthropic style |
# |---|---|---|
# | event names | none | every event |
# | text | `choices[0].delta.content` | `content_block_delta` with `delta.text` |
# | why it ended | last chunk's `finish_reason` | `message_delta`'s `delta.stop_reason` |
# | tokens | a usage chunk, if you ask (`include_usage`) | `message_start` (input), `message_delta` (output) |
# | end of stream | `data: [DONE]` | `event: message_stop` |
#
# Note that `message_start` says `output_tokens: 1`: the count grows during the stream,
# and only the one in `message_delta` is final.
#
# ```{graphviz}
# ---
# alt: >-
#   Two columns of server-sent events, each event ended by a blank line. OpenAI style:
#   unnamed events whose data lines carry chat completion chunks with
#   choices[0].delta.content, ending with data: [DONE]. Anthropic style: every event
#   named, message_start, content_block_start, content_block_delta with delta.text,
#   content_block_stop, message_delta with the stop reason, and message_stop last.
# caption: >-
#   The same answer as two SSE streams: each box is one event, ended by a blank line.
# ---
# digraph sse {
#   rankdir=TB; nodesep=0.4; ranksep=0.25; fontname="sans-serif";
#   node [shape=box, style="rounded,filled", fillcolor="#dbe9f6", color="#1f4e79",
#         fontcolor="#10263d", fontname="monospace", fontsize=10, margin="0.15,0.06"];
#   edge [color="#44546a", fontcolor="#33414f", fontsize=9, fontname="sans-serif",
#         arrowsize=0.6, label=" blank line"];
#   subgraph cluster_openai {
#     label="OpenAI style: unnamed events"; fontsize=12; style=rounded;
#     color="#44546a"; fontcolor="#10263d";
#     o1 [label="data: {\"choices\": [{\"delta\": {\"role\": \"assistant\"}}]}\l"];
#     o2 [label="data: {\"choices\": [{\"delta\": {\"content\": \"Server-\"}}]}\l"];
#     o3 [label="data: {\"choices\": [{\"delta\": {\"content\": \"sent \"}}]}\l"];
#     o4 [label="data: {\"choices\": [{\"delta\": {}, \"finish_reason\": \"stop\"}]}\l"];
#     o5 [label="data: [DONE]\l", fillcolor="#fde9b5", color="#8a6100"];
#     o1 -> o2 -> o3 -> o4 -> o5;
#   }
#   subgraph cluster_anthropic {
#     label="Anthropic style: every event named"; fontsize=12; style=rounded;
#     color="#44546a"; fontcolor="#10263d";
#     a1 [label="event: message_start\ldata: {\"message\": {\"usage\": {\"input_tokens\": 12}}}\l"];
#     a2 [label="event: content_block_start\ldata: {\"content_block\": {\"type\": \"text\"}}\l"];
#     a3 [label="event: content_block_delta\ldata: {\"delta\": {\"text\": \"Server-\"}}\l"];
#     a4 [label="event: content_block_stop\ldata: {\"index\": 0}\l"];
#     a5 [label="event: message_delta\ldata: {\"delta\": {\"stop_reason\": \"end_turn\"}}\l"];
#     a6 [label="event: message_stop\ldata: {\"type\": \"message_stop\"}\l",
#         fillcolor="#fde9b5", color="#8a6100"];
#     a1 -> a2 -> a3 -> a4 -> a5 -> a6;
#   }
# }
# ```

# %% [markdown]
# ## `httpx` streaming: lines are not network chunks
#
# `await http.post(...)` reads the whole body before it returns, even when the request
# body says `"stream": true`. That flag tells the *server* to send events; it does not
# tell *`httpx`* to hand them over as they come. For that you use `http.stream(...)` as an
# async context manager. It returns as soon as the status line and headers are in, and you
# pull the body with one of four iterators:
#
# | iterator | yields |
# |---|---|
# | `aiter_raw()` | bytes exactly as they came off the connection, still compressed if the server used gzip |
# | `aiter_bytes()` | decompressed bytes, in whatever pieces the network delivered |
# | `aiter_text()` | `str` pieces, decoded incrementally (a character split across pieces is handled) |
# | `aiter_lines()` | one complete line at a time, without its line ending |
#
# Leaving the `async with` block closes the response and gives its connection back to the
# pool, whether or not you read to the end.
#
# `client.stream()` is a shortcut for three steps you can also take yourself: build the
# request, `send()` it with `stream=True` (which returns once the headers are in), and
# `aclose()` the response when you are done. The long form suits code where a `with`
# block does not fit, such as a generator with its own `try`/`finally`:

# %% tags=["nbval-check-output"]
body = {
    "model": "mock-gpt",
    "stream": True,
    "messages": [{"role": "user", "content": "Hi"}],
}
request = http.build_request(
    "POST", "/v1/chat/completions", json=body, headers=OPENAI_HEADERS
)
response = await http.send(request, stream=True)
try:
    print(response.status_code, response.headers["content-type"])
    lines = [line async for line in response.aiter_lines()]
finally:
    # on every path, or the connection never returns to the pool
    await response.aclose()
print(len(lines), "lines; closed:", response.is_closed)

# %% [markdown]
# Reading to the end closes the response as well; the `finally` is for every other path:
# an exception halfway, or a caller that stops early.
#
# What are the network pieces, against the local server?

# %% tags=["nbval-check-output"]
async with open_stream("What is SSE?") as response:
    chunks = [chunk async for chunk in response.aiter_bytes()]
async with open_stream("What is SSE?") as response:
    lines = [line async for line in response.aiter_lines()]
events = sum(1 for line in lines if line.startswith("data:"))
print(
    f"{events} events arrived as {len(chunks)} byte chunks and {len(lines)} lines "
    "(half of them blank)"
)

# %% [markdown]
# Here each chunk holds exactly one event, because the server writes one HTTP chunk per
# event and nothing between it and you re-packs them. Do not build on that. Between you and
# a real provider sit load balancers, proxies, compression and HTTP/2 framing, and any of
# them can cut the same bytes anywhere: in the middle of a line, in the middle of a JSON
# string, even in the middle of a multi-byte character.
#
# To see what that does, take a real body (a scripted reply with non-ASCII text) and cut it
# the way a proxy might. An `httpx.Response` built from an async iterator of bytes goes
# through the same decoding as one read from a socket:

# %% tags=["nbval-check-output"]
async with open_stream("#cafe") as response:
    cafe = await response.aread()

# three cuts: in the middle of a line, inside "é" (2 bytes) and inside "☕" (3 bytes)
cuts = [300, cafe.index("é".encode()) + 1, cafe.index("☕".encode()) + 2]
recut = [cafe[a:b] for a, b in zip([0, *cuts], [*cuts, len(cafe)], strict=True)]
print("piece ends:", [piece[-12:] for piece in recut[:3]])

try:
    naive = [line for piece in recut for line in piece.decode().split("\n")]
except UnicodeDecodeError as error:
    print("decoding each piece on its own:", error)


async def replay(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


replayed = httpx.Response(200, content=replay(recut))
text = ""
async for chunk in openai_chunks(replayed):
    text += chunk["choices"][0]["delta"].get("content") or ""
print("through aiter_lines():", text)

# %% [markdown]
# Decoding each piece separately fails on the split character, and splitting each piece on
# `"\n"` would have produced half-lines that are not valid JSON. `aiter_lines()` keeps a
# buffer: an incremental UTF-8 decoder, then a line splitter that holds back a partial
# line until the rest arrives. Always parse SSE from `aiter_lines()` (or a library that does
# the same), never from raw chunks. Keep `aiter_bytes()` for bodies that are not lines:
# audio from a speech API, a file download.
#
# The same lesson returns one level up: an SSE event is complete, but the **JSON the model
# is writing**, spread over many events, is not. That is the last section.

# %% [markdown]
# ## Async generators: text as it arrives
#
# Code that renders an answer should not care which provider sent it, or how SSE works. An
# **async generator** (an `async def` with `yield`) hides both: it opens the stream, parses
# the events, and yields plain text pieces as they arrive. The caller consumes it with
# `async for`. Each `yield` hands one piece to the caller and pauses the generator until
# the caller asks for the next; meanwhile the event loop runs other tasks.
#
# It comes in two layers. `text_pieces()` reads an open response of either style and
# yields its text; two exceptions make its failures explicit: an error event inside the
# stream, and a stream that ends without its end marker. `stream_text()` opens the request
# and owns the response, so a caller never touches HTTP.

# %%
class StreamFailed(Exception):
    """The provider reported an error inside the stream (after a 200 status)."""


class StreamIncomplete(Exception):
    """The stream ended without [DONE] or message_stop: the answer may be cut short."""


async def text_pieces(response: httpx.Response, api: str) -> AsyncIterator[str]:
    """The text deltas of an OpenAI- or Anthropic-style stream."""
    async for name, data in sse_events(response.aiter_lines()):
        if data == "[DONE]" or name == "message_stop":
            return
        event = json.loads(data)
        if "error" in event:  # OpenAI: data: {"error": ...}; Anthropic: event: error
            raise StreamFailed(event["error"]["message"])
        if api == "openai":
            for choice in event["choices"]:
                if choice["delta"].get("content"):
                    yield choice["delta"]["content"]
        elif name == "content_block_delta" and event["delta"]["type"] == "text_delta":
            yield event["delta"]["text"]
    raise StreamIncomplete("the stream ended without its end marker")


async def stream_text(
    prompt: str,
    *,
    api: str = "openai",
    scenario: str = "ok",
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[str]:
    """Yield the answer's text piece by piece, as it arrives."""
    async with open_stream(
        prompt, api=api, scenario=scenario, client=client
    ) as response:
        response.raise_for_status()
        async for piece in text_pieces(response, api):
            yield piece


# %% tags=["nbval-check-output"]
for api in ("openai", "anthropic"):
    print(f"{api:>9}: ", end="")
    async for piece in stream_text("How do I read a stream?", api=api):
        print(piece, end="", flush=True)  # a chat UI appends each piece as it comes
    print()

# %% [markdown]
# Generators compose. A speech interface should not speak word by word; it wants whole
# sentences, and the first sentence as early as possible. A second async generator
# regroups the pieces, and neither generator knows about the other's job:

# %% tags=["nbval-check-output"]
async def sentences(pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """Regroup text pieces into sentences (good enough for speech; not for "e.g.")."""
    buffer = ""
    async for piece in pieces:
        buffer += piece
        if buffer.rstrip().endswith((".", "!", "?")):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


async for sentence in sentences(stream_text("How do I read a stream?")):
    print(f"speak: {sentence}")

# %% [markdown]
# The first sentence goes to the speech engine while the model is still writing the
# second. The same shape serves other consumers: one that counts pieces and calls a
# progress callback, one that writes each piece to a websocket, one that collects the whole
# text for the log at the end.

# %% [markdown]
# ## Stopping early: `aclose()` and `contextlib.aclosing`
#
# A consumer often stops before the end: the user pressed *Stop*, the answer already
# contains what a classifier needed, a guardrail tripped on the first sentence. `break`
# leaves the `async for`, but it does **not** finish the generator. The generator stays
# paused at its `yield`, which is inside `async with open_stream(...)`, so the response is
# still open and its connection still checked out of the pool.
#
# To see it, use a client whose pool holds a single connection, and keep a reference to
# the generator (as a notebook variable, a dict of active sessions or an exception's
# traceback does):

# %%
tight = httpx.AsyncClient(
    base_url=server.base_url,
    limits=httpx.Limits(max_connections=1),
    timeout=httpx.Timeout(5.0, pool=0.2),
)


async def quick_call(client: httpx.AsyncClient) -> str:
    """A plain (non-streamed) request: it needs a connection from the pool."""
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "ping"}]}
    response = await client.post(
        "/v1/chat/completions", json=body, headers=OPENAI_HEADERS
    )
    return f"{response.status_code}, got a connection"


# %% tags=["nbval-check-output"]
stream = stream_text("How do I read a stream?", client=tight)
async for piece in stream:
    print("first piece:", repr(piece))
    break  # the user pressed Stop

try:
    print(await quick_call(tight))
except httpx.PoolTimeout:
    print("PoolTimeout: the only connection still belongs to the abandoned stream")

# raises GeneratorExit at the yield: the async with closes the response
await stream.aclose()
print("after aclose():", await quick_call(tight))

# %% [markdown]
# `aclose()` throws `GeneratorExit` into the generator where it is paused; the `async with`
# blocks unwind, the response closes, and the connection returns to the pool. In a real
# service the default pool holds 100 connections, so the leak is slower and worse: each
# abandoned stream takes one, and one day every request waits for `PoolTimeout`.
#
# (When nothing refers to an abandoned generator any more, CPython's garbage collector
# notices, and asyncio schedules its `aclose()` for you at some later moment. That is a
# clean-up of last resort, not a design: any reference keeps the connection open, and the
# clean-up runs at a time you do not control.)
#
# Only a generator that holds something (a response, a file, a lock, a semaphore slot)
# needs closing. `text_pieces()` holds nothing: the response belongs to `stream_text()`,
# which is why `stream_text()` is the one you close. The rule travels up a chain: a
# generator that consumes another one that holds a response (say, one that turns text
# pieces into JSON records) must close it in turn, so it iterates inside
# `async with aclosing(inner)`.
#
# Calling `aclose()` by hand is easy to forget on an error path. `contextlib.aclosing`
# (Python 3.10+) does it on every exit from its block: normal end, `break`, exception or
# cancellation.

# %% tags=["nbval-check-output"]
async with aclosing(
    stream_text("How do I read a stream?", scenario="trickle:5ms", client=tight)
) as stream:
    async for piece in stream:
        if piece.endswith("."):
            print("stopping after the first sentence")
            break
print("after aclosing:", await quick_call(tight))

# %% [markdown]
# ### Cancelling when the user goes away
#
# A web server runs each request in a task and cancels the task when the client
# disconnects: the user closed the tab or navigated away. Cancellation raises
# `CancelledError` wherever the task is waiting. Usually that is inside the generator,
# waiting for the network, and the generator's `async with` closes the response on the way
# out. But if it lands while the consumer is busy between pieces (sending one to a
# websocket, say), the generator is paused at `yield` and only `aclosing` closes it. So
# use `aclosing` in the consumer, and let the cancellation propagate:

# %%
async def chat_session(shown: list[str]) -> None:
    pieces = stream_text(
        "How do I read a stream?", scenario="trickle:20ms", client=tight
    )
    async with aclosing(pieces) as stream:
        async for piece in stream:
            shown.append(piece)
            await asyncio.sleep(0.005)  # stands for sending the piece to the browser


shown: list[str] = []
session = asyncio.create_task(chat_session(shown))
await asyncio.sleep(0.1)
session.cancel()  # the browser disconnected
try:
    await session
except asyncio.CancelledError:
    print(f"cancelled after {len(shown)} pieces: {''.join(shown)!r}")
print("the connection is free again:", await quick_call(tight))

# %% [markdown]
# Closing the connection is the only "stop" a streaming API understands: there is no
# cancel request to send. It is how the provider learns that nobody is reading, so let it
# happen promptly. Do not catch `CancelledError` and carry on reading "to finish the
# answer": that spends tokens on text nobody will see.

# %%
await tight.aclose()

# %% [markdown]
# ## When streams go wrong
#
# A plain request fails before you have anything. A stream can fail **after** you have
# shown half an answer, and the status code (`200`, sent with the headers) will not tell
# you. The local server produces each production fault on demand.
#
# ### The connection drops: `drop_stream`
#
# A proxy restarts, a load balancer times out an idle connection, the provider's process
# dies. `drop_stream:after=5` sends five events and closes the connection.

# %% tags=["nbval-check-output"]
for api in ("openai", "anthropic"):
    received = []
    try:
        async for piece in stream_text(
            "Tell me about retries.", api=api, scenario="drop_stream:after=5"
        ):
            received.append(piece)
    except httpx.TransportError as error:
        print(f"{api}: {type(error).__name__}: {error}")
    print(f"{api}: kept {''.join(received)!r}")

# %% [markdown]
# `httpx` raises `RemoteProtocolError`: the body was chunked and the closing chunk never came.
# On a real network a reset connection raises `ReadError` instead. Both are subclasses of
# `httpx.TransportError`, so catch that. The OpenAI stream lost its first event to the
# role chunk and kept four words; the Anthropic one spent three events on
# `message_start`, `content_block_start` and `ping`, and kept two.
#
# The partial text is real, but it is not the answer. LLM APIs cannot resume a stream, so
# the choices are: retry the whole request (and replace what the user saw), or keep the
# partial text **marked** as cut short, with a *Retry* button. Never present it as
# complete, and never store it as if it were.
#
# ### A stream that just ends
#
# A stream can also end *cleanly*, and too early: a proxy that enforces a maximum response
# time may close the body properly, with no error at all. Replay the café answer from
# earlier, ended after its sixth event:

# %% tags=["nbval-check-output"]
first_six = b"".join(event + b"\n\n" for event in cafe.split(b"\n\n")[:6])
clean_cut = httpx.Response(200, content=replay([first_six]))
received = []
try:
    async for piece in text_pieces(clean_cut, "openai"):
        received.append(piece)
except StreamIncomplete as error:
    print(f"StreamIncomplete: {error}; kept {''.join(received)!r}")

# %% [markdown]
# `httpx` saw a well-formed body, and a parser that only looks for text would return
# `"Meet me at the café"` as the whole answer. Only the missing `[DONE]` gives it away,
# which is why `text_pieces()` checks for the end marker instead of trusting the end of
# the body.
#
# ### The server stalls: `stall`
#
# The request is accepted and then nothing happens: an overloaded provider, a hung proxy.
# `stall` sends nothing at all; `stall:after=6` sends six events and then nothing. The
# **read timeout** of `httpx` fires when no bytes arrive for that long:

# %% tags=["nbval-check-output"]
short_read = httpx.Timeout(5.0, read=0.2)
try:
    async with open_stream(
        "Tell me about retries.", scenario="stall", timeout=short_read
    ) as response:
        print("status", response.status_code)
except httpx.ReadTimeout:
    print("stall: ReadTimeout while waiting for the status line")

received = []
try:
    stalling = open_stream(
        "Tell me about retries.", scenario="stall:after=6", timeout=short_read
    )
    async with stalling as response:
        print("stall:after=6: status", response.status_code)
        async for line in response.aiter_lines():
            received.append(line)
except httpx.ReadTimeout:
    print(
        f"stall:after=6: ReadTimeout after {sum(1 for line in received if not line)} "
        "events"
    )

# %% [markdown]
# The first stall fails inside `async with`, before there is a response. The second fails
# in the middle of the body, after a `200` and some text: exactly the case a user sees as
# "it stopped typing".
#
# ### Total timeout against gap timeout
#
# `httpx.Timeout(5.0)` is **not** a limit on the whole request. It limits each step:
# connecting, each write, each read, waiting for a pool connection. The read timeout is
# therefore a *gap* timeout on bytes: a stream that sends one byte every four seconds never
# trips a five-second timeout, however long it runs.
#
# For a stream you usually want two limits of your own:
#
# - a **gap timeout**: no new *piece of text* within N seconds means the stream is stuck.
#   It must be short enough to catch a stall quickly and long enough for a slow model's
#   pauses. Bytes are not progress: `ping` events and `: keep-alive` comments reset
#   the read timer of `httpx` while no text arrives.
# - a **total timeout** (a deadline), for a caller that cannot wait forever. Set it from
#   the longest answer you expect, not from a typical one.
#
# `asyncio.timeout()` around the whole loop is a total timeout. It treats a healthy but
# long answer as a failure. Here is one that trickles in over about half a second:

# %%
received = []
start = time.perf_counter()
try:
    async with asyncio.timeout(0.3):  # a total timeout
        async for piece in stream_text(
            "Tell me about retries.", scenario="trickle:20ms"
        ):
            received.append(piece)
except TimeoutError:
    print(
        f"total timeout: TimeoutError after {time.perf_counter() - start:.2f}s, "
        f"a healthy answer cut off after {len(received)} pieces"
    )

# %% [markdown]
# A gap timeout restarts the clock for every piece. `async for` cannot do that by itself,
# so fetch the next piece with `anext()` inside `asyncio.timeout()`:

# %%
async def read_with_gap_timeout(
    stream: AsyncIterator[str], gap: float, received: list[str]
) -> None:
    """Append every piece to `received`; raise TimeoutError if any wait exceeds `gap`.
    """
    async with aclosing(stream):
        while True:
            try:
                # only the wait for the next piece is timed
                async with asyncio.timeout(gap):
                    piece = await anext(stream)
            except StopAsyncIteration:
                return
            received.append(piece)


# %% tags=["nbval-check-output"]
for scenario in ("trickle:20ms", "stall:after=6"):
    received = []
    try:
        await read_with_gap_timeout(
            stream_text("Tell me about retries.", scenario=scenario), 0.1, received
        )
        print(f"{scenario:14} complete: {len(received)} pieces")
    except TimeoutError:
        print(
            f"{scenario:14} TimeoutError: no piece for 0.1s after {''.join(received)!r}"
        )

# %% [markdown]
# The slow but healthy stream completes; the stuck one fails a tenth of a second after its
# last piece, with the partial text in hand. The first wait also covers the status line
# and headers, since the generator only sends the request when first asked for a piece:
# a server that stalls before sending anything is a gap too. When the timeout fires, the
# `CancelledError` it uses lands inside the generator, which unwinds through its
# `async with` and closes the response.
#
# Notice where the timer is: around the *wait* for a piece, never around a `yield`. A
# timeout opened inside a generator and held across a `yield` would also count the time
# the consumer spends with each piece (rendering, sending to a browser) against the stream.
#
# ### A chunk that is not JSON: `malformed_chunk`
#
# The SSE framing is fine, but one event's data is cut short: a buggy proxy, a gateway
# that rewrote the body, a provider bug. `malformed_chunk:at=3` breaks the third event.

# %% tags=["nbval-check-output"]
received = []
try:
    async for piece in stream_text(
        "Tell me about retries.", scenario="malformed_chunk:at=3"
    ):
        received.append(piece)
except json.JSONDecodeError as error:
    print(f"JSONDecodeError: {error}; kept {''.join(received)!r}")

# %% [markdown]
# `json.loads` raises in the middle of the stream. You could skip the bad event and go on,
# since the next events parse:

# %% tags=["nbval-check-output"]
async def tolerant_text(scenario: str) -> tuple[str, int]:
    """The text of an OpenAI-style stream, skipping events that do not parse."""
    text, skipped = "", 0
    async with open_stream("Tell me about retries.", scenario=scenario) as response:
        async for _, data in sse_events(response.aiter_lines()):
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                skipped += 1
                continue
            text += chunk["choices"][0]["delta"].get("content") or ""
    return text, skipped


intact, _ = await tolerant_text("ok")
damaged, skipped = await tolerant_text("malformed_chunk:at=3")
print(f"intact : {intact[:48]!r}\ndamaged: {damaged[:48]!r} ({skipped} event skipped)")

# %% [markdown]
# and the answer has silently lost a word. Nobody downstream can tell, and in a JSON record,
# a piece of code or a number, a missing piece makes the result wrong. So fail instead: raise
# an error that names the event and carries its data (for the log), and let the caller
# retry.
#
# ### An error inside a `200`: `stream_error`
#
# A provider that runs out of capacity mid-answer cannot change the status code, which it
# sent with the headers. It sends an error **event** instead: Anthropic an `event: error`,
# OpenAI a `data:` object with an `error` key. `stream_text()` turns both into
# `StreamFailed`. A parser that only looks for text would skip the event, and the answer
# would just end early.

# %% tags=["nbval-check-output"]
for api in ("openai", "anthropic"):
    try:
        async for _ in stream_text(
            "Tell me about retries.", api=api, scenario="stream_error:after=6"
        ):
            pass
    except StreamFailed as error:
        print(f"{api}: StreamFailed: {error}")

# %% [markdown]
# ### What the client sees, in one table
#
# | fault | your code sees | what to do |
# |---|---|---|
# | dropped (`drop_stream`) | `RemoteProtocolError` or `ReadError` (`TransportError`s) | retry, or mark it |
# | silent (`stall`) | `ReadTimeout` while entering `stream()` | retry, perhaps on another provider |
# | stuck (`stall:after=N`) | `ReadTimeout`, or your gap timeout's `TimeoutError` | as for a drop |
# | slow (`trickle`) | nothing, unless a total timeout is too tight | keep reading; time the gaps |
# | broken chunk (`malformed_chunk`) | `json.JSONDecodeError` | fail and retry (skip only in display text) |
# | error event (`stream_error`) | an error event after a `200` | your own exception (chapter 6) |
# | ended cleanly, too early | nothing, unless you check the end marker | as for a drop |
#
# Apart from a stall before the first byte and a slow stream, every row can leave you
# holding partial text. The last row is the dangerous one: the only fault that raises
# nothing unless you look for it. Check the finish reason as well: `length` (OpenAI) or
# `max_tokens` (Anthropic) means the stream ended properly but the answer did not; your
# `max_tokens` limit cut it short.

# %% [markdown]
# ## Streaming structured output: JSON you cannot parse yet
#
# Models are often asked for JSON: extracted records, tool arguments, a list of
# suggestions. Streamed, that JSON arrives in pieces like any other text, and **a piece of
# JSON is not JSON**. Ask for a single object (the `X-Mock-Reply` header scripts the
# answer) and try to parse the text after every piece:

# %% tags=["nbval-check-output"]
weather = '{"city": "Oslo", "temp_c": 42, "note": "a {very} unusual day"}'
request = {
    "model": "mock-gpt",
    "stream": True,
    "messages": [{"role": "user", "content": "Weather?"}],
}
headers = OPENAI_HEADERS | {"X-Mock-Reply": weather}
text = ""
async with http.stream(
    "POST", "/v1/chat/completions", json=request, headers=headers
) as response:
    async for chunk in openai_chunks(response):
        piece = chunk["choices"][0]["delta"].get("content")
        if not piece:
            continue
        text += piece
        try:
            json.loads(text)
            outcome = "parses"
        except json.JSONDecodeError as error:
            outcome = error.msg
        print(f"{text!r:68} {outcome}")

# %% [markdown]
# Only the complete text parses. Every prefix fails, each with a different message, and
# the messages do not tell "not finished yet" from "broken". Guessing is no better: a
# tool that "repairs" a prefix by closing its brackets turns a piece that ended after the
# `4` into `"temp_c": 4`, when `42` was on its way (tokenizers do split long numbers).
#
# If the model writes **JSON Lines** (one object per line), a newline marks the end of
# each object, and you can use each object as soon as its line is complete: store the first
# support ticket while the model writes the third.

# %% tags=["nbval-check-output"]
buffer, count = "", 0
async for piece in stream_text("Extract the tickets. #tickets"):
    count += 1
    buffer += piece
    while "\n" in buffer:
        line, buffer = buffer.split("\n", 1)
        print(f"after piece {count:2}: {json.loads(line)}")
print(f"after piece {count:2}: {json.loads(buffer)} (the last line has no newline)")

# %% [markdown]
# That relies on the model keeping every object on one line, and models do not always
# oblige: pretty-printed objects span lines, and some answers put objects back to back.
# Split the `#steps` answer on newlines and the first "line" is a lone `{`:

# %% tags=["nbval-check-output"]
steps = "".join([piece async for piece in stream_text("Give me the steps. #steps")])
print(steps)
try:
    json.loads(steps.split("\n")[0])
except json.JSONDecodeError as error:
    print("\nfirst line:", repr(steps.split("\n")[0]), "->", error.msg)

# %% [markdown]
# The next idea is to count braces: `{` opens an object, `}` closes one, and when the count
# is back to zero an object is complete. Here it is, fed the stream piece by piece:

# %% tags=["nbval-check-output"]
async def naive_objects(pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """Emit text between a { and the } that balances it. Broken on purpose: see below.
    """
    text, depth = "", 0
    async for piece in pieces:
        for char in piece:
            if depth == 0 and char != "{":
                continue  # skip whitespace between objects
            text += char
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                yield text
                text = ""


async for candidate in naive_objects(stream_text("Give me the steps. #steps")):
    try:
        print("object:", json.loads(candidate))
    except json.JSONDecodeError as error:
        print(f"not JSON: {candidate!r} -> {error.msg}")

# %% [markdown]
# The `}` inside the string `"Close the template with }"` closed the first object early.
# The counter emitted half of it, which does not parse, then skipped the rest as if it were
# whitespace between objects. The second object survived by luck; the first step is lost,
# and only the failed parse says so. Braces inside strings are text, not structure, and
# models write them all the time: code, templates, regular expressions.
#
# That is the problem the exercise's `StreamBuffer` solves. A correct buffer must:
#
# - know whether it is **inside a string**, and ignore braces there;
# - know that an **escaped quote** (`\"`, as in the second step's `"Type \"save\""`) does
#   not end a string, and that an escaped backslash (`\\`) does not escape the quote
#   after it;
# - hold back an incomplete object until the rest arrives, and keep whatever follows a
#   complete object for the next one;
# - say, when the stream ends, whether anything incomplete is left over: after a dropped
#   connection, or after `finish_reason: "length"` cut the answer at `max_tokens`.
#
# That last case ends "normally", with `[DONE]`. Only the finish reason shows the cut:

# %% tags=["nbval-check-output"]
text, finish = "", None
async with open_stream("Extract the tickets. #tickets", max_tokens=40) as response:
    async for chunk in openai_chunks(response):
        choice = chunk["choices"][0]
        text += choice["delta"].get("content") or ""
        finish = choice["finish_reason"] or finish
print(f"finish_reason={finish!r}; the text ends with {text[-30:]!r}")

# %% [markdown]
# ## Streamed tool calls: arguments in pieces
#
# A tool call streams too, and its arguments are JSON, so everything above applies: the
# arguments arrive as fragments that cut through strings and numbers, and only the
# joined text parses. The two formats differ in where the fragments go:
#
# - **OpenAI**: a delta carries `tool_calls`, a list of partial calls. The first delta of
#   a call has its `index`, `id` and `function.name`, with empty arguments; later deltas
#   carry only the `index` and the next piece of `function.arguments`. Several calls in
#   one answer are told apart by `index`. The last chunk says
#   `finish_reason: "tool_calls"`.
# - **Anthropic**: each call is a content block. `content_block_start` brings a
#   `tool_use` block with its `id`, `name` and an empty `input`; `content_block_delta`
#   events of type `input_json_delta` carry `partial_json`; `content_block_stop` ends
#   the block, and only then is its JSON complete.
#
# So the buffer idea comes back, one buffer per call, and the rule is the same: append
# every fragment, parse once the call is complete, never before. The
# `X-Mock-Tool-Calls` header scripts two calls here, so the stream has two indexes.

# %%
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
}
two_calls = json.dumps(
    [
        {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "c"}},
        {"name": "get_weather", "arguments": {"city": "Lima", "unit": "f"}},
    ]
)


async def openai_tool_calls(response: httpx.Response) -> list[dict]:
    """Assemble the tool calls of an OpenAI-style stream: one buffer per call index."""
    calls: dict[int, dict] = {}
    finished = False
    async for chunk in openai_chunks(response):
        for choice in chunk["choices"]:
            for part in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"name": "", "arguments": ""})
                function = part.get("function") or {}
                call["id"] = part.get("id") or call.get("id")
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
                print(f"  index {part['index']}: {call['arguments']!r}")
            finished = finished or choice["finish_reason"] == "tool_calls"
    if not finished:
        raise StreamIncomplete("the stream ended before the tool calls were complete")
    return [
        calls[index] | {"arguments": json.loads(calls[index]["arguments"])}
        for index in sorted(calls)
    ]


# %% tags=["nbval-check-output"]
request = {
    "model": "gpt-4o-mini",
    "stream": True,
    "messages": [{"role": "user", "content": "Weather in Zürich and Lima?"}],
    "tools": [{"type": "function", "function": WEATHER}],
}
headers = OPENAI_HEADERS | {"X-Mock-Tool-Calls": two_calls}
async with http.stream(
    "POST", "/v1/chat/completions", json=request, headers=headers
) as response:
    for call in await openai_tool_calls(response):
        print(call["name"], call["arguments"])


# %% [markdown]
# The Anthropic version keys its buffers by content block index, and a block's JSON is
# complete at its `content_block_stop`:


# %%
async def anthropic_tool_uses(response: httpx.Response) -> list[dict]:
    """Assemble the tool_use blocks of an Anthropic-style stream."""
    blocks: dict[int, dict] = {}
    async for name, data in sse_events(response.aiter_lines()):
        event = json.loads(data)
        if (
            name == "content_block_start"
            and event["content_block"]["type"] == "tool_use"
        ):
            start = event["content_block"]
            blocks[event["index"]] = {
                "id": start["id"],
                "name": start["name"],
                "json": "",
            }
        elif (
            name == "content_block_delta"
            and event["delta"]["type"] == "input_json_delta"
        ):
            blocks[event["index"]]["json"] += event["delta"]["partial_json"]
        elif name == "content_block_stop" and event["index"] in blocks:
            block = blocks[event["index"]]
            block["input"] = json.loads(block.pop("json") or "{}")  # complete: parse
        elif name == "message_stop":
            return list(blocks.values())
    raise StreamIncomplete("the stream ended without message_stop")


# %% tags=["nbval-check-output"]
request = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 300,
    "stream": True,
    "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
    "tools": [
        {
            "name": WEATHER["name"],
            "description": WEATHER["description"],
            "input_schema": WEATHER["parameters"],
        }
    ],
}
async with http.stream(
    "POST", "/v1/messages", json=request, headers=ANTHROPIC_HEADERS
) as response:
    for use in await anthropic_tool_uses(response):
        print(use["name"], use["input"])

# %% [markdown]
# Do not run a tool whose call is incomplete. A dropped stream can leave a prefix such
# as `{"city": "Zür` in the buffer, or worse, one that happens to parse: `{"amount": 1`
# when `1000` was on its way. For a tool with side effects (a refund, an e-mail), treat
# "the stream ended before `finish_reason`/`content_block_stop`" as "no call at all",
# and ask again.

# %% [markdown]
# ## The official SDKs on the same server
#
# Everything in this course talks to the API with `httpx`, because that shows what is on
# the wire. In production you will often use the providers' own packages, `openai` and
# `anthropic`. Both take a `base_url`, so they run against the local server unchanged.
# Here is the same streamed answer both ways:

# %% tags=["nbval-check-output"]
import anthropic
import openai

oai = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key)
claude = anthropic.AsyncAnthropic(base_url=server.base_url, api_key=server.api_key)

raw = "".join([piece async for piece in stream_text("What is SSE?")])
stream = await oai.chat.completions.create(
    model="mock-gpt",
    stream=True,
    messages=[{"role": "user", "content": "What is SSE?"}],
)
sdk_text = "".join(
    [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
)
print("openai SDK == raw httpx:", sdk_text == raw)

async with claude.messages.stream(
    model="mock-claude",
    max_tokens=300,
    messages=[{"role": "user", "content": "What is SSE?"}],
) as events:
    claude_text = "".join([piece async for piece in events.text_stream])
print("anthropic SDK:", claude_text[:60], "...")

# %% [markdown]
# A word on the key. Anthropic's API documentation asks for the key in an `x-api-key`
# header (plus `anthropic-version`), and that is what to send when you write the request
# yourself, as this chapter does. The `anthropic` SDK sends the same key as
# `Authorization: Bearer <key>` since its 2.0 release; the local server accepts both.
#
# What the SDK does for you:
#
# - **Retries**, twice by default, with exponential backoff and jitter, on connection
#   errors, 408, 409, 429 and 5xx, and it waits as long as `Retry-After` (or
#   `retry-after-ms`) asks when the server says;
# - **typed errors**: `RateLimitError`, `AuthenticationError`, `NotFoundError`,
#   `InternalServerError`..., each with `.status_code`, `.body` and the response, and
#   `APIConnectionError`/`APITimeoutError` for the network;
# - **stream helpers** that do this chapter's assembly: text deltas, tool-call
#   arguments joined per index, a final message object at the end;
# - `.parse()` for structured output and typed response objects everywhere.
#
# Watch a retry happen. The first two calls get a 429 with a short `Retry-After`; the
# SDK waits and tries again, and your code only sees the success. (`server.url()` puts
# the fault in the base URL, for clients that take a base URL but no extra headers.) The
# server's log tells the whole story:

# %% tags=["nbval-check-output"]
server.reset()
patient = openai.AsyncOpenAI(
    base_url=server.url("fail_first:2:rate_limited:retry_after=0.1", key="sdk") + "/v1",
    api_key=server.api_key,
)
answer = await patient.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
)
print("the caller saw:", answer.choices[0].finish_reason)
print("the server saw:", [record.status for record in server.log])

# %% [markdown]
# And with retries off, the error is a typed exception that carries the response, so the
# `Retry-After` value is one attribute away:

# %% tags=["nbval-check-output"]
impatient = openai.AsyncOpenAI(
    base_url=server.url("rate_limited:retry_after=3") + "/v1",
    api_key=server.api_key,
    max_retries=0,
)
try:
    await impatient.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )
except openai.RateLimitError as exc:
    print(
        type(exc).__name__,
        exc.status_code,
        "retry-after:",
        exc.response.headers["retry-after"],
    )

# %% [markdown]
# What the SDK hides, and what to decide yourself:
#
# - its **default timeout** is ten minutes per request, and there is no gap timeout for
#   a stream: a stalled stream waits that long (set `timeout=` and keep chapter 7's gap
#   timeout);
# - retries multiply **latency and cost**: two retries with backoff can turn a 2 s
#   failure into 8 s or more, and each retry of a long prompt is billed again. Set
#   `max_retries` on purpose, and log retries (the request log above shows them; in
#   production, a hook or the `x-stainless-retry-count` header does);
# - the wire: you no longer see a malformed event or where a stream stopped, only the
#   exception the SDK chose;
# - one provider's shapes: an `openai` response object is not an `anthropic` one, so a
#   fallback between providers still needs your own small interface (chapter 6).
#
# The course keeps raw `httpx` in the lessons because the failures are easier to see
# there; knowing both is the point.

# %%
for sdk_client in (oai, claude, patient, impatient):
    await sdk_client.close()
# %% [markdown]
# ## Putting it together
#
# The exercises build a streaming processor from this chapter's parts:
#
# - a `StreamBuffer` that takes text chunks and returns each JSON object as soon as its
#   closing brace arrives, with the string and escape rules above;
# - an async generator that yields text chunks from either stream format, reports
#   progress through a callback, and closes its response however it ends;
# - the same generator failing cleanly: a gap timeout for stalls, a dropped connection or
#   a missing end marker, a malformed event, each as a clear exception that keeps the
#   partial text;
# - a generator of JSON objects on top of both, which closes the inner stream with
#   `aclosing`.
#
# Stop the server now that the lesson is over.

# %%
await http.aclose()
server.stop()

# %% [markdown]
# ## Check your understanding
#
# **1.** After you switch your assistant to streaming, a dashboard shows that the average
# total response time did not change. Was the change worth it? What would you measure
# instead?
#
# ```{admonition} Answer
# :class: dropdown
# Yes, if people read the answers: streaming does not make the model write faster, it moves
# what the user waits for from the last token to the first. Measure time to first token
# (p50 and p95) next to total time. Total time matters for callers that need the whole
# answer (a batch job, a JSON record), and for them streaming may not be worth its
# complexity.
# ```
#
# **2.** A teammate wraps the whole `async for piece in stream` loop in
# `asyncio.timeout(30)` "to catch stalls". Long answers now fail now and then, while a
# stream that stalls early still hangs for the full 30 s. What should the code do instead?
#
# ```{admonition} Answer
# :class: dropdown
# That is a total timeout: it measures the length of the answer, not whether the stream is
# moving. Use a gap timeout, restarted for each piece (`asyncio.timeout(gap)` around
# `anext(stream)`), of a few seconds, to catch stalls fast; keep a total deadline only if a
# caller needs one, set from the longest answer you expect. The read timeout of `httpx` is
# also a gap timeout, but on bytes, and keep-alive pings reset it.
# ```
#
# **3.** Your stream handler reads `async for piece in stream_text(...)` and `break`s when
# the user presses *Stop*. After a day in production, requests start failing with
# `httpx.PoolTimeout`. What is going on, and how do you fix it?
#
# ```{admonition} Answer
# :class: dropdown
# `break` leaves the loop but does not finish the generator: it stays paused at `yield`,
# inside `async with client.stream(...)`, so the response stays open and its connection
# stays out of the pool. While anything refers to the generator (a session object, a
# traceback), nothing cleans it up, and the pool runs dry. Consume with
# `async with contextlib.aclosing(stream_text(...)) as stream:`, or call
# `await stream.aclose()` in a `finally`.
# ```
#
# **4.** Why parse SSE from `aiter_lines()` rather than calling `.decode()` and
# `.split("\n")` on each chunk from `aiter_bytes()`?
#
# ```{admonition} Answer
# :class: dropdown
# Network chunks do not follow lines or characters: a proxy, compression or HTTP/2 can cut
# the bytes anywhere. Decoding a chunk that ends in the middle of a multi-byte character
# raises `UnicodeDecodeError`, and splitting a chunk that ends mid-line gives half-lines
# that are not JSON. `aiter_lines()` decodes incrementally and holds back a partial line
# until the rest arrives.
# ```
#
# **5.** A stream ended without any exception. Can you store the answer as complete?
#
# ```{admonition} Answer
# :class: dropdown
# Not yet. Check that the end marker came (`data: [DONE]` or `event: message_stop`), that
# no error event arrived, and that the finish reason is a natural stop (`stop` /
# `end_turn`), not `length` / `max_tokens`. A truncated answer, and above all truncated
# JSON, must be marked, retried or rejected, not stored.
# ```
#
# **6.** The model streams a JSON object whose `"code"` field contains a Python dict
# literal. Why does emitting an object "when the brace count returns to zero" fail, and
# what must a correct buffer track?
#
# ```{admonition} Answer
# :class: dropdown
# The braces inside the string are counted as structure, so the object is cut off early
# (or runs on too long) and the parts fail to parse. A correct buffer tracks whether it is
# inside a string, treats escaped characters (`\"`, `\\`) as part of the string, keeps the
# text after a complete object for the next one, and reports what is left incomplete when
# the stream ends.
# ```

# %% [markdown]
# ## Summary
#
# - Streaming moves the wait from the last token to the first; measure time to first
#   token and total time separately. It costs the same tokens, and more client code.
# - Both providers use server-sent events: `field: value` lines, a blank line per event,
#   comments for keep-alives. OpenAI sends unnamed `chat.completion.chunk` events with
#   `choices[0].delta.content`, a `finish_reason`, an optional usage chunk with empty
#   `choices`, and `data: [DONE]`. Anthropic names its events, from `message_start`
#   through `content_block_delta` (`text_delta`) and `message_delta` to `message_stop`,
#   and requires the `anthropic-version` header.
# - Use `client.stream()` and `aiter_lines()`: network chunks are not lines, nor even whole
#   characters.
# - Wrap a stream in an async generator that yields text; consume it with `async for`
#   inside `contextlib.aclosing`, so that stopping early or being cancelled closes the
#   connection.
# - Expect drops (`RemoteProtocolError`), stalls (`ReadTimeout`, or your own gap timeout),
#   broken chunks, error events after a `200`, and streams that end without their end
#   marker. Time the gap between pieces, not only the total.
# - JSON cannot be parsed until it is complete, and counting braces breaks on braces inside
#   strings. Streamed tool calls need one argument buffer per call (`index`, or the
#   content block), parsed only when the call is complete.
# - The official SDKs retry (honouring `Retry-After`), raise typed errors and assemble
#   streams for you; they also hide the wire and default to a ten-minute timeout.

# %% [markdown]
# ## Next
#
# Build the streaming processor in [the exercises](../exercises/07_streaming). Then
# [Chapter 8](08_observability) shows how to see what all of this is doing in production:
# logs, traces and metrics.
