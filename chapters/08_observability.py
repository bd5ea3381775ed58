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
# # 8. Observability
#
# A service that calls a model fails in ways a notebook never shows you. One request in
# fifty takes nine seconds. A provider starts answering 429 at lunchtime. A prompt
# template change doubles the token bill. A user says "it gave me nonsense at 14:02" and
# you need to know what happened in *that* request, among thousands that ran at the same
# time.
#
# Three tools answer three questions:
#
# | tool | answers | example |
# |---|---|---|
# | **logs** | what happened, one event at a time | `llm.call model=mock-gpt latency_ms=812 tokens=431` |
# | **correlation IDs** | which events belong to one request | every line of request `a1b2c3` |
# | **metrics** | how often, how much, how slow, over time | p95 latency of `generate` in the last 5 minutes |
#
# This chapter builds all three with the standard library, `structlog` and
# `prometheus_client`, and measures time (`perf_counter`) and memory (`tracemalloc`) on the
# way. At the end, [the exercises](../exercises/08_observability) make a small RAG service
# fully observable.

# %% [markdown]
# ## Configure `logging` once, at the edge
#
# The standard library's `logging` has two halves. Code that *emits* logs asks for a
# logger by module name and calls it; it never decides where the lines go:

# %%
import logging

log = logging.getLogger("ragservice.retrieval")


def retrieve(query: str) -> list[str]:
    # arguments, not an f-string: formatted only if emitted
    log.info("retrieving for %r", query)
    return ["doc-1", "doc-2"]


# %% [markdown]
# The program's entry point (the `main()` of a service, the first cell of a notebook)
# *configures* logging once: which level, which handlers, which format. Library code that
# calls `logging.basicConfig()` itself is a common legacy habit: whoever imports it first
# wins, and everybody else's configuration is silently ignored. `dictConfig` says it all
# in one place:

# %%
import logging.config
import sys

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "plain",
            },
        },
        "loggers": {
            "ragservice": {"handlers": ["out"], "level": "INFO", "propagate": False}
        },
    }
)

# %% tags=["nbval-check-output"]
retrieve("what is a histogram?")
log.debug("not shown: below INFO")

# %% [markdown]
# Notice the `%r` and the separate argument. With `log.info(f"... {query!r}")` the string
# is built even when INFO is switched off; with `%`-style arguments, `logging` formats
# only the lines it keeps. More important in production: the message template stays the
# same for every call, so a log search can group the lines.

# %% [markdown]
# ## Structured logs: one JSON object per line
#
# `retrieving for 'what is a histogram?'` is easy to read and hard to query. Nobody
# greps for "latency over two seconds" in free text. Log aggregators (Loki,
# Elasticsearch, CloudWatch, Datadog) want **one JSON object per line**, with fields you
# can filter and sum: `event`, `level`, `timestamp`, and whatever the event is about.
#
# With only the standard library, a `Formatter` subclass turns each record into JSON. The
# fields come from `extra=`:

