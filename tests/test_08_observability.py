"""Graded tests for chapter 8's exercise: an observable service.

The tests read what an operator would read: the JSON lines the service logged and the
samples in a Prometheus registry. Judged (see CONTRIBUTING.md): each ``probe_*`` runs the
learner's code in a worker with its own log stream, its own ``CollectorRegistry`` and a
fake clock, and returns the raw log lines and the registry's samples as data; the test
parses the lines and reads the samples itself. Request IDs, method names, events, field
values, latencies and clock readings are drawn at random per run, so an answer that
returns the published examples earns nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import io
import itertools
import json
import logging
import math
import random
import string
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import prometheus_client
import pytest
import structlog
from prometheus_client import CollectorRegistry

from course.probing import as_data, kind, probe, raised, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # as published
ERRORS = ("TimeoutError", "ValueError", "ConnectionError", "KeyError", "RuntimeError",
          "LookupError", "PermissionError")


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def request_id() -> str:
    return f"req-{word(4)}{random.randint(10, 99)}"


def methods(count: int) -> list[str]:
    return random.sample(["retrieve", "generate", "embed", "rerank", "search", "summarise",
                          "classify", "moderate"], count)


# --------------------------------------------------------------- worker-side helpers


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def json_logger(stream: io.StringIO, request_id_var: ContextVar[str | None]) -> Any:
    """A JSON logger of the tests' own, so that only the code under test is graded."""

    def add_request_id(logger: Any, method_name: str, event_dict: Any) -> Any:
        value = request_id_var.get()
        if value is not None:
            event_dict.setdefault("request_id", value)
        return event_dict

    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[add_request_id, structlog.processors.add_log_level,
                    structlog.processors.JSONRenderer()],
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

    calls: list[tuple[Any, Any, Any]]

    def record(self, method: str, seconds: float, error: BaseException | None = None) -> None:
        self.calls.append((method, seconds, error))

    def seen(self, boom: BaseException | None = None) -> Data:
        """[method, seconds, error]: error is None, "<the error>" for ``boom``, or its type."""
        return [[as_data(method), as_data(seconds),
                 None if error is None else "<the error>" if error is boom else kind(error)]
                for method, seconds, error in self.calls]


def telemetry_with_spy(nb: Any, clock: Callable[[], float] | None = None
                       ) -> tuple[Any, io.StringIO, MetricsSpy]:
    stream = io.StringIO()
    spy = MetricsSpy([])
    telemetry = nb.Telemetry(log=json_logger(stream, nb.request_id_var), metrics=spy,
                             clock=clock or FakeClock())
    return telemetry, stream, spy


def samples_of(registry: CollectorRegistry) -> Data:
    """Every sample in the registry: {"name", "labels", "value"}."""
    return [{"name": as_data(s.name), "labels": as_data(dict(s.labels)), "value": as_data(s.value)}
            for metric in registry.collect() for s in metric.samples]


def exception(name: str, message: str = "") -> BaseException:
    error_type = getattr(builtins, name)
    assert issubclass(error_type, Exception)
    result: BaseException = error_type(message)
    return result


# --------------------------------------------------------------- judge-side helpers


def read_events(lines: list[str]) -> list[dict[str, Any]]:
    """Every line the code logged, each of which must be one JSON object."""
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
        assert type(event) is dict, f"log line {number} should be a JSON object, got {line!r}"
        events.append(event)
    return events


def flow_of(events: list[dict[str, Any]], rid: str) -> list[tuple[Any, Any]]:
    """One request's (event, method) pairs, in log order: the flow the logs let us rebuild."""
    return [(e.get("event"), e.get("method", "")) for e in events if e.get("request_id") == rid]


def sample(samples: list[dict[str, Any]], name: str, **labels: str) -> float:
    """A sample's value, 0.0 when absent; only an exact float is accepted."""
    for found in samples:
        if found["name"] == name and found["labels"] == labels:
            value = found["value"]
            if type(value) is not float:
                pytest.fail(f"{name}{labels}: expected a float sample value, got {value!r}",
                            pytrace=False)
            return float(value)
    return 0.0


# --- structured_logging --------------------------------------------------------------


@probe
def probe_request_scope(nb: Any, outer: str, inner: str, failing: str) -> Data:
    var = nb.request_id_var
    observed: dict[str, Data] = {"before": as_data(var.get())}
    # Values are read inside the scopes and checked after them: a scope whose __exit__
    # swallowed exceptions would otherwise hide a failure.
    with nb.request_scope(outer) as yielded:
        observed["yielded"] = as_data(yielded)
        observed["in_outer"] = as_data(var.get())
        with nb.request_scope(inner):
            observed["in_inner"] = as_data(var.get())
        observed["back_in_outer"] = as_data(var.get())
    observed["after"] = as_data(var.get())

    def fail_inside() -> None:
        with nb.request_scope(failing):
            raise KeyError("boom")

    observed["failure"] = raised(fail_inside)
    observed["after_failure"] = as_data(var.get())
    with nb.request_scope() as made:
        observed["made"] = as_data(made)
        observed["in_made"] = as_data(var.get())
    with nb.request_scope() as other:
        observed["other"] = as_data(other)
    return observed


