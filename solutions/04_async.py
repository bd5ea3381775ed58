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
# # Exercises 4: a rate-limited async client, and a slow script made fast
#
# Your evaluation harness sends a few hundred prompts to a provider that allows 100
# requests a minute, answers 429 when you go faster, and fails now and then with a 5xx.
# You will build the client that stays inside that limit, retries what is worth retrying,
# and leaves a log you can trace every request through; then you will rescue a script
# that makes the same calls one at a time while blocking the event loop.
#
# | exercise | what you build | points |
# |---|---|---|
# | `token_bucket` | `TokenBucket`: a rate limiter on a clock you control | 3 |
# | `backoff_delay` | `backoff_delay()`: exponential backoff with jitter | 2 |
# | `rate_limited_client` | `RateLimitedClient.complete()`: limit, retries, correlation IDs, logs | 7 |
# | `bounded_batch` | `answer_all()`: the slow script, concurrent, bounded and correct | 4 |
#
# The async tools you need are in [the lesson](../chapters/04_async); the token bucket
# and backoff with jitter are explained here (chapter 6 comes back to them). Write your
# answers where a cell raises `NotImplementedError`, save the notebook, and run the
# `check(...)` cell at the end of each exercise.
#
# The tests run your code against the course's local LLM server, fire 200 requests at
# it at once, and then read the **server's own request log**: when each request arrived,
# which `X-Request-ID` it carried, how many were in flight. They make the server fail on
# purpose with the `X-Mock-Scenario` header (`error:503`, `fail_first:2`,
# `rate_limited:retry_after=0.2`, `latency:200ms`, ...).

# %%
# mypy: disable-error-code="top-level-await"
# (Jupyter runs an event loop, so a notebook may `await` at the top level; mypy would
# flag it.)
import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx

# %% [markdown]
# ## Given: request bodies, answers, `Retry-After` and the error you raise
#
# Read this part; you will use it, not change it. `chat_body` and `answer_text` speak
# the OpenAI-style chat API the local server offers. `retry_after_seconds` reads how long
# a 429 (or a 503) asks you to wait: OpenAI sends `retry-after-ms` as well as the
# standard `Retry-After`, which is whole seconds or an HTTP date.

# %%
API_KEY = "sk-course-local"  # the local server accepts any non-empty key
CHAT_PATH = "/v1/chat/completions"


