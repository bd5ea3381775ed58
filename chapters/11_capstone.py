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
# # 11. Capstone: a ticket triage service
#
# Every chapter so far built one part of an LLM service in isolation. This one puts the
# parts together into one small service that you could deploy: a **support ticket triage
# service**. It takes a batch of customer tickets, asks a model to label each one
# (billing, bug, account or question), rate its priority and summarise it in one line,
# and returns a typed report that says what worked and what did not.
#
# It is small on purpose (a few hundred lines), but it does what production code has to,
# with a part from each chapter:
#
# - **Typed data** ([chapter 2](02_type_hints), [chapter 5](05_pydantic)): Pydantic models
#   for the tickets, the model's answer and the report.
# - **Configuration checked at start-up** ([chapter 5](05_pydantic)): a `BaseSettings`
#   class read from the environment, with the API key as a `SecretStr`.
# - **Model output not trusted** ([chapter 5](05_pydantic)): JSON pulled out of prose and
#   code fences, validated, and repaired by asking again with the errors.
# - **A shared, flaky provider handled with care** ([chapter 4](04_async),
#   [chapter 6](06_resilience), [chapter 7](07_streaming)): a streaming client, a
#   concurrency cap, a token bucket, retries with backoff and jitter.
# - **One failure does not sink a batch** ([chapter 6](06_resilience)): each ticket ends
#   as a result or a named error, and the report counts both.
# - **You can tell what happened** ([chapter 8](08_observability)): JSON logs with a batch
#   ID and a request ID per call, and Prometheus metrics.
# - **It stays correct** ([chapter 9](09_testing)): tests against the local LLM server,
#   with injected faults.
#
# The lesson builds the service step by step, runs it, then breaks the provider the ways
# real providers break (errors, rate limits, dropped streams, stalls, outages) and
# watches the service cope. At the end,
# [the exercises](../exercises/11_capstone) have you assemble the key parts yourself.

# %% [markdown]
# ## The model, played by the local server
#
# A real triage model reads the ticket and answers in JSON. The course's local LLM server
# can play that part: started with `replies={marker: function}`, it answers any prompt
# that contains the marker with whatever the function returns for the prompt. Here the
# function labels tickets by keywords. Like a real model, it is not perfectly obedient:
# it wraps some answers in a code fence, and answers some tickets in chatty prose instead
# of JSON: a lorem-ipsum ticket until the prompt says the last answer was invalid, a
# gibberish one (`xyzzy`) every time.

# %%
import json

from course.llm_server import LLMServer

KEYWORDS = {
    "billing": ("refund", "charged", "invoice"),
    "bug": ("error", "crash", "broken"),
    "account": ("password", "log in", "locked"),
}


def support_model(prompt: str) -> str:
    """Plays the LLM: triages the ticket in the prompt by keywords and answers in JSON.
    """
    ticket = prompt.split("Ticket:", 1)[1].split("\n", 1)[0].strip()
    text = ticket.lower()
    if "xyzzy" in text or ("lorem" in text and "was not valid" not in prompt):
        return "Happy to help! Could you tell me a little more about the problem?"
    label = next(
        (name for name, words in KEYWORDS.items() if any(w in text for w in words)),
        "question",
    )
    answer = json.dumps(
        {
            "label": label.capitalize() if label == "account" else label,
            "priority": "urgent" if "asap" in text else "normal",
            "summary": ticket.split(".")[0][:60],
            "needs_human": label == "billing",
        }
    )
    return f"Here is the triage:\n```json\n{answer}\n```" if label == "bug" else answer


server = LLMServer(replies={"Ticket:": support_model}).start()

# %% [markdown]
# The rest of the page talks to `server` over real HTTP, exactly as the service would talk
# to a provider. It stays up until the last cell.

# %% [markdown]
# ## Step 1: typed models
#
# Start with the data, because everything else passes it around. Four models, each with
# a job ([chapter 5](05_pydantic)):
#
# - `Ticket` is input from outside: validate it on the way in. Its `id` ends up in an
#   HTTP header and in log lines, so a pattern keeps it short and plain.
# - `Triage` is what the model must answer. `Literal` types pin the labels, and a
#   `mode="before"` validator accepts `"Account"` for `"account"`: models are sloppy
#   about case, and refusing that would cost a retry for nothing.
# - `TicketOutcome` is what happened to one ticket: its triage **or** its error, with the
#   attempts it took and the request IDs it used.
# - `TriageReport` is the batch: every outcome, in input order, plus computed counts.

# %%
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

Label = Literal["billing", "bug", "account", "question"]
Priority = Literal["low", "normal", "high", "urgent"]