@exercise(
    "structured_logging", points=1,
    hint="Keep the token that request_id_var.set() returns and pass it to reset() in a "
    "`finally:`; generate an ID only when none is given.",
)
def test_request_scope_sets_and_restores(notebook: Any) -> None:
    outer, inner, failing = request_id(), request_id(), request_id()
    got = probe_request_scope(notebook, outer, inner, failing)
    assert got["before"] is None, f"request_id_var should be None outside any request, got {got['before']!r}"
    assert same(got["yielded"], outer) and same(got["in_outer"], outer), (
        f"inside request_scope({outer!r}): yielded {got['yielded']!r}, request_id_var is "
        f"{got['in_outer']!r}"
    )
    assert same(got["in_inner"], inner), (
        f"a nested scope should set its own ID {inner!r}, got {got['in_inner']!r}"
    )
    assert same(got["back_in_outer"], outer), (
        f"after a nested scope ends the outer ID {outer!r} should be back, got {got['back_in_outer']!r}"
    )
    assert got["after"] is None, f"after the scope request_id_var should be None again, got {got['after']!r}"
    assert got["failure"] is not None and got["failure"]["type"] == "KeyError", (
        f"a KeyError raised inside the scope should propagate, got {got['failure']}"
    )
    assert got["after_failure"] is None, (
        f"an exception inside the scope left its request ID behind: {got['after_failure']!r}"
    )
    made = got["made"]
    assert type(made) is str and len(made) == 12, (
        f"request_scope() without an ID should yield a new 12-character ID, got {made!r}"
    )
    assert same(got["in_made"], made), (
        f"request_id_var should hold the generated ID {made!r}, got {got['in_made']!r}"
    )
    other = got["other"]
    assert type(other) is str and other != made, f"two generated IDs should differ: {made!r}, {other!r}"


@probe
def probe_logger(nb: Any, first: str, second: str, fields: dict[str, Any], retry_after: int) -> Data:
    stream = io.StringIO()
    log = nb.make_logger(stream)
    log.info(first, **fields)
    log.debug("too detailed for INFO")
    log.warning(second, retry_after=retry_after)
    observed: dict[str, Data] = {"lines": lines_of(stream)}
    verbose_stream, other_stream = io.StringIO(), io.StringIO()
    verbose = nb.make_logger(verbose_stream, level=logging.DEBUG)
    other = nb.make_logger(other_stream)
    verbose.debug("step")
    other.info("elsewhere")
    log.info("still here")
    observed.update(verbose=lines_of(verbose_stream), other=lines_of(other_stream),
                    after=lines_of(stream))
    return observed


@exercise(
    "structured_logging", points=1,
    hint="structlog.wrap_logger(structlog.PrintLogger(stream), processors=[...], "
    "wrapper_class=structlog.make_filtering_bound_logger(level)); the JSONRenderer comes last.",
)
def test_logger_writes_json_lines(notebook: Any) -> None:
    first, second = f"llm.{word()}", f"{word()}_{word(4)}"
    fields = {"model": f"tiny-{random.randint(1, 99)}",
              "latency_ms": random.randint(1, 9999) / 8, "tokens": random.randint(1, 5000)}
    retry_after = random.randint(1, 60)
    got = probe_logger(notebook, first, second, fields, retry_after)
    events = read_events(got["lines"])
    assert [e.get("event") for e in events] == [first, second], (
        f"expected the events {[first, second]} (debug dropped at INFO), got {events}"
    )
    head = events[0]
    missing = {k: v for k, v in fields.items() if not same(head.get(k), v)}
    assert not missing, f"fields missing or changed: expected {fields} in {head}"
    assert same(events[1].get("retry_after"), retry_after), f"fields missing: {events[1]}"
    assert [e.get("level") for e in events] == ["info", "warning"], f"levels wrong: {events}"
    stamp = head.get("timestamp")
    assert type(stamp) is str, f"expected an ISO 8601 'timestamp' string, got {stamp!r}"
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        pytest.fail(f"the timestamp is not ISO 8601: {stamp!r}", pytrace=False)
    assert parsed.utcoffset() == timedelta(0), f"the timestamp should be in UTC, got {stamp!r}"
    assert [e.get("event") for e in read_events(got["verbose"])] == ["step"], (
        "a logger made with level=logging.DEBUG should write debug events, and only to its own stream"
    )
    assert [e.get("event") for e in read_events(got["other"])] == ["elsewhere"], (
        f"a second logger should write only its own events to its own stream: {got['other']}"
    )
    after = read_events(got["after"])
    assert after and after[-1].get("event") == "still here", (
        "making a second logger redirected the first one: do not use structlog.configure()"
    )