# %%
import json
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON object: standard fields plus those passed in
    `extra`."""

    STANDARD = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update(
            {k: v for k, v in vars(record).items() if k not in self.STANDARD}
        )
        return json.dumps(payload, default=str)


json_handler = logging.StreamHandler(sys.stdout)
json_handler.setFormatter(JsonFormatter())
llm_log = logging.getLogger("ragservice.llm")
llm_log.handlers[:] = [json_handler]
llm_log.propagate = False
llm_log.setLevel(logging.INFO)

llm_log.info(
    "llm.call", extra={"model": "mock-gpt", "latency_ms": 812.4, "prompt_tokens": 412}
)

# %% [markdown]
# That is how a reader sees a structured log: a line a machine can parse, with every
# value in its own field. Timestamps are in UTC (`datetime.fromtimestamp(..., UTC)`);
# the legacy `datetime.utcnow()` returns a *naive* datetime with no timezone attached,
# which is why Python 3.12 deprecated it. Use `datetime.now(UTC)`.
#
# It works, but `extra={...}` on every call is clumsy, and adding a field to every line
# (the request ID, the service version) means a filter or an adapter. `structlog` is
# built for this.

# %% [markdown]
# ## `structlog`: a pipeline of processors
#
# A `structlog` logger takes keyword arguments and passes an *event dict* through a list of
# **processors**, functions `(logger, method_name, event_dict) -> event_dict`. The last
# one renders it. Each processor does one job: add the level, add a timestamp, remove a
# secret, render JSON.

# %%
import structlog

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(),
    ],
    logger_factory=structlog.PrintLoggerFactory(sys.stdout),
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    cache_logger_on_first_use=False,
)
slog = structlog.get_logger()
slog.info(
    "llm.call",
    model="mock-gpt",
    latency_ms=812.4,
    prompt_tokens=412,
    completion_tokens=19,
)
slog.debug("dropped: below INFO")

# %% [markdown]
# `structlog.configure()` is the "configure once, at the edge" step: it is global, so a
# service calls it at start-up. In development you would swap `JSONRenderer()` for
# `structlog.dev.ConsoleRenderer()` to get coloured, aligned lines; the events are the
# same.
#
# `bind()` returns a logger that adds fields to every line it writes, without changing
# the original:

# %%
call_log = slog.bind(provider="local", model="mock-gpt-mini")
call_log.info("llm.request", attempt=1)
call_log.warning("llm.rate_limited", attempt=1, retry_after_s=2.0)

# %% [markdown]
# To show deterministic output below, a processor replaces the timestamp with a fixed
# one. Writing your own processor is that simple:

# %%
def fixed_time(logger: object, method_name: str, event_dict: dict) -> dict:
    event_dict["timestamp"] = "2026-01-01T12:00:00Z"
    return event_dict


def lesson_logger(*extra_processors):
    """A JSON logger to stdout, with a fixed clock so the lesson's output is stable."""
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stdout),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            fixed_time,
            *extra_processors,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


# %% [markdown]
# ## What to log in an AI service
#
# Log **events**, each with a stable name and the fields you will want to filter or add
# up later. For an LLM service the events that pay for themselves:
#
# | event | fields |
# |---|---|
# | `llm.call` | provider, model, latency, prompt and completion tokens, finish reason, attempt |
# | `retrieval` | index, number of documents, top score, latency |
# | `validation.failed` | which model or schema, the field errors (not the whole payload) |
# | `llm.rate_limited` | provider, retry-after, attempt, how long you will wait |
# | `request.end` | route, status, total latency, total tokens |
#
# What **not** to log: API keys, `Authorization` headers, passwords, and usually not the
# full prompt or answer either (they carry user data; log their length or a hash, and
# keep full transcripts in a store with access control). The safest place to enforce
# "never log secrets" is a processor, because it sees every line:

# %%
SECRET_KEYS = {"api_key", "authorization", "password"}


def redact(logger: object, method_name: str, event_dict: dict) -> dict:
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


# %% [markdown]
# Here is a real call to the course's local LLM server, logged the way the table says.
# The server answers like the OpenAI API does, including its `usage` block with token
# counts:

# %%
import time

import httpx

from course.llm_server import LLMServer

# %%
ai_log = lesson_logger(redact)


def chat(
    http: httpx.Client, api_key: str, model: str, question: str, scenario: str = ""
) -> str | None:
    headers = {"Authorization": f"Bearer {api_key}"} | (
        {"X-Mock-Scenario": scenario} if scenario else {}
    )
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    start = time.perf_counter()
    response = http.post("/v1/chat/completions", json=body, headers=headers)
    latency_ms = (time.perf_counter() - start) * 1000
    if response.status_code == 429:
        ai_log.warning(
            "llm.rate_limited",
            model=model,
            retry_after_s=float(response.headers["retry-after"]),
            api_key=api_key,
        )
        return None
    data = response.json()
    usage = data["usage"]
    ai_log.info(
        "llm.call",
        model=model,
        latency_ms=round(latency_ms, 1),
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        finish_reason=data["choices"][0]["finish_reason"],
    )
    return str(data["choices"][0]["message"]["content"])


with LLMServer() as server, httpx.Client(base_url=server.base_url) as http:
    chat(http, server.api_key, "mock-gpt", "Name one prime number.")
    chat(http, server.api_key, "mock-gpt", "And another?", scenario="rate_limited:2")