class Ticket(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    text: str = Field(min_length=1, max_length=4000)


class Triage(BaseModel):
    """The model's answer for one ticket."""

    label: Label
    priority: Priority
    summary: str = Field(min_length=1, max_length=200)
    needs_human: bool

    @field_validator("label", "priority", mode="before")
    @classmethod
    def lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class TicketOutcome(BaseModel):
    ticket_id: str
    triage: Triage | None = None
    error: str | None = None
    """The kind of the last error (``rate_limited``, ``invalid_output``...) when it
    failed."""
    attempts: int
    request_ids: list[str] = Field(default_factory=list)

    @computed_field
    @property
    def ok(self) -> bool:
        return self.triage is not None


class TriageReport(BaseModel):
    batch_id: str
    outcomes: list[TicketOutcome]

    @computed_field
    @property
    def succeeded(self) -> int:
        return sum(outcome.ok for outcome in self.outcomes)

    @computed_field
    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.succeeded

    @computed_field
    @property
    def by_label(self) -> dict[str, int]:
        return dict(
            sorted(Counter(o.triage.label for o in self.outcomes if o.triage).items())
        )

    @computed_field
    @property
    def errors(self) -> dict[str, int]:
        return dict(sorted(Counter(o.error for o in self.outcomes if o.error).items()))


# %% [markdown]
# The report is a **partial-failure** result ([chapter 6](06_resilience)): a batch of 500
# tickets where 3 failed is 497 answers and 3 named failures, not an exception. Whoever
# calls the service decides what to do with the 3 (retry them tonight, send them to a
# person); the service's job is to say exactly which ones they are and why.

# %% [markdown]
# ## Step 2: settings, validated at start-up
#
# Every number that an operator may want to change without a deploy goes into one
# settings class ([chapter 5](05_pydantic)): where the provider is, the key, and the
# limits that protect it. Each field has a range, so a typo fails the start-up instead of
# the 500th request.

# %%
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TriageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    base_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr = Field(min_length=8)
    model: str = "mock-gpt"
    max_concurrency: int = Field(default=4, ge=1, le=32)
    requests_per_second: float = Field(default=10.0, gt=0, le=100)
    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base_s: float = Field(default=0.1, gt=0, le=10)
    backoff_max_s: float = Field(default=2.0, gt=0, le=60)
    timeout_s: float = Field(default=30.0, gt=0, le=120)
    """The longest wait for the next chunk of a streamed answer."""


# %% [markdown]
# (The exercises add two rules that involve a field's value or another field: `base_url`
# must be an HTTP URL, and `backoff_max_s` may not be below `backoff_base_s`.)
#
# In production the values come from the environment (set by the platform, never
# committed). Set a few here, and see the key stay masked:

# %% tags=["nbval-check-output"]
import os

os.environ.update(
    {"TRIAGE_API_KEY": "sk-live-0123456789", "TRIAGE_MAX_CONCURRENCY": "8"}
)
settings = TriageSettings()
print(
    settings.max_concurrency, type(settings.max_concurrency).__name__, settings.api_key
)
print(repr(settings)[:80], "...")

# %% [markdown]
# And a bad value stops the service before it does anything, with a message that names
# the variable and leaves the input out (it could be the key):

# %% tags=["nbval-check-output"]
from pydantic import ValidationError

os.environ["TRIAGE_MAX_CONCURRENCY"] = "0"
try:
    TriageSettings()
except ValidationError as exc:
    for error in exc.errors(include_input=False, include_url=False):
        print(f"TRIAGE_{'__'.join(map(str, error['loc'])).upper()}: {error['msg']}")
for name in ("TRIAGE_API_KEY", "TRIAGE_MAX_CONCURRENCY"):
    del os.environ[name]

# %% [markdown]
# ## Step 3: the prompt, and parsing what comes back
#
# The prompt puts the JSON Schema of `Triage` in the system message, so the model knows
# the exact shape wanted. When an answer was invalid, the next prompt says why: the
# validation errors tell the model what to fix, which makes a retry far more likely to
# work than the same prompt again.

# %%
SYSTEM = (
    "You triage customer support tickets. Answer with one JSON object and nothing "
    "else, "
    f"matching this JSON Schema: {json.dumps(Triage.model_json_schema())}"
)


def build_prompt(ticket: Ticket, feedback: str | None = None) -> list[dict[str, str]]:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Ticket: {ticket.text}"},
    ]
    if feedback:
        messages.append(
            {
                "role": "user",
                "content": f"Your last answer was not valid ({feedback}). "
                "Answer again with the JSON object only.",
            }
        )
    return messages


# %% [markdown]
# The answer is parsed in two steps, each with its own failure ([chapter 5](05_pydantic)):
# find the JSON (bare, in a fence, or inside prose), then validate it. Both failures
# become one exception of the service, `InvalidOutput`, raised `from` the original so the
# traceback keeps it. Its message names the fields and error types but never the input:
# the message goes to logs, and the input is a customer's words.

# %%
import re
from typing import Any, ClassVar

FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)
_decoder = json.JSONDecoder()


class TriageError(Exception):
    """Base of the service's errors; ``kind`` names it in logs, metrics and reports."""

    kind: ClassVar[str] = "error"


class RetryableError(TriageError):
    """Transient: the same request may well succeed if sent again."""


class InvalidOutput(RetryableError):
    kind = "invalid_output"


