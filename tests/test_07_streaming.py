"""Graded tests of chapter 7's exercise: a stream buffer, a streaming generator, its faults.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data. The buffer's inputs
(the objects, the words inside them, where the text is cut) are drawn at random per run,
and so are the prompts, so an answer that returns the published examples earns nothing.

The generators stream, in the worker, from the course's local LLM server, which the judge
runs (one per module), in both formats, and the tests break the streams with the
``X-Mock-Scenario`` header: ``trickle`` (slow but steady), ``stall``, ``drop_stream`` and
``malformed_chunk``. ``X-Mock-Reply`` scripts the answer's text. Each endpoint sends its own
``X-Mock-Key``, so the server log, read by the judge, shows what each test sent. The judge
asks the server itself for the full answer to a prompt, which the streamed chunks must add
up to.

The client the probe hands over counts the responses opened and closed, so a response
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
import string
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from course.llm_server import LLMServer
from course.llm_server.answers import pieces
from course.probing import as_data, probe, raised, shown
from course.pytest_plugin import exercise
from course.testing import assert_same

Data = Any
GUARD_S = 5.0  # no test should come near this; it only stops a broken submission hanging
GAP_S = 0.3  # the chunk timeout of the fault tests
PROMPTLY_S = 3.0  # a stall must be reported within this (10x the gap; the server stalls 10 s)
JSONL_MARKER = "#records"
ASK_MARKER = "#ask"  # in every prompt whose answer the server makes up
ERRORS = ("StreamError", "StreamTimeout", "StreamDropped", "MalformedChunk")


def word(length: int | None = None) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length or random.randint(3, 8)))


def tricky() -> str:
    """A string with what trips a naive scanner: braces, quotes, backslashes."""
    parts = [word(), random.choice(["{", "}", "{{", "}{", '"', '\\"', "\\", "\\\\", '"}', "{\\"]), word()]
    random.shuffle(parts)
    return " ".join(parts)


def random_record(number: int) -> dict[str, Any]:
    record: dict[str, Any] = {"id": number, "name": word().capitalize(), "note": tricky()}
    extra = random.choice(["tags", "path", "nested"])
    if extra == "tags":
        record["tags"] = [word(), tricky()]
    elif extra == "path":
        record["path"] = f"C:\\{word()}\\"
    else:
        record["nested"] = {"deep": [random.randint(0, 99), {word(): tricky()}]}
    return record


def as_jsonl(records: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(record) for record in records) + "\n"


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """The records a model 'writes' in this run (drawn once per module, with the server)."""
    return [random_record(number) for number in range(1, random.randint(3, 5))]


class Answers:
    """The server's answer to a prompt: words drawn when the server starts, around the prompt,
    so only a stream that came from the server can hold them."""

    def __init__(self) -> None:
        self.salt = [word() for _ in range(3)]

    def __call__(self, prompt: str) -> str:
        first, second, third = self.salt
        return f"{first.capitalize()} {second}: {prompt.replace(ASK_MARKER, '').strip()} ({third})"


@pytest.fixture(scope="module")
def server(records: list[dict[str, Any]]) -> Iterator[LLMServer]:
    # JSON lines, with the newlines a header cannot carry: the server replies with them to
    # any prompt that contains the marker.
    with LLMServer(replies={JSONL_MARKER: as_jsonl(records), ASK_MARKER: Answers()}) as running:
        yield running


# ---------------------------------------------------------------- worker-side helpers




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


def error_data(nb: Any, error: Exception | None) -> Data:
    if error is None:
        return None
    return {"type": type(error).__name__, "message": shown(error, str),
            "is": [name for name in ERRORS if isinstance(error, getattr(nb, name))]
            + (["ValueError"] if isinstance(error, ValueError) else []),
            "partial": as_data(getattr(error, "partial", None)),
            "index": as_data(getattr(error, "index", None)),
            "data": as_data(getattr(error, "data", None))}


@probe
async def probe_stream(nb: Any, function: str, endpoint: dict[str, Any], prompt: str,
                       options: dict[str, Any]) -> Data:
    """Call nb.<function>(client, Endpoint(...), prompt, **kwargs) and iterate it (at most
    options["limit"] items), then close it as a careful caller does. The items, the error
    that ended the stream, the progress reports, and the responses opened and closed."""
    reports: list[Any] = []
    seen_at: list[int] = []  # how many reports existed when each item reached the caller
    kwargs: dict[str, Any] = {}
    if "chunk_timeout_s" in options:
        kwargs["chunk_timeout_s"] = options["chunk_timeout_s"]
    if options.get("progress"):
        kwargs["on_progress"] = reports.append
    tracker = TrackingTransport()
    if "mock_body" in options:
        body = options["mock_body"].encode()

        def reply(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

        client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    else:
        client = httpx.AsyncClient(transport=tracker)
    limit, guard = options.get("limit"), float(options.get("guard", GUARD_S))
    items: list[Any] = []
    error: Exception | None = None
    async with client:
        stream = getattr(nb, function)(client, nb.Endpoint(**endpoint), prompt, **kwargs)
        if not inspect.isasyncgen(stream):
            if inspect.iscoroutine(stream):
                stream.close()  # the stub, or an `async def` without `yield`: nothing to iterate
            return {"not_generator": type(stream).__name__}
        try:
            async with asyncio.timeout(guard) as deadline, contextlib.aclosing(stream):
                async for item in stream:
                    items.append(item)
                    seen_at.append(len(reports))
                    if limit is not None and len(items) >= limit:
                        break
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                return {"hung": f"{function} did not finish within {guard:g}s (after {len(items)} items)"}
            error = exc
    return {"items": [as_data(item) for item in items], "error": error_data(nb, error),
            "progress": [{"is_progress": isinstance(r, nb.Progress), "kind": type(r).__name__,
                          "chunks": as_data(getattr(r, "chunks", None)),
                          "chars": as_data(getattr(r, "chars", None))} for r in reports],
            "seen_at": seen_at, "opened": tracker.opened, "closed": tracker.closed}


# ---------------------------------------------------------------- judge-side helpers


class Endpoints:
    """Makes endpoint settings with their own X-Mock-Key, and reads what the server saw for them."""

    def __init__(self, server: LLMServer) -> None:
        self.server = server
        self.keys: list[str] = []

    def make(self, style: str = "openai", scenario: str = "ok", reply: str | None = None) -> dict[str, Any]:
        key = f"s7-{uuid.uuid4().hex[:8]}"
        self.keys.append(key)
        headers = {"X-Mock-Key": key, "X-Mock-Scenario": scenario}
        if reply is not None:
            headers["X-Mock-Reply"] = reply
        return {"base_url": self.server.base_url, "style": style, "headers": headers}

    def records(self) -> list[Any]:
        return [record for record in self.server.log if record.key in self.keys]

    def assert_each_sent_once(self, what: str) -> None:
        """Each endpoint made got one streamed request: the answer came from the server."""
        deadline = time.monotonic() + 2.0  # the server logs a stall once the client gives up
        while True:
            counts = {key: 0 for key in self.keys}
            for record in self.records():
                counts[record.key] += record.streamed
            if all(counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert all(count == 1 for count in counts.values()), (
            f"{what}: each stream should send one streamed request to the server; per endpoint the "
            f"server saw {list(counts.values())}"
        )


@pytest.fixture
def endpoints(server: LLMServer) -> Endpoints:
    return Endpoints(server)


def answer_text(server: LLMServer, style: str, prompt: str) -> str:
    """The full answer to ``prompt``, from a plain (not streamed) request the judge sends: the
    same request gives the same answer, so this is what the streamed chunks must add up to."""
    messages = [{"role": "user", "content": prompt}]
    with httpx.Client(base_url=server.base_url, timeout=GUARD_S) as client:
        if style == "openai":
            response = client.post(
                "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                json={"model": "mock-gpt", "messages": messages},
            )
            return str(response.json()["choices"][0]["message"]["content"])
        response = client.post(
            "/v1/messages", headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01"},
            json={"model": "mock-claude", "max_tokens": 4096, "messages": messages},
        )
        return str(response.json()["content"][0]["text"])


def prompt_text(what: str) -> str:
    return f"{ASK_MARKER} {what} {word()} {word()}."


def streamed(notebook: Any, endpoint: dict[str, Any], prompt: str, *, function: str = "stream_text",
             **options: Any) -> dict[str, Any]:
    """Run probe_stream; fail the test if the learner's function is no async generator or hangs."""
    got = probe_stream(notebook, function, endpoint, prompt, options)
    if "not_generator" in got:
        pytest.fail(f"{function}(...) should return an async generator (an `async def` that yields), "
                    f"got {got['not_generator']}", pytrace=False)
    if "hung" in got:
        pytest.fail(got["hung"], pytrace=False)
    return got