@probe
async def probe_request_ids(nb: Any, a: str, b: str, c: str, given: str, steps: int) -> Data:
    stream = io.StringIO()
    log = nb.make_logger(stream)
    log.info("before")

    async def handle(rid: str) -> None:
        with nb.request_scope(rid):
            for step in range(steps):
                log.info("step", n=step)
                await asyncio.sleep(0)

    await asyncio.gather(handle(a), handle(b))
    with nb.request_scope(c):
        log.info("explicit", request_id=given)
    log.info("after")
    return lines_of(stream)


@exercise(
    "structured_logging", points=1,
    hint="add_request_id reads request_id_var.get() at the moment of logging, and sets "
    "request_id only when it is not None and the event has none yet.",
)
def test_request_id_follows_each_task(notebook: Any) -> None:
    a, b, c, given = request_id(), request_id(), request_id(), f"given-{word()}"
    steps = random.randint(2, 5)
    events = read_events(probe_request_ids(notebook, a, b, c, given, steps))
    assert len(events) == 2 * steps + 3, f"expected {2 * steps + 3} log lines, got {events}"
    assert "request_id" not in events[0] and "request_id" not in events[-1], (
        f"lines logged outside any request should have no request_id: {events[0]}, {events[-1]}"
    )
    ids = [e.get("request_id") for e in events if e.get("event") == "step"]
    assert ids == [a, b] * steps, f"two interleaved tasks should each log their own ID, got {ids}"
    assert events[-2].get("request_id") == given, (
        f"a request_id passed by the caller ({given!r}) should be kept, got {events[-2]}"
    )


@probe
def probe_redact(nb: Any, secrets: list[str], plain_values: dict[str, Any]) -> Data:
    stream = io.StringIO()
    log = nb.make_logger(stream)
    headers = {"Authorization": f"Bearer {secrets[0]}", "Accept": plain_values["accept"]}
    log.info("llm.call", api_key=secrets[1], openai_api_key=secrets[2],
             prompt_tokens=plain_values["tokens"],
             request={"headers": headers, "model": plain_values["model"]})
    return {"lines": lines_of(stream), "headers_after": as_data(headers)}


@exercise(
    "structured_logging", points=1,
    hint="Walk nested dicts recursively and build new dicts as you go: the caller's "
    "headers dict must come out of logging unchanged.",
)
def test_secrets_are_redacted(notebook: Any) -> None:
    secrets = [f"sk-live-{word(10)}" for _ in range(3)]
    values = {"accept": random.choice(["application/json", "text/event-stream"]),
              "tokens": random.randint(1, 9000), "model": f"tiny-{random.randint(1, 99)}"}
    got = probe_redact(notebook, secrets, values)
    text = "\n".join(got["lines"])
    for value in secrets:
        assert value[8:] not in text, f"a secret ({value}) reached the log: {text}"
    events = read_events(got["lines"])
    assert len(events) == 1, f"expected one log line, got {events}"
    (event,) = events
    assert event.get("api_key") == "[redacted]" and event.get("openai_api_key") == "[redacted]", (
        f"secret keys should be logged as '[redacted]', got {event}"
    )
    request = event.get("request")
    assert type(request) is dict and type(request.get("headers")) is dict, f"got {event}"
    assert request["headers"].get("Authorization") == "[redacted]", f"nested secret: got {request}"
    assert same(request["headers"].get("Accept"), values["accept"]) and same(
        request.get("model"), values["model"]), f"only secret values should change, got {request}"
    assert same(event.get("prompt_tokens"), values["tokens"]), (
        "prompt_tokens is not a secret: is_secret_key() says so"
    )
    assert same(got["headers_after"]["Authorization"], f"Bearer {secrets[0]}"), (
        "logging changed the caller's own headers dict: redact a copy"
    )


# --- request_metrics -----------------------------------------------------------------


@probe
def probe_record(nb: Any, calls: list[list[Any]]) -> Data:
    """ServiceMetrics on a fresh registry; record() each [method, seconds, error type or None]."""
    registry = CollectorRegistry()
    metrics = nb.ServiceMetrics(registry)
    types = {"requests": isinstance(metrics.requests, prometheus_client.Counter),
             "latency": isinstance(metrics.latency, prometheus_client.Histogram),
             "errors": isinstance(metrics.errors, prometheus_client.Counter)}
    for method, seconds, error in calls:
        if error is None:
            metrics.record(method, seconds)
        else:
            metrics.record(method, seconds, exception(error, "it failed"))
    method = calls[0][0]
    leaked = [name for name, labels in (
        ("service_requests_total", {"method": method, "outcome": "ok"}),
        ("service_requests_total", {"method": method, "outcome": "error"}),
        ("service_request_duration_seconds_count", {"method": method}),
    ) if prometheus_client.REGISTRY.get_sample_value(name, labels) is not None]
    nb.ServiceMetrics(CollectorRegistry())  # a second service must not collide with the first
    return {"types": types, "samples": samples_of(registry), "global": leaked}