def extract_json(text: str) -> Any:
    """The first JSON value in a model's answer: the whole text, a fenced block, or
    inside prose."""
    candidates = [text.strip(), *(m.group(1) for m in FENCE.finditer(text))]
    candidates += [text[i:] for i, char in enumerate(text) if char == "{"]
    for candidate in candidates:
        try:
            return _decoder.raw_decode(candidate)[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object in the answer")


def parse_triage(text: str) -> Triage:
    try:
        data = extract_json(text)
    except ValueError as exc:
        raise InvalidOutput(str(exc)) from exc
    try:
        return Triage.model_validate(data)
    except ValidationError as exc:
        problems = ", ".join(
            f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['type']}"
            for e in exc.errors()
        )
        raise InvalidOutput(
            f"the answer does not match the schema: {problems}"
        ) from exc


# %% tags=["nbval-check-output"]
for answer in (
    '{"label": "Bug", "priority": "high", "summary": "Crash", "needs_human": false}',
    'Sure!\n```json\n{"label": "billing", "priority": "low", "summary": "Refund", '
    '"needs_human": true}\n```',
    '{"label": "complaint", "priority": "soon", "summary": "", "needs_human": false}',
    "I think this is a billing question.",
):
    try:
        print("ok     ", parse_triage(answer))
    except InvalidOutput as exc:
        print("invalid", exc)

# %% [markdown]
# ## Step 4: the errors the provider can cause
#
# The rest of the service's errors follow [chapter 6](06_resilience): one class per thing
# that can go wrong, arranged by what to do about it. Everything under `RetryableError`
# is worth another attempt; a `BadRequest` is not, because the same request will fail the
# same way. One function maps an HTTP response to them; it is the only place in the
# service that knows status codes and retry headers.

# %%
import httpx


class RateLimited(RetryableError):
    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(RetryableError):
    kind = "server_error"


class ProviderTimeout(RetryableError):
    kind = "timeout"


class StreamBroken(RetryableError):
    """The stream stopped before its end, or carried a chunk that is not JSON."""

    kind = "stream_broken"


class BadRequest(TriageError):
    kind = "bad_request"


def error_for(response: httpx.Response) -> TriageError:
    status = response.status_code
    if status == 429:
        retry_ms, retry_s = (
            response.headers.get("retry-after-ms"),
            response.headers.get("retry-after"),
        )
        after = (
            float(retry_ms) / 1000 if retry_ms else float(retry_s) if retry_s else None
        )
        return RateLimited(f"HTTP 429 (retry after {after}s)", retry_after=after)
    if status >= 500 or status in (408, 409):
        return ServerError(f"HTTP {status}")
    return BadRequest(f"HTTP {status}: {response.text[:200]}")


# %% [markdown]
# ## Step 5: a streaming client
#
# The client asks for a streamed answer ([chapter 7](07_streaming)) and reads the
# server-sent events as they arrive. Streaming matters here even though nobody watches
# the words appear: the timeout becomes a limit on the **gap between chunks**, not on
# the whole answer (the read timeout of `httpx` applies to each read), so a provider that
# stalls halfway is caught in `timeout_s` while a long, steady answer is not cut off. (It
# times bytes, not text: a provider that sent only keep-alive comments would never trip
# it, though the gap timeout on text pieces of chapter 7 would.) And a stream that stops
# without its final `[DONE]` is a broken answer, not a short one.
#
# Every request carries an `X-Request-ID` ([chapter 8](08_observability)). The local
# server records it, as API gateways and many providers do, which turns "your API failed
# at 14:02" into a line both sides can find.

# %%
from collections.abc import AsyncIterator


