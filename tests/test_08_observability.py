"""Graded tests for chapter 8's exercise: an observable service.

The tests read what an operator would read: the JSON lines the service logged and the
samples in a Prometheus registry. Each test builds its own registry and its own log
stream, and gives the code under test a fake clock, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import json
import logging
import math
import types
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import prometheus_client
import pytest
import structlog
from prometheus_client import CollectorRegistry

from course.pytest_plugin import exercise
from course.testing import assert_same, same

# --- helpers -------------------------------------------------------------------------


def read_events(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written to ``stream``, each of which must be one JSON object."""
    events = []
    for number, line in enumerate(stream.getvalue().splitlines(), start=1):
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
        assert isinstance(event, dict), f"log line {number} should be a JSON object, got {line!r}"
        events.append(event)
    return events


def flow_of(events: list[dict[str, Any]], request_id: str) -> list[tuple[str, str]]:
    """One request's (event, method) pairs, in log order: the flow the logs let us rebuild."""
    return [(e.get("event"), e.get("method", "")) for e in events if e.get("request_id") == request_id]


def json_logger(stream: io.StringIO, request_id_var: ContextVar[str | None]) -> Any:
    """A JSON logger of the tests' own, so that only the code under test is graded."""

    def add_request_id(logger: Any, method_name: str, event_dict: Any) -> Any:
        value = request_id_var.get()
        if value is not None:
            event_dict.setdefault("request_id", value)
        return event_dict

    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[add_request_id, structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )




class FakeClock:
    """Returns the given readings in turn, then keeps advancing by ``step``."""

    def __init__(self, *readings: float, step: float = 0.01) -> None:
        self.readings = list(readings)
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        if self.readings:
            self.now = self.readings.pop(0)
        else:
            self.now += self.step
        return self.now


@dataclass
class MetricsSpy:
    """Stands in for ServiceMetrics: remembers every record() call."""

    calls: list[tuple[str, float, BaseException | None]]

    def record(self, method: str, seconds: float, error: BaseException | None = None) -> None:
        self.calls.append((method, seconds, error))


