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
# # Exercises 6: a circuit breaker and a multi-provider client
#
# Your service can call three LLM providers. Any of them may be slow, rate-limited or
# down, and your users should notice as little of it as possible. You will build the
# pieces that make that true:
#
# | exercise | what you build | points |
# |---|---|---|
# | `circuit_breaker` | `CircuitBreaker`: closed, open, half-open, on a clock you control | 5 |
# | `fallback_chain` | `ResilientClient`: providers in order, then the cache, then a clear error | 4 |
# | `hedged_requests` | `HedgingClient`: a second request when the first is slow; the loser is cancelled | 4 |
#
# Everything you need is in [the lesson](../chapters/06_resilience). Write your answers
# where a cell raises `NotImplementedError`, save the notebook, and run the `check(...)`
# cell at the end of each exercise.
#
# The tests run your code against the course's local LLM server and make providers fail
# on purpose, with the `X-Mock-Scenario` header (`error:503`, `rate_limited`,
# `latency:3s`, ...). The breaker's clock is a function the tests control: nothing in
# your breaker may call `time.sleep` or read the real time directly.

# %%
# mypy: disable-error-code="top-level-await"
# (Jupyter runs an event loop, so a notebook may `await` at the top level; mypy would
# flag it.)
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Literal, TypeVar

import httpx

T = TypeVar("T")

# %% [markdown]
# ## Given: errors, completions and providers
#
# Read this part; you will use it, not change it. Errors are split the way the lesson
# splits them: **retryable** ones (rate limits, 5xx, timeouts: the provider is in
# trouble, another try or another provider may work) and **non-retryable** ones (a 4xx
# other than 429: the request itself is wrong, and no provider will accept it).

# %%
class ProviderError(Exception):
    """Something went wrong with a provider; ``provider`` says which."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class RetryableError(ProviderError):
    """The provider is failing (5xx, timeout, connection): try again or elsewhere."""


class RateLimitError(RetryableError):
    def __init__(self, provider: str, retry_after: float | None) -> None:
        super().__init__(provider, f"rate limited (retry after {retry_after}s)")
        self.retry_after = retry_after


class NonRetryableError(ProviderError):
    """The request is wrong (400, 401, 404, ...): retrying or switching will not help.
    """


class CircuitOpenError(ProviderError):
    """The provider's circuit breaker is open: the call was not even attempted."""


class AllProvidersFailed(ProviderError):
    """No provider answered and nothing was cached: the graceful error for the caller.
    """

    def __init__(self, errors: Sequence[tuple[str, BaseException]]) -> None:
        detail = "; ".join(f"{name}: {type(exc).__name__}" for name, exc in errors)
        super().__init__("all providers", f"no provider could answer ({detail})")
        self.errors = list(errors)


@dataclass(frozen=True)
class Completion:
    text: str
    source: str
    """The name of the provider that answered, or ``"cache"``."""
    degraded: bool = False
    """True when the answer did not come from a provider just now (a cached answer)."""