def ended(error: dict[str, Any] | None) -> str:
    return "a normal end of the stream" if error is None else f"{error['type']}: {error['message']}"


def expect_error(got: dict[str, Any], kind: str, what: str) -> dict[str, Any]:
    error = got["error"]
    assert error is not None and kind in error["is"], f"{what}: expected {kind}, got {ended(error)}"
    return error


def expect_clean_end(got: dict[str, Any], what: str) -> None:
    assert got["error"] is None, f"{what}: expected a normal end, got {ended(got['error'])}"


def assert_all_closed(got: dict[str, Any] | list[dict[str, Any]], when: str) -> None:
    runs = got if isinstance(got, list) else [got]
    opened = sum(run["opened"] for run in runs)
    closed = sum(run["closed"] for run in runs)
    assert opened >= 1, f"{when}: no request reached the server"
    assert closed == opened, (
        f"{when}: {opened - closed} of {opened} HTTP response(s) left open; "
        "close the response in a finally block (await response.aclose())"
    )


# ---------------------------------------------------------------- stream_buffer


@probe
def probe_buffer(nb: Any, steps: list[list[Any]]) -> Data:
    """Run steps on StreamBuffers: ["new"], ["feed", chunk], ["feed_all", [chunks]] (a new
    buffer fed each chunk), ["pending"], ["skipped"], ["rejected"], ["close"]. One result each."""
    buffer = nb.StreamBuffer()
    out: list[Data] = []

    def feed(target: Any, chunk: str) -> Data:
        got = target.feed(chunk)
        return as_data(got) if type(got) is list else {"not_list": type(got).__name__}

    for step in steps:
        what = step[0]
        if what == "new":
            buffer = nb.StreamBuffer()
            out.append(None)
        elif what == "feed":
            out.append(feed(buffer, step[1]))
        elif what == "feed_all":
            fresh = nb.StreamBuffer()
            found: list[Data] = []
            for chunk in step[1]:
                got = feed(fresh, chunk)
                if type(got) is not list:
                    found = got
                    break
                found.extend(got)
            out.append(found)
        elif what in ("pending", "skipped", "rejected"):
            out.append(as_data(getattr(buffer, what)))
        elif what == "close":
            out.append(raised(buffer.close))
    return out