def random_calls(names: list[str], count: int, fail_rate: float) -> list[list[Any]]:
    calls = []
    for _ in range(count):
        error = random.choice(ERRORS[:3]) if random.random() < fail_rate else None
        calls.append([random.choice(names), round(random.uniform(0.001, 12.0), 4), error])
    return calls


@exercise(
    "request_metrics", points=1,
    hint="Counter('service_requests', ..., ['method', 'outcome'], registry=registry); "
    "record() counts every call once, with outcome 'ok' or 'error'.",
)
def test_request_counts_by_method(notebook: Any) -> None:
    names = methods(2)
    calls = random_calls(names, random.randint(5, 12), 0.4)
    got = probe_record(notebook, calls)
    assert got["types"]["requests"], "requests should be a Counter"
    counts = {f"{m}/{o}": sample(got["samples"], "service_requests_total", method=m, outcome=o)
              for m in names for o in ("ok", "error")}
    want = {f"{m}/{o}": float(sum(1 for c in calls if c[0] == m and (c[2] is None) == (o == "ok")))
            for m in names for o in ("ok", "error")}
    assert same(counts, want), (
        f"service_requests_total by method/outcome after {calls}: expected {want}, got {counts}"
    )
    assert same(got["global"], []), (
        f"the metrics went to the global default registry ({got['global']}): pass registry=registry"
    )


@exercise(
    "request_metrics", points=1,
    hint="Histogram('service_request_duration_seconds', ..., ['method'], "
    "buckets=LATENCY_BUCKETS, registry=registry); observe the seconds of failed calls too.",
)
def test_latency_histogram_buckets(notebook: Any) -> None:
    (method,) = methods(1)
    calls = random_calls([method], random.randint(4, 9), 0.3)
    calls.append([method, round(random.uniform(0.5, 9.0), 4), "RuntimeError"])
    got = probe_record(notebook, calls)
    assert got["types"]["latency"], "latency should be a Histogram"
    name = "service_request_duration_seconds"
    buckets = [s for s in got["samples"] if s["name"] == f"{name}_bucket"]
    bounds = sorted(float(s["labels"]["le"]) for s in buckets)
    want_bounds = sorted([*LATENCY_BUCKETS, math.inf])
    assert same(bounds, want_bounds), f"bucket bounds: expected LATENCY_BUCKETS and +Inf, got {bounds}"
    counts = {str(s["labels"]["le"]): s["value"] for s in buckets
              if s["labels"].get("method") == method}
    seconds = [c[1] for c in calls]
    want = {le: float(sum(1 for s in seconds if s <= bound)) for le, bound in
            ((le, float(le)) for le in counts)}
    assert len(counts) == len(want_bounds) and same(counts, want), (
        f"cumulative bucket counts by upper bound after observing {seconds}: expected {want}, "
        f"got {counts}"
    )
    total = sample(got["samples"], f"{name}_sum", method=method)
    assert math.isclose(total, sum(seconds)), f"{name}_sum: expected {sum(seconds)} seconds, got {total}"


@exercise(
    "request_metrics", points=1,
    hint="On error, also increment errors with error=type(error).__name__.",
)
def test_error_counts(notebook: Any) -> None:
    names, kinds = methods(2), random.sample(ERRORS, 3)
    calls = [[random.choice(names), 0.1, random.choice([*kinds, None])]
             for _ in range(random.randint(6, 12))]
    got = probe_record(notebook, calls)
    assert got["types"]["errors"], "errors should be a Counter"
    counts = {f"{m}/{e}": sample(got["samples"], "service_errors_total", method=m, error=e)
              for m in names for e in kinds}
    want = {f"{m}/{e}": float(sum(1 for c in calls if c[0] == m and c[2] == e))
            for m in names for e in kinds}
    assert same(counts, want), (
        f"service_errors_total by method/error after {calls}: expected {want}, got {counts}"
    )


# --- instrument_helpers --------------------------------------------------------------


@probe
def probe_instrumented(nb: Any, readings: list[float], method: str, fields: dict[str, Any]) -> Data:
    telemetry, stream, spy = telemetry_with_spy(nb, FakeClock(*readings))
    with nb.instrumented(telemetry, method, **fields):
        pass
    return {"lines": lines_of(stream), "calls": spy.seen()}