def telemetry_with_spy(
    notebook: types.ModuleType, clock: Callable[[], float] | None = None
) -> tuple[Any, io.StringIO, MetricsSpy]:
    stream = io.StringIO()
    spy = MetricsSpy([])
    telemetry = notebook.Telemetry(
        log=json_logger(stream, notebook.request_id_var), metrics=spy, clock=clock or FakeClock()
    )
    return telemetry, stream, spy


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0.0 when absent. The registry asks every collector the code under test
    registered, so only an exact float is accepted: after that, == compares real numbers."""
    value = registry.get_sample_value(name, labels)
    if value is None:
        return 0.0
    if type(value) is not float:
        pytest.fail(f"{name}{labels}: expected a float sample value, got {value!r}", pytrace=False)
    return value


# --- structured_logging --------------------------------------------------------------

@exercise(
    "structured_logging", points=1,
    hint="Keep the token that request_id_var.set() returns and pass it to reset() in a "
    "`finally:`; generate an ID only when none is given.",
)
def test_request_scope_sets_and_restores(notebook: types.ModuleType) -> None:
    var = notebook.request_id_var
    assert var.get() is None, "request_id_var should be None outside any request"
    # Values are read inside the scopes and asserted after them: a scope whose __exit__
    # swallowed exceptions would otherwise hide a failed assert.
    with notebook.request_scope("outer-1") as outer:
        in_outer = var.get()
        with notebook.request_scope("inner-2"):
            in_inner = var.get()
        back_in_outer = var.get()
    assert same(outer, "outer-1") and same(in_outer, "outer-1"), (
        f"inside request_scope('outer-1'): yielded {outer!r}, request_id_var is {in_outer!r}"
    )
    assert same(in_inner, "inner-2"), f"a nested scope should set its own ID, got {in_inner!r}"
    assert same(back_in_outer, "outer-1"), (
        f"after a nested scope ends the outer ID should be back, got {back_in_outer!r}"
    )
    assert var.get() is None, f"after the scope request_id_var should be None again, got {var.get()!r}"
    with pytest.raises(KeyError), notebook.request_scope("failing"):
        raise KeyError("boom")
    assert var.get() is None, "an exception inside the scope left its request ID behind"
    with notebook.request_scope() as made:
        in_made = var.get()
    assert type(made) is str and len(made) == 12, (
        f"request_scope() without an ID should yield a new 12-character ID, got {made!r}"
    )
    assert same(in_made, made), f"request_id_var should hold the generated ID {made!r}, got {in_made!r}"
    with notebook.request_scope() as other:
        pass
    assert type(other) is str and other != made, f"two generated IDs should differ: {made!r}, {other!r}"


@exercise(
    "structured_logging", points=1,
    hint="structlog.wrap_logger(structlog.PrintLogger(stream), processors=[...], "
    "wrapper_class=structlog.make_filtering_bound_logger(level)); the JSONRenderer comes last.",
)
def test_logger_writes_json_lines(notebook: types.ModuleType) -> None:
    stream = io.StringIO()
    log = notebook.make_logger(stream)
    log.info("llm.call", model="tiny-1", latency_ms=12.5)
    log.debug("too detailed for INFO")
    log.warning("rate_limited", retry_after=2)
    events = read_events(stream)
    assert [e.get("event") for e in events] == ["llm.call", "rate_limited"], (
        f"expected the events ['llm.call', 'rate_limited'] (debug dropped at INFO), got {events}"
    )
    first = events[0]
    assert first.get("model") == "tiny-1" and first.get("latency_ms") == 12.5, f"fields missing: {first}"
    assert [e.get("level") for e in events] == ["info", "warning"], f"levels wrong: {events}"
    stamp = first.get("timestamp")
    assert isinstance(stamp, str), f"expected an ISO 8601 'timestamp' string, got {stamp!r}"
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0), f"the timestamp should be in UTC, got {stamp!r}"

    verbose_stream, other_stream = io.StringIO(), io.StringIO()
    verbose = notebook.make_logger(verbose_stream, level=logging.DEBUG)
    other = notebook.make_logger(other_stream)
    verbose.debug("step")
    other.info("elsewhere")
    log.info("still here")
    assert [e["event"] for e in read_events(verbose_stream)] == ["step"], (
        "a logger made with level=logging.DEBUG should write debug events, and only to its own stream"
    )
    assert [e["event"] for e in read_events(other_stream)] == ["elsewhere"]
    assert read_events(stream)[-1]["event"] == "still here", (
        "making a second logger redirected the first one: do not use structlog.configure()"
    )


@exercise(
    "structured_logging", points=1,
    hint="add_request_id reads request_id_var.get() at the moment of logging, and sets "
    "request_id only when it is not None and the event has none yet.",
)
async def test_request_id_follows_each_task(notebook: types.ModuleType) -> None:
    stream = io.StringIO()
    log = notebook.make_logger(stream)
    log.info("before")

    async def handle(request_id: str) -> None:
        with notebook.request_scope(request_id):
            for step in range(3):
                log.info("step", n=step)
                await asyncio.sleep(0)

    await asyncio.gather(handle("req-a"), handle("req-b"))
    with notebook.request_scope("req-c"):
        log.info("explicit", request_id="given-by-caller")
    log.info("after")
    events = read_events(stream)
    assert "request_id" not in events[0] and "request_id" not in events[-1], (
        f"lines logged outside any request should have no request_id: {events[0]}, {events[-1]}"
    )
    ids = [e.get("request_id") for e in events if e.get("event") == "step"]
    assert ids == ["req-a", "req-b"] * 3, (
        f"two interleaved tasks should each log their own ID, got {ids}"
    )
    assert events[-2].get("request_id") == "given-by-caller", (
        f"a request_id passed by the caller should be kept, got {events[-2]}"
    )


@exercise(
    "structured_logging", points=1,
    hint="Walk nested dicts recursively and build new dicts as you go: the caller's "
    "headers dict must come out of logging unchanged.",
)
def test_secrets_are_redacted(notebook: types.ModuleType) -> None:
    stream = io.StringIO()
    log = notebook.make_logger(stream)
    headers = {"Authorization": "Bearer sk-live-1", "Accept": "application/json"}
    log.info(
        "llm.call", api_key="sk-live-2", openai_api_key="sk-live-3", prompt_tokens=42,
        request={"headers": headers, "model": "tiny-1"},
    )
    text = stream.getvalue()
    assert "sk-live" not in text, f"a secret reached the log: {text}"
    (event,) = read_events(stream)
    assert event.get("api_key") == "[redacted]" and event.get("openai_api_key") == "[redacted]", (
        f"secret keys should be logged as '[redacted]', got {event}"
    )
    request = event.get("request")
    assert isinstance(request, dict) and isinstance(request.get("headers"), dict), f"got {event}"
    assert request["headers"].get("Authorization") == "[redacted]", f"nested secret: got {request}"
    assert request["headers"].get("Accept") == "application/json" and request.get("model") == "tiny-1", (
        f"only secret values should change, got {request}"
    )
    assert event.get("prompt_tokens") == 42, "prompt_tokens is not a secret: is_secret_key() says so"
    assert same(headers["Authorization"], "Bearer sk-live-1"), (
        "logging changed the caller's own headers dict: redact a copy"
    )


# --- request_metrics -----------------------------------------------------------------

@exercise(
    "request_metrics", points=1,
    hint="Counter('service_requests', ..., ['method', 'outcome'], registry=registry); "
    "record() counts every call once, with outcome 'ok' or 'error'.",
)
def test_request_counts_by_method(notebook: types.ModuleType) -> None:
    registry = CollectorRegistry()
    metrics = notebook.ServiceMetrics(registry)
    assert isinstance(metrics.requests, prometheus_client.Counter), "requests should be a Counter"
    metrics.record("retrieve", 0.02)
    metrics.record("retrieve", 0.03)
    metrics.record("generate", 0.4)
    metrics.record("generate", 0.9, TimeoutError("slow"))
    got = {
        (method, outcome): sample(registry, "service_requests_total", method=method, outcome=outcome)
        for method in ("retrieve", "generate") for outcome in ("ok", "error")
    }
    want = {("retrieve", "ok"): 2, ("retrieve", "error"): 0, ("generate", "ok"): 1, ("generate", "error"): 1}
    assert got == want, f"service_requests_total by (method, outcome): expected {want}, got {got}"
    assert prometheus_client.REGISTRY.get_sample_value(
        "service_requests_total", {"method": "retrieve", "outcome": "ok"}
    ) is None, "the metrics went to the global default registry: pass registry=registry"
    notebook.ServiceMetrics(CollectorRegistry())  # a second service must not collide with the first


@exercise(
    "request_metrics", points=1,
    hint="Histogram('service_request_duration_seconds', ..., ['method'], "
    "buckets=LATENCY_BUCKETS, registry=registry); observe the seconds of failed calls too.",
)
def test_latency_histogram_buckets(notebook: types.ModuleType) -> None:
    registry = CollectorRegistry()
    metrics = notebook.ServiceMetrics(registry)
    assert isinstance(metrics.latency, prometheus_client.Histogram), "latency should be a Histogram"
    for seconds in (0.003, 0.04, 0.3, 0.3):
        metrics.record("generate", seconds)
    metrics.record("generate", 7.0, RuntimeError("model crashed"))
    name = "service_request_duration_seconds"
    bounds = sorted(
        float(s.labels["le"]) for m in registry.collect() for s in m.samples if s.name == f"{name}_bucket"
    )
    want_bounds = sorted([*(float(b) for b in notebook.LATENCY_BUCKETS), math.inf])
    assert bounds == want_bounds, f"bucket bounds: expected LATENCY_BUCKETS and +Inf, got {bounds}"
    counts = {le: sample(registry, f"{name}_bucket", method="generate", le=le) for le in
              ("0.005", "0.05", "0.25", "0.5", "5.0", "10.0", "+Inf")}
    want = {"0.005": 1, "0.05": 2, "0.25": 2, "0.5": 4, "5.0": 4, "10.0": 5, "+Inf": 5}
    assert counts == want, f"cumulative bucket counts by upper bound: expected {want}, got {counts}"
    total = sample(registry, f"{name}_sum", method="generate")
    assert math.isclose(total, 7.643), f"{name}_sum: expected 7.643 seconds, got {total}"


@exercise(
    "request_metrics", points=1,
    hint="On error, also increment errors with error=type(error).__name__.",
)
def test_error_counts(notebook: types.ModuleType) -> None:
    registry = CollectorRegistry()
    metrics = notebook.ServiceMetrics(registry)
    assert isinstance(metrics.errors, prometheus_client.Counter), "errors should be a Counter"
    metrics.record("generate", 0.1, TimeoutError())
    metrics.record("generate", 0.1, TimeoutError())
    metrics.record("generate", 0.1, ValueError("bad JSON"))
    metrics.record("retrieve", 0.1)
    got = {
        (m, e): sample(registry, "service_errors_total", method=m, error=e)
        for m, e in [("generate", "TimeoutError"), ("generate", "ValueError"), ("retrieve", "TimeoutError")]
    }
    want = {("generate", "TimeoutError"): 2, ("generate", "ValueError"): 1, ("retrieve", "TimeoutError"): 0}
    assert got == want, f"service_errors_total by (method, error): expected {want}, got {got}"


# --- instrument_helpers --------------------------------------------------------------

@exercise(
    "instrument_helpers", points=1,
    hint="Log call.start, read the clock, yield, read the clock again; duration_ms is "
    "(end - start) * 1000; record(method, end - start) once.",
)
def test_instrumented_success(notebook: types.ModuleType) -> None:
    telemetry, stream, spy = telemetry_with_spy(notebook, FakeClock(10.0, 10.25))
    with notebook.instrumented(telemetry, "embed", batch=8):
        pass
    events = read_events(stream)
    seen = [(e.get("event"), e.get("method")) for e in events]
    assert seen == [("call.start", "embed"), ("call.end", "embed")], (
        f"expected call.start then call.end for method 'embed', got {events}"
    )
    assert events[0].get("batch") == 8, f"extra fields belong on call.start: {events[0]}"
    end = events[1]
    duration = end.get("duration_ms")
    assert end.get("outcome") == "ok" and end.get("level") == "info", f"call.end: got {end}"
    assert isinstance(duration, float) and math.isclose(duration, 250.0), (
        f"duration_ms: the fake clock moved 0.25 s, so expected 250.0, got {duration!r}"
    )
    assert len(spy.calls) == 1, f"metrics.record should be called once, got {spy.calls}"
    method, seconds, error = spy.calls[0]
    assert same(method, "embed") and math.isclose(seconds, 0.25) and error is None, (
        f"expected record('embed', 0.25, None), got record{spy.calls[0]}"
    )


@exercise(
    "instrument_helpers", points=1,
    hint="Catch the exception around the `yield`, log call.end at error level with "
    "outcome='error' and the class name, record it, then `raise` it again.",
)
def test_instrumented_error(notebook: types.ModuleType) -> None:
    telemetry, stream, spy = telemetry_with_spy(notebook, FakeClock(1.0, 1.5))
    boom = ConnectionError("provider went away")
    with pytest.raises(ConnectionError) as caught, notebook.instrumented(telemetry, "generate"):
        raise boom
    assert caught.value is boom, "the original exception should propagate unchanged"
    events = read_events(stream)
    assert len(events) == 2 and events[1].get("event") == "call.end", f"got {events}"
    end = events[1]
    got = (end.get("level"), end.get("outcome"), end.get("error"))
    assert got == ("error", "error", "ConnectionError"), (
        f"a failed block should log call.end at level error, outcome error, error "
        f"ConnectionError; got {end}"
    )
    assert isinstance(end.get("duration_ms"), float) and math.isclose(end["duration_ms"], 500.0), f"got {end}"
    assert len(spy.calls) == 1 and same(spy.calls[0][0], "generate") and spy.calls[0][2] is boom, (
        f"expected record('generate', 0.5, <the error>), got {spy.calls}"
    )


@exercise(
    "instrument_helpers", points=1,
    hint="A `with` block may contain `await`: the context manager only has to be "
    "entered and left. Keep per-call state in local variables, never on the function.",
)
async def test_instrumented_inside_coroutines(notebook: types.ModuleType) -> None:
    telemetry, stream, spy = telemetry_with_spy(notebook, FakeClock(0.0, 0.1, 0.2, 0.4))

    async def step(request_id: str) -> str:
        with notebook.request_scope(request_id), notebook.instrumented(telemetry, "search"):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return request_id

    results = await asyncio.gather(step("r1"), step("r2"))
    assert_same(results, ["r1", "r2"], "the coroutines' results")
    events = read_events(stream)
    seen = [(e.get("event"), e.get("request_id")) for e in events]
    assert seen == [("call.start", "r1"), ("call.start", "r2"), ("call.end", "r1"), ("call.end", "r2")], (
        f"two overlapping async blocks should log start, start, end, end, each with its own "
        f"request ID; got {seen}"
    )
    durations = sorted(e["duration_ms"] for e in events if e.get("event") == "call.end")
    assert all(isinstance(d, float) for d in durations) and len(spy.calls) == 2, f"got {events}"
    assert [round(d) for d in durations] == [200, 300], (
        f"each block should be timed from its own start (clock 0.0→0.2 and 0.1→0.4), got {durations}"
    )


@exercise(
    "instrument_helpers", points=1,
    hint="Check inspect.iscoroutinefunction(func) when decorating and return an "
    "`async def` wrapper for coroutine functions; use @functools.wraps(func); the "
    "telemetry is args[0].telemetry.",
)
async def test_traced_sync_and_async(notebook: types.ModuleType) -> None:
    telemetry, stream, spy = telemetry_with_spy(notebook)

    class Tools:
        def __init__(self) -> None:
            self.telemetry = telemetry

        def count(self, text: str) -> int:
            """Count words."""
            return len(text.split())

        async def fetch(self, key: str, *, fail: bool = False) -> str:
            """Fetch a value."""
            await asyncio.sleep(0)
            if fail:
                raise LookupError(key)
            return key.upper()

    Tools.count = notebook.traced(Tools.count)  # type: ignore[method-assign]
    Tools.fetch = notebook.traced(Tools.fetch)  # type: ignore[method-assign]
    assert same(Tools.count.__name__, "count") and same(Tools.count.__doc__, "Count words."), (
        "the decorated method lost its name or docstring: use functools.wraps"
    )
    assert inspect.iscoroutinefunction(Tools.fetch), (
        "decorating an async method should give an async function back"
    )
    tools = Tools()
    assert_same(tools.count("a b c"), 3, "the traced count('a b c')")
    assert_same(await tools.fetch("k", fail=False), "K", "the traced fetch('k')")
    with pytest.raises(LookupError):
        await tools.fetch("missing", fail=True)
    events = read_events(stream)
    seen = [(e.get("event"), e.get("method"), e.get("outcome")) for e in events]
    want = [
        ("call.start", "count", None), ("call.end", "count", "ok"),
        ("call.start", "fetch", None), ("call.end", "fetch", "ok"),
        ("call.start", "fetch", None), ("call.end", "fetch", "error"),
    ]
    assert seen == want, f"expected (event, method, outcome) {want}, got {seen}"
    recorded = [(m, e is None) for m, _, e in spy.calls]
    assert same(recorded, [("count", True), ("fetch", True), ("fetch", False)]), (
        f"each call should be recorded once in the metrics, got {spy.calls}"
    )


# --- observable_service --------------------------------------------------------------

class RateLimitError(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class ScriptedBackend:
    """Yields to the event loop twice per call, so concurrent requests interleave."""

    def __init__(self) -> None:
        self.searches: list[tuple[str, int]] = []
        self.prompts: list[str] = []

    async def search(self, query: str, k: int) -> list[str]:
        self.searches.append((query, k))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return [f"doc {i} for {query}" for i in range(k)]

    async def complete(self, prompt: str) -> Reply:
        self.prompts.append(prompt)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if "rate-limit me" in prompt:
            raise RateLimitError("429")
        return Reply(f"answer {len(self.prompts)}", "tiny-2", len(prompt.split()), 3)


EXPECTED_FLOW = [
    ("call.start", "answer"), ("call.start", "retrieve"), ("retrieval", ""), ("call.end", "retrieve"),
    ("call.start", "build_prompt"), ("call.end", "build_prompt"),
    ("call.start", "generate"), ("llm.response", ""), ("call.end", "generate"), ("call.end", "answer"),
]


@exercise(
    "observable_service", points=1,
    hint="answer() opens request_scope(request_id) and instrumented(..., 'answer') around "
    "the three steps; retrieve logs 'retrieval', generate logs 'llm.response'.",
)
async def test_one_request_flow(notebook: types.ModuleType) -> None:
    telemetry, stream, _ = telemetry_with_spy(notebook)
    backend = ScriptedBackend()
    service = notebook.AnswerService(backend, telemetry)
    answer = await service.answer("What is a histogram?", request_id="req-42")
    assert same(answer, "answer 1"), f"answer() should return the completion's text, got {answer!r}"
    assert same(backend.searches, [("What is a histogram?", 3)]), f"search calls: {backend.searches}"
    want_prompt = "doc 0 for What is a histogram?\ndoc 1 for What is a histogram?\n" \
        "doc 2 for What is a histogram?\nQuestion: What is a histogram?"
    assert same(backend.prompts, [want_prompt]), f"prompt: expected {want_prompt!r}, got {backend.prompts}"
    events = read_events(stream)
    flow = flow_of(events, "req-42")
    assert flow == EXPECTED_FLOW, f"the flow of req-42: expected {EXPECTED_FLOW}, got {flow}"
    assert len(flow) == len(events), "some lines of the request were logged without its request_id"
    retrieval = next(e for e in events if e.get("event") == "retrieval")
    response = next(e for e in events if e.get("event") == "llm.response")
    assert retrieval.get("n_docs") == 3, f"retrieval should log n_docs=3, got {retrieval}"
    got = (response.get("model"), response.get("prompt_tokens"), response.get("completion_tokens"))
    assert got == ("tiny-2", len(want_prompt.split()), 3), f"llm.response fields: got {response}"
    await service.answer("no ID given")
    fresh = [e for e in read_events(stream)[len(events):]]
    generated = {e.get("request_id") for e in fresh}
    assert len(fresh) == 10 and len(generated) == 1 and None not in generated, (
        f"a request without an ID should get one new ID on all its lines, got {generated}"
    )


@exercise(
    "observable_service", points=1,
    hint="The request ID lives in a ContextVar set inside answer(): each asyncio task "
    "has its own copy, so concurrent requests cannot see each other's ID.",
)
async def test_concurrent_requests_rebuild_from_logs(notebook: types.ModuleType) -> None:
    telemetry, stream, _ = telemetry_with_spy(notebook)
    service = notebook.AnswerService(ScriptedBackend(), telemetry)
    ids = [f"req-{n}" for n in range(5)]
    answers = await asyncio.gather(
        *(service.answer(f"question {n}", request_id=i) for n, i in enumerate(ids))
    )
    assert len(answers) == 5
    events = read_events(stream)
    order = [e.get("request_id") for e in events]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > len(ids), (
        f"the requests should run interleaved, but the log holds them one after another: {order}"
    )
    for request_id in ids:
        flow = flow_of(events, request_id)
        assert flow == EXPECTED_FLOW, f"the flow of {request_id} rebuilt from the logs: got {flow}"
    assert notebook.request_id_var.get() is None, "a request ID leaked out of answer()"


@exercise(
    "observable_service", points=1,
    hint="Every step is counted by method in service_requests_total; a failing generate "
    "fails answer too, and both count in service_errors_total.",
)
async def test_service_metrics_and_errors(notebook: types.ModuleType) -> None:
    registry = CollectorRegistry()
    stream = io.StringIO()
    telemetry = notebook.Telemetry(
        log=notebook.make_logger(stream), metrics=notebook.ServiceMetrics(registry), clock=FakeClock()
    )
    service = notebook.AnswerService(ScriptedBackend(), telemetry)
    results = await asyncio.gather(
        service.answer("first", request_id="ok-1"),
        service.answer("please rate-limit me", request_id="bad-1"),
        service.answer("second", request_id="ok-2"),
        return_exceptions=True,
    )
    assert isinstance(results[1], RateLimitError), f"the backend's error should propagate, got {results[1]!r}"
    counts = {
        (m, o): sample(registry, "service_requests_total", method=m, outcome=o)
        for m in ("answer", "retrieve", "build_prompt", "generate") for o in ("ok", "error")
    }
    want = {
        ("answer", "ok"): 2, ("answer", "error"): 1,
        ("retrieve", "ok"): 3, ("retrieve", "error"): 0,
        ("build_prompt", "ok"): 3, ("build_prompt", "error"): 0,
        ("generate", "ok"): 2, ("generate", "error"): 1,
    }
    assert counts == want, f"service_requests_total: expected {want}, got {counts}"
    errors = {
        m: sample(registry, "service_errors_total", method=m, error="RateLimitError")
        for m in ("answer", "generate")
    }
    assert errors == {"answer": 1, "generate": 1}, (
        f"service_errors_total with error='RateLimitError' by method: got {errors}"
    )
    assert sample(registry, "service_request_duration_seconds_count", method="generate") == 3
    failed = [e for e in read_events(stream) if e.get("request_id") == "bad-1"]
    last = failed[-1] if failed else {}
    assert (last.get("event"), last.get("method"), last.get("outcome")) == ("call.end", "answer", "error"), (
        f"the failed request's last line should be call.end of answer with outcome error, got {last}"
    )


# --- flow_from_logs ------------------------------------------------------------------

LOG_LINES = [
    '{"event": "call.start", "method": "answer", "request_id": "r-1", "level": "info"}',
    '{"event": "call.start", "method": "answer", "request_id": "r-2", "level": "info"}',
    "",
    "Traceback (most recent call last):",
    '  File "service.py", line 12, in generate',
    "[1, 2, 3]",
    "null",
    '{"event": "call.end", "method": "retrieve", "request_id": "r-1", "duration_ms": 4.5}',
    '{"event": "server started"}',
    '{"event": "call.end", "method": "answer", "request_id": "r-2", "duration_ms": 9.0}',
    '{"event": "call.end", "method": "answer", "request_id": "r-1", "duration_ms": 20.25}',
]


@exercise(
    "flow_from_logs", points=1,
    hint="json.loads each line inside try/except ValueError, keep only dicts whose "
    "request_id matches, in the order they came.",
)
def test_request_flow(notebook: types.ModuleType) -> None:
    flow = notebook.request_flow(iter(LOG_LINES), "r-1")
    assert type(flow) is list and all(type(e) is dict for e in flow), (
        f"request_flow should return a list of dicts, got {flow!r}"
    )
    want = [json.loads(LOG_LINES[i]) for i in (0, 7, 10)]
    assert same(flow, want), f"expected the three events of r-1 in order: {want}, got {flow}"
    assert same(notebook.request_flow(LOG_LINES, "r-9"), []), "an unknown request should have an empty flow"


@exercise(
    "flow_from_logs", points=1,
    hint="Only call.end events carry duration_ms; add up a method's durations when it "
    "appears more than once.",
)
def test_step_durations(notebook: types.ModuleType) -> None:
    flow = [
        {"event": "call.start", "method": "answer"},
        {"event": "call.end", "method": "retrieve", "duration_ms": 10.0},
        {"event": "retrieval", "n_docs": 3},
        {"event": "call.end", "method": "retrieve", "duration_ms": 2.5},
        {"event": "call.end", "method": "generate", "duration_ms": 15.0},
        {"event": "call.end", "method": "answer", "duration_ms": 30.5},
    ]
    result = notebook.step_durations(flow)
    # Any dict will do (a defaultdict, as the lesson builds, too): its stored entries are
    # read with dict's own method, so a subclass cannot pretend to hold other ones.
    assert isinstance(result, dict), (
        f"step_durations should return a dict of method name to float milliseconds, got {result!r}"
    )
    got = dict(dict.items(result))
    assert all(type(k) is str and type(v) is float for k, v in got.items()), (
        f"step_durations should map method names (str) to float milliseconds, got {got!r}"
    )
    want = {"retrieve": 12.5, "generate": 15.0, "answer": 30.5}
    assert same(got, want), f"expected {want}, got {got}"