def check_feed(got: Any, expected: Any, what: str) -> None:
    if isinstance(got, dict) and "not_list" in got:
        pytest.fail(f"feed() should return a list, got {got['not_list']}", pytrace=False)
    assert_same(got, expected, what)


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@exercise("stream_buffer", points=1, hint="feed() returns a list of dicts (json.loads of each complete "
          "object), in order, [] when none completed; whitespace and newlines between objects are ignored.")
def test_buffer_emits_whole_objects(notebook: Any) -> None:
    single = {word(): random.randint(0, 999)}
    objects = [{"a": random.randint(0, 9), "b": [1, 2.5, {word(): None}]}, {word(): word()}, {word(): True}]
    text = (json.dumps(objects[0]) + "\n" + json.dumps(objects[1]) + random.choice(["\n\n  \t", " ", "\n"])
            + json.dumps(objects[2]) + "\n")
    got = probe_buffer(notebook, [["feed", json.dumps(single)], ["feed", text], ["feed", ""], ["pending"],
                                  ["skipped"], ["close"]])
    check_feed(got[0], [single], f"feed({json.dumps(single)!r})")
    check_feed(got[1], objects, "three objects in one chunk")
    check_feed(got[2], [], "feed('')")
    assert_same(got[3], "", "pending between objects")
    assert_same(got[4], 0, "skipped (only whitespace between objects)")
    assert got[5] is None, f"close() between objects should not raise, got {got[5]}"


@exercise("stream_buffer", points=1, hint="Keep the unfinished object (and your scanning state) between "
          "feed() calls: an object may be cut anywhere, even one character at a time.")