@exercise(
    "instrument_helpers", points=1,
    hint="Log call.start, read the clock, yield, read the clock again; duration_ms is "
    "(end - start) * 1000; record(method, end - start) once.",
)
def test_instrumented_success(notebook: Any) -> None:
    start = float(random.randint(1, 900))
    elapsed = random.randint(1, 4000) / 1000
    (method,) = methods(1)
    fields = {"batch": random.randint(1, 64), "model": f"emb-{word(3)}"}
    got = probe_instrumented(notebook, [start, start + elapsed], method, fields)
    events = read_events(got["lines"])
    seen = [(e.get("event"), e.get("method")) for e in events]
    assert seen == [("call.start", method), ("call.end", method)], (
        f"expected call.start then call.end for method {method!r}, got {events}"
    )
    extra = {k: events[0].get(k) for k in fields}
    assert same(extra, fields), f"extra fields belong on call.start: expected {fields}, got {events[0]}"
    end = events[1]
    duration = end.get("duration_ms")
    assert end.get("outcome") == "ok" and end.get("level") == "info", f"call.end: got {end}"
    assert type(duration) is float and math.isclose(duration, elapsed * 1000, abs_tol=1e-3), (
        f"duration_ms: the fake clock moved {elapsed} s, so expected {elapsed * 1000}, got {duration!r}"
    )
    assert len(got["calls"]) == 1, f"metrics.record should be called once, got {got['calls']}"
    recorded, seconds, error = got["calls"][0]
    assert same(recorded, method) and type(seconds) is float and math.isclose(
        seconds, elapsed, abs_tol=1e-9) and error is None, (
        f"expected record({method!r}, {elapsed}, None), got record{tuple(got['calls'][0])}"
    )


@probe
def probe_instrumented_error(nb: Any, readings: list[float], method: str, error: str,
                             message: str) -> Data:
    telemetry, stream, spy = telemetry_with_spy(nb, FakeClock(*readings))
    boom = exception(error, message)
    propagated: Data = None
    try:
        with nb.instrumented(telemetry, method):
            raise boom
    except BaseException as exc:
        propagated = "<the error>" if exc is boom else kind(exc)
    return {"propagated": propagated, "lines": lines_of(stream), "calls": spy.seen(boom)}


@exercise(
    "instrument_helpers", points=1,
    hint="Catch the exception around the `yield`, log call.end at error level with "
    "outcome='error' and the class name, record it, then `raise` it again.",
)
def test_instrumented_error(notebook: Any) -> None:
    start = float(random.randint(1, 900))
    elapsed = random.randint(1, 4000) / 1000
    (method,) = methods(1)
    error = random.choice(ERRORS)
    got = probe_instrumented_error(notebook, [start, start + elapsed], method, error, word())
    assert_same(got["propagated"], "<the error>",
                "what left the block (the original exception should propagate unchanged)")
    events = read_events(got["lines"])
    assert len(events) == 2 and events[1].get("event") == "call.end", f"got {events}"
    end = events[1]
    seen = (end.get("level"), end.get("outcome"), end.get("error"))
    assert seen == ("error", "error", error), (
        f"a failed block should log call.end at level error, outcome error, error {error}; got {end}"
    )
    duration = end.get("duration_ms")
    assert type(duration) is float and math.isclose(duration, elapsed * 1000, abs_tol=1e-3), (
        f"duration_ms: expected {elapsed * 1000}, got {end}"
    )
    calls = got["calls"]
    assert len(calls) == 1 and same(calls[0][0], method) and same(calls[0][2], "<the error>"), (
        f"expected record({method!r}, {elapsed}, <the error>), got {calls}"
    )


@probe
async def probe_instrumented_async(nb: Any, readings: list[float], method: str,
                                   ids: list[str]) -> Data:
    telemetry, stream, spy = telemetry_with_spy(nb, FakeClock(*readings))

    async def step(rid: str) -> str:
        with nb.request_scope(rid), nb.instrumented(telemetry, method):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return rid

    results = await asyncio.gather(*(step(rid) for rid in ids))
    return {"results": as_data(results), "lines": lines_of(stream), "calls": spy.seen()}


@exercise(
    "instrument_helpers", points=1,
    hint="A `with` block may contain `await`: the context manager only has to be "
    "entered and left. Keep per-call state in local variables, never on the function.",
)
def test_instrumented_inside_coroutines(notebook: Any) -> None:
    readings = sorted(random.sample(range(0, 1000), 4))
    start1, start2, end1, end2 = (r / 10 for r in readings)
    first, second = request_id(), request_id()
    (method,) = methods(1)
    got = probe_instrumented_async(notebook, [start1, start2, end1, end2], method, [first, second])
    assert_same(got["results"], [first, second], "the coroutines' results")
    events = read_events(got["lines"])
    seen = [(e.get("event"), e.get("request_id")) for e in events]
    want = [("call.start", first), ("call.start", second), ("call.end", first), ("call.end", second)]
    assert seen == want, (
        f"two overlapping async blocks should log start, start, end, end, each with its own "
        f"request ID; expected {want}, got {seen}"
    )
    durations = [e.get("duration_ms") for e in events if e.get("event") == "call.end"]
    assert all(type(d) is float for d in durations) and len(got["calls"]) == 2, f"got {events}"
    expected = [(end1 - start1) * 1000, (end2 - start2) * 1000]
    assert all(math.isclose(d, e, abs_tol=1e-3) for d, e in zip(durations, expected, strict=True)), (
        f"each block should be timed from its own start (clock {start1}→{end1} and "
        f"{start2}→{end2}): expected {expected}, got {durations}"
    )