class LLMClient:
    """Streams chat completions from an OpenAI-style API; raises the service's errors.
    """

    def __init__(self, settings: TriageSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def stream(
        self, messages: list[dict[str, str]], request_id: str
    ) -> AsyncIterator[str]:
        settings = self.settings
        secret = settings.api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {secret}", "X-Request-ID": request_id}
        body = {"model": settings.model, "messages": messages, "stream": True}
        url = f"{settings.base_url}/v1/chat/completions"
        try:
            async with self.http.stream(
                "POST", url, json=body, headers=headers, timeout=settings.timeout_s
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line.removeprefix("data: ")
                    if data == "[DONE]":
                        return
                    try:
                        delta = json.loads(data)["choices"][0]["delta"].get("content")
                    except (ValueError, KeyError, IndexError) as exc:
                        raise StreamBroken(f"unreadable chunk: {data[:60]!r}") from exc
                    if delta:
                        yield delta
                raise StreamBroken("the stream ended without [DONE]")
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"no data for {settings.timeout_s}s") from exc
        except httpx.RemoteProtocolError as exc:
            raise StreamBroken("the connection closed mid-answer") from exc
        except httpx.TransportError as exc:
            raise ServerError(f"connection failed: {type(exc).__name__}") from exc

    async def complete(self, messages: list[dict[str, str]], request_id: str) -> str:
        return "".join([piece async for piece in self.stream(messages, request_id)])


# %% [markdown]
# Try it on its own, with one good ticket and one dropped stream:

# %% tags=["nbval-check-output"]
http = httpx.AsyncClient()  # one client for the whole service: it pools connections
demo_settings = TriageSettings(base_url=server.base_url, api_key=server.api_key)
client = LLMClient(demo_settings, http)
ticket = Ticket(id="T-1", text="I was charged twice for my March invoice.")
print(await client.complete(build_prompt(ticket), request_id="demo-1"))

broken = LLMClient(
    demo_settings.model_copy(update={"base_url": server.url("drop_stream:after=3")}),
    http,
)
try:
    await broken.complete(build_prompt(ticket), request_id="demo-2")
except StreamBroken as exc:
    print(f"{type(exc).__name__}: {exc} (caused by {type(exc.__cause__).__name__})")

# %% [markdown]
# `server.url(scenario)` is a base URL that makes the server misbehave on every request
# sent through it. The service needs no test hooks at all: faults are injected through
# its configuration, as an outage would arrive through the network.

# %% [markdown]
# ## Step 6: limits, retries and backoff
#
# A batch of 500 tickets must not become 500 simultaneous requests. Two limits protect
# the provider and your quota ([chapter 4](04_async), [chapter 6](06_resilience)): a
# **semaphore** caps the requests in flight, and a **token bucket** caps how many start
# per second. One async context manager, the *gate*, applies both.

# %%
import asyncio
import time
from types import TracebackType


class TokenBucket:
    """Allows ``rate`` starts per second on average, and bursts of up to ``capacity``.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.updated = capacity, time.monotonic()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(
                self.capacity, self.tokens + (now - self.updated) * self.rate
            )
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class RateGate:
    """``async with gate:`` waits for a concurrency slot, then for a token."""

    def __init__(self, max_concurrency: int, per_second: float) -> None:
        self.slots = asyncio.Semaphore(max_concurrency)
        self.bucket = TokenBucket(per_second, capacity=max_concurrency)

    async def __aenter__(self) -> None:
        await self.slots.acquire()
        try:
            await self.bucket.acquire()
        except BaseException:  # cancelled while waiting for a token: give the slot back
            self.slots.release()
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.slots.release()


# %% [markdown]
# Retries follow the rules of [chapter 6](06_resilience):
#
# - a `RateLimited` error waits as long as the provider's `Retry-After` says;
# - other retryable errors wait a **full-jitter** exponential backoff: a random time
#   between 0 and `backoff_base_s * 2**(attempt - 1)`, capped at `backoff_max_s`, so
#   clients that failed together do not retry together;
# - an `InvalidOutput` is retried with its validation errors in the prompt (step 3);
# - a `BadRequest` is not retried at all;
# - attempts are capped by `max_attempts`, whatever the error.
#
# One detail matters more than it looks: the backoff sleep happens **outside** the gate.
# A task that slept while holding a concurrency slot would block a healthy ticket for
# nothing, and under a rate-limit storm every slot would be held by a sleeper.

# %% [markdown]
# ## Step 7: logs and metrics
#
# The service logs JSON lines with `structlog` ([chapter 8](08_observability)). Two IDs
# travel in context variables rather than as parameters: a `batch_id` bound once per
# batch, and the `ticket_id` and `request_id` bound per attempt. Because asyncio copies
# the context into each task when it is created, every line of every ticket carries the
# batch's ID, and the lines of two tickets never swap IDs.
#
# Metrics go to a Prometheus registry of the service's own: calls by outcome, call
# latency, tickets by outcome. Outcomes are a small fixed set (`ok` and the error kinds),
# so they make safe labels; ticket IDs do not, and stay in the logs.

# %%
import io
import logging

import structlog
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter


def make_logger(stream: io.TextIOBase) -> Any:
    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


class Telemetry:
    def __init__(self, log: Any, registry: CollectorRegistry) -> None:
        self.log = log
        self.calls = PromCounter(
            "triage_llm_calls", "LLM calls by outcome.", ["outcome"], registry=registry
        )
        self.latency = Histogram(
            "triage_llm_call_seconds",
            "LLM call latency.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.tickets = PromCounter(
            "triage_tickets", "Tickets by outcome.", ["outcome"], registry=registry
        )

    def call_finished(self, outcome: str, seconds: float) -> None:
        self.calls.labels(outcome=outcome).inc()
        self.latency.observe(seconds)
        emit = self.log.info if outcome == "ok" else self.log.warning
        emit("llm.call", outcome=outcome, latency_ms=round(seconds * 1000, 1))

    def ticket_finished(self, outcome: TicketOutcome) -> None:
        self.tickets.labels(outcome="ok" if outcome.ok else str(outcome.error)).inc()
        label = outcome.triage.label if outcome.triage else None
        self.log.info(
            "ticket.done",
            ticket_id=outcome.ticket_id,
            ok=outcome.ok,
            attempts=outcome.attempts,
            error=outcome.error,
            label=label,
        )


# %% [markdown]
# ## Step 8: the service
#
# Now the parts fit together. `triage_one` is the retry loop around one ticket;
# `stream` runs a task per ticket and yields each outcome as soon as it is ready (the
# batch's progress); `run` collects them into the report, in input order.
#
# The latency is measured from inside the gate. Time spent waiting for a slot or a token
# is queueing in your own service, not slowness of the provider; counted together, the
# provider would look slow whenever your own limits bite.
#
# `stream` is an async generator, and its `finally` matters. A caller that stops
# reading early closes the generator (inside `contextlib.aclosing`, as in
# [chapter 7](07_streaming)), and a cancelled caller cancels it; either way the
# `finally` cancels the tasks still running **and awaits them**, so no request outlives
# the batch that started it.
#
# `triage_one` catches the service's own errors, not bugs: a `KeyError` in it would end
# the whole batch here. The exercises go one step further and turn such a crash into one
# more named failure, `internal_error`, so one bad ticket cannot cost the other 499.

# %%
import random
import uuid
from collections.abc import Callable, Sequence

from structlog.contextvars import bound_contextvars


class TriageService:
    def __init__(
        self,
        settings: TriageSettings,
        http: httpx.AsyncClient,
        telemetry: Telemetry,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.client = LLMClient(settings, http)
        self.gate = RateGate(settings.max_concurrency, settings.requests_per_second)
        self.telemetry = telemetry
        self.rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        cap = min(
            self.settings.backoff_max_s,
            self.settings.backoff_base_s * 2 ** (attempt - 1),
        )
        return self.rng.uniform(0, cap)

    async def triage_one(self, ticket: Ticket) -> TicketOutcome:
        request_ids: list[str] = []
        feedback: str | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            request_id = f"{ticket.id}-{attempt}"
            request_ids.append(request_id)
            with bound_contextvars(
                ticket_id=ticket.id, request_id=request_id, attempt=attempt
            ):
                try:
                    async with self.gate:
                        # the provider's time, not the queue's
                        start = time.perf_counter()
                        text = await self.client.complete(
                            build_prompt(ticket, feedback), request_id
                        )
                    triage = parse_triage(text)
                except TriageError as exc:
                    error = exc
                    self.telemetry.call_finished(exc.kind, time.perf_counter() - start)
                else:
                    self.telemetry.call_finished("ok", time.perf_counter() - start)
                    return self._finish(
                        TicketOutcome(
                            ticket_id=ticket.id,
                            triage=triage,
                            attempts=attempt,
                            request_ids=request_ids,
                        )
                    )
            if (
                not isinstance(error, RetryableError)
                or attempt == self.settings.max_attempts
            ):
                break
            if isinstance(error, InvalidOutput):
                feedback = str(error)
            wait = error.retry_after if isinstance(error, RateLimited) else None
            # outside the gate
            await asyncio.sleep(wait if wait is not None else self.backoff(attempt))
        return self._finish(
            TicketOutcome(
                ticket_id=ticket.id,
                error=error.kind,
                attempts=attempt,
                request_ids=request_ids,
            )
        )

    def _finish(self, outcome: TicketOutcome) -> TicketOutcome:
        self.telemetry.ticket_finished(outcome)
        return outcome

    async def stream(self, tickets: Sequence[Ticket]) -> AsyncIterator[TicketOutcome]:
        tasks = [asyncio.create_task(self.triage_one(ticket)) for ticket in tickets]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(
        self,
        tickets: Sequence[Ticket],
        on_progress: Callable[[int, int, TicketOutcome], None] | None = None,
    ) -> TriageReport:
        if len({t.id for t in tickets}) != len(tickets):
            raise ValueError("ticket IDs must be unique within a batch")
        batch_id = uuid.uuid4().hex[:8]
        done: dict[str, TicketOutcome] = {}
        with bound_contextvars(batch_id=batch_id):
            self.telemetry.log.info("batch.start", tickets=len(tickets))
            async for outcome in self.stream(tickets):
                done[outcome.ticket_id] = outcome
                if on_progress:
                    on_progress(len(done), len(tickets), outcome)
            report = TriageReport(
                batch_id=batch_id, outcomes=[done[t.id] for t in tickets]
            )
            self.telemetry.log.info(
                "batch.end", succeeded=report.succeeded, failed=report.failed
            )
        return report


# %% [markdown]
# ## Run it
#
# Eight tickets, the kind a support inbox gets in a minute. One is lorem ipsum (the model
# answers it in prose at first), one is gibberish (it never answers that one properly).
# A small helper builds a service with its own log stream and metrics registry, so each
# run below starts clean. The backoff is short so that the page runs in seconds.

# %%
TICKETS = [
    Ticket(
        id="T-101", text="I was charged twice for my March invoice. Please refund one."
    ),
    Ticket(id="T-102", text="The export button crashes with error 500, asap please."),
    Ticket(id="T-103", text="I cannot log in since the password reset."),
    Ticket(id="T-104", text="Do you offer a discount for charities?"),
    Ticket(id="T-105", text="Lorem ipsum dolor sit amet."),
    Ticket(id="T-106", text="The dashboard is broken after the update."),
    Ticket(id="T-107", text="xyzzy xyzzy"),
    Ticket(id="T-108", text="How do I change the address on my invoice?"),
]


def make_service(
    base_url: str, **overrides: Any
) -> tuple[TriageService, io.StringIO, CollectorRegistry]:
    settings = TriageSettings(
        base_url=base_url,
        api_key=server.api_key,
        backoff_base_s=0.02,
        requests_per_second=50,
        **overrides,
    )
    logs, registry = io.StringIO(), CollectorRegistry()
    service = TriageService(
        settings, http, Telemetry(make_logger(logs), registry), rng=random.Random(11)
    )
    return service, logs, registry


def show_progress(done: int, total: int, outcome: TicketOutcome) -> None:
    result = outcome.triage.label if outcome.triage else f"FAILED ({outcome.error})"
    print(
        f"[{done}/{total}] {outcome.ticket_id}: {result}, {outcome.attempts} attempt(s)"
    )


# %%
server.clear_log()
service, logs, registry = make_service(server.base_url)
report = await service.run(TICKETS, on_progress=show_progress)

# %% [markdown]
# The progress lines arrive in completion order, which changes from run to run. The
# report is in input order and does not:

# %% tags=["nbval-check-output"]
for outcome in report.outcomes:
    if outcome.triage:
        t = outcome.triage
        print(
            f"{outcome.ticket_id} {t.label:9} {t.priority:7} "
            f"human={t.needs_human!s:5} {t.summary!r}"
        )
    else:
        print(
            f"{outcome.ticket_id} failed: {outcome.error} after {outcome.attempts} "
            "attempts"
        )
print(report.model_dump(include={"succeeded", "failed", "by_label", "errors"}))

# %% [markdown]
# Seven answers and one named failure. T-105 took two attempts: the first answer was
# prose, and the second prompt carried the error. T-107 used its three attempts and is
# reported as `invalid_output`, ready for a person to look at.

# %% [markdown]
# ### What the logs say
#
# Every line is JSON, so the logs are data you can filter. Here is T-105's story, pulled
# out of the interleaved lines of the whole batch by its `ticket_id`:

# %% tags=["nbval-check-output"]
events = [json.loads(line) for line in logs.getvalue().splitlines()]
print(
    len(events),
    "lines, all from batch",
    {e["batch_id"] for e in events} == {report.batch_id},
)
for event in events:
    if event.get("ticket_id") == "T-105":
        fields = {
            k: event[k]
            for k in ("request_id", "outcome", "attempts", "label")
            if k in event
        }
        print(f"{event['level']:8} {event['event']:11} {fields}")

# %% [markdown]
# And the request IDs in those lines are the ones the provider received, so one search
# on either side finds the other. The local server keeps a log of what it saw:

# %% tags=["nbval-check-output"]
for record in server.log:
    if record.request_id.startswith("T-105"):
        print(record.request_id, record.status, "streamed" if record.streamed else "")
print(
    "never more than 4 requests in flight:", max(r.in_flight for r in server.log) <= 4
)

# %% [markdown]
# ### What the metrics say
#
# Logs tell one ticket's story; metrics count all of them. A test (or a dashboard) reads
# them from the registry:

# %% tags=["nbval-check-output"]
for outcome in ("ok", "invalid_output"):
    calls = registry.get_sample_value("triage_llm_calls_total", {"outcome": outcome})
    tickets = registry.get_sample_value("triage_tickets_total", {"outcome": outcome})
    print(f"outcome={outcome:15} calls={calls:.0f} tickets={tickets:.0f}")
print(
    "latency observations:", registry.get_sample_value("triage_llm_call_seconds_count")
)

# %% [markdown]
# In a deployed service a `/metrics` route returns `generate_latest(registry)`, as in
# [chapter 8](08_observability); an alert on the rate of `triage_tickets_total` with an
# error outcome tells you about T-107's cousins before the customers do.

# %% [markdown]
# ### Stopping early
#
# A caller that needs only the first answers (a preview, a user who closed the page)
# reads from `stream` and stops. `aclosing` closes the generator on the way out, and
# nothing is left running:

# %% tags=["nbval-check-output"]
from contextlib import aclosing

service, _, _ = make_service(server.base_url)
read = []
async with aclosing(service.stream(TICKETS)) as outcomes:
    async for outcome in outcomes:
        read.append(outcome)
        break
still_running = [
    t
    for t in asyncio.all_tasks()
    if "triage_one" in getattr(t.get_coro(), "__qualname__", "")
]
print(
    f"read {len(read)} of {len(TICKETS)} outcomes; triage tasks still running: "
    f"{len(still_running)}"
)

# %% [markdown]
# ## Under fire
#
# Now break the provider. Each run below sends the seven answerable tickets through a
# base URL that injects one fault, and reports what the service did. The `X-Mock-Key` in
# the URL gives each run its own fault counter, so `fail_first:3:503` means "the first
# three requests of this run fail".

# %%
def retries_by_kind(registry: CollectorRegistry) -> dict[str, int]:
    found = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if (
                sample.name == "triage_llm_calls_total"
                and sample.labels["outcome"] != "ok"
            ):
                found[sample.labels["outcome"]] = int(sample.value)
    return dict(sorted(found.items()))


async def under_fire(scenario: str, **overrides: Any) -> TriageReport:
    server.clear_log()
    key = f"fire-{uuid.uuid4().hex[:6]}"
    service, _, registry = make_service(server.url(scenario, key=key), **overrides)
    report = await service.run([t for t in TICKETS if t.id != "T-107"])
    print(
        f"{scenario:42} ok={report.succeeded} failed={report.failed} "
        f"requests={len(server.log):2} "
        f"failed calls={retries_by_kind(registry)}"
    )
    return report


# %% tags=["nbval-check-output"]
await under_fire("fail_first:3:503")
await under_fire("fail_first:2:rate_limited:retry_after=0.05")
await under_fire("fail_first:2:drop_stream:after=3")
await under_fire("fail_first:1:stall", timeout_s=0.2)
_ = await under_fire("error:503")

# %% [markdown]
# Read it row by row:
#
# - **503s, 429s and dropped streams** cost one retry each, and every ticket still got its
#   answer. The 429s waited the 50 ms the server asked for; the others a jittered backoff.
#   (T-105 accounts for the one `invalid_output` in each row: its first answer is prose.)
# - **A stall** (the server accepts the request and sends nothing) was cut off by the
#   0.2 s chunk timeout and retried, instead of hanging the batch.
# - **A provider that is down** (`error:503` on every request) failed every ticket, three
#   requests each, and the service still returned a report that says so. Twenty-one
#   requests to a dead provider is the price of having no circuit breaker: with the
#   breaker of [chapter 6](06_resilience) in front of the client, the first few failures
#   would open it and the rest of the batch would fail at once, without a request.
#
# Latency shows the limits at work. With 100 ms per answer, the eight tickets go through
# in waves of four, and never more than four are in flight:

# %%
server.clear_log()
service, _, _ = make_service(server.url("latency:100ms", key="slow"))
start = time.perf_counter()
slow_report = await service.run(TICKETS)
print(f"{time.perf_counter() - start:.2f}s for {len(server.log)} requests; "
      f"most in flight at once: {max(r.in_flight for r in server.log)}")

# %% [markdown]
# ## How its tests are written
#
# The service is tested the way [chapter 9](09_testing) describes, against the real local
# server: a module-scoped fixture starts one server for the whole test file, and each
# test gives its requests their own `X-Mock-Key`, so fault counters never leak from one
# test into the next.
#
# ```python
# @pytest.fixture(scope="module")
# def server() -> Iterator[LLMServer]:
#     with LLMServer(replies={"Ticket:": support_model}) as running:
#         yield running
# ```
#
# The tests assert what can be counted (attempts, request IDs, statuses, the most
# requests in flight), never how long something took: timing assertions fail on a busy
# CI machine. Every await on the network is wrapped in a timeout, so a bug makes a test
# fail instead of hang. Here are three such tests, called by hand with the running server
# in place of the fixture:

# %%
async def test_a_dropped_stream_is_retried(server: LLMServer) -> None:
    key = f"test-{uuid.uuid4().hex[:8]}"
    service, _, _ = make_service(
        server.url("fail_first:1:drop_stream:after=3", key=key)
    )
    async with asyncio.timeout(5):
        report = await service.run([Ticket(id="T-1", text="The app crashes on start.")])
    outcome = report.outcomes[0]
    assert outcome.ok and outcome.attempts == 2, outcome
    seen = [(r.request_id, r.fault) for r in server.log if r.key == key]
    assert seen == [("T-1-1", "drop_stream:after=3"), ("T-1-2", None)], seen


async def test_concurrency_is_capped(server: LLMServer) -> None:
    key = f"test-{uuid.uuid4().hex[:8]}"
    service, _, _ = make_service(server.url("latency:50ms", key=key), max_concurrency=3)
    async with asyncio.timeout(5):
        await service.run(
            [Ticket(id=f"T-{i}", text="Where is my invoice?") for i in range(9)]
        )
    peak = max(r.in_flight for r in server.log if r.key == key)
    assert peak == 3, (
        f"expected 3 requests in flight at most (and at some point), saw {peak}"
    )


def test_parse_triage_accepts_every_wrapping() -> None:
    body = (
        '{"label": "bug", "priority": "low", "summary": "Typo", "needs_human": false}'
    )
    for wrapped in (body, f"```json\n{body}\n```", f"Sure! {body} Anything else?"):
        assert parse_triage(wrapped) == Triage(
            label="bug", priority="low", summary="Typo", needs_human=False
        )


for test in (test_a_dropped_stream_is_retried, test_concurrency_is_capped):
    await test(server)
    print("passed:", test.__name__)
test_parse_triage_accepts_every_wrapping()
print("passed: test_parse_triage_accepts_every_wrapping")

# %% [markdown]
# The first test checks behaviour from the **server's** side: which requests arrived,
# under which IDs, and which fault fired. That is stronger than checking the service's
# own counters, which a bug could get wrong in the same way as the behaviour. The second
# asserts the cap is reached as well as respected: a service that sent everything one at
# a time would pass "at most 3" and fail "exactly 3".

# %% [markdown]
# ## From notebook to service
#
# [Chapter 10](10_production) is the last step: move the cells into a package, one module
# per step of this page, with the tests beside it.
#
# ```text
# triage/
#   models.py      Ticket, Triage, TicketOutcome, TriageReport
#   settings.py    TriageSettings
#   parsing.py     build_prompt, extract_json, parse_triage
#   client.py      the errors, error_for, LLMClient, TokenBucket, RateGate
#   telemetry.py   make_logger, Telemetry
#   service.py     TriageService
#   api.py         FastAPI: POST /triage, GET /metrics, GET /health
# tests/
#   conftest.py    the module-scoped LLMServer fixture
#   test_parsing.py, test_client.py, test_service.py
# ```
#
# Then what a real deployment adds, each a small step from what you have: a circuit
# breaker and a fallback provider in front of `LLMClient` ([chapter 6](06_resilience));
# a cache keyed by the ticket text, so a re-submitted batch costs nothing; the failed
# tickets written somewhere a person or a nightly job will retry them; and a token
# budget per batch, read from the `usage` the provider returns.

# %%
await http.aclose()
server.stop()

# %% [markdown]
# ## Check your understanding
#
# **1.** In `triage_one`, the backoff sleep happens after the `async with self.gate:`
# block has ended. What would go wrong if it happened inside?
#
# ```{admonition} Answer
# :class: dropdown
# The task would hold a concurrency slot while doing nothing. With a cap of 4 and a burst
# of 429s, all four slots could be held by sleeping tasks, and healthy tickets would
# queue behind them: throughput drops exactly when the provider asks you to slow down
# politely, and a long `Retry-After` would stall the whole batch. Hold limited resources
# only for the work that needs them.
# ```
#
# **2.** Why is `InvalidOutput` retried with a changed prompt, while a 503 is retried with
# the same request?
#
# ```{admonition} Answer
# :class: dropdown
# A 503 says nothing about the request; the provider had a bad moment, and the same
# request may succeed. An invalid answer says the model misread what was wanted; the same
# prompt may well give the same answer (always, at temperature 0). The validation
# errors tell the model exactly what to fix, which makes the next attempt much more
# likely to work. Both share the `max_attempts` budget, so a model that never complies
# cannot loop forever.
# ```
#
# **3.** `run()` returns a report with failures in it instead of raising when a ticket
# fails. When is that right, and when would you raise instead?
#
# ```{admonition} Answer
# :class: dropdown
# It is right when the items are independent: 7 labelled tickets are worth having even
# if the 8th failed, and the report says precisely which one failed and why, so the
# caller can retry or escalate it. Raise when the batch only makes sense as a whole
# (steps of one transaction, chunks of one document whose summary needs every chunk),
# or when the failure is in the service itself, such as invalid settings, which must stop
# everything.
# ```
#
# **4.** The service's request IDs look like `T-105-2`, not random UUIDs. What does that
# buy you, and what does it rely on?
#
# ```{admonition} Answer
# :class: dropdown
# An ID that names the ticket and the attempt can be read without a lookup: a line in
# the provider's log saying `T-105-2` failed is the second attempt at ticket T-105. It
# relies on ticket IDs being unique within a batch (the service checks) and safe to put
# in a header (the `Ticket` model's pattern checks). Across batches the IDs repeat, so
# the logs also carry the `batch_id`; a service that needs globally unique IDs would add
# the batch ID to the request ID.
# ```
#
# **5.** A colleague proposes a test: "run 8 tickets with `latency:100ms` and
# `max_concurrency=4`, assert the batch takes between 0.2 and 0.3 seconds". What is
# wrong with it, and what would you assert instead?
#
# ```{admonition} Answer
# :class: dropdown
# It measures the machine as much as the code: on a loaded CI runner it fails at random,
# and a team that learns to rerun failing tests stops trusting them. Assert what the
# server can count: the most requests in flight was exactly 4, every ticket was
# answered, the number of requests and the request IDs are the expected ones.
# ```
#
# **6.** Under `error:503` the batch sent 21 requests to a provider that was down. How
# would you change the service so the next batch during the outage sends only a few?
#
# ```{admonition} Answer
# :class: dropdown
# Put a circuit breaker (chapter 6) between `triage_one` and the client, shared by the
# whole service: after a few failures in a row it opens, and further calls fail at once
# with a "circuit open" error that is not retried, so the rest of the batch is reported as
# failed without a request. After a cool-down one trial request checks whether the
# provider is back. With a second provider, fall back to it while the breaker is open.
# ```

# %% [markdown]
# ## Summary
#
# - A production LLM service is the course's pieces, each in its place: typed models for
#   every piece of data, settings validated at start-up, untrusted model output parsed and
#   validated at the boundary, a streaming client that maps failures to the service's own
#   errors.
# - Limits (a semaphore and a token bucket) protect the provider; retries with jittered
#   backoff, `Retry-After` and a repair prompt recover from transient failures; backoff
#   sleeps outside the limits.
# - A batch returns a report that accounts for every item, successes and named failures
#   alike, in input order; progress streams as outcomes complete, and stopping early
#   cancels what is left.
# - Context variables carry a batch ID and request IDs into every log line and every
#   request, so one ticket's story can be rebuilt from either side; metrics count what
#   logs narrate.
# - Faults come in through configuration (a base URL), so tests drive the real service
#   against the real server and assert counts and IDs, never timings.

# %% [markdown]
# ## Next
#
# Assemble the service yourself in [the exercises](../exercises/11_capstone): its
# settings, the validated model output, the telemetry, the retry loop and the batch
# runner, graded the way this page tests the service: against the local server, with
# faults injected through the base URL, counting requests instead of timing them.
# Then keep [the cheat sheet](../appendix/cheat_sheet) at hand for the day you build the
# next one.