def test_buffer_keeps_the_tail_across_chunks(notebook: Any, records: list[dict[str, Any]]) -> None:
    first = {"name": word().capitalize(), "n": random.randint(0, 99)}
    text = json.dumps(first)
    start_of_value = text.index(":") + 4  # inside the name's string
    head, middle = text[:start_of_value], text[start_of_value:-3]
    next_start = '{"' + word() + '"'
    tail = text[-3:] + "  " + next_start
    jsonl = as_jsonl(records)
    splits = [split_at(jsonl, random.sample(range(1, len(jsonl)), random.randint(1, 12))) for _ in range(20)]
    got = probe_buffer(notebook, [
        ["feed", head], ["pending"], ["feed", middle], ["feed", tail], ["pending"],
        ["feed_all", list(jsonl)], *(["feed_all", chunks] for chunks in splits),
    ])
    check_feed(got[0], [], "feed() of half an object")
    assert_same(got[1], head, "pending after half an object")
    check_feed(got[2], [], "feed() of the middle")
    check_feed(got[3], [first], "feed() that ends one and starts one")
    assert_same(got[4], next_start, "pending once the next object has begun")
    check_feed(got[5], records, "records fed one character at a time")
    for chunks, found in zip(splits, got[6:], strict=True):
        check_feed(found, records, f"records fed as {chunks!r}")


@exercise("stream_buffer", points=1, hint="A brace inside a JSON string is text, not structure: track "
          "whether you are inside a string and count braces only outside strings.")
def test_buffer_ignores_braces_inside_strings(notebook: Any) -> None:
    objects = [{word(): f"if ({word()}) {{ return {word()}; }}"},
               {"open": "{" * random.randint(1, 4), "close": "}"}, {"n": {"t": "}{"}}]
    text = " ".join(json.dumps(item) for item in objects)
    cut = text.index("}") + 1  # right after the brace inside the first string
    got = probe_buffer(notebook, [["feed_all", [text]], ["feed", text[:cut]], ["feed", text[cut:]],
                                  ["rejected"]])
    check_feed(got[0], objects, "objects with braces inside strings")
    check_feed(got[1], [], f"feed({text[:cut]!r}): the object is not finished")
    check_feed(got[2], objects, "the rest")
    assert_same(got[3], [], "rejected (every object was valid JSON)")


@exercise("stream_buffer", points=1, hint="Inside a string, a backslash escapes the next character (even "
          "if it arrives in the next chunk), so \\\" does not end the string but \\\\\" does.")
def test_buffer_handles_escaped_quotes(notebook: Any) -> None:
    objects = [{"quote": f'{word()} said "}}" and {word()}'}, {"path": f"C:\\{word()}\\"},
               {"next": "\\\"{"}, {word(): random.randint(0, 9)}]
    text = "".join(json.dumps(item) for item in objects)
    key, before = word(), word()
    key2, value2 = word(), word()
    got = probe_buffer(notebook, [
        ["feed_all", [text]],
        ["new"], ["feed", f'{{"{key}": "{before}\\'], ["feed", '"}"}'],
        ["feed", f'{{"{key2}": "{value2}\\\\'], ["feed", '"}'],
    ])
    check_feed(got[0], objects, f"feed({text!r})")
    check_feed(got[2], [], "a chunk that ends with a backslash inside a string")
    check_feed(got[3], [{key: before + '"}'}], "the escaped quote arrives in the next chunk")
    check_feed(got[4], [], "a chunk that ends with an escaped backslash inside a string")
    check_feed(got[5], [{key2: value2 + "\\"}], "an escaped backslash, then the end")


@exercise("stream_buffer", points=1, hint="Outside an object, skip (and count in skipped) anything but "
          "whitespace; a balanced {...} that json.loads rejects goes to rejected; close() raises "
          "ValueError only when an object is unfinished.")