@probe
async def probe_traced(nb: Any, text: str, key: str, missing: str) -> Data:
    telemetry, stream, spy = telemetry_with_spy(nb)

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

    Tools.count = nb.traced(Tools.count)  # type: ignore[method-assign]
    Tools.fetch = nb.traced(Tools.fetch)  # type: ignore[method-assign]
    observed: dict[str, Data] = {
        "name": as_data(getattr(Tools.count, "__name__", None)),
        "doc": as_data(getattr(Tools.count, "__doc__", None)),
        "coroutine": inspect.iscoroutinefunction(Tools.fetch),
    }
    tools = Tools()
    observed["count"] = as_data(tools.count(text))
    observed["fetch"] = as_data(await tools.fetch(key, fail=False))

    async def fetch_missing() -> None:
        await tools.fetch(missing, fail=True)

    try:
        await fetch_missing()
        observed["failed"] = None
    except Exception as exc:
        observed["failed"] = kind(exc)
    observed.update(lines=lines_of(stream), calls=spy.seen())
    return observed


@exercise(
    "instrument_helpers", points=1,
    hint="Check inspect.iscoroutinefunction(func) when decorating and return an "
    "`async def` wrapper for coroutine functions; use @functools.wraps(func); the "
    "telemetry is args[0].telemetry.",
)
def test_traced_sync_and_async(notebook: Any) -> None:
    text = " ".join(word(random.randint(1, 6)) for _ in range(random.randint(1, 9)))
    key, missing = word(), word()
    got = probe_traced(notebook, text, key, missing)
    assert same(got["name"], "count") and same(got["doc"], "Count words."), (
        f"the decorated method lost its name or docstring (got {got['name']!r}, {got['doc']!r}): "
        "use functools.wraps"
    )
    assert got["coroutine"], "decorating an async method should give an async function back"
    assert_same(got["count"], len(text.split()), f"the traced count({text!r})")
    assert_same(got["fetch"], key.upper(), f"the traced fetch({key!r})")
    assert_same(got["failed"], "LookupError", "what the traced fetch(..., fail=True) raised")
    events = read_events(got["lines"])
    seen = [(e.get("event"), e.get("method"), e.get("outcome")) for e in events]
    want = [
        ("call.start", "count", None), ("call.end", "count", "ok"),
        ("call.start", "fetch", None), ("call.end", "fetch", "ok"),
        ("call.start", "fetch", None), ("call.end", "fetch", "error"),
    ]
    assert seen == want, f"expected (event, method, outcome) {want}, got {seen}"
    recorded = [[m, e is None] for m, _, e in got["calls"]]
    assert same(recorded, [["count", True], ["fetch", True], ["fetch", False]]), (
        f"each call should be recorded once in the metrics, got {got['calls']}"
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

    def __init__(self, model: str = "tiny-2", prefix: str = "answer", doc: str = "doc") -> None:
        self.model, self.prefix, self.doc = model, prefix, doc
        self.searches: list[tuple[Any, Any]] = []
        self.prompts: list[Any] = []

    async def search(self, query: str, k: int) -> list[str]:
        self.searches.append((query, k))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return [f"{self.doc} {i} for {query}" for i in range(k)]

    async def complete(self, prompt: str) -> Reply:
        self.prompts.append(prompt)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if "rate-limit me" in prompt:
            raise RateLimitError("429")
        return Reply(f"{self.prefix} {len(self.prompts)}", self.model, len(prompt.split()), 3)


EXPECTED_FLOW = [
    ("call.start", "answer"), ("call.start", "retrieve"), ("retrieval", ""), ("call.end", "retrieve"),
    ("call.start", "build_prompt"), ("call.end", "build_prompt"),
    ("call.start", "generate"), ("llm.response", ""), ("call.end", "generate"), ("call.end", "answer"),
]


@probe
async def probe_one_request(nb: Any, question: str, rid: str, model: str, prefix: str,
                            doc: str) -> Data:
    telemetry, stream, _ = telemetry_with_spy(nb)
    backend = ScriptedBackend(model, prefix, doc)
    service = nb.AnswerService(backend, telemetry)
    observed: dict[str, Data] = {"answer": as_data(await service.answer(question, request_id=rid))}
    observed["searches"] = [[as_data(q), as_data(k)] for q, k in backend.searches]
    observed["prompts"] = [as_data(p) for p in backend.prompts]
    observed["lines"] = lines_of(stream)
    await service.answer("no ID given")
    observed["all_lines"] = lines_of(stream)
    return observed


@exercise(
    "observable_service", points=1,
    hint="answer() opens request_scope(request_id) and instrumented(..., 'answer') around "
    "the three steps; retrieve logs 'retrieval', generate logs 'llm.response'.",
)
def test_one_request_flow(notebook: Any) -> None:
    question = " ".join(word(random.randint(2, 7)) for _ in range(random.randint(2, 6))) + "?"
    rid, model, prefix, doc = request_id(), f"tiny-{random.randint(2, 99)}", word(), word(4)
    got = probe_one_request(notebook, question, rid, model, prefix, doc)
    assert_same(got["answer"], f"{prefix} 1", "answer() (the completion's text)")
    assert same(got["searches"], [[question, 3]]), f"search calls: {got['searches']}"
    want_prompt = "\n".join([*(f"{doc} {i} for {question}" for i in range(3)), f"Question: {question}"])
    assert same(got["prompts"], [want_prompt]), (
        f"prompt: expected {want_prompt!r}, got {got['prompts']}"
    )
    events = read_events(got["lines"])
    flow = flow_of(events, rid)
    assert flow == EXPECTED_FLOW, f"the flow of {rid}: expected {EXPECTED_FLOW}, got {flow}"
    assert len(flow) == len(events), f"some lines of the request were logged without its request_id: {events}"
    retrieval = next(e for e in events if e.get("event") == "retrieval")
    response = next(e for e in events if e.get("event") == "llm.response")
    assert same(retrieval.get("n_docs"), 3), f"retrieval should log n_docs=3, got {retrieval}"
    seen = (response.get("model"), response.get("prompt_tokens"), response.get("completion_tokens"))
    assert seen == (model, len(want_prompt.split()), 3), f"llm.response fields: got {response}"
    fresh = read_events(got["all_lines"])[len(events):]
    generated = {e.get("request_id") for e in fresh}
    assert len(fresh) == 10 and len(generated) == 1 and None not in generated, (
        f"a request without an ID should get one new ID on all its lines, got {generated}"
    )


@probe
async def probe_concurrent(nb: Any, ids: list[str]) -> Data:
    telemetry, stream, _ = telemetry_with_spy(nb)
    service = nb.AnswerService(ScriptedBackend(), telemetry)
    answers = await asyncio.gather(
        *(service.answer(f"question {n}", request_id=rid) for n, rid in enumerate(ids)))
    return {"answers": len(answers), "lines": lines_of(stream),
            "leaked": as_data(nb.request_id_var.get())}


@exercise(
    "observable_service", points=1,
    hint="The request ID lives in a ContextVar set inside answer(): each asyncio task "
    "has its own copy, so concurrent requests cannot see each other's ID.",
)
def test_concurrent_requests_rebuild_from_logs(notebook: Any) -> None:
    ids = list({request_id() for _ in range(random.randint(4, 7))})
    got = probe_concurrent(notebook, ids)
    assert_same(got["answers"], len(ids), "answers from asyncio.gather")
    events = read_events(got["lines"])
    order = [e.get("request_id") for e in events]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > len(ids), (
        f"the requests should run interleaved, but the log holds them one after another: {order}"
    )
    for rid in ids:
        flow = flow_of(events, rid)
        assert flow == EXPECTED_FLOW, f"the flow of {rid} rebuilt from the logs: got {flow}"
    assert got["leaked"] is None, f"a request ID leaked out of answer(): {got['leaked']!r}"


@probe
async def probe_service_metrics(nb: Any, questions: list[str], ids: list[str]) -> Data:
    registry = CollectorRegistry()
    stream = io.StringIO()
    telemetry = nb.Telemetry(log=nb.make_logger(stream), metrics=nb.ServiceMetrics(registry),
                             clock=FakeClock())
    service = nb.AnswerService(ScriptedBackend(), telemetry)
    results = await asyncio.gather(
        *(service.answer(q, request_id=rid) for q, rid in zip(questions, ids, strict=True)),
        return_exceptions=True)
    return {"results": [("<RateLimitError>" if isinstance(r, RateLimitError) else kind(r))
                        if isinstance(r, BaseException) else "answered" for r in results],
            "samples": samples_of(registry), "lines": lines_of(stream)}


@exercise(
    "observable_service", points=1,
    hint="Every step is counted by method in service_requests_total; a failing generate "
    "fails answer too, and both count in service_errors_total.",
)
def test_service_metrics_and_errors(notebook: Any) -> None:
    total = random.randint(3, 6)
    bad = set(random.sample(range(total), random.randint(1, total - 1)))
    questions = [f"please rate-limit me {word()}" if n in bad else f"{word()} {word()}?"
                 for n in range(total)]
    ids = [f"{'bad' if n in bad else 'ok'}-{n}-{word(4)}" for n in range(total)]
    got = probe_service_metrics(notebook, questions, ids)
    want_results = ["<RateLimitError>" if n in bad else "answered" for n in range(total)]
    assert same(got["results"], want_results), (
        f"the backend's error should propagate from the failing requests: expected {want_results}, "
        f"got {got['results']}"
    )
    failed, ok = float(len(bad)), float(total - len(bad))
    counts = {f"{m}/{o}": sample(got["samples"], "service_requests_total", method=m, outcome=o)
              for m in ("answer", "retrieve", "build_prompt", "generate") for o in ("ok", "error")}
    want = {"answer/ok": ok, "answer/error": failed, "retrieve/ok": float(total),
            "retrieve/error": 0.0, "build_prompt/ok": float(total), "build_prompt/error": 0.0,
            "generate/ok": ok, "generate/error": failed}
    assert same(counts, want), f"service_requests_total: expected {want}, got {counts}"
    errors = {m: sample(got["samples"], "service_errors_total", method=m, error="RateLimitError")
              for m in ("answer", "generate")}
    assert same(errors, {"answer": failed, "generate": failed}), (
        f"service_errors_total with error='RateLimitError' by method: got {errors}"
    )
    generated = sample(got["samples"], "service_request_duration_seconds_count", method="generate")
    assert same(generated, float(total)), (
        f"service_request_duration_seconds_count for generate: expected {float(total)}, got {generated}"
    )
    events = read_events(got["lines"])
    for n in bad:
        flow = [e for e in events if e.get("request_id") == ids[n]]
        last = flow[-1] if flow else {}
        seen = (last.get("event"), last.get("method"), last.get("outcome"))
        assert seen == ("call.end", "answer", "error"), (
            f"the failed request's last line should be call.end of answer with outcome error, got {last}"
        )


# --- flow_from_logs ------------------------------------------------------------------


@probe
def probe_request_flow(nb: Any, lines: list[str], rid: str, unknown: str) -> Data:
    flow = nb.request_flow(iter(lines), rid)
    return {"flow": as_data(flow), "unknown": as_data(nb.request_flow(list(lines), unknown))}


@exercise(
    "flow_from_logs", points=1,
    hint="json.loads each line inside try/except ValueError, keep only dicts whose "
    "request_id matches, in the order they came.",
)
def test_request_flow(notebook: Any) -> None:
    mine, other = request_id(), request_id()
    ours = [{"event": "call.start", "method": "answer", "request_id": mine, "level": "info"},
            {"event": "call.end", "method": random.choice(methods(1)), "request_id": mine,
             "duration_ms": random.randint(1, 999) / 4},
            {"event": "call.end", "method": "answer", "request_id": mine,
             "duration_ms": random.randint(1000, 9999) / 4}]
    noise = ["", "Traceback (most recent call last):", '  File "service.py", line 12, in generate',
             "[1, 2, 3]", "null", json.dumps({"event": "server started"}),
             json.dumps({"event": "call.start", "method": "answer", "request_id": other}),
             json.dumps(["request_id", mine]), "{not json", '"' + mine + '"']
    lines = [json.dumps(event) for event in ours] + noise
    random.shuffle(lines)
    want = [json.loads(line) for line in lines if line in {json.dumps(e) for e in ours}]
    got = probe_request_flow(notebook, lines, mine, request_id() + "x")
    flow = got["flow"]
    assert type(flow) is list and all(type(e) is dict for e in flow), (
        f"request_flow should return a list of dicts, got {flow!r}"
    )
    assert same(flow, want), f"expected the three events of {mine} in log order: {want}, got {flow}"
    assert same(got["unknown"], []), (
        f"an unknown request should have an empty flow, got {got['unknown']!r}"
    )


@probe
def probe_step_durations(nb: Any, flow: list[dict[str, Any]]) -> Data:
    got = nb.step_durations(flow)
    if not isinstance(got, dict):
        return {"type": kind(got), "is_dict": False, "items": shown(got)}
    # Any dict will do (a defaultdict, as the lesson builds, too): its stored entries are
    # read with dict's own method, so a subclass cannot pretend to hold other ones.
    return {"type": kind(got), "is_dict": True,
            "items": [[as_data(k), as_data(v)] for k, v in dict.items(got)]}


@exercise(
    "flow_from_logs", points=1,
    hint="Only call.end events carry duration_ms; add up a method's durations when it "
    "appears more than once.",
)
def test_step_durations(notebook: Any) -> None:
    twice, once, outer = methods(3)
    parts = [random.randint(1, 4000) / 4 for _ in range(4)]
    flow = [
        {"event": "call.start", "method": outer},
        {"event": "call.end", "method": twice, "duration_ms": parts[0]},
        {"event": "retrieval", "n_docs": random.randint(1, 9)},
        {"event": "call.start", "method": twice},
        {"event": "call.end", "method": twice, "duration_ms": parts[1]},
        {"event": "call.end", "method": once, "duration_ms": parts[2]},
        {"event": "call.end", "method": outer, "duration_ms": parts[3]},
    ]
    got = probe_step_durations(notebook, flow)
    items = got["items"]
    assert got["is_dict"] is True and type(items) is list and all(
        type(k) is str and type(v) is float for k, v in items), (
        f"step_durations should return a dict of method name to float milliseconds, got a "
        f"{got['type']}: {items!r}"
    )
    want = {twice: parts[0] + parts[1], once: parts[2], outer: parts[3]}
    assert same(dict(items), want), f"expected {want}, got {dict(items)}"