# %% [markdown]
# The API key was passed to the logger on purpose (a careless `log.warning(...,
# **request_info)` does the same), and the processor caught it.

# %% [markdown]
# ## Correlation IDs with `contextvars`
#
# A service handles many requests at once. Their log lines interleave, and without a
# shared field there is no way to pull one request's lines back out. The fix is a
# **correlation ID** (request ID): made (or read from an incoming `X-Request-ID` header)
# when the request arrives, attached to every line logged while handling it, and sent on
# to the services you call.
#
# Passing the ID as a parameter through every function is noisy and always forgotten
# somewhere. A global variable is wrong as soon as two requests run concurrently. The
# tool for "a value per request" is a **context variable**:

# %%
import asyncio
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# %% [markdown]
# Each asyncio task runs in its own *copy* of the context, taken when the task is
# created. A task that sets the variable changes only its own copy. Three requests, run
# concurrently, each setting its ID and then awaiting (so their steps interleave):

# %% tags=["nbval-check-output"]
async def handle(rid: str, steps: int) -> None:
    request_id.set(rid)
    for step in range(steps):
        await asyncio.sleep(0)  # let the other requests run
        print(f"step {step} of {rid}: request_id.get() = {request_id.get()}")


_ = await asyncio.gather(handle("req-a", 2), handle("req-b", 2), handle("req-c", 1))
print("after gather:", request_id.get())

# %% [markdown]
# The steps interleave, each sees its own ID, and nothing leaked into the code that
# awaited them. Compare a module-level variable, which is what a "current request"
# global amounts to:

# %% tags=["nbval-check-output"]
current_request = None


async def handle_with_global(rid: str) -> None:
    global current_request
    current_request = rid
    await asyncio.sleep(0)
    print(f"{rid} thinks it is handling {current_request}")


_ = await asyncio.gather(handle_with_global("req-a"), handle_with_global("req-b"))

# %% [markdown]
# Inside one task (or in synchronous code) a scope is still needed: set the variable,
# and put the old value back when the request ends, with the token that `set()`
# returns. Otherwise the ID stays behind for whatever runs next in the same context:

# %%
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def request_context(rid: str) -> Iterator[None]:
    token = request_id.set(rid)
    structlog.contextvars.bind_contextvars(request_id=rid)
    try:
        yield
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        request_id.reset(token)


# %% [markdown]
# `structlog` keeps its own context variables for exactly this: `bind_contextvars()` adds
# fields, and the `merge_contextvars` processor (first in the pipeline) puts them on
# every line. Now the ID reaches lines logged deep inside code that never heard of it:

# %% tags=["nbval-check-output"]
flow_log = lesson_logger()


async def search(query: str) -> list[str]:
    await asyncio.sleep(0)
    flow_log.info("retrieval", n_docs=2)
    return ["doc-1", "doc-2"]


async def answer(rid: str, question: str) -> None:
    with request_context(rid):
        flow_log.info("request.start", question_chars=len(question))
        await search(question)
        flow_log.info("request.end")


_ = await asyncio.gather(
    answer("req-1", "Why jitter?"), answer("req-2", "What is p99?")
)
flow_log.info("outside any request")

# %% [markdown]
# Filter the lines on `request_id` and one request's whole story comes back, in order.
# Two notes for real services: threads do **not** inherit context variables
# automatically (`asyncio.to_thread` copies the context for you; a plain
# `ThreadPoolExecutor` needs `contextvars.copy_context().run`), and the ID should cross
# service boundaries too: send it as an `X-Request-ID` header to the APIs you call (the
# course's local LLM server echoes it back and records it in its own log).

# %% [markdown]
# ## Timing: `perf_counter`, as a context manager and a decorator
#
# Measure durations with `time.perf_counter()`: a monotonic, high-resolution clock.
# `time.time()` is wall-clock time, which NTP can move backwards in the middle of your
# measurement. A context manager times any block; a decorator times every call of a
# function, and must return an `async def` wrapper for coroutine functions, or it would
# time only the creation of the coroutine.

# %%
import functools
import inspect
from collections.abc import Callable
from typing import Any

