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

# %% [markdown] tags=["remove-cell"]
# > This file is generated from solutions/ by `python -m course generate`; edit the solution instead.

# %% [markdown]
# # Exercises 11: assemble the ticket triage service
#
# You will put together the service of [the lesson](../chapters/11_capstone): it takes a
# batch of support tickets, asks a model to label, prioritise and summarise each one,
# and returns a report that accounts for every ticket. The plumbing is given (the
# errors, the streaming client, the rate gate, the logger); you write the parts where
# the decisions are:
#
# | exercise | what you build | points |
# |---|---|---|
# | `triage_settings` | `TriageSettings`: the configuration, read from the environment and checked | 3 |
# | `triage_output` | `Triage` and `parse_triage`: the model's answer, extracted and validated | 3 |
# | `triage_telemetry` | `Telemetry`: JSON log lines and Prometheus metrics for every call and ticket | 3 |
# | `triage_retries` | `TriageService.backoff` and `triage_one`: the gate, retries, backoff, repair | 4 |
# | `triage_batch` | `stream_outcomes` and `run_batch`: a batch with progress and partial failures | 4 |
#
# Write your answers where a cell raises `NotImplementedError`, save the notebook, and
# run the `check(...)` cell at the end of each exercise. The exercises are independent:
# the tests of each one use their own stand-ins for the others, so you can do them in
# any order. The last cell runs the whole service once everything is done.
#
# The tests run your code against the course's local LLM server, with faults injected
# through the base URL (`server.url("fail_first:2:503", key=...)`), and read what the
# server saw: which requests arrived, with which `X-Request-ID`, how many at once. They
# never measure time: your retry loop sleeps through a function the tests replace.

# %%
# mypy: disable-error-code="top-level-await"
# (Jupyter runs an event loop, so a notebook may `await` at the top level; mypy would
# flag it.)
import asyncio
import json
import logging
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, TextIO

import httpx
import structlog
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from structlog.contextvars import bound_contextvars

# %% [markdown]
# ## Given: tickets and errors
#
# Read these; you will use them, not change them. A `Ticket` is validated input. The
# errors are the lesson's: everything under `RetryableError` is worth another attempt,
# `BadRequest` is not, and each class has a `kind`, the short name that logs, metrics
# and reports use.

# %%
Label = Literal["billing", "bug", "account", "question"]
Priority = Literal["low", "normal", "high", "urgent"]