# %%
@dataclass
class Provider:
    """One provider, OpenAI-style (``/v1/chat/completions``) or Anthropic-style
    (``/v1/messages``)."""

    name: str
    client: httpx.AsyncClient
    base_url: str
    style: Literal["openai", "anthropic"] = "openai"
    model: str = "mock-gpt"
    api_key: str = "sk-course-local"
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers sent with every request (the tests set X-Mock-Scenario here)."""
    timeout_s: float = 5.0

    async def complete(self, prompt: str) -> Completion:
        messages = [{"role": "user", "content": prompt}]
        if self.style == "openai":
            path, auth = (
                "/v1/chat/completions",
                {"Authorization": f"Bearer {self.api_key}"},
            )
            body: dict[str, Any] = {"model": self.model, "messages": messages}
        else:
            path, auth = (
                "/v1/messages",
                {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"},
            )
            body = {"model": self.model, "max_tokens": 256, "messages": messages}
        try:
            response = await self.client.post(
                self.base_url + path,
                json=body,
                headers={**auth, **self.headers},
                timeout=self.timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise RetryableError(self.name, "timed out") from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                self.name, f"connection failed ({type(exc).__name__})"
            ) from exc
        status = response.status_code
        if status == 429:
            retry_ms = response.headers.get("retry-after-ms")
            raise RateLimitError(
                self.name, float(retry_ms) / 1000 if retry_ms else None
            )
        if status >= 500 or status == 408:
            raise RetryableError(self.name, f"HTTP {status}")
        if status >= 400:
            raise NonRetryableError(self.name, f"HTTP {status}: {response.text[:200]}")
        data = response.json()
        if self.style == "openai":
            text = data["choices"][0]["message"]["content"]
        else:
            text = "".join(
                block["text"] for block in data["content"] if block["type"] == "text"
            )
        return Completion(text=text, source=self.name)


# %% [markdown]
# ## Exercise `circuit_breaker` (5 points)
#
# A circuit breaker stands between your code and one provider. While the provider is
# healthy it lets calls through (**closed**). After `failure_threshold` failures **in
# a row** it stops calling the provider (**open**): every call fails at once with
# `CircuitOpenError`, without touching the network, so a dead provider costs
# nothing and gets time to recover. When `cooldown_s` seconds have passed since it
# opened, it lets **one** trial call through (**half-open**): success closes the
# circuit, failure opens it again for a new cool-down.
#
# Write `CircuitBreaker(failure_threshold, cooldown_s, clock)`:
#
# - `clock` is a function returning the current time in seconds (default
#   `time.monotonic`). Read time **only** through it: the tests pass a fake clock and
#   move it forward by hand.
# - `state` is a `BreakerState`, computed when read: an open breaker whose cool-down
#   has passed (`clock() - opened_at >= cooldown_s`) reads as `HALF_OPEN`.
# - `failures` is the number of consecutive failures counted while closed. Opening the
#   breaker sets it back to 0: each closed period counts its own failures.
# - `await breaker.call(operation)` runs `await operation()` and returns its result, or
#   raises:
#   - **closed**: call it. A `RetryableError` counts as a failure and is re-raised; at
#     `failure_threshold` failures in a row the breaker opens. A success resets the
#     count to 0.
#   - **open**: raise `CircuitOpenError(name, ...)` at once; do not call `operation`.
#   - **half-open**: the first caller runs the trial. While the trial runs, any other
#     caller gets `CircuitOpenError`. Trial success: closed, count 0. Trial
#     `RetryableError`: open again, cool-down restarted from now.
#   - A `NonRetryableError` means the provider is up and answering (the *request* was
#     bad): it counts as a success for the breaker's bookkeeping, and is re-raised.
#   - If the call is **cancelled** (`asyncio.CancelledError`) it counts as neither
#     success nor failure, but a half-open trial must give up its slot, or the breaker
#     would reject calls forever. `try`/`finally` is your friend.

# %%
class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "provider",
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.name = name
        raise NotImplementedError(
            "Write CircuitBreaker.__init__(): see the instructions above."
        )

    @property
    def state(self) -> BreakerState:
        raise NotImplementedError(
            "Write CircuitBreaker.state(): see the instructions above."
        )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        raise NotImplementedError(
            "Write CircuitBreaker.call(): see the instructions above."
        )


# %% [markdown]
# Try it with a fake clock and an operation that always fails. (A demo; the tests
# drive the breaker the same way, through the local LLM server.)

# %% tags=["demo"]
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def always_503() -> str:
    raise RetryableError("demo", "HTTP 503")


async def breaker_demo() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30, clock=clock)
    for _ in range(3):
        try:
            await breaker.call(always_503)
        except ProviderError as exc:
            print(f"{type(exc).__name__:18} state={breaker.state}")
    clock.now += 30
    print("after the cool-down:", breaker.state)


await breaker_demo()

# %%
from course.check import check

check("circuit_breaker")

# %% [markdown]
# ## Exercise `fallback_chain` (4 points)
#
# Write `ResilientClient(providers, ...)`. It keeps one `CircuitBreaker` per provider
# in `self.breakers` (a dict by provider name, built with the given threshold,
# cool-down and clock) and a cache of the last good answer per prompt in `self.cache`
# (a dict, prompt to text).
#
# `await client.complete(prompt)` returns a `Completion`:
#
# 1. Try the providers **in the order given**, one at a time, each through its breaker
#    (`breaker.call(partial(provider.complete, prompt))`).
# 2. A `RetryableError` or `CircuitOpenError` moves on to the next provider. A provider
#    whose breaker is open is therefore skipped without a request.
# 3. A `NonRetryableError` is raised to the caller at once: the request is wrong, and
#    sending it elsewhere will not fix it.
# 4. The first success is cached (`self.cache[prompt] = text`) and returned as it is.
# 5. When every provider failed, `self.degrade(prompt, errors)` decides: the cached
#    answer as `Completion(text, source="cache", degraded=True)` if there is one,
#    otherwise raise `AllProvidersFailed(errors)`, where `errors` lists
#    `(provider name, exception)` for every provider tried, in order.

# %%
class ResilientClient:
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = list(providers)
        raise NotImplementedError(
            "Write ResilientClient.__init__(): see the instructions above."
        )

    async def complete(self, prompt: str) -> Completion:
        raise NotImplementedError(
            "Write ResilientClient.complete(): see the instructions above."
        )

    def degrade(
        self, prompt: str, errors: Sequence[tuple[str, BaseException]]
    ) -> Completion:
        raise NotImplementedError(
            "Write ResilientClient.degrade(): see the instructions above."
        )


# %% [markdown]
# Try it: the primary is down, the secondary answers.

# %% tags=["demo"]
from course.llm_server import LLMServer


async def fallback_demo() -> None:
    async with LLMServer() as server, httpx.AsyncClient() as http:
        primary = Provider(
            "primary", http, server.base_url, headers={"X-Mock-Scenario": "error:503"}
        )
        secondary = Provider(
            "secondary", http, server.base_url, style="anthropic", model="mock-claude"
        )
        client = ResilientClient([primary, secondary])
        answer = await client.complete("Say hello.")
        print(answer.source, answer.degraded, answer.text[:40])
        print([(record.path, record.status) for record in server.log])


await fallback_demo()

# %%
check("fallback_chain")

# %% [markdown]
# ## Exercise `hedged_requests` (4 points)
#
# A provider that usually answers in 300 ms sometimes takes 10 s. Waiting for it is
# the slow path; a **hedged request** cuts it short: if the first provider has not
# answered after `hedge_after_s`, send the same request to the next provider too, and
# take whichever answers first.
#
# Write `HedgingClient`, a `ResilientClient` whose `complete` hedges (it reuses the breakers,
# the cache and `degrade` of `fallback_chain`, so finish that first):
#
# 1. Start an attempt on the first provider (through its breaker, as before).
# 2. If no attempt has finished within `hedge_after_s` of the last start, start an
#    attempt on the next provider **as well**, leaving the earlier ones running.
# 3. When an attempt **fails** (a `RetryableError` or `CircuitOpenError`), start the
#    next provider at once, without waiting for the hedge delay.
# 4. The first **success** wins: cache it and return it. Before returning, **cancel
#    every attempt still running and wait until they have finished cancelling**, so
#    that no request outlives the call. (The same holds when you raise.)
# 5. A `NonRetryableError` is raised at once, after cancelling the others.
# 6. When every attempt failed: `self.degrade(prompt, errors)`, as before.
#
# `asyncio.create_task`, `asyncio.wait(..., timeout=..., return_when=FIRST_COMPLETED)`,
# `task.cancel()` and `asyncio.gather(..., return_exceptions=True)` are all you need.

# %%
class HedgingClient(ResilientClient):
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        hedge_after_s: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(providers, **kwargs)
        self.hedge_after_s = hedge_after_s

    async def complete(self, prompt: str) -> Completion:
        raise NotImplementedError(
            "Write HedgingClient.complete(): see the instructions above."
        )


# %% [markdown]
# Try it: the primary takes a second, the hedge goes out after 50 ms and wins.

# %% tags=["demo"]
async def hedging_demo() -> None:
    async with LLMServer() as server, httpx.AsyncClient() as http:
        slow = Provider(
            "slow", http, server.base_url, headers={"X-Mock-Scenario": "latency:1s"}
        )
        fast = Provider(
            "fast", http, server.base_url, style="anthropic", model="mock-claude"
        )
        start = time.perf_counter()
        answer = await HedgingClient([slow, fast], hedge_after_s=0.05).complete(
            "Say hello."
        )
        print(f"{answer.source} answered in {time.perf_counter() - start:.2f}s")


await hedging_demo()

# %%
check("hedged_requests")

# %% [markdown]
# ## What next
#
# - Run each `check("...")` cell above: it runs that exercise's tests and says what
#   passes and what a failing test expected.
# - From a terminal, `course check 06_resilience` grades the whole chapter the way the
#   grader will (see [Checking and grading your work](../grading)).
# - Then go on to the next chapter:
#   [Chapter 7. Streaming responses](../chapters/07_streaming).