timings: list[tuple[str, float]] = []


@contextmanager
def timed(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings.append((name, time.perf_counter() - start))


def timed_calls(func: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with timed(func.__name__):
                return await func(*args, **kwargs)
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timed(func.__name__):
            return func(*args, **kwargs)
    return wrapper


@timed_calls
def tokenize(text: str) -> list[str]:
    return text.split()


@timed_calls
async def embed(text: str) -> list[float]:
    await asyncio.sleep(0.01)
    return [float(len(text))]


# %%
with timed("whole batch"):
    tokenize("count these words")
    await embed("and embed this")
for name, seconds in timings:
    print(f"{name:12} {seconds * 1000:7.2f} ms")

# %% [markdown]
# ## Memory: `tracemalloc`
#
# Latency is not the only budget. An ingestion job that holds every embedding in memory
# works on a sample and dies on the real corpus. `tracemalloc` records where Python
# allocates memory; `get_traced_memory()` gives the current and the peak size since it
# started.

# %%
import array
import tracemalloc


def embeddings_as_lists(n: int, dim: int) -> list[list[float]]:
    return [[0.5] * dim for _ in range(n)]


def embeddings_packed(n: int, dim: int) -> list[array.array]:
    return [array.array("f", [0.5]) * dim for _ in range(n)]


for build in (embeddings_as_lists, embeddings_packed):
    tracemalloc.start()
    vectors = build(2_000, 384)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{build.__name__:20} peak {peak / 1e6:6.1f} MB")
    del vectors

# %% [markdown]
# A list stores an 8-byte pointer per value (here they all point at one shared float
# object; distinct values would add 24 bytes each); a packed `array("f")` stores 4 bytes
# per value. `tracemalloc.take_snapshot().statistics("lineno")` goes
# further and names the lines that allocated the most.

# %% [markdown]
# ## A metrics collector, and why averages lie
#
# Logs tell the story of one request; **metrics** summarise all of them: counts and
# distributions, cheap to keep and to query over time. Here is the idea in twenty lines:
# count events, keep latencies, report percentiles.
#
# The *p95* latency is the value 95 % of requests were faster than. Users feel the tail,
# not the mean: one slow provider call in twenty is invisible in an average and obvious
# in a p95.

# %%
import math
import random
from collections import Counter, defaultdict


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of values at or
    below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class MetricsCollector:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)

    def record(self, name: str, seconds: float, ok: bool = True) -> None:
        self.counts[f"{name}.{'ok' if ok else 'error'}"] += 1
        self.latencies[name].append(seconds)

    def summary(self, name: str) -> dict[str, float]:
        values = self.latencies[name]
        return {
            "count": len(values),
            "mean": round(sum(values) / len(values), 3),
            **{f"p{q}": round(percentile(values, q), 3) for q in (50, 95, 99)},
        }


# %% [markdown]
# Record 1,000 simulated LLM calls: most take about 0.8 s, one in twenty hits a slow
# replica and takes about 4 s, and a few fail. A seeded random generator keeps the
# numbers the same on every run.

# %% tags=["nbval-check-output"]
rng = random.Random(8)
collector = MetricsCollector()
for _ in range(1_000):
    slow = rng.random() < 0.05
    seconds = rng.gauss(4.0, 0.5) if slow else rng.gauss(0.8, 0.15)
    collector.record("generate", max(seconds, 0.05), ok=rng.random() > 0.01)

print(collector.counts)
print(collector.summary("generate"))

# %% [markdown]
# The mean (about 1 s) describes no real request: the median (p50) is 0.8 s, while the
# p95, about 3 s, already falls inside the slow group, and the p99 is over 4 s. One user
# in twenty waits almost four times the median, and the mean hides it.
#
# Keeping every latency does not scale (and cannot be combined across many processes).
# Production metrics count observations into **buckets** instead, and estimate
# percentiles from them. That is what Prometheus does.

# %% [markdown]
# ## `prometheus_client`: counters and histograms
#
# Prometheus scrapes a plain-text page, `/metrics`, from each process every few seconds
# and stores the numbers as time series. `prometheus_client` keeps the numbers in a
# **registry** and renders that page. The two types you need most:
#
# - a **Counter** only goes up: requests, errors, tokens spent. Prometheus computes rates
#   from it (`rate(llm_requests_total[5m])`);
# - a **Histogram** counts observations into buckets with upper bounds you choose, plus
#   their sum and count. `histogram_quantile(0.95, ...)` estimates p95 from the buckets.
#
# **Labels** split a metric by a dimension (`method="generate"`, `outcome="error"`).
# Keep their values to a small fixed set: a label per user, per prompt or per request ID
# creates a new time series for each value and can take the monitoring system down.
#
# Use your own `CollectorRegistry` rather than the process-wide default one: it keeps
# tests and notebooks from colliding ("Duplicated timeseries") when the code runs twice.

# %%
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

registry = CollectorRegistry()
LLM_REQUESTS = PromCounter(
    "llm_requests",
    "LLM calls by model and outcome.",
    ["model", "outcome"],
    registry=registry,
)
LLM_TOKENS = PromCounter(
    "llm_tokens",
    "Tokens used, by model and kind.",
    ["model", "kind"],
    registry=registry,
)
LLM_LATENCY = Histogram(
    "llm_request_duration_seconds",
    "LLM call latency.",
    ["model"],
    buckets=(0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=registry,
)

# %% [markdown]
# Feed them the same simulated calls as before:

# %% tags=["nbval-check-output"]
rng = random.Random(8)
for _ in range(1_000):
    slow = rng.random() < 0.05
    seconds = max(rng.gauss(4.0, 0.5) if slow else rng.gauss(0.8, 0.15), 0.05)
    ok = rng.random() > 0.01
    LLM_REQUESTS.labels(model="mock-gpt", outcome="ok" if ok else "error").inc()
    LLM_LATENCY.labels(model="mock-gpt").observe(seconds)
    if ok:
        LLM_TOKENS.labels(model="mock-gpt", kind="prompt").inc(400)
        LLM_TOKENS.labels(model="mock-gpt", kind="completion").inc(30)

for line in generate_latest(registry).decode().splitlines():
    if line.startswith(("llm_requests_total", "llm_request_duration_seconds_bucket")):
        print(line)

# %% [markdown]
# The buckets are cumulative: `le="2.5"` counts every call that took at most 2.5 s:
# 946 of 1,000. The 950th call (the p95) is therefore in the bucket from 2.5 to 5 s, which
# holds 54 calls, and `histogram_quantile` interpolates linearly inside it:
# 2.5 + 2.5 × 4/54 ≈ 2.69 s, where the exact p95 above was 2.98 s. The estimate is only
# as sharp as the buckets, so put bounds around the latencies you care about (your SLO,
# say 2 s or 3 s), not the library's defaults, which were chosen for web requests that
# take milliseconds.
#
# A test reads a registry directly, no scraping needed:

# %% tags=["nbval-check-output"]
print(
    registry.get_sample_value(
        "llm_requests_total", {"model": "mock-gpt", "outcome": "error"}
    )
)
print(
    registry.get_sample_value(
        "llm_request_duration_seconds_bucket", {"model": "mock-gpt", "le": "2.5"}
    )
)

# %% [markdown]
# ## Serving `/metrics` from a running app
#
# In a service, a middleware records every request, and a `/metrics` route returns
# `generate_latest(registry)`. Here is a small FastAPI app that does both, with its own
# registry:

# %%
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST


def create_app() -> FastAPI:
    app_registry = CollectorRegistry()
    requests_total = PromCounter("http_requests", "HTTP requests.", ["route", "status"],
                                 registry=app_registry)
    latency = Histogram(
        "http_request_duration_seconds",
        "HTTP latency.",
        ["route"],
        registry=app_registry,
    )
    app = FastAPI()

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Any]
    ) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = request.url.path
        if route != "/metrics":
            requests_total.labels(route=route, status=str(response.status_code)).inc()
            latency.labels(route=route).observe(time.perf_counter() - start)
        return response

    @app.get("/answer")
    async def answer_route(q: str) -> dict[str, str]:
        if not q.strip():
            return Response(status_code=422)  # type: ignore[return-value]
        return {"answer": f"You asked {len(q.split())} words."}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(app_registry), media_type=CONTENT_TYPE_LATEST)

    return app