def chat_body(prompt: str, model: str = "mock-gpt") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def answer_text(data: Any) -> str:
    """The assistant's text from a chat completion's JSON."""
    return str(data["choices"][0]["message"]["content"])


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds the server asks you to wait before retrying, or None if it does not say.
    """
    milliseconds = response.headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class APIError(Exception):
    """A call that failed for good: a non-retryable status, or every attempt failed."""

    def __init__(self, status: int | None, request_id: str, attempts: int) -> None:
        got = f"HTTP {status}" if status is not None else "no response"
        super().__init__(
            f"request {request_id} failed after {attempts} attempt(s): {got}"
        )
        self.status = status
        """The last status received; None when the last attempt got no response at all.
        """
        self.request_id = request_id
        self.attempts = attempts


# %% [markdown]
# ## Exercise `token_bucket` (3 points)
#
# A token bucket holds at most `capacity` tokens and gains `rate` tokens per second,
# continuously. Each request takes one token; with none left, the request waits. A full
# bucket lets a short burst of `capacity` requests through at once, and over any longer
# stretch the rate holds: 100 requests a minute is `TokenBucket(rate=100 / 60,
# capacity=10)`.
#
# Write `TokenBucket(rate, capacity, clock=time.monotonic, sleep=asyncio.sleep)`:
#
# - It starts **full**. Read the time **only** through `self.clock()` and wait **only**
#   through `await self.sleep(seconds)`: the tests pass a fake clock and a fake sleep
#   that moves it, so nothing really waits.
# - `_refill()` brings the bucket up to date; call it first in the other methods. It
#   adds `elapsed * rate` tokens since the last refill, but the bucket **never holds more
#   than `capacity`**. A bucket left idle for an hour must not let an hour's worth of
#   requests through at once: that burst is exactly what gets you a wall of 429s.
# - `try_acquire()` takes a token and returns True if one is available, else returns
#   False and takes nothing.
# - `wait_time()` returns how many seconds until one token will be available (0.0 if
#   one is there now). It takes nothing.
# - `await acquire()` waits until it has taken a token. It must not sleep when a token
#   is available. Many tasks will call it at once: hold an `asyncio.Lock` while waiting,
#   so they queue in order instead of all waking up to fight over each new token.

# %%
class TokenBucket:
    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(
                f"need rate > 0 and capacity >= 1, got rate={rate}, capacity={capacity}"
            )
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.sleep = sleep
        # BEGIN SOLUTION
        self._tokens = float(capacity)
        self._updated = clock()
        self._lock = asyncio.Lock()
        # STUB: # your state: the tokens, when you last refilled, an asyncio.Lock
        # END SOLUTION

    def _refill(self) -> None:
        # BEGIN SOLUTION
        now = self.clock()
        self._tokens = min(
            self.capacity, self._tokens + (now - self._updated) * self.rate
        )
        self._updated = now
        # END SOLUTION

    def try_acquire(self) -> bool:
        # BEGIN SOLUTION
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
        # END SOLUTION

    def wait_time(self) -> float:
        # BEGIN SOLUTION
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)
        # END SOLUTION

    async def acquire(self) -> None:
        # BEGIN SOLUTION
        async with self._lock:  # one waiter at a time, first come first served
            while not self.try_acquire():
                await self.sleep(self.wait_time())
        # END SOLUTION


# %% [markdown]
# Try it on a fake clock: a burst of `capacity`, then one token every `1 / rate` seconds.

# %% tags=["demo"]
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def bucket_demo() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, capacity=3, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        await bucket.acquire()
        print(f"t={clock.now:.2f}s  request sent")
    clock.now += 3600
    print(
        "after an idle hour, tokens available at once:",
        sum(bucket.try_acquire() for _ in range(10)),
    )


await bucket_demo()

# %%
from course.check import check

check("token_bucket")

# %% [markdown]
# ## Exercise `backoff_delay` (2 points)
#
# When a call fails with a 429 or a 5xx, wait before the next attempt, and wait longer
# each time: the provider is in trouble and hammering it makes things worse. And do not
# wait the **same** time as everyone else: if 200 tasks fail together and all retry
# exactly 1 s later, they fail together again (the thundering herd). Jitter spreads
# them out.
#
# Write `backoff_delay(attempt, base=..., cap=..., rand=random.random)`, the seconds to
# wait after failed attempt number `attempt` (1 for the first):
#
# - the ceiling doubles with each attempt and is capped:
#   `ceiling = min(cap, base * 2 ** (attempt - 1))`;
# - the delay is a random share of the ceiling. Two schemes are accepted, pick one:
#   "equal jitter", half the ceiling plus a random part of the other half,
#   `ceiling / 2 + rand() * ceiling / 2` (half is fixed, so a retry never fires straight
#   away), or "full jitter", `rand() * ceiling` (chapter 6's choice: it spreads retries
#   the most). Call `rand()` exactly once; the tests pass their own.
# - `attempt` below 1 raises `ValueError`.

# %%
def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rand: Callable[[], float] = random.random,
) -> float:
    # BEGIN SOLUTION
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2
    # END SOLUTION


# %% tags=["demo"]
for attempt in range(1, 7):
    delays = [backoff_delay(attempt, base=0.5, cap=10) for _ in range(4)]
    print(attempt, " ".join(f"{d:5.2f}" for d in delays))

# %%
check("backoff_delay")

# %% [markdown]
# ## Exercise `rate_limited_client` (7 points)
#
# Now put the pieces together. `RateLimitedClient` wraps **one** `httpx.AsyncClient`
# (one client for the whole app, so connections are pooled, at most `max_connections` of
# them, and closed when you are done) and one `TokenBucket`; that part is written for
# you. You write
# `await client.complete(prompt, headers=None)`, which returns the answer text:
#
# 1. **One correlation ID per call.** Make a unique ID (`uuid.uuid4().hex` will do) and
#    send it as the `X-Request-ID` header on **every** attempt of that call, retries
#    included. The provider logs it too, so one ID finds a call on both sides. Send
#    `headers` (extra headers for this call, such as the tests' `X-Mock-Scenario`) as
#    well.
# 2. **Every attempt takes a token**: `await self.bucket.acquire()` before each request,
#    retries included. Then `POST` `chat_body(prompt, model)` to `CHAT_PATH`.
# 3. **200**: return `answer_text(response.json())`.
# 4. **Retryable**: a 429, any 5xx, or an `httpx.TransportError` (a timeout, a refused
#    connection: there is no status then). Wait
#    `backoff_delay(attempt, base=self.base_delay, cap=self.max_delay, rand=self.rand)`,
#    or longer if the response says so: the wait is the larger of that and
#    `retry_after_seconds(response)`. Then try again, up to `self.max_attempts` attempts
#    in all. Wait with `asyncio.sleep`, never `time.sleep`.
# 5. **Anything else** (400, 401, 404, 422, ...) means the request itself is wrong:
#    raise at once, without retrying. When the last attempt fails, or a status is not
#    retryable, raise `APIError(status, request_id, attempts)`, where `status` is the
#    last status (None if there was none).
# 6. **Log every attempt**, once, on `self.logger`, with these `extra=` fields:
#    `request_id` (the call's ID), `attempt` (1, 2, ...), `status` (the int, or None),
#    and `delay` (the seconds you are about to wait before the next attempt, as a float;
#    0.0 when no attempt follows). Pick the level: INFO for a success, WARNING for a
#    retry, ERROR for a failure is a good habit. A JSON formatter turns these fields into
#    one JSON line per attempt, as the demo shows.
#
# **What the graded run uses.** The default limit, 100 requests a minute, would make the
# test's 200 concurrent calls take two minutes, so the test builds the client with
# `requests_per_minute=6000` (100 a second) and `burst=10`, and checks that no window of
# time saw more requests reach the server than 10 plus 100 a second allow. Your code is
# the same at either speed: the rate lives in the `TokenBucket`, not in `complete()`.

# %%
LOGGER = logging.getLogger("course.llm_client")
LOGGER.addHandler(logging.NullHandler())  # the app decides where logs go


class RateLimitedClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = API_KEY,
        requests_per_minute: float = 100,
        burst: int = 10,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 30.0,
        max_connections: int = 10,
        rand: Callable[[], float] = random.random,
        logger: logging.Logger = LOGGER,
    ) -> None:
        self.bucket = TokenBucket(rate=requests_per_minute / 60, capacity=burst)
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections),
        )
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.rand = rand
        self.logger = logger

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def complete(
        self,
        prompt: str,
        *,
        model: str = "mock-gpt",
        headers: Mapping[str, str] | None = None,
    ) -> str:
        # BEGIN SOLUTION
        request_id = uuid.uuid4().hex
        sent = {**(headers or {}), "X-Request-ID": request_id}

        def log(level: int, attempt: int, status: int | None, delay: float) -> None:
            fields = {
                "request_id": request_id,
                "attempt": attempt,
                "status": status,
                "delay": delay,
            }
            self.logger.log(level, "llm attempt", extra=fields)

        for attempt in range(1, self.max_attempts + 1):
            await self.bucket.acquire()
            response: httpx.Response | None
            try:
                response = await self.http.post(
                    CHAT_PATH, json=chat_body(prompt, model), headers=sent
                )
            except httpx.TransportError:
                response = None  # no response at all: retryable, like a 5xx
            status = response.status_code if response is not None else None
            if response is not None and status == 200:
                log(logging.INFO, attempt, status, 0.0)
                return answer_text(response.json())
            retryable = status is None or status == 429 or status >= 500
            if not retryable or attempt == self.max_attempts:
                log(logging.ERROR, attempt, status, 0.0)
                raise APIError(status, request_id, attempt)
            delay = backoff_delay(
                attempt, base=self.base_delay, cap=self.max_delay, rand=self.rand
            )
            asked = retry_after_seconds(response) if response is not None else None
            if asked is not None:
                delay = max(delay, asked)
            log(logging.WARNING, attempt, status, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")
        # END SOLUTION


# %% [markdown]
# Try it: 40 calls at once against a limit of 3000 requests a minute (50 a second, bursts
# of 5), with a few calls that fail once with a 503 and one that is a bad request, then
# one more call that fails twice. Its JSON lines show its attempts under one ID; the
# server log shows the requests arriving at the limit's pace.

# %% tags=["demo"]
import json
import sys

from course.llm_server import LLMServer


class JsonLines(logging.Formatter):
    """One JSON object per record, with the `extra=` fields the client adds."""

    def format(self, record: logging.LogRecord) -> str:
        fields = ("request_id", "attempt", "status", "delay")
        event: dict[str, Any] = {
            "level": record.levelname,
            "message": record.getMessage(),
        }
        event.update({name: getattr(record, name, None) for name in fields})
        return json.dumps(event)


async def client_demo() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLines())
    demo_logger = logging.getLogger("course.llm_client.demo")
    demo_logger.setLevel(logging.INFO)
    demo_logger.propagate = False
    demo_logger.addHandler(handler)
    async with LLMServer() as server:
        client = RateLimitedClient(
            server.base_url,
            requests_per_minute=3000,
            burst=5,
            base_delay=0.05,
            logger=demo_logger,
        )
        async with client:

            def scenario(i: int) -> dict[str, str]:
                spec = (
                    "fail_first:1" if i % 10 == 3 else "error:400" if i == 39 else "ok"
                )
                return {"X-Mock-Scenario": spec, "X-Mock-Key": f"demo-{i}"}

            handler.setLevel(logging.CRITICAL)  # quiet for the crowd...
            results = await asyncio.gather(
                *(
                    client.complete(f"Prompt {i}", headers=scenario(i))
                    for i in range(40)
                ),
                return_exceptions=True,
            )
            handler.setLevel(logging.INFO)  # ...then loud for one call
            retried = {"X-Mock-Scenario": "fail_first:2", "X-Mock-Key": "one"}
            await client.complete("One more", headers=retried)
        log = server.log
    print(sum(isinstance(r, str) for r in results), "answers; errors:")
    print("\n".join(str(r) for r in results if isinstance(r, APIError)))
    start = log[0].monotonic
    per_tenth = [0] * (int((log[-1].monotonic - start) * 10) + 1)
    for record in log:
        per_tenth[int((record.monotonic - start) * 10)] += 1
    print(f"{len(log)} requests; arrivals per 100 ms: {per_tenth}")
    demo_logger.removeHandler(handler)


await client_demo()

# %%
check("rate_limited_client")

# %% [markdown]
# ## Exercise `bounded_batch` (4 points)
#
# A colleague wrote this to answer a list of prompts. It works, slowly. Run it and read
# it: every line is a problem you met in the lesson.

# %% tags=["demo"]
def answer_all_slowly(base_url: str, prompts: list[str]) -> list[str]:
    answers = []
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as client:
        for prompt in prompts:  # one request at a time
            # sync: blocks the event loop
            response = client.post(CHAT_PATH, json=chat_body(prompt))
            response.raise_for_status()  # one failure throws away every answer so far
            answers.append(answer_text(response.json()))
            time.sleep(0.1)  # "to be nice to the API": blocks the event loop too
    return answers


with LLMServer(scenario="latency:50ms") as slow_server:
    started = time.perf_counter()
    slow_answers = answer_all_slowly(
        slow_server.base_url, [f"Prompt {i}" for i in range(5)]
    )
    print(f"{len(slow_answers)} answers in {time.perf_counter() - started:.2f} s")

# %% [markdown]
# The first fix that comes to mind is `await asyncio.gather(*(ask(p) for p in prompts))`.
# It is fast on five prompts. On 5,000 it opens 5,000 requests at once: the provider
# rate-limits you, the connection pool queues them anyway, and their timeouts start
# while they wait in that queue.
#
# Write `await answer_all(client, prompts, limit)`, the version you would ship:
#
# - It sends one `POST` of `chat_body(prompt)` to `CHAT_PATH` per prompt, on the
#   `httpx.AsyncClient` it is given (already set up with the base URL and the key; do
#   not create another, and do not close it).
# - It returns a list as long as `prompts`, **in the same order**: the answer text
#   (`answer_text(response.json())`) for a 200, and `None` for a prompt that failed, with
#   any other status or an `httpx.HTTPError`. One failure must not lose the other
#   answers. No retries here: that was the previous exercise's job.
# - Requests run **concurrently**, but never more than `limit` at a time (an
#   `asyncio.Semaphore`). `limit` below 1 raises `ValueError`.
# - Nothing blocks the event loop: no `time.sleep`, no sync HTTP client. The tests keep
#   a heartbeat task running while your function works, and it must keep ticking.

# %%
async def answer_all(
    client: httpx.AsyncClient, prompts: Sequence[str], limit: int
) -> list[str | None]:
    # BEGIN SOLUTION
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    gate = asyncio.Semaphore(limit)

    async def answer(prompt: str) -> str | None:
        async with gate:
            try:
                response = await client.post(CHAT_PATH, json=chat_body(prompt))
            except httpx.HTTPError:
                return None
        return answer_text(response.json()) if response.status_code == 200 else None

    # gather keeps the input order, whatever order the answers arrive in.
    return list(await asyncio.gather(*(answer(prompt) for prompt in prompts)))
    # END SOLUTION


# %% [markdown]
# Try it on the same prompts and server latency, three at a time: five answers in about
# two requests' time. Then make the server fail every request: the batch still returns,
# with `None`s.

# %% tags=["demo"]
async def batch_demo() -> None:
    async with LLMServer(scenario="latency:50ms") as server, httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as client:
        prompts = [f"Prompt {i}" for i in range(5)]
        started = time.perf_counter()
        answers = await answer_all(client, prompts, limit=3)
        elapsed = time.perf_counter() - started
        print(f"{sum(a is not None for a in answers)} answers in {elapsed:.2f} s")
        print("same answers as the slow script:", answers == slow_answers)
        client.headers["X-Mock-Scenario"] = "error:500"
        print("when the server fails:", await answer_all(client, prompts[:2], limit=3))


await batch_demo()

# %%
check("bounded_batch")