def test_buffer_garbage_policy(notebook: Any) -> None:
    objects = [{word(): random.randint(0, 9)}, {word(): random.randint(0, 9)}]
    before = f"{word().capitalize()}! {word()} {word()}:"
    after = f"{word().capitalize()} {word()}?"
    prose = f"{before} [{json.dumps(objects[0])}, {json.dumps(objects[1])}] {after}"
    garbage = sum(not c.isspace() for c in before + after) + 3  # and "[", ",", "]"
    bad = f'{{"{word()}": tru}}'
    ok = {word(): random.randint(0, 9)}
    unfinished = f'{{"{word()}": [1, 2'
    worse, ok2 = f'{{"{word()}": }}', {word(): random.randint(0, 9)}
    got = probe_buffer(notebook, [
        ["feed", prose], ["skipped"], ["feed", f"}} {bad} {json.dumps(ok)}"], ["skipped"], ["rejected"],
        ["feed", f"{worse} {json.dumps(ok2)}"], ["rejected"], ["skipped"],
        ["close"], ["feed", unfinished], ["close"],
    ])
    check_feed(got[0], objects, f"feed({prose!r})")
    assert_same(got[1], garbage, "skipped: non-whitespace characters outside objects")
    check_feed(got[2], [ok], "a stray }, a broken object, a good one")
    assert_same(got[3], garbage + 1, "skipped after a stray }")
    assert_same(got[4], [bad], "rejected: the balanced text that is not JSON")
    check_feed(got[5], [ok2], "a second broken object, a good one")
    assert_same(got[6], [bad, worse], "rejected: each broken object appended, in the order it came")
    assert_same(got[7], garbage + 1, "skipped: a broken object is rejected, not skipped")
    assert got[8] is None, f"close() between objects should not raise, got {got[8]}"
    closing = got[10]
    assert closing is not None and closing["type"] == "ValueError", (
        f"close() inside an unfinished object ({unfinished!r}) should raise ValueError, got {closing}"
    )


# ---------------------------------------------------------------- stream_text


def check_streams_answer(notebook: Any, server: LLMServer, endpoints: Endpoints, style: str) -> None:
    prompt = prompt_text(f"Tell me about streaming in {style} style:")
    expected = pieces(answer_text(server, style, prompt))
    got = streamed(notebook, endpoints.make(style), prompt)
    expect_clean_end(got, f"{style} stream")
    assert_same(got["items"], expected, f"the text chunks of the {style}-style stream")
    seen = [(r.api, r.streamed, r.status) for r in endpoints.records()]
    assert seen == [(style, True, 200)], (
        f"expected one streamed request to the {style} endpoint, answered 200; the server saw "
        f"(api, streamed, status) {seen}"
    )
    assert_all_closed(got, f"after a complete {style} stream")


@exercise("stream_text", points=1, hint="OpenAI style: parse each `data:` line as JSON and yield "
          "choices[0].delta.content when non-empty; stop at `data: [DONE]`.")
def test_streams_openai_chunks(notebook: Any, server: LLMServer, endpoints: Endpoints) -> None:
    check_streams_answer(notebook, server, endpoints, "openai")


@exercise("stream_text", points=1, hint="Anthropic style: events are `event: <name>` then `data: {...}`; "
          "the text is delta.text of content_block_delta events; other events carry none; message_stop "
          "ends the stream.")
def test_streams_anthropic_chunks(notebook: Any, server: LLMServer, endpoints: Endpoints) -> None:
    check_streams_answer(notebook, server, endpoints, "anthropic")


@exercise("stream_text", points=1, hint="Call on_progress(Progress(chunks=..., chars=...)) once per "
          "text chunk, as it arrives (before yielding it), with the running totals as ints.")
def test_progress_is_reported_per_chunk(notebook: Any, server: LLMServer, endpoints: Endpoints) -> None:
    for style in ("anthropic", "openai"):
        prompt = prompt_text("Progress, please:")
        got = streamed(notebook, endpoints.make(style), prompt, progress=True)
        expect_clean_end(got, style)
        assert_same(got["items"], pieces(answer_text(server, style, prompt)), f"{style}: the text chunks")
        reports = got["progress"]
        assert all(report["is_progress"] for report in reports), (
            f"on_progress should receive Progress objects, got {[r['kind'] for r in reports][:3]}"
        )
        chunks = got["items"]
        sizes = [len(chunk) if type(chunk) is str else -1 for chunk in chunks]
        expected = [[i + 1, sum(sizes[: i + 1])] for i in range(len(chunks))]
        assert_same([[r["chunks"], r["chars"]] for r in reports], expected,
                    f"{style}: (chunks, chars) of each progress report")
        late = [(i + 1, n) for i, n in enumerate(got["seen_at"]) if n not in (i, i + 1)]
        assert not late, (
            f"{style}: progress should be reported as each chunk arrives; when chunk k reached the caller, "
            f"there were n reports (k, n): {late[:3]}"
        )


