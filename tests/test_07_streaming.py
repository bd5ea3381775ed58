"""Graded tests of chapter 7's exercise: a stream buffer, a streaming generator, its faults.

They stream from the course's local LLM server (one per module) in both formats, and break
the streams with the ``X-Mock-Scenario`` header: ``trickle`` (slow but steady), ``stall``,
``drop_stream`` and ``malformed_chunk``. ``X-Mock-Reply`` scripts the answer's text. Each
test sends its own ``X-Mock-Key``, so the server log shows what that test sent.

The client the tests hand over counts the responses opened and closed, so a response
left open after an error or an early exit is seen. Every wait on the learner's code is
guarded, so a broken submission fails instead of hanging. The only timing checks are
generous: a stalled stream must fail within 3 s when the gap timeout is 0.3 s and the
server would stall for 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import random
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from course.llm_server import LLMServer
from course.llm_server.answers import pieces
from course.pytest_plugin import exercise
from course.testing import assert_same

Module = types.ModuleType
GUARD_S = 5.0  # no test should come near this; it only stops a broken submission hanging
GAP_S = 0.3  # the chunk timeout of the fault tests
PROMPTLY_S = 3.0  # a stall must be reported within this (10x the gap; the server stalls 10 s)
JSONL_MARKER = "#records"
RECORDS: list[dict[str, Any]] = [
    {"id": 1, "name": "Ada", "note": "likes {braces} and \"quotes\""},
    {"id": 2, "name": "Alan", "tags": ["a", "b"], "path": "C:\\temp\\"},
    {"id": 3, "name": "Grace", "nested": {"deep": [1, {"x": "}"}]}},
]
# JSON lines, with the newlines a header cannot carry: the server replies with it to any
# prompt that contains the marker.
JSONL = "\n".join(json.dumps(record) for record in RECORDS) + "\n"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer(replies={JSONL_MARKER: JSONL}) as running:
        yield running


# ---------------------------------------------------------------- helpers


class TrackedStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, owner: TrackingTransport) -> None:
        self.inner, self.owner, self.closed = inner, owner, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            yield part

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.closed += 1
        await self.inner.aclose()


class TrackingTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that counts the responses it opened and those closed since."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.opened = self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.opened += 1
        return httpx.Response(
            response.status_code, headers=response.headers,
            stream=TrackedStream(response.stream, self), extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()

    def assert_all_closed(self, when: str) -> None:
        assert self.opened >= 1, f"{when}: no request reached the server"
        assert self.closed == self.opened, (
            f"{when}: {self.opened - self.closed} of {self.opened} HTTP response(s) left open; "
            "close the response in a finally block (await response.aclose())"
        )


class TrackedClient(httpx.AsyncClient):
    def __init__(self) -> None:
        self.tracker = TrackingTransport()
        super().__init__(transport=self.tracker)


@pytest.fixture
async def http() -> AsyncIterator[TrackedClient]:
    async with TrackedClient() as client:
        yield client


class Endpoints:
    """Makes endpoints with their own X-Mock-Key, and reads what the server saw for them."""

    def __init__(self, notebook: Module, server: LLMServer) -> None:
        self.notebook, self.server = notebook, server
        self.keys: list[str] = []

    def make(self, style: str = "openai", scenario: str = "ok", reply: str | None = None) -> Any:
        key = f"s7-{uuid.uuid4().hex[:8]}"
        self.keys.append(key)
        headers = {"X-Mock-Key": key, "X-Mock-Scenario": scenario}
        if reply is not None:
            headers["X-Mock-Reply"] = reply
        return self.notebook.Endpoint(self.server.base_url, style=style, headers=headers)

    def records(self) -> list[Any]:
        return [record for record in self.server.log if record.key in self.keys]


@pytest.fixture
def endpoints(notebook: Module, server: LLMServer) -> Endpoints:
    return Endpoints(notebook, server)


async def answer_text(server: LLMServer, style: str, prompt: str) -> str:
    """The full answer to ``prompt``, from a plain (not streamed) request: the same request
    gives the same answer, so this is what the streamed chunks must add up to."""
    messages = [{"role": "user", "content": prompt}]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=GUARD_S) as client:
        if style == "openai":
            response = await client.post(
                "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                json={"model": "mock-gpt", "messages": messages},
            )
            return str(response.json()["choices"][0]["message"]["content"])
        response = await client.post(
            "/v1/messages", headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01"},
            json={"model": "mock-claude", "max_tokens": 4096, "messages": messages},
        )
        return str(response.json()["content"][0]["text"])


def as_async_generator(stream: Any, name: str) -> Any:
    if inspect.isasyncgen(stream):
        return stream
    if inspect.iscoroutine(stream):
        stream.close()  # the stub, or an `async def` without `yield`: nothing to iterate
    pytest.fail(f"{name}(...) should return an async generator (an `async def` that yields), "
                f"got {type(stream).__name__}")


async def drain(
    stream: Any, *, limit: int | None = None, guard: float = GUARD_S, name: str = "stream_text",
    on_item: Any = None,
) -> tuple[list[Any], Exception | None]:
    """Iterate (at most ``limit`` items), then close the generator as a careful caller does.
    Return the items and the exception that ended the stream (None for a clean end)."""
    stream = as_async_generator(stream, name)
    items: list[Any] = []
    error: Exception | None = None
    try:
        async with asyncio.timeout(guard) as deadline, contextlib.aclosing(stream):
            async for item in stream:
                items.append(item)
                if on_item is not None:
                    on_item(item)
                if limit is not None and len(items) >= limit:
                    break
    except Exception as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            pytest.fail(f"{name} did not finish within {guard:g}s (after {len(items)} items)")
        error = exc
    return items, error


def expect_error(notebook: Module, error: Exception | None, kind: str, what: str) -> Any:
    cls = getattr(notebook, kind)
    assert isinstance(error, cls), (
        f"{what}: expected {kind}, got "
        + ("a normal end of the stream" if error is None else f"{type(error).__name__}: {error}")
    )
    return error


# ---------------------------------------------------------------- stream_buffer


def feed_all(buffer: Any, chunks: list[str]) -> list[Any]:
    found: list[Any] = []
    for chunk in chunks:
        got = buffer.feed(chunk)
        assert type(got) is list, f"feed() should return a list, got {type(got).__name__}"
        found.extend(got)
    return found


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@exercise("stream_buffer", points=1, hint="feed() returns a list of dicts (json.loads of each complete "
          "object), in order, [] when none completed; whitespace and newlines between objects are ignored.")
def test_buffer_emits_whole_objects(notebook: Module) -> None:
    buffer = notebook.StreamBuffer()
    assert_same(buffer.feed('{"a": 1}'), [{"a": 1}], "feed('{\"a\": 1}')")
    text = '{"a": 1, "b": [1, 2.5, {"c": null}]}\n{"d": "e"}\n\n  \t{"f": true}\n'
    assert_same(buffer.feed(text), [{"a": 1, "b": [1, 2.5, {"c": None}]}, {"d": "e"}, {"f": True}],
                "three objects in one chunk")
    assert_same(buffer.feed(""), [], "feed('')")
    assert_same(buffer.pending, "", "pending between objects")
    assert_same(buffer.skipped, 0, "skipped (only whitespace between objects)")
    buffer.close()


@exercise("stream_buffer", points=1, hint="Keep the unfinished object (and your scanning state) between "
          "feed() calls: an object may be cut anywhere, even one character at a time.")
def test_buffer_keeps_the_tail_across_chunks(notebook: Module) -> None:
    buffer = notebook.StreamBuffer()
    assert_same(buffer.feed('{"name": "Ad'), [], "feed() of half an object")
    assert_same(buffer.pending, '{"name": "Ad', "pending after half an object")
    assert_same(buffer.feed('a", "n'), [], "feed() of the middle")
    assert_same(buffer.feed('": 2}  {"x"'), [{"name": "Ada", "n": 2}], "feed() that ends one and starts one")
    assert_same(buffer.pending, '{"x"', "pending once the next object has begun")

    chars = list(JSONL)
    assert_same(feed_all(notebook.StreamBuffer(), chars), RECORDS, "records fed one character at a time")
    rng = random.Random(7)
    for _ in range(20):
        cuts = rng.sample(range(1, len(JSONL)), rng.randint(1, 12))
        chunks = split_at(JSONL, cuts)
        assert_same(feed_all(notebook.StreamBuffer(), chunks), RECORDS, f"records fed as {chunks!r}")


@exercise("stream_buffer", points=1, hint="A brace inside a JSON string is text, not structure: track "
          "whether you are inside a string and count braces only outside strings.")
def test_buffer_ignores_braces_inside_strings(notebook: Module) -> None:
    objects = [{"code": "if (x) { return y; }"}, {"open": "{{{", "close": "}"}, {"n": {"t": "}{"}}]
    text = " ".join(json.dumps(item) for item in objects)
    assert_same(feed_all(notebook.StreamBuffer(), [text]), objects, "objects with braces inside strings")
    cut = text.index("}") + 1  # right after the brace inside the first string
    buffer = notebook.StreamBuffer()
    assert_same(buffer.feed(text[:cut]), [], f"feed({text[:cut]!r}): the object is not finished")
    assert_same(feed_all(buffer, [text[cut:]]), objects, "the rest")
    assert_same(buffer.rejected, [], "rejected (every object was valid JSON)")


@exercise("stream_buffer", points=1, hint="Inside a string, a backslash escapes the next character (even "
          "if it arrives in the next chunk), so \\\" does not end the string but \\\\\" does.")
def test_buffer_handles_escaped_quotes(notebook: Module) -> None:
    objects = [{"quote": 'she said "}" and left'}, {"path": "C:\\"}, {"next": "\\\"{"}, {"last": 1}]
    text = "".join(json.dumps(item) for item in objects)
    assert_same(feed_all(notebook.StreamBuffer(), [text]), objects, f"feed({text!r})")
    buffer = notebook.StreamBuffer()
    assert_same(buffer.feed('{"q": "a\\'), [], "a chunk that ends with a backslash inside a string")
    assert_same(buffer.feed('"}"}'), [{"q": 'a"}'}], "the escaped quote arrives in the next chunk")
    assert_same(feed_all(buffer, ['{"p": "x\\\\', '"}']), [{"p": "x\\"}],
                "an escaped backslash, then the end")


@exercise("stream_buffer", points=1, hint="Outside an object, skip (and count in skipped) anything but "
          "whitespace; a balanced {...} that json.loads rejects goes to rejected; close() raises "
          "ValueError only when an object is unfinished.")
def test_buffer_garbage_policy(notebook: Module) -> None:
    buffer = notebook.StreamBuffer()
    prose = 'Sure! Here they are: [{"a": 1}, {"b": 2}] Anything else?'
    assert_same(buffer.feed(prose), [{"a": 1}, {"b": 2}], f"feed({prose!r})")
    garbage = "Sure!Heretheyare:[,]Anythingelse?"
    assert_same(buffer.skipped, len(garbage), "skipped: non-whitespace characters outside objects")
    assert_same(buffer.feed('} {"bad": tru} {"ok": 1}'), [{"ok": 1}],
                "a stray }, a broken object, a good one")
    assert_same(buffer.skipped, len(garbage) + 1, "skipped after a stray }")
    assert_same(buffer.rejected, ['{"bad": tru}'], "rejected: the balanced text that is not JSON")
    assert_same(buffer.feed('{"worse": } {"ok": 2}'), [{"ok": 2}], "a second broken object, a good one")
    assert_same(buffer.rejected, ['{"bad": tru}', '{"worse": }'],
                "rejected: each broken object appended, in the order it came")
    assert_same(buffer.skipped, len(garbage) + 1, "skipped: a broken object is rejected, not skipped")
    buffer.close()
    buffer.feed('{"unfinished": [1, 2')
    with pytest.raises(ValueError):
        buffer.close()


# ---------------------------------------------------------------- stream_text


async def check_streams_answer(
    notebook: Module, http: TrackedClient, server: LLMServer, endpoints: Endpoints, style: str
) -> None:
    prompt = f"Tell me about streaming in {style} style."
    expected = pieces(await answer_text(server, style, prompt))
    chunks, error = await drain(notebook.stream_text(http, endpoints.make(style), prompt))
    assert error is None, f"{style} stream: expected a normal end, got {type(error).__name__}: {error}"
    assert_same(chunks, expected, f"the text chunks of the {style}-style stream")
    seen = [(r.api, r.streamed, r.status) for r in endpoints.records()]
    assert seen == [(style, True, 200)], (
        f"expected one streamed request to the {style} endpoint, answered 200; the server saw "
        f"(api, streamed, status) {seen}"
    )
    http.tracker.assert_all_closed(f"after a complete {style} stream")


@exercise("stream_text", points=1, hint="OpenAI style: parse each `data:` line as JSON and yield "
          "choices[0].delta.content when non-empty; stop at `data: [DONE]`.")
async def test_streams_openai_chunks(notebook: Module, http: TrackedClient, server: LLMServer,
                                     endpoints: Endpoints) -> None:
    await check_streams_answer(notebook, http, server, endpoints, "openai")


@exercise("stream_text", points=1, hint="Anthropic style: events are `event: <name>` then `data: {...}`; "
          "the text is delta.text of content_block_delta events; other events carry none; message_stop "
          "ends the stream.")
async def test_streams_anthropic_chunks(notebook: Module, http: TrackedClient, server: LLMServer,
                                        endpoints: Endpoints) -> None:
    await check_streams_answer(notebook, http, server, endpoints, "anthropic")


@exercise("stream_text", points=1, hint="Call on_progress(Progress(chunks=..., chars=...)) once per "
          "text chunk, as it arrives (before yielding it), with the running totals as ints.")
async def test_progress_is_reported_per_chunk(notebook: Module, http: TrackedClient,
                                              endpoints: Endpoints) -> None:
    reports: list[Any] = []
    seen_at: list[int] = []  # how many reports existed when each chunk reached the caller
    for style in ("anthropic", "openai"):
        reports.clear()
        seen_at.clear()
        stream = notebook.stream_text(http, endpoints.make(style), "Progress, please.",
                                      on_progress=reports.append)
        chunks, error = await drain(stream, on_item=lambda _: seen_at.append(len(reports)))
        assert error is None, f"{style}: expected a normal end, got {type(error).__name__}: {error}"
        assert all(isinstance(report, notebook.Progress) for report in reports), (
            f"on_progress should receive Progress objects, got {[type(r).__name__ for r in reports][:3]}"
        )
        got = [(report.chunks, report.chars) for report in reports]
        sizes = [len(chunk) for chunk in chunks]
        expected = [(i + 1, sum(sizes[: i + 1])) for i in range(len(chunks))]
        assert_same(got, expected, f"{style}: (chunks, chars) of each progress report")
        late = [(i + 1, n) for i, n in enumerate(seen_at) if n not in (i, i + 1)]
        assert not late, (
            f"{style}: progress should be reported as each chunk arrives; when chunk k reached the caller, "
            f"there were n reports (k, n): {late[:3]}"
        )


@exercise("stream_text", points=1, hint="Yield each chunk as soon as its event is read (do not read the "
          "whole body first), and close the response in a finally block, which also runs when the "
          "caller closes the generator early.")
async def test_yields_as_chunks_arrive_and_closes_on_early_exit(
    notebook: Module, http: TrackedClient, server: LLMServer, endpoints: Endpoints
) -> None:
    for style, first_events in (("openai", 4), ("anthropic", 6)):
        prompt = f"Early exit, {style}."
        expected = pieces(await answer_text(server, style, prompt))
        # The server sends a few events, then nothing for 10 s: only a generator that yields
        # as events arrive can hand over the first chunks before that.
        endpoint = endpoints.make(style, f"stall:after={first_events}")
        stream = notebook.stream_text(http, endpoint, prompt, chunk_timeout_s=GUARD_S * 2)
        chunks, error = await drain(stream, limit=2, guard=PROMPTLY_S)
        assert error is None, f"{style}: expected two chunks, got {type(error).__name__}: {error}"
        assert_same(chunks, expected[:2], f"{style}: the first two chunks, before the server stalls")
        http.tracker.assert_all_closed(f"{style}: after the caller closed the generator early")


@exercise("stream_text", points=1, hint="Check response.status_code before reading events: anything but "
          "200 raises StreamError with the status in its message (and the response is still closed).")
async def test_error_status_raises_stream_error(notebook: Module, http: TrackedClient,
                                                endpoints: Endpoints) -> None:
    for style, status in (("openai", 503), ("anthropic", 529)):
        stream = notebook.stream_text(http, endpoints.make(style, f"error:{status}"), "Hello")
        chunks, error = await drain(stream)
        error = expect_error(notebook, error, "StreamError", f"{style}, HTTP {status}")
        assert str(status) in str(error), f"the message should name the status {status}: {error}"
        assert_same(chunks, [], f"{style}: chunks of an error response")
    http.tracker.assert_all_closed("after error responses")


# ---------------------------------------------------------------- stream_faults


@exercise("stream_faults", points=1, hint="The timeout is for the gap between two pieces of the stream: "
          "wrap each read (await anext(lines)) in its own asyncio.timeout, not the whole loop.")
async def test_slow_steady_stream_is_not_a_timeout(notebook: Module, http: TrackedClient,
                                                   endpoints: Endpoints) -> None:
    # An event every 20 ms: over a second in all (3x the timeout), never more than 20 ms of
    # silence (1/17 of it). The second, shorter stream checks the other format trickles too.
    for style, count in (("openai", 50), ("anthropic", 10)):
        words = " ".join(f"word{i}" for i in range(count))
        endpoint = endpoints.make(style, "trickle:20ms", reply=words)
        stream = notebook.stream_text(http, endpoint, "Slowly.", chunk_timeout_s=GAP_S + 0.05)
        chunks, error = await drain(stream)
        assert error is None, (
            f"{style}: a stream with an event every 20 ms should complete, even when it lasts longer "
            f"than the {GAP_S + 0.05:g} s chunk timeout in total; got {type(error).__name__}: {error}"
        )
        assert_same(chunks, pieces(words), f"{style}: the chunks of the slow stream")
    http.tracker.assert_all_closed("after slow streams")


@exercise("stream_faults", points=1, hint="A stalled stream must raise StreamTimeout (with the partial "
          "text) within chunk_timeout_s of the last piece; close the response too.")
async def test_stall_mid_stream_raises_stream_timeout(
    notebook: Module, http: TrackedClient, server: LLMServer, endpoints: Endpoints
) -> None:
    for style, after in (("openai", 3), ("anthropic", 5)):
        prompt = f"Stall, {style}."
        expected = pieces(await answer_text(server, style, prompt))[:2]
        stream = notebook.stream_text(http, endpoints.make(style, f"stall:after={after}"), prompt,
                                      chunk_timeout_s=GAP_S)
        chunks, error = await drain(stream, guard=PROMPTLY_S)
        error = expect_error(notebook, error, "StreamTimeout", f"{style}, stall after {after} events")
        assert_same(chunks, expected, f"{style}: chunks before the stall")
        assert_same(error.partial, "".join(expected), f"{style}: StreamTimeout.partial")
    http.tracker.assert_all_closed("after stalled streams")


@exercise("stream_faults", points=1, hint="Waiting for the response headers is a gap too: put "
          "client.send(...) under asyncio.timeout(chunk_timeout_s) and raise StreamTimeout.")
async def test_stall_before_any_byte_raises_stream_timeout(notebook: Module, http: TrackedClient,
                                                           endpoints: Endpoints) -> None:
    for style in ("openai", "anthropic"):
        stream = notebook.stream_text(http, endpoints.make(style, "stall"), "Anyone?", chunk_timeout_s=GAP_S)
        _, error = await drain(stream, guard=PROMPTLY_S)
        error = expect_error(notebook, error, "StreamTimeout", f"{style}, no response at all")
        assert_same(error.partial, "", f"{style}: StreamTimeout.partial when nothing arrived")


@exercise("stream_faults", points=1, hint="A connection closed mid-stream surfaces as an "
          "httpx.TransportError while reading: raise StreamDropped with the text so far, never end normally.")
async def test_dropped_connection_raises_stream_dropped(
    notebook: Module, http: TrackedClient, server: LLMServer, endpoints: Endpoints
) -> None:
    for style, after in (("openai", 4), ("anthropic", 6)):
        prompt = f"Drop, {style}."
        expected = pieces(await answer_text(server, style, prompt))[:3]
        endpoint = endpoints.make(style, f"drop_stream:after={after}")
        chunks, error = await drain(notebook.stream_text(http, endpoint, prompt, chunk_timeout_s=GUARD_S))
        error = expect_error(notebook, error, "StreamDropped", f"{style}, dropped after {after} events")
        assert_same(chunks, expected, f"{style}: chunks before the drop")
        assert_same(error.partial, "".join(expected), f"{style}: StreamDropped.partial")
    fired = [record.fault for record in endpoints.records()]
    assert fired == ["drop_stream:after=4", "drop_stream:after=6"], f"the server's faults: {fired}"
    http.tracker.assert_all_closed("after dropped connections")


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    parts = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        parts.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(parts).encode()


def openai_delta(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def anthropic_delta(text: str) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": text}}


@exercise("stream_faults", points=1, hint="A stream that ends cleanly but without its end marker "
          "([DONE] or message_stop) was cut short: raise StreamDropped with the partial text.")
async def test_stream_without_end_marker_is_dropped(notebook: Module) -> None:
    bodies = {
        "openai": sse([(None, openai_delta(text)) for text in ("Half", " an", " answer")]),
        "anthropic": sse([
            ("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            anthropic_delta("Half"), anthropic_delta(" an"), anthropic_delta(" answer"),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]),
    }
    for style, body in bodies.items():
        def reply(request: httpx.Request, body: bytes = body) -> httpx.Response:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

        async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
            endpoint = notebook.Endpoint("http://llm.test", style=style)
            chunks, error = await drain(notebook.stream_text(client, endpoint, "Hi", chunk_timeout_s=GUARD_S))
        error = expect_error(notebook, error, "StreamDropped", f"{style} stream without its end marker")
        assert_same(chunks, ["Half", " an", " answer"], f"{style}: chunks before the end")
        assert_same(error.partial, "Half an answer", f"{style}: StreamDropped.partial")


@exercise("stream_faults", points=1, hint="Catch json.JSONDecodeError (and missing fields) per event "
          "and raise MalformedChunk(message, partial, index=<event number from 1>, data=<raw data>).")
async def test_malformed_event_raises_malformed_chunk(
    notebook: Module, http: TrackedClient, server: LLMServer, endpoints: Endpoints
) -> None:
    cases = (("openai", 3, '{"id":"chatcmpl-'), ("anthropic", 5, '{"type":"content_block_delta"'))
    for style, at, start in cases:
        prompt = f"Malformed, {style}."
        expected = pieces(await answer_text(server, style, prompt))[:1]
        endpoint = endpoints.make(style, f"malformed_chunk:at={at}")
        chunks, error = await drain(notebook.stream_text(http, endpoint, prompt, chunk_timeout_s=GUARD_S))
        error = expect_error(notebook, error, "MalformedChunk", f"{style}, event {at} cut short")
        assert_same(error.index, at, f"{style}: MalformedChunk.index (events counted from 1)")
        data = error.data
        assert type(data) is str and data.startswith(start), (
            f"{style}: MalformedChunk.data should be the event's raw data, starting {start!r}; got {data!r}"
        )
        with pytest.raises(json.JSONDecodeError):
            json.loads(data)
        assert str(at) in str(error), f"{style}: the message should name the event number {at}: {error}"
        assert_same(chunks, expected, f"{style}: chunks before the broken event")
        assert_same(error.partial, "".join(expected), f"{style}: MalformedChunk.partial")
    http.tracker.assert_all_closed("after malformed streams")


# ---------------------------------------------------------------- stream_objects


@exercise("stream_objects", points=1, hint="Feed every chunk of stream_text to one StreamBuffer and "
          "yield what feed() returns; call close() after the last chunk.")
async def test_objects_from_a_streamed_answer(notebook: Module, http: TrackedClient,
                                              endpoints: Endpoints) -> None:
    by_header = " ".join(json.dumps(record) for record in RECORDS)
    for style, prompt, reply in (("openai", f"{JSONL_MARKER} please", None),
                                 ("anthropic", "Records, please.", by_header)):
        stream = notebook.stream_objects(http, endpoints.make(style, reply=reply), prompt)
        objects, error = await drain(stream, name="stream_objects")
        assert error is None, f"{style}: expected a normal end, got {type(error).__name__}: {error}"
        assert_same(objects, RECORDS, f"{style}: the objects of the streamed answer")
    unfinished = json.dumps(RECORDS[0]) + ' {"id": 2, "name":'
    stream = notebook.stream_objects(http, endpoints.make("openai", reply=unfinished), "Cut.")
    objects, error = await drain(stream, name="stream_objects")
    assert_same(objects, RECORDS[:1], "objects of an answer that stops inside the second")
    assert isinstance(error, ValueError), (
        "an answer that ends inside an object should raise ValueError (from buffer.close()), got "
        + ("a normal end" if error is None else f"{type(error).__name__}: {error}")
    )
    http.tracker.assert_all_closed("after streaming objects")


@exercise("stream_objects", points=1, hint="Yield each object as soon as feed() returns it, and iterate "
          "stream_text inside `async with contextlib.aclosing(...)` so an early exit closes it at once.")
async def test_objects_arrive_early_and_early_exit_closes(notebook: Module, http: TrackedClient,
                                                          endpoints: Endpoints) -> None:
    script = " ".join(json.dumps(record) for record in RECORDS)
    first_words = len(pieces(json.dumps(RECORDS[0])))
    # The first object is complete after 1 + first_words events; then the server stalls for 10 s.
    endpoint = endpoints.make("openai", f"stall:after={first_words + 2}", reply=script)
    stream = notebook.stream_objects(http, endpoint, "Records.", chunk_timeout_s=GUARD_S * 2)
    objects, error = await drain(stream, limit=1, guard=PROMPTLY_S, name="stream_objects")
    assert error is None, f"expected the first object before the stall, got {type(error).__name__}: {error}"
    assert_same(objects, RECORDS[:1], "the first object")
    http.tracker.assert_all_closed("as soon as the caller closed stream_objects early")


@exercise("stream_objects", points=1, hint="Let stream_text's errors through unchanged: a dropped "
          "stream is StreamDropped, not a normal end and not the buffer's ValueError.")
async def test_stream_errors_pass_through(notebook: Module, http: TrackedClient,
                                          endpoints: Endpoints) -> None:
    script = " ".join(json.dumps(record) for record in RECORDS)
    first_words = len(pieces(json.dumps(RECORDS[0])))
    endpoint = endpoints.make("anthropic", f"drop_stream:after={3 + first_words + 2}", reply=script)
    objects, error = await drain(notebook.stream_objects(http, endpoint, "Records."), name="stream_objects")
    expect_error(notebook, error, "StreamDropped", "a stream dropped after the first object")
    assert_same(objects, RECORDS[:1], "objects before the drop")
    http.tracker.assert_all_closed("after a dropped stream of objects")