class Ticket(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    text: str = Field(min_length=1, max_length=4000)


class TriageError(Exception):
    """Base of the service's errors; ``kind`` names it in logs, metrics and reports."""

    kind: ClassVar[str] = "error"


class RetryableError(TriageError):
    """Transient: the same request may well succeed if sent again."""


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
    kind = "stream_broken"


class InvalidOutput(RetryableError):
    """The model answered, but not with a valid triage. Retried with the errors in the
    prompt."""

    kind = "invalid_output"


class BadRequest(TriageError):
    kind = "bad_request"


# %% [markdown]
# ## Exercise `triage_settings` (3 points)
#
# Write `TriageSettings`, a `BaseSettings` that reads each field from the environment
# variable `TRIAGE_` + the field name in capitals (`TRIAGE_MAX_CONCURRENCY`). Unknown
# `TRIAGE_...` variables are ignored. No `.env` file: in production the platform sets the
# environment.
#
# | field | type | default | rule |
# |---|---|---|---|
# | `base_url` | `str` | `"http://127.0.0.1:8000"` | starts `http://` or `https://`; a final `/` is cut |
# | `api_key` | `SecretStr` | required | at least 8 characters |
# | `model` | `str` | `"mock-gpt"` | at least 1 character |
# | `max_concurrency` | `int` | `4` | from 1 to 32 |
# | `requests_per_second` | `float` | `10.0` | greater than 0, at most 100 |
# | `max_attempts` | `int` | `3` | from 1 to 10 |
# | `backoff_base_s` | `float` | `0.1` | greater than 0, at most 10 |
# | `backoff_max_s` | `float` | `2.0` | greater than 0, at most 60, **and at least `backoff_base_s`** |
# | `timeout_s` | `float` | `30.0` | greater than 0, at most 120 |
#
# Ranges include their ends ("from 1 to 32" accepts 1 and 32). Report a bad `base_url`
# and the last rule of `backoff_max_s` as errors **on those fields** (a `field_validator`;
# for the second, read the already-validated `backoff_base_s` from `info.data`), so an
# operator reads which variable to fix. That rule holds for the default too:
# `TRIAGE_BACKOFF_BASE_S=3` alone is an error on `backoff_max_s`, whose default is 2.0.
# (`BaseSettings` validates defaults, so a `field_validator` sees them; a plain
# `BaseModel` would need `Field(..., validate_default=True)`.)

# %%
class TriageSettings(BaseSettings):
    pass


# %% tags=["demo"]
print(
    repr(
        TriageSettings(
            api_key=SecretStr("sk-demo-123456"), base_url="http://localhost:8000/"
        )
    )
)

# %%
from course.check import check

check("triage_settings")

# %% [markdown]
# ## Exercise `triage_output` (3 points)
#
# **The model.** Write `Triage`, the answer the model must give for one ticket:
#
# | field | type | rule |
# |---|---|---|
# | `label` | `Label` | case and surrounding spaces do not matter: `" Billing "` is `"billing"` |
# | `priority` | `Priority` | the same: `"URGENT"` is `"urgent"` |
# | `summary` | `str` | surrounding spaces removed, then 1 to 200 characters |
# | `needs_human` | `bool` | |
#
# Keys the model adds (a `"reasoning"`, say) are ignored, as Pydantic does by default.
# Normalise `label` and `priority` in a `mode="before"` validator (a string is stripped
# and lowered, anything else is left for the normal validation to reject).
#
# **The parser.** Write `parse_triage(text)`: it finds the JSON object in the model's
# answer and validates it as a `Triage`. The object may be the whole text, in a fenced
# block (with or without `json` after the backticks), or in the middle of prose.
# Every failure raises `InvalidOutput` (given above), raised `from` the original error:
#
# - no JSON object in the text: any message;
# - JSON that is not a valid `Triage`: a message that names each failing field (its
#   `loc`, joined with dots) with the error's `type` (`label: literal_error`), and
#   **never the input**. The message goes to logs and into the next prompt; the input
#   may be a customer's words. `str(exc)` of a `ValidationError` includes the input, so
#   build the message from `exc.errors()`.

# %%
class Triage(BaseModel):
    pass


def parse_triage(text: str) -> Triage:
    """The ``Triage`` in a model's answer; ``InvalidOutput`` when there is none."""
    raise NotImplementedError("Write parse_triage(): see the instructions above.")


# %% tags=["demo"]
print(
    parse_triage(
        'Sure!\n```json\n{"label": "Bug", "priority": "high", "summary": " Crash ", '
        '"needs_human": false}\n```'
    )
)
try:
    parse_triage(
        '{"label": "complaint", "priority": "high", "summary": "", '
        '"needs_human": false}'
    )
except InvalidOutput as exc:
    print("InvalidOutput:", exc)

# %%
check("triage_output")

# %% [markdown]
# ## Given: outcomes, the prompt, the client, the gate, the logger
#
# The rest of the plumbing, as in the lesson. `TicketOutcome` is what happened to one
# ticket; `TriageReport` is the batch, with computed counts. `build_prompt` asks for the
# `Triage` schema and, after an invalid answer, says what was wrong with it.
# `LLMClient.complete` streams one answer and raises the errors above. `RateGate` is an
# async context manager that caps concurrency and the request rate.

# %%
class TicketOutcome(BaseModel):
    ticket_id: str
    triage: Triage | None = None
    error: str | None = None
    """The ``kind`` of the last error when the ticket failed, else None."""
    attempts: int = Field(ge=0)
    request_ids: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.triage is not None


class TriageReport(BaseModel):
    batch_id: str
    outcomes: list[TicketOutcome]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def succeeded(self) -> int:
        return sum(outcome.ok for outcome in self.outcomes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.succeeded

    @computed_field  # type: ignore[prop-decorator]
    @property
    def by_label(self) -> dict[str, int]:
        return dict(
            sorted(Counter(o.triage.label for o in self.outcomes if o.triage).items())
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def errors(self) -> dict[str, int]:
        return dict(sorted(Counter(o.error for o in self.outcomes if o.error).items()))


def build_prompt(ticket: Ticket, feedback: str | None = None) -> list[dict[str, str]]:
    """The chat messages for one ticket; ``feedback`` says what was wrong with the last
    answer."""
    system = (
        "You triage customer support tickets. Answer with one JSON object and nothing "
        "else, "
        f"matching this JSON Schema: {json.dumps(Triage.model_json_schema())}"
    )
    messages = [
        {"role": "system", "content": system},
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


# %%
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
        try:
            async with self.http.stream(
                "POST",
                f"{settings.base_url}/v1/chat/completions",
                json=body,
                headers=headers,
                timeout=settings.timeout_s,
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
        """The whole answer; sends ``request_id`` as the request's X-Request-ID."""
        return "".join([piece async for piece in self.stream(messages, request_id)])


# %%
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
    """``async with gate:`` waits for one of ``max_concurrency`` slots, then for a
    token."""

    def __init__(self, max_concurrency: int, per_second: float) -> None:
        self.slots = asyncio.Semaphore(max_concurrency)
        self.bucket = TokenBucket(per_second, capacity=max_concurrency)

    async def __aenter__(self) -> None:
        await self.slots.acquire()
        try:
            await self.bucket.acquire()
        except BaseException:
            self.slots.release()
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.slots.release()


def make_logger(stream: TextIO) -> Any:
    """A structlog logger writing JSON lines to ``stream``, with the context's bound
    variables."""
    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


# %% [markdown]
# ## Exercise `triage_telemetry` (3 points)
#
# Write `Telemetry(log, registry)`: the one place where the service reports what it
# does. `log` is a logger from `make_logger`. The constructor registers three metrics
# **in `registry`** (never in the process-wide default registry: two services, or two
# tests, each have their own):
#
# | attribute | type | name | labels |
# |---|---|---|---|
# | `calls` | `Counter` | `triage_llm_calls` (read as `triage_llm_calls_total`) | `outcome` |
# | `latency` | `Histogram` | `triage_llm_call_seconds`, buckets `LATENCY_BUCKETS` | none |
# | `tickets` | `Counter` | `triage_tickets` (read as `triage_tickets_total`) | `outcome` |
#
# `call_finished(*, ticket_id, request_id, attempt, outcome, seconds)` reports one LLM
# call; `outcome` is `"ok"` or an error's `kind`. It counts the call under its outcome,
# observes `seconds` in the histogram, and logs the event `"llm.call"` with the fields
# `ticket_id`, `request_id`, `attempt`, `outcome` and `latency_ms` (`seconds` in
# milliseconds, rounded to 1 decimal), at level info when the outcome is `"ok"` and
# warning otherwise.
#
# `ticket_finished(outcome)` reports a finished ticket (a `TicketOutcome`). It counts it
# under `"ok"` or its `error`, and logs `"ticket.done"` with `ticket_id`, `ok`,
# `attempts`, `error` (None when it worked) and `label` (None when it failed), at level
# info when it worked and error otherwise.

# %%
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class TelemetrySink(Protocol):
    """What the service needs from telemetry (the tests of other exercises pass a spy).
    """

    def call_finished(
        self,
        *,
        ticket_id: str,
        request_id: str,
        attempt: int,
        outcome: str,
        seconds: float,
    ) -> None: ...

    def ticket_finished(self, outcome: TicketOutcome) -> None: ...


class Telemetry:
    def __init__(self, log: Any, registry: CollectorRegistry) -> None:
        self.log = log
        raise NotImplementedError(
            "Write Telemetry.__init__(): see the instructions above."
        )

    def call_finished(
        self,
        *,
        ticket_id: str,
        request_id: str,
        attempt: int,
        outcome: str,
        seconds: float,
    ) -> None:
        raise NotImplementedError(
            "Write Telemetry.call_finished(): see the instructions above."
        )

    def ticket_finished(self, outcome: TicketOutcome) -> None:
        raise NotImplementedError(
            "Write Telemetry.ticket_finished(): see the instructions above."
        )


# %% tags=["demo"]
demo_telemetry = Telemetry(make_logger(sys.stdout), CollectorRegistry())
demo_telemetry.call_finished(
    ticket_id="T-1",
    request_id="T-1-1",
    attempt=1,
    outcome="server_error",
    seconds=0.0123,
)
demo_telemetry.ticket_finished(
    TicketOutcome(ticket_id="T-1", error="server_error", attempts=1)
)

# %%
check("triage_telemetry")

# %% [markdown]
# ## Exercise `triage_retries` (4 points)
#
# `TriageService` is given its parts in `__init__`: the settings, an `LLMClient`, a
# `RateGate` in `self.gate`, the telemetry, a random generator and a `sleep` function.
# Write two methods.
#
# **`backoff(attempt)`** is the wait after failed attempt number `attempt` (1 for the
# first): full jitter, a random number from `self.rng.uniform(0, cap)` where `cap` is
# `backoff_base_s * 2 ** (attempt - 1)`, but never more than `backoff_max_s`.
#
# **`await triage_one(ticket)`** returns the ticket's `TicketOutcome`. Up to
# `settings.max_attempts` attempts, numbered from 1; attempt `n` of ticket `T-7`:
#
# 1. uses the request ID `f"{ticket.id}-{n}"` (add it to the outcome's `request_ids`);
# 2. inside `async with self.gate:`, calls
#    `await self.client.complete(build_prompt(ticket, feedback), request_id)`; then
#    `parse_triage` on the answer;
# 3. reports the call: `self.telemetry.call_finished(...)` with keyword arguments, the
#    outcome `"ok"` or the error's `kind`, and the seconds from entering the gate to the
#    parsed answer or the error (`time.perf_counter()`; the wait for the gate is your own
#    queue, not the provider's latency);
# 4. on success, the outcome has the `triage`, the `attempts` made and the request IDs;
# 5. on a `TriageError`:
#    - not retryable (`BadRequest`), or the last attempt: stop; the outcome has
#      `error=` the last error's `kind`, the attempts made and the request IDs;
#    - `InvalidOutput`: the next prompt gets `feedback=str(error)`, so the model learns
#      what was wrong (keep that feedback for the attempts after it);
#    - then wait with `await self.sleep(seconds)`: a `RateLimited` error's
#      `retry_after` when it has one, otherwise `self.backoff(n)`. Sleep **outside**
#      the gate: a sleeping task must not hold a concurrency slot.
#
# Whatever the result, call `self.telemetry.ticket_finished(outcome)` once before
# returning it. Other exceptions (bugs) are not caught here.

# %%
class TriageService:
    def __init__(
        self,
        settings: TriageSettings,
        http: httpx.AsyncClient,
        telemetry: TelemetrySink,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.client = LLMClient(settings, http)
        self.gate = RateGate(settings.max_concurrency, settings.requests_per_second)
        self.telemetry = telemetry
        self.rng = rng or random.Random()
        self.sleep = sleep

    def backoff(self, attempt: int) -> float:
        raise NotImplementedError(
            "Write TriageService.backoff(): see the instructions above."
        )

    async def triage_one(self, ticket: Ticket) -> TicketOutcome:
        raise NotImplementedError(
            "Write TriageService.triage_one(): see the instructions above."
        )


# %%
check("triage_retries")

# %% [markdown]
# ## Exercise `triage_batch` (4 points)
#
# Two functions run a batch through anything with a `triage_one` method and a
# `telemetry` (a `TriageService`, or the tests' stand-in).
#
# **`stream_outcomes(service, tickets)`** is an async generator:
#
# - it runs every ticket's `service.triage_one(ticket)` **concurrently**, one task each
#   (the service's gate decides how many requests really run at once), and yields each
#   `TicketOutcome` as soon as it is ready: in completion order, not input order;
# - a ticket whose `triage_one` raises an `Exception` (a bug) must not sink the batch:
#   it becomes `TicketOutcome(ticket_id=..., error="internal_error", attempts=0)`, which
#   is reported with `service.telemetry.ticket_finished(...)` and yielded like the rest;
# - when the generator is closed before the end (the caller stops early and closes it,
#   or is cancelled), the tasks still running are cancelled **and awaited** before it
#   finishes: no request outlives its batch. A `try`/`finally` around the loop does it.
#
# **`await run_batch(service, tickets, on_progress=None)`** returns the `TriageReport`:
#
# - ticket IDs must be unique: a duplicate raises `ValueError` before any work starts;
# - `batch_id` is a new `uuid.uuid4().hex[:8]`, bound with
#   `structlog.contextvars.bound_contextvars(batch_id=...)` while the batch runs, so every
#   log line of every ticket carries it (tasks copy the context they are created in), and
#   unbound afterwards;
# - it consumes `stream_outcomes` and, after each outcome, calls
#   `on_progress(done, total, outcome)` if given (`done` counts from 1);
# - the report lists the outcomes **in input order**.

# %%
class Triager(Protocol):
    telemetry: TelemetrySink

    async def triage_one(self, ticket: Ticket) -> TicketOutcome: ...


async def stream_outcomes(
    service: Triager, tickets: Sequence[Ticket]
) -> AsyncIterator[TicketOutcome]:
    raise NotImplementedError("Write stream_outcomes(): see the instructions above.")


async def run_batch(
    service: Triager,
    tickets: Sequence[Ticket],
    on_progress: Callable[[int, int, TicketOutcome], None] | None = None,
) -> TriageReport:
    raise NotImplementedError("Write run_batch(): see the instructions above.")


# %%
check("triage_batch")

# %% [markdown]
# ## The whole service
#
# With every part in place, run a batch against the local server, with a "model" that
# answers in JSON (sometimes in a fence, sometimes in prose first) and a provider that
# fails the first two requests. (A demo: it needs every exercise done.)

# %% tags=["demo"]
from course.llm_server import LLMServer


def support_model(prompt: str) -> str:
    """Plays the LLM: labels the ticket in the prompt by keywords."""
    ticket = prompt.split("Ticket:", 1)[1].split("\n", 1)[0].strip()
    if "lorem" in ticket.lower() and "was not valid" not in prompt:
        return "Happy to help! Could you tell me a little more?"
    label = (
        "billing" if "invoice" in ticket else "bug" if "crash" in ticket else "question"
    )
    answer = json.dumps(
        {
            "label": label,
            "priority": "normal",
            "summary": ticket[:60],
            "needs_human": False,
        }
    )
    return f"```json\n{answer}\n```" if label == "bug" else answer


async def whole_service_demo() -> None:
    tickets = [
        Ticket(id="T-1", text="Where is my invoice?"),
        Ticket(id="T-2", text="The app crashes."),
        Ticket(id="T-3", text="Lorem ipsum."),
        Ticket(id="T-4", text="Do you ship to Norway?"),
    ]
    async with (
        LLMServer(replies={"Ticket:": support_model}) as server,
        httpx.AsyncClient() as http,
    ):
        settings = TriageSettings(
            base_url=server.url("fail_first:2:503", key="demo"),
            api_key=SecretStr(server.api_key),
            backoff_base_s=0.02,
        )
        telemetry = Telemetry(make_logger(sys.stdout), CollectorRegistry())
        service = TriageService(settings, http, telemetry)
        report = await run_batch(service, tickets)
    print(
        report.model_dump_json(
            indent=2, include={"succeeded", "failed", "by_label", "errors"}
        )
    )


await whole_service_demo()

# %% [markdown]
# ## What next
#
# - Run each `check("...")` cell above: it runs that exercise's tests and says what
#   passes and what a failing test expected.
# - From a terminal, `course check 11_capstone` grades the whole chapter the way the
#   grader will (see [Checking and grading your work](../grading)).
# - That was the last chapter: `course progress` shows what you have passed, and
#   the [appendix](../appendix/cheat_sheet) gathers the course on one page.
