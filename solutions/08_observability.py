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
# # Exercises 8: an observable service
#
# You will make a small question-answering service observable. It retrieves documents,
# builds a prompt and calls a model, like most RAG services do. When you are done, every
# call it makes is logged as a JSON line on entry and on exit, with its timing and the
# request's correlation ID; Prometheus counts its calls by method, records their latency
# in a histogram and counts their errors; and you can rebuild any one request's full
# flow from the logs alone, even when many requests ran at the same time.
#
# | exercise | what you build | points |
# |---|---|---|
# | `structured_logging` | a request scope, two structlog processors, a JSON logger | 4 |
# | `request_metrics` | `ServiceMetrics`: counters and a histogram in a given registry | 3 |
# | `instrument_helpers` | the context manager `instrumented` and the decorator `traced` | 4 |
# | `observable_service` | `AnswerService`, instrumented end to end | 3 |
# | `flow_from_logs` | rebuild one request from the log lines | 2 |
#
# Everything you need is in [the lesson](../chapters/08_observability). Write your answers
# where a cell raises `NotImplementedError`, save the notebook, and run the `check(...)`
# cell at the end of each exercise: it runs the same tests the grader runs, on the saved
# file.
#
# The tests never look at a clock: they give your code a fake one, and they read your
# logs and your Prometheus registry, not your variables.

# %%
import asyncio
import functools
import inspect
import io
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TextIO, TypeVar, cast

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

# %% [markdown]
# ## Exercise `structured_logging` (4 points)
#
# **The correlation ID.** `request_id_var` holds the ID of the request being handled, or
# `None` outside any request. Write the context manager `request_scope(request_id=None)`:
#
# - it sets `request_id_var` to `request_id`, or to a new ID (`uuid.uuid4().hex[:12]`)
#   when none is given, and yields the ID it set;
# - on the way out, normal or by an exception, it puts back whatever value was there
#   before (use the token that `ContextVar.set()` returns), so scopes nest and nothing
#   leaks to the code after them.
#
# **Two processors.** A structlog processor is a function `(logger, method_name,
# event_dict) -> event_dict`. Write:
#
# - `add_request_id`: if a request ID is set and the event has no `request_id` key yet,
#   add `request_id`; otherwise leave the event as it is.
# - `redact_secrets`: replace the value of every key that `is_secret_key()` flags with
#   the string `"[redacted]"`, also inside nested dicts (a `headers` dict, say), at any
#   depth. Return a new dict or change this one, as you like; never change a dict the
#   caller passed in as a value (copy nested dicts before you redact them).
#
# **The logger.** Write `make_logger(stream, level=logging.INFO)`: a structlog logger that
# writes one JSON object per line to `stream`, through these processors in this order:
# `add_request_id`, structlog's `add_log_level`, a `TimeStamper(fmt="iso", utc=True)`,
# `redact_secrets`, and a `JSONRenderer()`. Events below `level` are dropped
# (`structlog.make_filtering_bound_logger(level)`). Build it with
# `structlog.wrap_logger(structlog.PrintLogger(stream), ...)`, **not** with
# `structlog.configure()`: configuration is global, and two loggers made for two streams
# must not write to each other's.

# %%
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

SECRET_NAMES = frozenset({"api_key", "authorization", "password", "secret", "token"})
SECRET_SUFFIXES = ("_api_key", "_password", "_secret", "_token")


def is_secret_key(name: str) -> bool:
    """True for keys whose values must never reach a log: `api_key`, `Authorization`,
    ..."""
    lowered = name.lower()
    return lowered in SECRET_NAMES or lowered.endswith(SECRET_SUFFIXES)


# %%
@contextmanager
def request_scope(request_id: str | None = None) -> Iterator[str]:
    """Set the current request ID for the duration of the block; yield it."""
    # BEGIN SOLUTION
    value = request_id if request_id is not None else uuid.uuid4().hex[:12]
    token = request_id_var.set(value)
    try:
        yield value
    finally:
        request_id_var.reset(token)
    # END SOLUTION


def add_request_id(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Processor: add the current request ID to the event, unless it already has one."""
    # BEGIN SOLUTION
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict
    # END SOLUTION


def redact_secrets(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Processor: replace secret values with "[redacted]", in nested dicts too."""
    # BEGIN SOLUTION
    return cast(EventDict, _redacted(event_dict))


def _redacted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: "[redacted]"
            if isinstance(key, str) and is_secret_key(key)
            else _redacted(item)
            for key, item in value.items()
        }
    return value
    # END SOLUTION