# %% [markdown]
# Run it for real: uvicorn in a background thread, on a port the operating system picks
# (bind a socket to port 0 and hand it to uvicorn, so nobody can take the port in
# between), then stop it cleanly. The `with` block guarantees the stop.

# %%
import socket
import threading

import uvicorn


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# %% tags=["nbval-check-output"]
with (
    serve_in_thread(create_app()) as base_url,
    httpx.Client(base_url=base_url) as client,
):
    for question in ["what is p95?", "why buckets?", " "]:
        client.get("/answer", params={"q": question})
    page = client.get("/metrics")

print(page.status_code, page.headers["content-type"])
for line in page.text.splitlines():
    if line.startswith(("http_requests_total", "http_request_duration_seconds_count")):
        print(line)

# %% [markdown]
# That page is what Prometheus scrapes. In production you point a Prometheus server (or
# an agent of your cloud's monitoring) at it, and graph `rate(http_requests_total[5m])`
# by status, or the p95 from the histogram, and alert when they cross a line.

# %% [markdown]
# ## Check your understanding
#
# **1.** Your service's mean LLM latency is 1.1 s and has not changed all week, but users
# complain that it got slow on Tuesday. What would you look at, and why might the mean
# not show it?
#
# ```{admonition} Answer
# :class: dropdown
# The tail: p95 and p99 (from the latency histogram), by model and by provider. If 5 % of
# requests went from 1 s to 6 s while the rest got slightly faster, the mean barely moves
# and the p95 jumps. Then the logs of a few slow requests (found by their request IDs)
# show where the time went: retrieval, a retry after a 429, or the model call itself.
# ```
#
# **2.** A colleague stores the current request ID in a module-level variable that the
# request handler sets on entry. It works in every test. Why does it break in
# production, and what is the fix?
#
# ```{admonition} Answer
# :class: dropdown
# The tests run one request at a time. In production an async server handles many
# requests concurrently in one thread: request B sets the global while request A is
# waiting on the model, and A's later lines carry B's ID. A `ContextVar` gives each
# asyncio task its own copy (taken when the task is created), so concurrent requests
# cannot see each other's value. Set it with a token and `reset()` it when the request
# ends so it does not linger.
# ```
#
# **3.** Why should `user_id` or `prompt` never be a Prometheus label, when they are fine
# as log fields?
#
# ```{admonition} Answer
# :class: dropdown
# Every distinct combination of label values is a separate time series that Prometheus
# stores and indexes forever (within retention). A label with unbounded values creates
# millions of series: memory, disk and query time explode. Labels are for small fixed
# sets (method, model, status, outcome). High-cardinality details belong in logs, where
# each event is stored once and found by search.
# ```
#
# **4.** Where do you enforce "never log API keys": in each `log.info(...)` call, or
# somewhere else? Why?
#
# ```{admonition} Answer
# :class: dropdown
# In the logging pipeline itself: a processor (structlog) or a filter (stdlib) that sees
# every event and redacts known secret keys, including nested ones such as headers.
# A rule that depends on every call site remembering it fails the first time someone
# logs a whole request or config object. Keep secrets in types that refuse to print
# themselves as well (Pydantic's `SecretStr`, chapter 5).
# ```

# %% [markdown]
# ## Summary
#
# - Libraries get loggers; the entry point configures logging once.
# - Log events as JSON, with stable names and fields; redact secrets in a processor.
# - A `ContextVar` carries the request ID through concurrent tasks without leaking; bind
#   it into every log line and pass it on in `X-Request-ID`.
# - Time with `perf_counter`; find memory hogs with `tracemalloc`.
# - Watch percentiles, not means. Count with Prometheus counters, measure with
#   histograms whose buckets fit your latencies, and serve them on `/metrics`.
#
# Now make a service observable in [the exercises](../exercises/08_observability).

# %% [markdown]
# ## Next
#
# After the exercises, [Chapter 9](09_testing) tests LLM code without calling an LLM:
# fixtures, mocks and snapshots.