@exercise("stream_text", points=1, hint="Yield each chunk as soon as its event is read (do not read the "
          "whole body first), and close the response in a finally block, which also runs when the "
          "caller closes the generator early.")
def test_yields_as_chunks_arrive_and_closes_on_early_exit(
    notebook: Any, server: LLMServer, endpoints: Endpoints
) -> None:
    for style, first_events in (("openai", 4), ("anthropic", 6)):
        prompt = prompt_text(f"Early exit, {style}:")
        expected = pieces(answer_text(server, style, prompt))
        # The server sends a few events, then nothing for 10 s: only a generator that yields
        # as events arrive can hand over the first chunks before that.
        endpoint = endpoints.make(style, f"stall:after={first_events}")
        got = streamed(notebook, endpoint, prompt, chunk_timeout_s=GUARD_S * 2, limit=2, guard=PROMPTLY_S)
        expect_clean_end(got, f"{style}, reading two chunks before the stall")
        assert_same(got["items"], expected[:2], f"{style}: the first two chunks, before the server stalls")
        assert_all_closed(got, f"{style}: after the caller closed the generator early")


@exercise("stream_text", points=1, hint="Check response.status_code before reading events: anything but "
          "200 raises StreamError with the status in its message (and the response is still closed).")
def test_error_status_raises_stream_error(notebook: Any, endpoints: Endpoints) -> None:
    runs = []
    for style in ("openai", "anthropic"):
        status = random.choice([500, 502, 503, 504, 529])
        got = streamed(notebook, endpoints.make(style, f"error:{status}"), prompt_text("Hello"))
        error = expect_error(got, "StreamError", f"{style}, HTTP {status}")
        assert str(status) in error["message"], (
            f"the message should name the status {status}: {error['message']}"
        )
        assert_same(got["items"], [], f"{style}: chunks of an error response")
        runs.append(got)
    endpoints.assert_each_sent_once("error responses")
    assert_all_closed(runs, "after error responses")


# ---------------------------------------------------------------- stream_faults


@exercise("stream_faults", points=1, hint="The timeout is for the gap between two pieces of the stream: "
          "wrap each read (await anext(lines)) in its own asyncio.timeout, not the whole loop.")
def test_slow_steady_stream_is_not_a_timeout(notebook: Any, endpoints: Endpoints) -> None:
    # An event every 20 ms: over a second in all (3x the timeout), never more than 20 ms of
    # silence (1/17 of it). The second, shorter stream checks the other format trickles too.
    runs = []
    for style, count in (("openai", 50), ("anthropic", 10)):
        words = " ".join(word() for _ in range(count))
        endpoint = endpoints.make(style, "trickle:20ms", reply=words)
        got = streamed(notebook, endpoint, "Slowly.", chunk_timeout_s=GAP_S + 0.05)
        assert got["error"] is None, (
            f"{style}: a stream with an event every 20 ms should complete, even when it lasts longer "
            f"than the {GAP_S + 0.05:g} s chunk timeout in total; got {ended(got['error'])}"
        )
        assert_same(got["items"], pieces(words), f"{style}: the chunks of the slow stream")
        runs.append(got)
    endpoints.assert_each_sent_once("slow streams")
    assert_all_closed(runs, "after slow streams")


@exercise("stream_faults", points=1, hint="A stalled stream must raise StreamTimeout (with the partial "
          "text) within chunk_timeout_s of the last piece; close the response too.")
def test_stall_mid_stream_raises_stream_timeout(
    notebook: Any, server: LLMServer, endpoints: Endpoints
) -> None:
    runs = []
    for style, after in (("openai", 3), ("anthropic", 5)):
        prompt = prompt_text(f"Stall, {style}:")
        expected = pieces(answer_text(server, style, prompt))[:2]
        got = streamed(notebook, endpoints.make(style, f"stall:after={after}"), prompt,
                       chunk_timeout_s=GAP_S, guard=PROMPTLY_S)
        error = expect_error(got, "StreamTimeout", f"{style}, stall after {after} events")
        assert_same(got["items"], expected, f"{style}: chunks before the stall")
        assert_same(error["partial"], "".join(expected), f"{style}: StreamTimeout.partial")
        runs.append(got)
    assert_all_closed(runs, "after stalled streams")