def make_logger(stream: TextIO, level: int = logging.INFO) -> FilteringBoundLogger:
    """A structlog logger that writes JSON lines to `stream`."""
    # BEGIN SOLUTION
    logger: FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[
            add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    return logger
    # END SOLUTION


# %% [markdown]
# Try it: two lines inside a request scope, one outside, and a secret that must not show.

# %% tags=["demo"]
demo_stream = io.StringIO()
demo_log = make_logger(demo_stream)
with request_scope("req-demo"):
    demo_log.info("llm.call", model="tiny-1", api_key="sk-not-for-logs")
    demo_log.debug("dropped: below INFO")
    demo_log.warning(
        "rate_limited", headers={"Authorization": "Bearer abc", "Retry-After": "2"}
    )
demo_log.info("outside any request")
print(demo_stream.getvalue())

# %%
from course.check import check

check("structured_logging")

# %% [markdown]
# ## Exercise `request_metrics` (3 points)
#
# Write the class `ServiceMetrics`. Its constructor takes a `CollectorRegistry` and
# registers three metrics **in that registry** (pass `registry=registry` to each; the
# tests give every check a fresh registry, and the process-wide default one would make
# the second service crash with "Duplicated timeseries"):
#
# | attribute | type | name | labels |
# |---|---|---|---|
# | `requests` | `Counter` | `service_requests` (exposed as `service_requests_total`) | `method`, `outcome` |
# | `latency` | `Histogram` | `service_request_duration_seconds`, buckets `LATENCY_BUCKETS` | `method` |
# | `errors` | `Counter` | `service_errors` (exposed as `service_errors_total`) | `method`, `error` |
#
# and a method `record(method, seconds, error=None)` that counts one call:
#
# - `requests` with `outcome="ok"`, or `outcome="error"` when `error` is an exception;
# - `latency` observes `seconds` for every call, failed ones too;
# - on error, `errors` with `error=` the exception's class name (`"TimeoutError"`).

# %%
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Request counts by method and outcome, a latency histogram and error counts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # BEGIN SOLUTION
        self.requests = Counter(
            "service_requests", "Calls by method and outcome.", ["method", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "service_request_duration_seconds", "Call latency by method.", ["method"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.errors = Counter(
            "service_errors",
            "Failed calls by method and exception type.",
            ["method", "error"],
            registry=registry,
        )
        # END SOLUTION

    def record(
        self, method: str, seconds: float, error: BaseException | None = None
    ) -> None:
        """Count one call of `method` that took `seconds` and failed with `error`, if
        any."""
        # BEGIN SOLUTION
        self.requests.labels(
            method=method, outcome="ok" if error is None else "error"
        ).inc()
        self.latency.labels(method=method).observe(seconds)
        if error is not None:
            self.errors.labels(method=method, error=type(error).__name__).inc()
        # END SOLUTION


# %% tags=["demo"]
demo_registry = CollectorRegistry()
demo_metrics = ServiceMetrics(demo_registry)
demo_metrics.record("generate", 0.42)
demo_metrics.record("generate", 1.7, TimeoutError("model too slow"))
print(
    demo_registry.get_sample_value(
        "service_requests_total", {"method": "generate", "outcome": "ok"}
    )
)
print(
    demo_registry.get_sample_value(
        "service_errors_total", {"method": "generate", "error": "TimeoutError"}
    )
)
print(generate_latest(demo_registry).decode()[:600])

# %%
from course.check import check

check("request_metrics")

# %% [markdown]
# ## Exercise `instrument_helpers` (4 points)
#
# A `Telemetry` bundles what instrumentation needs: a logger, the metrics and a clock
# (`time.perf_counter` by default; the tests pass a fake one).
#
# Write the context manager `instrumented(telemetry, method, **fields)`. It times the
# block with `telemetry.clock()` and:
#
# 1. on entry logs `info("call.start", method=method, **fields)`;
# 2. on a normal exit logs `info("call.end", method=method, outcome="ok",
#    duration_ms=...)`, the elapsed time in milliseconds (a float);
# 3. if the block raises (any exception, even `CancelledError`), logs
#    `error("call.end", method=method, outcome="error", error=<class name>,
#    duration_ms=...)` and lets the exception propagate unchanged;
# 4. either way calls `telemetry.metrics.record(method, <elapsed seconds>, <the error or
#    None>)`.
#
# It is a plain (sync) context manager, and it must work around `await` too: a `with`
# block inside a coroutine may suspend as often as it likes.
#
# Then write the decorator `traced` for the methods of any object that has a `telemetry`
# attribute. The method's name is the `method` label. It wraps the call in
# `instrumented(self.telemetry, <name>)` and must work on plain methods **and** on
# `async def` methods (a coroutine function must stay a coroutine function, so that
# `await service.method()` still works and `inspect.iscoroutinefunction` still says
# `True`). Keep the name and docstring with `functools.wraps`.

# %%
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Telemetry:
    log: FilteringBoundLogger
    metrics: ServiceMetrics
    clock: Callable[[], float] = field(default=time.perf_counter)


# %%
@contextmanager
def instrumented(telemetry: Telemetry, method: str, **fields: Any) -> Iterator[None]:
    """Log the start and end of a block, with its duration; record it in the metrics."""
    # BEGIN SOLUTION
    telemetry.log.info("call.start", method=method, **fields)
    start = telemetry.clock()
    try:
        yield
    except BaseException as exc:
        elapsed = telemetry.clock() - start
        telemetry.log.error(
            "call.end", method=method, outcome="error", error=type(exc).__name__,
            duration_ms=round(elapsed * 1000, 3),
        )
        telemetry.metrics.record(method, elapsed, exc)
        raise
    elapsed = telemetry.clock() - start
    telemetry.log.info(
        "call.end", method=method, outcome="ok", duration_ms=round(elapsed * 1000, 3)
    )
    telemetry.metrics.record(method, elapsed)
    # END SOLUTION


def traced(func: Callable[P, R]) -> Callable[P, R]:
    """Instrument a method (sync or async) of an object that has a `telemetry`
    attribute."""
    # BEGIN SOLUTION
    name = getattr(func, "__name__", "call")

    def telemetry_of(args: tuple[Any, ...]) -> Telemetry:
        telemetry = getattr(args[0], "telemetry", None) if args else None
        if not isinstance(telemetry, Telemetry):
            raise TypeError(
                f"@traced {name}: the object has no Telemetry in .telemetry"
            )
        return telemetry

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with instrumented(telemetry_of(args), name):
                return await cast(Awaitable[Any], func(*args, **kwargs))

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with instrumented(telemetry_of(args), name):
            return func(*args, **kwargs)

    return wrapper
    # STUB: return func  # unwrapped for now: replace this line with your decorator
    # END SOLUTION


# %% tags=["demo"]
class Tokenizer:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    @traced
    def count(self, text: str) -> int:
        """Count whitespace-separated words."""
        return len(text.split())

    @traced
    async def count_later(self, text: str) -> int:
        await asyncio.sleep(0)
        return len(text.split())


demo_stream = io.StringIO()
tokenizer = Tokenizer(
    Telemetry(make_logger(demo_stream), ServiceMetrics(CollectorRegistry()))
)
later = await tokenizer.count_later("and two")  # type: ignore[top-level-await]
print(tokenizer.count("three small words"), later)
print(
    Tokenizer.count.__name__,
    Tokenizer.count.__doc__,
    inspect.iscoroutinefunction(Tokenizer.count_later),
)
print(demo_stream.getvalue())

# %%
from course.check import check

check("instrument_helpers")


# %% [markdown]
# ## Exercise `observable_service` (3 points)
#
# Here is the backend the service talks to: a search index and a model. `FakeBackend`
# answers at once (each call yields to the event loop once, so concurrent requests
# interleave), and fails with `RateLimitError` for any prompt that contains
# `"rate-limit me"`.

# %%
class RateLimitError(Exception):
    """The model provider said 429."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class Backend(Protocol):
    async def search(self, query: str, k: int) -> list[str]: ...

    async def complete(self, prompt: str) -> Completion: ...


class FakeBackend:
    DOCS = (
        "Retries need jitter.",
        "Histograms have buckets.",
        "Context variables follow tasks.",
        "Logs are events.",
    )

    async def search(self, query: str, k: int) -> list[str]:
        await asyncio.sleep(0)
        return list(self.DOCS[:k])

    async def complete(self, prompt: str) -> Completion:
        await asyncio.sleep(0)
        if "rate-limit me" in prompt:
            raise RateLimitError("429 Too Many Requests")
        return Completion("It depends.", "tiny-1", len(prompt.split()), 2)


# %% [markdown]
# Complete `AnswerService`. Its constructor keeps the backend and the telemetry; write
# the bodies of its four methods:
#
# - `retrieve(question)`, async, `@traced`: `await backend.search(question, k=3)`; then
#   log `info("retrieval", n_docs=<how many came back>)`; return the documents.
# - `build_prompt(question, docs)`, sync, `@traced`: return the documents, one per line
#   in order, then a line `Question: <question>`.
# - `generate(prompt)`, async, `@traced`: `await backend.complete(prompt)`; log
#   `info("llm.response", model=..., prompt_tokens=..., completion_tokens=...)` from the
#   completion; return its text.
# - `answer(question, request_id=None)`, async: the whole request. Inside
#   `request_scope(request_id)` **and** `instrumented(self.telemetry, "answer")`, it
#   retrieves, builds the prompt and generates, and returns the answer. Errors propagate.
#
# So one successful request logs, in order: `call.start` answer, `call.start` retrieve,
# `retrieval`, `call.end` retrieve, `call.start` build_prompt, `call.end` build_prompt,
# `call.start` generate, `llm.response`, `call.end` generate, `call.end` answer: every
# line with the request's ID, even while other requests run concurrently.

# %%
class AnswerService:
    """Retrieve, build a prompt, generate: each step logged, timed and counted."""

    def __init__(self, backend: Backend, telemetry: Telemetry) -> None:
        self.backend = backend
        self.telemetry = telemetry

    @traced
    async def retrieve(self, question: str) -> list[str]:
        # BEGIN SOLUTION
        docs = await self.backend.search(question, k=3)
        self.telemetry.log.info("retrieval", n_docs=len(docs))
        return docs
        # END SOLUTION

    @traced
    def build_prompt(self, question: str, docs: list[str]) -> str:
        # BEGIN SOLUTION
        return "\n".join([*docs, f"Question: {question}"])
        # END SOLUTION

    @traced
    async def generate(self, prompt: str) -> str:
        # BEGIN SOLUTION
        completion = await self.backend.complete(prompt)
        self.telemetry.log.info(
            "llm.response",
            model=completion.model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        return completion.text
        # END SOLUTION

    async def answer(self, question: str, request_id: str | None = None) -> str:
        # BEGIN SOLUTION
        with request_scope(request_id), instrumented(self.telemetry, "answer"):
            docs = await self.retrieve(question)
            prompt = self.build_prompt(question, docs)
            return await self.generate(prompt)
        # END SOLUTION


# %% [markdown]
# Three requests at once, one of which fails. Each line carries its own request's ID.

# %% tags=["demo"]
service_stream = io.StringIO()
service_registry = CollectorRegistry()
service_telemetry = Telemetry(
    make_logger(service_stream), ServiceMetrics(service_registry)
)
service = AnswerService(FakeBackend(), service_telemetry)
results = await asyncio.gather(  # type: ignore[top-level-await]
    service.answer("Why jitter?", request_id="req-1"),
    service.answer("Please rate-limit me", request_id="req-2"),
    service.answer("What is a bucket?", request_id="req-3"),
    return_exceptions=True,
)
print(results)
for line in service_stream.getvalue().splitlines()[:8]:
    print(line)

# %%
from course.check import check

check("observable_service")


# %% [markdown]
# ## Exercise `flow_from_logs` (2 points)
#
# An incident report says "request `req-2` failed". All you have is the log. Write:
#
# - `request_flow(lines, request_id)`: parse each line as JSON and return, in their
#   original order, the events (dicts) whose `request_id` is `request_id`. Skip lines that
#   are blank, that are not valid JSON, or that hold something other than an object:
#   real logs mix in stack traces and lines from other tools.
# - `step_durations(flow)`: from a flow, a dict that maps each `method` to the total
#   `duration_ms` of its `call.end` events (a method called twice adds up).

# %%
def request_flow(lines: Iterable[str], request_id: str) -> list[dict[str, Any]]:
    """The events of one request, in log order."""
    # BEGIN SOLUTION
    flow = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("request_id") == request_id:
            flow.append(event)
    return flow
    # END SOLUTION


def step_durations(flow: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Total milliseconds spent in each method, from the `call.end` events of a flow."""
    # BEGIN SOLUTION
    totals: dict[str, float] = {}
    for event in flow:
        if event.get("event") == "call.end":
            method = str(event["method"])
            totals[method] = totals.get(method, 0.0) + float(event["duration_ms"])
    return totals
    # END SOLUTION


# %% tags=["demo"]
failed = request_flow(service_stream.getvalue().splitlines(), "req-2")
for event in failed:
    print(
        event["level"], event["event"], event.get("method", ""), event.get("error", "")
    )
print(step_durations(failed).keys())

# %%
from course.check import check

check("flow_from_logs")
