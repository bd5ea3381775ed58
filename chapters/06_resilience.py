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
# # 6. Errors, retries and resilience
#
# Every LLM provider fails, every day: rate limits at peak hours, 503s during deploys,
# a proxy that answers with an HTML page, a request that hangs for a minute, a model that
# returns broken JSON. A service that treats each of these as "an exception happened"
# either gives up too easily or retries itself into an outage. This chapter is about
# telling failures apart and answering each kind the right way.
#
# **What you'll learn**
#
# - an exception hierarchy for LLM work (rate limit, token limit, invalid response),
#   split into retryable, non-retryable and partial failures; `raise ... from`; mapping
#   HTTP errors to your exceptions at the API boundary;
# - exponential backoff with jitter and why it prevents a thundering herd; retry
#   budgets; `tenacity`;
# - rate limiting with a token bucket, and how it differs from a concurrency limit;
# - graceful degradation across providers: health tracking, circuit breakers, fallback
#   chains (primary, secondary, cache, graceful error) and hedged requests.
#
# Every failure here is real HTTP, injected by the course's local LLM server. The
# exercises have you build a circuit breaker and a multi-provider client with fallback
# and hedging: [the chapter 6 exercises](../exercises/06_resilience).

# %% [markdown]
# ## The local server and its faults
#
# The server answers OpenAI-style requests at `/v1/chat/completions` and
# Anthropic-style ones at `/v1/messages`. The `X-Mock-Scenario` header makes one request
# fail on purpose: `error:503`, `rate_limited:retry_after=0.05`, `latency:300ms`,
# `fail_first:2:503` (fail the first two calls counted under the `X-Mock-Key` header,
# then succeed), and more (see [the appendix on the server](../appendix/llm_server)).
# Start it for the chapter:

# %%
import asyncio
import random
import time

import httpx

from course.llm_server import LLMServer

server = LLMServer()
server.start()
http = httpx.AsyncClient(
    base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
)


async def post_chat(
    prompt: str, scenario: str = "ok", key: str | None = None, timeout_s: float = 5.0
) -> httpx.Response:
    headers = {"X-Mock-Scenario": scenario} | ({"X-Mock-Key": key} if key else {})
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": prompt}]}
    return await http.post(
        "/v1/chat/completions", json=body, headers=headers, timeout=timeout_s
    )


# %% tags=["nbval-check-output"]
for scenario in (
    "ok",
    "error:503",
    "rate_limited:retry_after=0.05",
    "error:502",
    "error:400",
):
    response = await post_chat("Hello", scenario)
    shown = "(a completion)" if response.is_success else repr(response.text[:48])
    print(
        f"{scenario:30} {response.status_code} {response.headers['content-type']:25} "
        f"{shown}"
    )

# %% [markdown]
# Five answers, and no two deserve the same treatment: retry the 503 after a pause, wait
# exactly as long as the 429 asks, retry the 502 even though its body is HTML, and never
# retry the 400, because the same request will fail the same way.

# %% [markdown]
# ## An exception hierarchy for LLM work
#
# Callers should not catch `httpx.HTTPStatusError` and read status codes: that spreads
# one provider's HTTP details through the code base. Define exceptions that say what
# happened **in your domain**, arranged by what the caller should do about them:

# %%
class LLMError(Exception):
    """Base of every error from an LLM provider."""

    def __init__(
        self, message: str, *, provider: str = "", status: int | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class RetryableError(LLMError):
    """Transient: the same request may succeed later or elsewhere."""


class RateLimitError(RetryableError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(RetryableError):
    """5xx, 529 'overloaded', or a proxy's HTML error page."""


class ProviderTimeout(RetryableError):
    """No answer in time, or the connection failed."""


class NonRetryableError(LLMError):
    """The request is wrong; sending it again will not help."""


class AuthenticationError(NonRetryableError):
    """401/403: a missing, wrong or revoked key."""


class BadRequestError(NonRetryableError):
    """400/404/422: a malformed request, an unknown model."""


class TokenLimitError(BadRequestError):
    """The prompt plus max_tokens does not fit the context window: shorten, don't retry.
    """


class InvalidResponseError(LLMError):
    """A 200 whose body is unusable: broken JSON, or model output that fails validation.
    """


# %% [markdown]
# Three families, by what to do:
#
# - **Retryable** (`RateLimitError`, `ServerError`, `ProviderTimeout`): wait and try
#   again, or try another provider.
# - **Non-retryable** (`AuthenticationError`, `BadRequestError`, `TokenLimitError`): fix
#   the request or the configuration. `TokenLimitError` is the one you can act on in
#   code: truncate the context, summarise the history, or move to a model with a bigger
#   window.
# - **Invalid response**: the provider answered, but not usefully. Retrying may help
#   (models are not deterministic), so allow one or two attempts, ideally with the
#   validation errors added to the prompt, and count these separately: a rising rate
#   means a prompt or model change broke something.
#
# A fourth kind is not an exception class but a result: a **partial failure**, where a
# batch of 100 prompts gets 97 answers. More on it below.

# %% [markdown]
# ### Mapping errors at the API boundary
#
# One function turns a provider's response into your exception. It is the only place
# that knows HTTP status codes, both providers' error bodies, and the retry headers.

# %%
def map_error(response: httpx.Response, provider: str = "mock") -> LLMError:
    status = response.status_code
    try:
        error = response.json().get("error", {})
    except ValueError:  # not JSON: a proxy's HTML page
        error = {}
    message = (
        f"{provider} HTTP {status}: {error.get('message', response.reason_phrase)}"
    )
    code = str(error.get("code") or error.get("type") or "")
    if status == 429:
        retry_ms = response.headers.get("retry-after-ms")
        retry_s = response.headers.get("retry-after")
        after = (
            float(retry_ms) / 1000 if retry_ms else float(retry_s) if retry_s else None
        )
        return RateLimitError(
            message, retry_after=after, provider=provider, status=status
        )
    if status in (401, 403):
        return AuthenticationError(message, provider=provider, status=status)
    if status == 400 and ("context_length" in code or "too long" in message.lower()):
        return TokenLimitError(message, provider=provider, status=status)
    if status in (408, 409) or status >= 500:
        return ServerError(message, provider=provider, status=status)
    return BadRequestError(message, provider=provider, status=status)


# %% tags=["nbval-check-output"]
scenarios = (
    "error:503",
    "error:529",
    "error:502",
    "rate_limited:retry_after=0.05",
    "error:400",
    "error:404",
)
for scenario in scenarios:
    error = map_error(await post_chat("Hello", scenario))
    kind = "retryable" if isinstance(error, RetryableError) else "non-retryable"
    print(f"{scenario:30} {type(error).__name__:16} {kind:14} {error}")

# %% [markdown]
# Now the client: call the API, map failures, parse the body. Transport errors become
# `ProviderTimeout`, a broken body becomes `InvalidResponseError`, and each is raised
# **`from`** the original exception.

# %%
async def chat(
    prompt: str, scenario: str = "ok", key: str | None = None, timeout_s: float = 5.0
) -> str:
    try:
        response = await post_chat(prompt, scenario, key, timeout_s)
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(f"no answer within {timeout_s}s") from exc
    except httpx.TransportError as exc:
        raise ProviderTimeout(f"connection failed: {exc!r}") from exc
    if response.status_code >= 400:
        raise map_error(response)
    try:
        return response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError) as exc:
        raise InvalidResponseError(f"unusable body: {response.text[:60]!r}") from exc


# %%
import traceback

try:
    await chat("Hello", scenario="stall", timeout_s=0.2)
except ProviderTimeout as exc:
    # limit=-1: the last frame of each exception in the chain, not httpx's internals
    traceback.print_exception(exc, limit=-1)

# %% [markdown]
# Read the traceback from the bottom: `ProviderTimeout`, and above it the
# `httpx.ReadTimeout` with the line *"The above exception was the direct cause of the
# following exception"*. That is what `from exc` buys: the caller deals with your
# exception, and whoever debugs it still sees the original. (Left uncaught, the same
# error fills about 200 lines, nearly all of them frames inside httpx; `limit=-1` keeps
# the one frame of each exception that raised it.) The chain is also available in code,
# as `__cause__`:

# %% tags=["nbval-check-output"]
try:
    await chat("Hello", scenario="malformed_json")
except InvalidResponseError as exc:
    print(type(exc).__name__, "caused by", type(exc.__cause__).__name__)

# %% [markdown]
# Without `from`, raising inside an `except` block still records the first exception,
# but as `__context__`, with the message *"During handling of the above exception,
# another exception occurred"*, which reads like a bug in your error handling. `raise
# NewError(...) from None` hides the original on purpose: use it when the original adds
# nothing, or would leak something (a request body with user data, a key).

# %% [markdown]
# ### Partial failure
#
# A batch job sends many prompts. With `asyncio.gather(..., return_exceptions=True)`
# every prompt gets a result or an exception, and one failure does not throw away the
# rest. (A `TaskGroup` cancels the siblings at the first failure: right when the parts
# only make sense together, wrong for a batch.) Then sort the outcomes: keep the
# answers, retry what is retryable, report the rest.

# %% tags=["nbval-check-output"]
batch = {
    "q1": "ok",
    "q2": "error:503",
    "q3": "ok",
    "q4": "error:400",
    "q5": "rate_limited:retry_after=0.05",
}
outcomes = await asyncio.gather(
    *(chat(q, s) for q, s in batch.items()), return_exceptions=True
)

results = dict(zip(batch, outcomes, strict=True))
answers = {q: o for q, o in results.items() if isinstance(o, str)}
retry_later = [q for q, o in results.items() if isinstance(o, RetryableError)]
rejected = {
    q: type(o).__name__ for q, o in results.items() if isinstance(o, NonRetryableError)
}
print(f"answered {sorted(answers)}, retry {retry_later}, rejected {rejected}")

# %% [markdown]
# The batch succeeded *partially*, and the result should say so: return the answers
# together with the failures (a result object with both, or a `PartialResult`
# exception carrying both), never just the answers, and never just an exception.

# %% [markdown]
# ## Backoff with jitter
#
# A retryable error says "not now". How long to wait? **Exponential backoff** doubles
# the wait after each failure (`base * 2**attempt`, capped), so a struggling provider
# gets more and more room. But if a thousand clients failed at the same moment, they
# all retry at the same moments too: they wait 0.1 s, then 0.2 s, then 0.4 s, so every
# retry lands at 0.1 s, 0.3 s or 0.7 s. Each retry wave hits the provider as hard as the
# first failure did. That is the **thundering herd**, and it keeps a recovering service
# down.
#
# **Jitter** spreads the waves: "full jitter" waits a random time between 0 and the
# exponential delay. A simulation: 1,000 clients fail at the same moment and retry three
# times each. When do their retries reach the provider?

# %%
def backoff(attempt: int, base: float = 0.1, cap: float = 10.0) -> float:
    return min(cap, base * 2**attempt)


def full_jitter(attempt: int, rng: random.Random) -> float:
    return rng.uniform(0, backoff(attempt))


def retry_times(delay_for, clients: int = 1000, attempts: int = 3) -> list[float]:
    """When each retry is sent, if every client failed at t=0."""
    times = []
    for _ in range(clients):
        t = 0.0
        for attempt in range(attempts):
            t += delay_for(attempt)
            times.append(t)
    return times


def per_slot(times: list[float], slot: float, until: float = 1.0) -> list[int]:
    counts = [0] * round(until / slot)
    for t in times:
        index = int(t / slot + 1e-9)
        if index < len(counts):
            counts[index] += 1
    return counts


# %% tags=["nbval-check-output"]
rng = random.Random(42)
plain = retry_times(backoff)
jittered = retry_times(lambda attempt: full_jitter(attempt, rng))
print("50 ms slot from  " + "".join(f"{i * 50:>5}" for i in range(20)))
print("no jitter        " + "".join(f"{n:>5}" for n in per_slot(plain, 0.05)))
print("full jitter      " + "".join(f"{n:>5}" for n in per_slot(jittered, 0.05)))
print(f"most retries in any 10 ms: {max(per_slot(plain, 0.01))} without jitter, "
      f"{max(per_slot(jittered, 0.01))} with full jitter")

# %% [markdown]
# Without jitter, all 1,000 retries of each wave land in the same instant, three times
# over. With full jitter the same 3,000 retries arrive spread out, and the worst 10 ms
# sees a fraction of the load: a rate a recovering provider can absorb.
#
# ### Retry budgets
#
# Backoff decides *when* to retry; it does not decide *whether*. During a real outage
# every request fails, and if each is retried three times, the provider receives four
# times its normal load exactly when it can least take it. A **retry budget** caps
# retries as a fraction of real traffic: each request earns, say, 0.1 of a retry token,
# and a retry spends a whole one. In normal times a few retries always fit; in an outage
# retries add about 10 % to the load (plus a small starting reserve), not 300 %.

# %%
class RetryBudget:
    def __init__(self, ratio: float = 0.1, initial: float = 10.0) -> None:
        self.ratio = ratio
        self.tokens = initial

    def on_request(self) -> None:
        self.tokens = min(self.tokens + self.ratio, 100.0)

    def try_spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# %% tags=["nbval-check-output"]
def outage_load(
    budget: RetryBudget | None, requests: int = 1000, retries: int = 3
) -> int:
    """Calls sent when every call fails, for `requests` requests with up to `retries`
    retries."""
    sent = 0
    for _ in range(requests):
        if budget:
            budget.on_request()
        sent += 1
        for _ in range(retries):
            if budget and not budget.try_spend():
                break
            sent += 1
    return sent


print("without a budget:", outage_load(None), "calls for 1000 requests")
print("with a 10% budget:", outage_load(RetryBudget()), "calls for 1000 requests")

# %% [markdown]
# ## `tenacity`
#
# You could write the retry loop yourself (chapter 3 did), but `tenacity` is the
# library most Python code uses for it: the policy is declared in one place, from parts
# you combine.
#
# - `stop=stop_after_attempt(4)` (or `stop_after_delay(10)`, or both with `|`);
# - `wait=wait_random_exponential(multiplier=..., max=...)`: exponential backoff with
#   full jitter;
# - `retry=retry_if_exception_type(RetryableError)`: only what is worth retrying;
# - `reraise=True`: after the last attempt, raise the original error rather than
#   the `RetryError` wrapper;
# - `before_sleep=...`: a hook to log each retry.
#
# It works on coroutines as well as functions. Short waits here, so the notebook stays
# fast:

# %%
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

retry_log = []


def note_retry(state: RetryCallState) -> None:
    retry_log.append(
        f"attempt {state.attempt_number} failed: "
        f"{type(state.outcome.exception()).__name__}"
    )


@retry(
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(multiplier=0.01, max=0.1),
    retry=retry_if_exception_type(RetryableError),
    reraise=True,
    before_sleep=note_retry,
)
async def robust_chat(prompt: str, scenario: str = "ok", key: str | None = None) -> str:
    return await chat(prompt, scenario, key)


# %% tags=["nbval-check-output"]
server.clear_log()
text = await robust_chat("Hello", scenario="fail_first:2:503", key="tenacity-demo")
print(retry_log)
print("statuses the server sent:", [record.status for record in server.log])
print("attempts:", robust_chat.statistics["attempt_number"])

# %% [markdown]
# Two 503s, then an answer on the third attempt, and the caller saw none of it. A
# non-retryable error goes straight through, after one request:

# %% tags=["nbval-check-output"]
server.clear_log()
retry_log.clear()
try:
    await robust_chat("Hello", scenario="error:400")
except BadRequestError as exc:
    print(type(exc).__name__, "after", len(server.log), "request; retries:", retry_log)

# %% [markdown]
# ### Honouring `Retry-After`
#
# A 429 often says how long to wait (`Retry-After` in seconds, and OpenAI's
# `retry-after-ms`). That beats any guess: waiting less gets another 429, waiting more
# wastes time. `wait=` accepts any function of the retry state, so: the server's value
# when there is one, jittered backoff otherwise. The loop form, `AsyncRetrying`, puts
# the policy around a block instead of a function:

# %%
backoff_wait = wait_random_exponential(multiplier=0.01, max=0.1)


def wait_as_told(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return error.retry_after
    return backoff_wait(state)


# %% tags=["nbval-check-output"]
server.clear_log()
waits = []
async for attempt in AsyncRetrying(
    stop=stop_after_attempt(5),
    wait=wait_as_told,
    retry=retry_if_exception_type(RetryableError),
    before_sleep=lambda state: waits.append(state.upcoming_sleep),
    reraise=True,
):
    with attempt:
        text = await chat(
            "Hello",
            scenario="fail_first:2:rate_limited:retry_after=0.05",
            key="retry-after",
        )
print("waited", waits, "then got", [record.status for record in server.log])

# %% [markdown]
# A retry budget fits in the same place: `retry=` takes conditions combined with `&`,
# so `retry_if_exception_type(RetryableError) & retry_if_result(...)`, or a custom
# function that checks `budget.try_spend()`, refuses retries once the budget is empty.

# %% [markdown]
# ## Rate limiting: a token bucket
#
# Providers limit you (requests and tokens per minute), and you should limit yourself
# before they do: a 429 costs a round trip and a wait. A **token bucket** holds up to
# `capacity` tokens and refills at `rate` tokens per second; each request takes one, and
# waits when the bucket is empty. The capacity allows short bursts; the rate caps the
# average.

# %%
class TokenBucket:
    def __init__(self, rate: float, capacity: float, clock=time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self.tokens = capacity
        self.updated = clock()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self) -> None:
        async with self.lock:  # one waiter at a time keeps the order fair
            self._refill()
            while self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.rate)
                self._refill()
            self.tokens -= 1


# %% [markdown]
# A **concurrency limit** is a different thing: an `asyncio.Semaphore(n)` caps how many
# requests are *in flight at once*, whatever their rate. Slow responses lower the
# throughput under a semaphore; a bucket does not care how long responses take. The
# server log shows the difference: each record says how many requests were in progress
# when it arrived. Twelve requests that each take 100 ms:

# %%
async def limited(
    prompt: str,
    *,
    semaphore: asyncio.Semaphore | None = None,
    bucket: TokenBucket | None = None,
) -> str:
    if bucket:
        await bucket.acquire()
    if semaphore:
        async with semaphore:
            return await chat(prompt, "latency:100ms")
    return await chat(prompt, "latency:100ms")


for label, kwargs in [
    ("no limit", {}),
    ("Semaphore(3)", {"semaphore": asyncio.Semaphore(3)}),
    ("TokenBucket(20/s, burst 2)", {"bucket": TokenBucket(rate=20, capacity=2)}),
]:
    server.clear_log()
    start = time.perf_counter()
    await asyncio.gather(*(limited(f"q{i}", **kwargs) for i in range(12)))
    elapsed = time.perf_counter() - start
    arrivals = [record.monotonic for record in server.log]
    spread = max(arrivals) - min(arrivals)
    peak = max(record.in_flight for record in server.log)
    print(
        f"{label:28} {elapsed:.2f}s total, most in flight: {peak:2}, arrivals spread "
        f"over {spread:.2f}s"
    )

# %% [markdown]
# No limit: all twelve in flight at once. The semaphore: never more than three in flight,
# in waves. The bucket: two at once (the burst), then one every 50 ms: the rate is capped
# and the in-flight count follows from rate times latency, plus the burst. Real clients often need both:
# a bucket for the provider's per-minute quota, a semaphore to protect their own memory
# and connection pool. (Chapter 4's exercise builds the full rate-limited client.)

# %% [markdown]
# ## Graceful degradation across providers
#
# Retrying helps with blips. When a provider is down for minutes, retrying only adds
# load and latency; the service should notice and route around it. Four tools, from
# noticing to routing:
#
# ### Health tracking
#
# Keep the recent outcomes per provider: success rate and latency over a sliding
# window. It feeds dashboards, alerts, routing decisions, and the breaker below.

# %%
from collections import deque
from statistics import median


class HealthTracker:
    def __init__(self, window: int = 20) -> None:
        self.outcomes: deque[tuple[bool, float]] = deque(maxlen=window)

    def record(self, ok: bool, seconds: float) -> None:
        self.outcomes.append((ok, seconds))

    @property
    def success_rate(self) -> float:
        return (
            sum(ok for ok, _ in self.outcomes) / len(self.outcomes)
            if self.outcomes
            else 1.0
        )

    @property
    def median_latency(self) -> float:
        return median(s for _, s in self.outcomes) if self.outcomes else 0.0


async def tracked_chat(
    tracker: HealthTracker, prompt: str, scenario: str
) -> str | None:
    start = time.perf_counter()
    try:
        answer = await chat(prompt, scenario)
    except RetryableError:
        tracker.record(False, time.perf_counter() - start)
        return None
    tracker.record(True, time.perf_counter() - start)
    return answer


# %% tags=["nbval-check-output"]
tracker = HealthTracker(window=10)
for scenario in ["ok"] * 6 + ["error:503"] * 4:
    await tracked_chat(tracker, "Hello", scenario)
print(
    f"success rate over the last {len(tracker.outcomes)} calls: "
    f"{tracker.success_rate:.0%}"
)

# %% [markdown]
# ### Circuit breakers
#
# A circuit breaker turns health into a decision. It has three states:
#
# | state | calls | moves to |
# |---|---|---|
# | **closed** | go through; outcomes are counted | **open**, when failures cross a limit |
# | **open** | fail at once, without a request | **half-open**, after a cool-down |
# | **half-open** | one trial call goes through | **closed** on success, else **open** again |
#
# ```{graphviz}
# ---
# alt: >-
#   A state machine with three states. Closed: calls go through and outcomes are
#   counted; when failures cross the limit it moves to open. Open: calls fail at once
#   with no request; after the cool-down it moves to half-open. Half-open: one trial
#   call goes through; success moves it to closed, failure back to open.
# caption: >-
#   The circuit breaker's states and what moves it between them.
# ---
# digraph breaker {
#   rankdir=LR; nodesep=0.6; ranksep=1.1; fontname="sans-serif";
#   node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=12,
#         fontcolor="#10263d", margin="0.2,0.1"];
#   edge [color="#44546a", fontcolor="#33414f", fontname="sans-serif", fontsize=10];
#   closed [label="closed\ncalls go through;\noutcomes are counted", fillcolor="#e4f1e1",
#           color="#2e6b30"];
#   open [label="open\ncalls fail at once,\nno request is sent", fillcolor="#fbe3e0",
#         color="#b23b2a"];
#   half [label="half-open\none trial call\ngoes through", fillcolor="#fdf0d5",
#         color="#a57800"];
#   closed -> open [label="failures cross the limit"];
#   open -> half [label="cool-down over"];
#   half -> closed [label="the trial succeeds"];
#   half -> open [label="the trial fails"];
# }
# ```
#
# Failing fast is the point: a dead provider costs nothing (no 30 s timeouts piling up,
# no retries adding load), and the fallback gets its turn at once. The cool-down gives
# the provider room to recover, and the single trial checks whether it has without
# sending it the full load.
#
# A breaker needs a clock. Pass it in rather than calling `time.monotonic()` inside:
# then a test moves time forward by hand instead of sleeping through a 30 s cool-down.
# Here is a small breaker that opens on a failure **rate** (from a health tracker)
# rather than on failures in a row, driven by a fake clock:

# %%
class RateBreaker:
    def __init__(
        self,
        max_failure_rate: float = 0.5,
        min_calls: int = 4,
        cooldown_s: float = 30.0,
        clock=time.monotonic,
    ) -> None:
        self.max_failure_rate, self.min_calls, self.cooldown_s = (
            max_failure_rate,
            min_calls,
            cooldown_s,
        )
        self.clock = clock
        self.health = HealthTracker(window=10)
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return (
            "half_open" if self.clock() - self.opened_at >= self.cooldown_s else "open"
        )

    def allow(self) -> bool:
        return self.state != "open"

    def record(self, ok: bool) -> None:
        if self.state == "half_open":  # the trial decides
            self.opened_at = None if ok else self.clock()
            self.health.outcomes.clear()
            return
        self.health.record(ok, 0.0)
        too_many = 1 - self.health.success_rate > self.max_failure_rate
        if len(self.health.outcomes) >= self.min_calls and too_many:
            self.opened_at = self.clock()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# %% tags=["nbval-check-output"]
clock = FakeClock()
breaker = RateBreaker(cooldown_s=30, clock=clock)
for ok in [True, False, False, False]:
    breaker.record(ok)
    print(f"t={clock.now:>4}: {'success' if ok else 'failure'} -> {breaker.state}")
clock.now += 29
print(f"t={clock.now:>4}: allow a call? {breaker.allow()} ({breaker.state})")
clock.now += 1
print(f"t={clock.now:>4}: allow a call? {breaker.allow()} ({breaker.state})")
breaker.record(True)
print(f"t={clock.now:>4}: trial succeeded -> {breaker.state}")

# %% [markdown]
# This one is deliberately simple: in half-open it would let *every* concurrent caller
# through as a "trial", and it knows nothing of cancelled calls or of errors that are the
# caller's fault. The exercise's breaker handles all three.

# %% [markdown]
# ### Fallback chains
#
# When the primary fails, ask someone else. A typical chain, from best to last resort:
#
# 1. the **primary** provider;
# 2. a **secondary** provider (another vendor, or a smaller model), often with a
#    different API: one more reason for the provider abstraction of chapter 1;
# 3. a **cache** of recent good answers: stale, but often right (the FAQ bot's answer
#    about refunds did not change in the last hour);
# 4. a **graceful error**: a clear message and a status the caller can act on, instead of
#    a stack trace.
#
# Each step down is worse, so the result should say where it came from. Two providers on
# the local server, one in each API style:

# %%
async def ask_openai(prompt: str, scenario: str) -> str:
    return await chat(prompt, scenario)


async def ask_anthropic(prompt: str, scenario: str) -> str:
    response = await http.post(
        "/v1/messages",
        json={
            "model": "mock-claude",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": prompt}],
        },
        headers={
            "x-api-key": server.api_key,
            "anthropic-version": "2023-06-01",
            "X-Mock-Scenario": scenario,
        },
    )
    if response.status_code >= 400:
        raise map_error(response, provider="anthropic")
    return response.json()["content"][0]["text"]


answer_cache: dict[str, str] = {}


async def answer(
    prompt: str, primary: str = "ok", secondary: str = "ok"
) -> tuple[str, str]:
    """(where the answer came from, the answer)"""
    for name, ask, scenario in (
        ("primary", ask_openai, primary),
        ("secondary", ask_anthropic, secondary),
    ):
        try:
            text = await ask(prompt, scenario)
        except RetryableError:
            continue  # a NonRetryableError is not caught: the request itself is wrong
        answer_cache[prompt] = text
        return name, text
    if prompt in answer_cache:
        return "cache", answer_cache[prompt]
    return (
        "graceful error",
        "The assistant is busy right now. Please try again in a minute.",
    )


# %% tags=["nbval-check-output"]
cases = [
    ("ok", "ok", "refunds?"),
    ("error:503", "ok", "refunds?"),
    ("error:503", "error:529", "refunds?"),
    ("error:503", "error:529", "new question"),
]
for primary, secondary, prompt in cases:
    source, text = await answer(prompt, primary, secondary)
    print(
        f"primary {primary:9} secondary {secondary:9} {prompt!r:15} -> {source:15} "
        f"{text[:30]!r}"
    )

# %% [markdown]
# Put a breaker in front of each provider and the chain also gets fast: a provider whose
# breaker is open is skipped without a request, so an outage of the primary costs every
# user one breaker check, not one timeout.

# %% [markdown]
# ### Hedged requests
#
# Some failures are just slowness: the provider answers most requests in 300 ms and a
# few in 10 s. A **hedged request** sends the request to a second provider (or again to
# the same one) if the first has not answered within a delay, takes the first answer,
# and **cancels the rest**. Cancelling matters: a loser left running holds a connection
# and, on a paid API, still costs money.

# %%
async def hedged(calls, hedge_after_s: float) -> tuple[int, str]:
    """Start calls[0]; start the next each time hedge_after_s passes with no answer."""
    tasks: list[asyncio.Task[str]] = []
    try:
        for call in calls:
            tasks.append(asyncio.create_task(call()))
            done, _ = await asyncio.wait(
                tasks, timeout=hedge_after_s, return_when=asyncio.FIRST_COMPLETED
            )
            if done:
                winner = done.pop()
                return tasks.index(winner), winner.result()
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        winner = done.pop()
        return tasks.index(winner), winner.result()
    finally:
        for task in tasks:
            task.cancel()
        # wait until they are really gone
        await asyncio.gather(*tasks, return_exceptions=True)


# %%
server.clear_log()
start = time.perf_counter()
winner, text = await hedged(
    [lambda: chat("Hi", "latency:2s"), lambda: ask_anthropic("Hi", "latency:30ms")],
    hedge_after_s=0.05,
)
print(
    f"call {winner} won after {time.perf_counter() - start:.2f}s; the 2 s call was "
    "cancelled"
)

# %% [markdown]
# This version is minimal: it treats a failure like an answer, and a loser that fails
# early does not trigger the next hedge. The exercise builds it properly.
#
# Hedging trades load for latency, so spend it carefully:
#
# - hedge after about the 95th percentile of normal latency, so only the slowest 5 % of
#   requests get a second copy;
# - hedge only requests that are safe to send twice (a completion is; "send the email"
#   is not);
# - cap hedges like retries, with a budget, so that a provider slowing down for everyone
#   does not double your traffic to it.

# %%
await http.aclose()
server.stop()

# %% [markdown]
# ## Check your understanding
#
# **1.** Which of these should be retried: a 429, a 400 "maximum context length
# exceeded", a 502 with an HTML body, a 401, a timeout, a 200 whose JSON fails your
# schema?
#
# ```{admonition} Answer
# :class: dropdown
# Retry the 429 (after its `Retry-After`), the 502 (a proxy's failure, whatever the
# body), and the timeout. Do not retry the 400 (shorten the prompt or pick a bigger
# model: a `TokenLimitError`) or the 401 (fix the key). The 200 with invalid JSON is an
# `InvalidResponseError`: one or two retries with the validation errors in the prompt,
# counted separately.
# ```
#
# **2.** Why add jitter to exponential backoff, if the backoff already spreads retries
# out over time?
#
# ```{admonition} Answer
# :class: dropdown
# Backoff spreads one client's retries over time; it does not spread *different* clients
# apart. Clients that failed together retry together, in synchronised waves that hit
# the provider as hard as the original spike. Random jitter de-synchronises them.
# ```
#
# **3.** What is the difference between `asyncio.Semaphore(10)` and a token bucket of 10
# requests per second? When do you need both?
#
# ```{admonition} Answer
# :class: dropdown
# The semaphore caps requests in flight at once; how many per second that allows
# depends on latency. The bucket caps the rate of starts, however long each takes. A
# provider quota (requests per minute) needs the bucket; protecting your own resources
# (connections, memory, a downstream service's concurrency) needs the semaphore.
# Real clients often use both.
# ```
#
# **4.** Why does `raise ProviderTimeout(...) from exc` matter, and when would you use
# `from None`?
#
# ```{admonition} Answer
# :class: dropdown
# `from exc` keeps the original as `__cause__`: the traceback shows both, labelled as
# cause and effect, so debugging starts from the real failure while callers handle your
# exception. `from None` drops the chain when it adds nothing or would leak something
# (a request body, a key).
# ```
#
# **5. Graceful degradation design.** Your support assistant uses provider A, with
# provider B as backup. A is down for 20 minutes at peak time. Walk through what your
# service does with a request, from the first failure to recovery, and say what the user
# sees.
#
# ```{admonition} Answer
# :class: dropdown
# The first requests fail on A with 5xx or timeouts; each is retried a little (jittered,
# within a retry budget) and then falls back to B, so users get answers from B, a
# little slower. After a few failures A's circuit breaker opens: requests now skip A
# without a request and go straight to B, as fast as B is. Every cool-down, one trial
# request goes to A; while A is down it fails and the breaker reopens. If B struggles
# too, cached answers serve the common questions, marked as possibly stale, and
# everything else gets a clear "busy, try again in a minute" with a 503 and a
# `Retry-After`, never a stack trace. Health metrics and an alert on the breaker state
# tell the team. When A recovers, the next trial succeeds, the breaker closes, and
# traffic returns to A without a deploy. Keep B's capacity in mind: failing over
# doubles its load, so its own rate limits and breaker matter too.
# ```
#
# **6.** A hedged request returns the fastest answer. What goes wrong if you do not
# cancel the losers, or cancel them without awaiting them?
#
# ```{admonition} Answer
# :class: dropdown
# Not cancelling: the slow requests run to completion, holding connections and costing
# tokens for answers nobody reads; under load that doubles your traffic. Cancelling
# without awaiting: the tasks are only *asked* to stop. Their cleanup (closing the
# response, a breaker's bookkeeping) runs later, possibly after the caller has closed
# the HTTP client, and errors in them surface as "Task exception was never retrieved".
# Cancel, then `gather(..., return_exceptions=True)`.
# ```

# %% [markdown]
# ## Summary
#
# - Map provider errors to your own hierarchy at the API boundary, once, and raise
#   `from` the original. Retryable, non-retryable and invalid responses need different
#   handling; a batch can fail partially, and its result should say so.
# - Back off exponentially with jitter, honour `Retry-After`, and cap retries with a
#   budget. `tenacity` declares all of that in one place.
# - A token bucket caps the rate; a semaphore caps concurrency.
# - Degrade gracefully: track health, put a circuit breaker in front of each provider,
#   fall back along a chain (primary, secondary, cache, graceful error), and hedge slow
#   requests, cancelling the losers.

# %% [markdown]
# ## Next
#
# Build a circuit breaker and a multi-provider client with fallback and hedging in
# [the exercises](../exercises/06_resilience), tested against injected failures.
#
# Then [Chapter 7](07_streaming) streams answers chunk by chunk, where a failure can
# arrive halfway through a response.