@exercise("stream_faults", points=1, hint="Waiting for the response headers is a gap too: put "
          "client.send(...) under asyncio.timeout(chunk_timeout_s) and raise StreamTimeout.")
def test_stall_before_any_byte_raises_stream_timeout(notebook: Any, endpoints: Endpoints) -> None:
    for style in ("openai", "anthropic"):
        got = streamed(notebook, endpoints.make(style, "stall"), prompt_text("Anyone?"),
                       chunk_timeout_s=GAP_S, guard=PROMPTLY_S)
        error = expect_error(got, "StreamTimeout", f"{style}, no response at all")
        assert_same(error["partial"], "", f"{style}: StreamTimeout.partial when nothing arrived")
    endpoints.assert_each_sent_once("stalled requests")


@exercise("stream_faults", points=1, hint="A connection closed mid-stream surfaces as an "
          "httpx.TransportError while reading: raise StreamDropped with the text so far, never end normally.")
def test_dropped_connection_raises_stream_dropped(
    notebook: Any, server: LLMServer, endpoints: Endpoints
) -> None:
    runs = []
    for style, after in (("openai", 4), ("anthropic", 6)):
        prompt = prompt_text(f"Drop, {style}:")
        expected = pieces(answer_text(server, style, prompt))[:3]
        endpoint = endpoints.make(style, f"drop_stream:after={after}")
        got = streamed(notebook, endpoint, prompt, chunk_timeout_s=GUARD_S)
        error = expect_error(got, "StreamDropped", f"{style}, dropped after {after} events")
        assert_same(got["items"], expected, f"{style}: chunks before the drop")
        assert_same(error["partial"], "".join(expected), f"{style}: StreamDropped.partial")
        runs.append(got)
    fired = [record.fault for record in endpoints.records()]
    assert fired == ["drop_stream:after=4", "drop_stream:after=6"], f"the server's faults: {fired}"
    assert_all_closed(runs, "after dropped connections")


def sse(events: list[tuple[str | None, Any]]) -> str:
    parts = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        parts.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(parts)


def openai_delta(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def anthropic_delta(text: str) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": text}}


@exercise("stream_faults", points=1, hint="A stream that ends cleanly but without its end marker "
          "([DONE] or message_stop) was cut short: raise StreamDropped with the partial text.")
def test_stream_without_end_marker_is_dropped(notebook: Any) -> None:
    texts = [word().capitalize()] + [" " + word() for _ in range(random.randint(1, 4))]
    bodies = {
        "openai": sse([(None, openai_delta(text)) for text in texts]),
        "anthropic": sse([
            ("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            *(anthropic_delta(text) for text in texts),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]),
    }
    for style, body in bodies.items():
        got = streamed(notebook, {"base_url": "http://llm.test", "style": style}, "Hi",
                       chunk_timeout_s=GUARD_S, mock_body=body)
        error = expect_error(got, "StreamDropped", f"{style} stream without its end marker")
        assert_same(got["items"], texts, f"{style}: chunks before the end")
        assert_same(error["partial"], "".join(texts), f"{style}: StreamDropped.partial")


@exercise("stream_faults", points=1, hint="Catch json.JSONDecodeError (and missing fields) per event "
          "and raise MalformedChunk(message, partial, index=<event number from 1>, data=<raw data>).")
def test_malformed_event_raises_malformed_chunk(
    notebook: Any, server: LLMServer, endpoints: Endpoints
) -> None:
    runs = []
    cases = (("openai", 3, '{"id":"chatcmpl-'), ("anthropic", 5, '{"type":"content_block_delta"'))
    for style, at, start in cases:
        prompt = prompt_text(f"Malformed, {style}:")
        expected = pieces(answer_text(server, style, prompt))[:1]
        endpoint = endpoints.make(style, f"malformed_chunk:at={at}")
        got = streamed(notebook, endpoint, prompt, chunk_timeout_s=GUARD_S)
        error = expect_error(got, "MalformedChunk", f"{style}, event {at} cut short")
        assert_same(error["index"], at, f"{style}: MalformedChunk.index (events counted from 1)")
        data = error["data"]
        assert type(data) is str and data.startswith(start), (
            f"{style}: MalformedChunk.data should be the event's raw data, starting {start!r}; got {data!r}"
        )
        with pytest.raises(json.JSONDecodeError):
            json.loads(data)
        assert str(at) in error["message"], (
            f"{style}: the message should name the event number {at}: {error['message']}"
        )
        assert_same(got["items"], expected, f"{style}: chunks before the broken event")
        assert_same(error["partial"], "".join(expected), f"{style}: MalformedChunk.partial")
        runs.append(got)
    assert_all_closed(runs, "after malformed streams")


# ---------------------------------------------------------------- stream_objects


@exercise("stream_objects", points=1, hint="Feed every chunk of stream_text to one StreamBuffer and "
          "yield what feed() returns; call close() after the last chunk.")
def test_objects_from_a_streamed_answer(notebook: Any, endpoints: Endpoints,
                                        records: list[dict[str, Any]]) -> None:
    runs = []
    by_header = " ".join(json.dumps(record) for record in records)
    for style, prompt, reply in (("openai", f"{JSONL_MARKER} please", None),
                                 ("anthropic", "Records, please.", by_header)):
        got = streamed(notebook, endpoints.make(style, reply=reply), prompt, function="stream_objects")
        expect_clean_end(got, style)
        assert_same(got["items"], records, f"{style}: the objects of the streamed answer")
        runs.append(got)
    unfinished = json.dumps(records[0]) + f' {{"id": 2, "{word()}":'
    got = streamed(notebook, endpoints.make("openai", reply=unfinished), "Cut.", function="stream_objects")
    assert_same(got["items"], records[:1], "objects of an answer that stops inside the second")
    error = got["error"]
    assert error is not None and "ValueError" in error["is"], (
        "an answer that ends inside an object should raise ValueError (from buffer.close()), got "
        + ended(error)
    )
    endpoints.assert_each_sent_once("streams of objects")
    assert_all_closed([*runs, got], "after streaming objects")


@exercise("stream_objects", points=1, hint="Yield each object as soon as feed() returns it, and iterate "
          "stream_text inside `async with contextlib.aclosing(...)` so an early exit closes it at once.")
def test_objects_arrive_early_and_early_exit_closes(notebook: Any, endpoints: Endpoints,
                                                    records: list[dict[str, Any]]) -> None:
    script = " ".join(json.dumps(record) for record in records)
    first_words = len(pieces(json.dumps(records[0])))
    # The first object is complete after 1 + first_words events; then the server stalls for 10 s.
    endpoint = endpoints.make("openai", f"stall:after={first_words + 2}", reply=script)
    got = streamed(notebook, endpoint, "Records.", function="stream_objects", chunk_timeout_s=GUARD_S * 2,
                   limit=1, guard=PROMPTLY_S)
    expect_clean_end(got, "reading the first object before the stall")
    assert_same(got["items"], records[:1], "the first object")
    endpoints.assert_each_sent_once("a stream of objects closed early")
    assert_all_closed(got, "as soon as the caller closed stream_objects early")


@exercise("stream_objects", points=1, hint="Let stream_text's errors through unchanged: a dropped "
          "stream is StreamDropped, not a normal end and not the buffer's ValueError.")
def test_stream_errors_pass_through(
    notebook: Any, endpoints: Endpoints, records: list[dict[str, Any]]
) -> None:
    script = " ".join(json.dumps(record) for record in records)
    first_words = len(pieces(json.dumps(records[0])))
    endpoint = endpoints.make("anthropic", f"drop_stream:after={3 + first_words + 2}", reply=script)
    got = streamed(notebook, endpoint, "Records.", function="stream_objects")
    expect_error(got, "StreamDropped", "a stream dropped after the first object")
    assert_same(got["items"], records[:1], "objects before the drop")
    fired = [record.fault for record in endpoints.records()]
    assert fired == [f"drop_stream:after={3 + first_words + 2}"], f"the server's faults: {fired}"
    assert_all_closed(got, "after a dropped stream of objects")
