"""Graded tests of chapter 4's exercises: a token bucket, backoff with jitter, a rate-limited
async client, and a slow script made concurrent.

The bucket and the backoff run on a fake clock and a fake random source: nothing sleeps.
The client and the batch run against the course's local LLM server (one per module) and are
judged from the server's own request log: when each request arrived, which ``X-Request-ID``
it carried, how many requests were in flight. Each test counts under its own ``X-Mock-Key``
prefix, so its records are told apart from the others'. Delays are tens of milliseconds.

Timing enters only as bounds a correct answer meets by construction, with wide margins: a
retry reaches the server no sooner than the wait the client logged; no stretch of arrivals
holds more requests than the bucket allows in it, plus ``SLACK_S`` worth (scheduling can
bunch requests up on their way to the server); a heartbeat task never stalls for most of
one request's latency. Every await is guarded by a timeout, so a broken submission fails
instead of hanging.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import threading
import time
import types
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from course.llm_server import LLMServer, RequestRecord, server_state
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Module = types.ModuleType
T = TypeVar("T")
GUARD_S = 15.0  # no test comes near this; it only stops a broken submission hanging
TOLERANCE_S = 0.01  # how much earlier than the client's wait a retry may reach the server
AUTH = {"Authorization": "Bearer sk-course-local"}


def answer_to(prompt: str) -> str:
    return f"answer to {prompt}"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    # A scripted reply per prompt, so every expected answer is known.
    with LLMServer(replies={"prompt": answer_to}) as running:
        yield running


@pytest.fixture
def run() -> str:
    """This test's X-Mock-Key prefix."""
    return uuid.uuid4().hex[:10]


async def guarded(awaitable: Awaitable[T], what: str, seconds: float = GUARD_S) -> T:
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if deadline.expired():
            pytest.fail(f"{what} did not finish within {seconds:g} s", pytrace=False)
        raise


def records_of(server: LLMServer, run: str) -> list[RequestRecord]:
    """The server's records of this test's requests, in order of arrival."""
    return [r for r in server.log if r.key is not None and r.key.startswith(run)]


def by_request_id(records: list[RequestRecord]) -> dict[str, list[RequestRecord]]:
    grouped: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in records:
        grouped[record.request_id].append(record)
    return grouped


def gaps(records: list[RequestRecord]) -> list[float]:
    return [b.monotonic - a.monotonic for a, b in itertools.pairwise(records)]


def close(actual: Any, expected: float) -> bool:
    return type(actual) in (int, float) and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)


# ================================================================ token_bucket


class FakeClock:
    """A clock the test moves; its sleep moves it instead of waiting."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def bucket(notebook: Module, clock: FakeClock, rate: float = 4, capacity: float = 3) -> Any:
    return notebook.TokenBucket(rate=rate, capacity=capacity, clock=clock, sleep=clock.sleep)


@exercise("token_bucket", points=1, hint="Start full. try_acquire takes a token only when a whole one is "
          "there; wait_time is (1 - tokens) / rate, and takes nothing. Read time only through self.clock().")
def test_starts_full_then_refills_at_the_rate(notebook: Module) -> None:
    clock = FakeClock()
    limiter = bucket(notebook, clock, rate=4, capacity=3)
    taken = [limiter.try_acquire() for _ in range(4)]
    assert_same(taken, [True, True, True, False], "try_acquire() four times on a new bucket of capacity 3")
    waits = [limiter.wait_time(), limiter.wait_time()]
    assert all(close(w, 0.25) for w in waits), (
        f"an empty bucket at 4 tokens/s has a token in 0.25 s; wait_time() returned {waits}"
    )
    clock.now += 0.125
    assert_same(limiter.try_acquire(), False, "try_acquire() with half a token")
    wait = limiter.wait_time()
    assert close(wait, 0.125), f"half a token at 4 tokens/s: the next is 0.125 s away; got {wait}"
    clock.now += 0.125
    wait = limiter.wait_time()
    assert close(wait, 0.0), f"with a whole token there, wait_time() should be 0.0, got {wait}"
    assert_same([limiter.try_acquire(), limiter.try_acquire()], [True, False],
                "try_acquire() twice, 0.25 s after the bucket was emptied")


@exercise("token_bucket", points=1, hint="Refill with min(capacity, tokens + elapsed * rate): however long "
          "the bucket sat idle, it never holds more than capacity tokens.")
def test_refill_never_exceeds_capacity(notebook: Module) -> None:
    clock = FakeClock()
    limiter = bucket(notebook, clock, rate=4, capacity=3)
    for _ in range(3):
        limiter.try_acquire()
    clock.now += 0.5
    after_half_second = sum(same(limiter.try_acquire(), True) for _ in range(10))
    assert after_half_second == 2, (
        f"0.5 s at 4 tokens/s refills 2 tokens; try_acquire() succeeded {after_half_second} times"
    )
    for used in (3, 1, 0):
        limiter = bucket(notebook, clock, rate=4, capacity=3)
        for _ in range(used):
            limiter.try_acquire()
        clock.now += 3600
        after_an_hour = sum(same(limiter.try_acquire(), True) for _ in range(50))
        assert after_an_hour == 3, (
            f"a bucket of capacity 3, {3 - used} tokens left, then idle for an hour holds 3 tokens, not "
            f"more: try_acquire() succeeded {after_an_hour} times"
        )


@exercise("token_bucket", points=1, hint="acquire(): loop on try_acquire(), and when it fails await "
          "self.sleep(self.wait_time()); never sleep when a token is there, never asyncio.sleep directly.")
async def test_acquire_waits_through_the_given_sleep(notebook: Module) -> None:
    clock = FakeClock()
    start = clock.now
    limiter = bucket(notebook, clock, rate=4, capacity=2)
    hint = "(the test's sleep moves its fake clock: wait with self.sleep, read time with self.clock)"
    for _ in range(2):
        await guarded(limiter.acquire(), f"acquire() on a bucket with tokens {hint}", 2.0)
    assert clock.sleeps == [], f"acquire() slept {clock.sleeps} although a token was available"
    for _ in range(3):
        await guarded(limiter.acquire(), f"acquire() on an empty bucket {hint}", 2.0)
    waited = clock.now - start
    assert 0.75 - 1e-9 <= waited <= 0.8, (
        f"three more tokens at 4 tokens/s take 0.75 s of waiting; acquire() slept {waited:.4f} s in all "
        f"({clock.sleeps})"
    )
    assert_same(limiter.try_acquire(), False, "try_acquire() right after acquire() emptied the bucket")
    await guarded(asyncio.gather(*(limiter.acquire() for _ in range(3))),
                  f"three acquire() calls at once {hint}", 2.0)


# ================================================================ backoff_delay


class Draws:
    """A random source that returns a fixed value and counts its calls."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


# The two jitter schemes the exercise accepts: the share of the ceiling for a rand() value.
JITTER = {"equal jitter": lambda r: 0.5 + r / 2, "full jitter": lambda r: r}


@exercise("backoff_delay", points=1, hint="ceiling = min(cap, base * 2 ** (attempt - 1)); the delay is "
          "ceiling / 2 + rand() * ceiling / 2 (equal jitter) or rand() * ceiling (full jitter), with "
          "one call of the rand you are given.")
def test_backoff_doubles_with_equal_jitter(notebook: Module) -> None:
    got: dict[float, list[float]] = {}
    for value in (0.0, 0.5, 1.0):
        draws = Draws(value)
        got[value] = [notebook.backoff_delay(a, base=0.1, cap=100.0, rand=draws) for a in range(1, 6)]
        assert draws.calls == 5, f"rand() should be called once per delay: 5 delays, {draws.calls} calls"
    wants = {
        name: {v: [0.1 * 2 ** (a - 1) * share(v) for a in range(1, 6)] for v in got}
        for name, share in JITTER.items()
    }
    assert any(
        all(close(g, w) for v in got for g, w in zip(got[v], want[v], strict=True))
        for want in wants.values()
    ), (
        f"base=0.1, attempts 1-5, with rand() returning 0.0, 0.5 and 1.0 the delays were {got}; "
        f"equal jitter gives {wants['equal jitter']}, full jitter {wants['full jitter']}"
    )


@exercise("backoff_delay", points=1, hint="Cap the ceiling (not only the result) at cap, and raise "
          "ValueError for an attempt below 1.")
def test_backoff_is_capped_and_checks_its_input(notebook: Module) -> None:
    for attempt in (4, 5, 10, 60):
        low = notebook.backoff_delay(attempt, base=1.0, cap=8.0, rand=Draws(0.0))
        high = notebook.backoff_delay(attempt, base=1.0, cap=8.0, rand=Draws(1.0))
        assert (close(low, 4.0) or close(low, 0.0)) and close(high, 8.0), (
            f"attempt {attempt}, base=1, cap=8: the ceiling is 8, so the delay spans 4.0 to 8.0 "
            f"(equal jitter) or 0.0 to 8.0 (full jitter); got {low} and {high}"
        )
    for attempt in (0, -1):
        with pytest.raises(ValueError):
            notebook.backoff_delay(attempt, base=1.0, cap=8.0)
    delays = {notebook.backoff_delay(3, base=1.0, cap=8.0) for _ in range(20)}
    assert len(delays) > 10 and all(0.0 <= d <= 4.0 for d in delays), (
        f"with the default rand, 20 delays for attempt 3 (base 1) should differ and lie in [0, 4]: {delays}"
    )


# ================================================================ rate_limited_client


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def attempts(self) -> list[tuple[Any, Any, Any, Any]]:
        """(request_id, attempt, status, delay) of every record, in the order logged."""
        missing = object()
        rows = []
        for record in self.records:
            row = tuple(getattr(record, f, missing) for f in ("request_id", "attempt", "status", "delay"))
            if missing in row:
                continue
            request_id, attempt, status, delay = row
            typed = (type(request_id) is str and type(attempt) is int
                     and (status is None or type(status) is int) and type(delay) in (int, float))
            assert typed, (
                "log fields should be request_id: str, attempt: int, status: int or None, delay: float; "
                f"got {row!r}"
            )
            rows.append(row)
        return rows

    def of(self, request_id: str) -> list[tuple[int, int | None, float]]:
        return [(a, s, float(d)) for r, a, s, d in self.attempts() if r == request_id]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, Captured]]:
    logger = logging.getLogger(f"tests.chapter4.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Captured()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


@pytest.fixture
def logs(captured: tuple[logging.Logger, Captured]) -> Captured:
    return captured[1]


@pytest.fixture
async def make_client(
    notebook: Module, server: LLMServer, captured: tuple[logging.Logger, Captured]
) -> AsyncIterator[Callable[..., Any]]:
    """Build the submission's client, with fast defaults; closed after the test."""
    made: list[Any] = []

    def make(**options: Any) -> Any:
        settings: dict[str, Any] = {
            "requests_per_minute": 60_000, "burst": 100, "max_attempts": 4, "base_delay": 0.01,
            "max_delay": 1.0, "timeout": 5.0, "rand": random.Random(4).random, "logger": captured[0],
        }
        client = notebook.RateLimitedClient(server.base_url, **{**settings, **options})
        made.append(client)
        return client

    yield make
    for client in made:
        await client.http.aclose()


def call(spec: str, key: str) -> dict[str, str]:
    return {"X-Mock-Scenario": spec, "X-Mock-Key": key}


async def failure(awaitable: Awaitable[Any], what: str) -> Any:
    """The APIError a call raised (the test fails if it returned)."""
    try:
        result = await guarded(awaitable, what)
    except Exception as exc:
        return exc
    pytest.fail(f"{what} should raise APIError, but returned {result!r}", pytrace=False)


def check_api_error(notebook: Module, error: Any, status: int, attempts: int, what: str) -> None:
    assert isinstance(error, notebook.APIError), f"{what} should raise APIError, raised {error!r}"
    got = (error.status, error.attempts)
    assert same(got, (status, attempts)), (
        f"{what}: expected APIError with status={status}, attempts={attempts}; got {got!r}"
    )


@exercise("rate_limited_client", points=1, hint="Make one ID per complete() call (uuid4) and send it as the "
          "X-Request-ID header; log each attempt on self.logger with extra={'request_id': ..., 'attempt': "
          "..., 'status': ..., 'delay': ...}.")
async def test_each_call_carries_its_own_request_id(
    server: LLMServer, make_client: Callable[..., Any], logs: Captured, run: str
) -> None:
    client = make_client()
    prompts = ["prompt same", "prompt same", "prompt other"]
    answers = [await guarded(client.complete(p, headers=call("ok", run)), "complete()") for p in prompts]
    assert_same(answers, [answer_to(p) for p in prompts], "complete() for three prompts")
    records = records_of(server, run)
    ids = [r.request_id for r in records]
    assert len(records) == 3, f"three calls that succeed should send three requests; got {len(records)}"
    assert len(set(ids)) == 3, f"each call needs its own request ID, even for the same prompt; got {ids}"
    for record in records:
        logged = logs.of(record.request_id)
        assert logged == [(1, 200, 0.0)], (
            f"request {record.request_id!r} (as the server saw it) should be logged once by the client, with "
            f"attempt=1, status=200, delay=0.0; the client logged {logged} for it "
            f"(every attempt logged: {logs.attempts()})"
        )


@exercise("rate_limited_client", points=1, hint="A 5xx, or an httpx.TransportError such as a timeout, is "
          "retried; every attempt of one call sends the same X-Request-ID.")
async def test_retries_server_errors_and_timeouts_under_one_id(
    server: LLMServer, make_client: Callable[..., Any], logs: Captured, run: str
) -> None:
    client = make_client(timeout=0.5)
    cases = {
        "fail_first:2": [503, 503, 200], "fail_first:1:500": [500, 200], "fail_first:1:stall": [None, 200],
    }
    for number, (spec, statuses) in enumerate(cases.items()):
        key = f"{run}-{number}"
        prompt = f"prompt {number}"
        answer = await guarded(client.complete(prompt, headers=call(spec, key)), f"complete() under {spec}")
        assert_same(answer, answer_to(prompt), f"the answer after the failures of {spec}")
        records = [r for r in server.log if r.key == key]
        seen = [r.status for r in records]
        assert seen == statuses, f"under {spec} the server should see statuses {statuses}, saw {seen}"
        ids = {r.request_id for r in records}
        assert len(ids) == 1, f"every retry of one call must send the same X-Request-ID; the server saw {ids}"
        logged = logs.of(ids.pop())
        assert [(a, s) for a, s, _ in logged] == list(enumerate(statuses, start=1)), (
            f"under {spec}, the client should log (attempt, status) "
            f"{list(enumerate(statuses, start=1))} under the call's ID; it logged {logged}"
        )
        assert all(d > 0 for _, _, d in logged[:-1]) and logged[-1][2] == 0.0, (
            f"the delay logged before a retry is the wait (> 0); after the last attempt 0.0: {logged}"
        )


@exercise("rate_limited_client", points=1, hint="Wait backoff_delay(attempt, base=self.base_delay, "
          "cap=self.max_delay, rand=self.rand) with asyncio.sleep before each retry, up to max_attempts "
          "attempts in all; then raise APIError(status, request_id, attempts).")
async def test_backoff_grows_with_jitter_and_stops(
    notebook: Module, server: LLMServer, make_client: Callable[..., Any], logs: Captured, run: str
) -> None:
    base, calls = 0.04, 6
    client = make_client(base_delay=base, max_attempts=4, rand=random.Random(11).random)
    errors = await guarded(asyncio.gather(
        *(failure(client.complete(f"prompt {i}", headers=call("error:503", f"{run}-{i}")), "a call that "
                  "always gets 503") for i in range(calls))
    ), "six calls that always get 503")
    for error in errors:
        check_api_error(notebook, error, 503, 4, "a call that gets 503 on each of its 4 attempts")
    grouped = by_request_id(records_of(server, run))
    counts = sorted(len(records) for records in grouped.values())
    assert counts == [4] * calls, (
        f"{calls} calls, max_attempts=4: the server should see {calls} request IDs with 4 requests each; "
        f"it saw {len(grouped)} IDs with {counts} requests"
    )
    assert same(sorted(e.request_id for e in errors), sorted(grouped)), (
        "APIError.request_id should be the ID the call sent"
    )
    floors = [base * 2 ** k / 2 for k in range(3)]  # half of each ceiling
    spacing = {request_id: gaps(records) for request_id, records in grouped.items()}
    for request_id, spaced in spacing.items():
        shown = [round(g, 3) for g in spaced]
        logged = logs.of(request_id)
        assert [(a, s) for a, s, _ in logged] == [(1, 503), (2, 503), (3, 503), (4, 503)], (
            f"the client should log attempts 1-4, each with status 503; it logged {logged}"
        )
        delays = [d for _, _, d in logged]
        assert delays[3] == 0.0 and all(0 < d <= 2 * f for d, f in zip(delays, floors, strict=False)), (
            f"logged delays should be the backoff (attempt k: up to the ceiling {base} * 2**(k-1)), "
            f"0.0 after the last attempt; got {delays}"
        )

        assert all(g >= d - TOLERANCE_S for g, d in zip(spaced, delays, strict=False)), (
            f"the client logged delays of {delays} s but its retries reached the server after {shown} s"
        )
    first_delays = [logs.of(request_id)[0][2] for request_id in grouped]
    assert len(set(first_delays)) == calls, (
        f"with jitter, calls that fail together wait different times; the first delays were {first_delays}"
    )
    spreads = [max(column) - min(column) for column in zip(*spacing.values(), strict=True)]
    assert max(spreads) >= 0.008, (
        "calls that fail together should retry at different times (jitter); across the six calls the "
        f"gaps at each retry differ by at most {[round(s, 4) for s in spreads]} s on the server"
    )


@exercise("rate_limited_client", points=1, hint="After a 429 wait the larger of the backoff and "
          "retry_after_seconds(response): the server knows when it will let you in again.")
async def test_honours_retry_after(
    server: LLMServer, make_client: Callable[..., Any], logs: Captured, run: str
) -> None:
    # rand() always 1.0: the backoff is the whole ceiling (0.1 s, then 0.2 s) with either
    # jitter scheme the exercise accepts.
    client = make_client(base_delay=0.1, max_attempts=4, rand=lambda: 1.0)
    cases = [
        ("fail_first:2:rate_limited:retry_after=0.15", 0.15),  # Retry-After is the longer wait
        ("fail_first:1:rate_limited:retry_after=0.01", 0.1),  # the backoff is
    ]
    for number, (spec, floor) in enumerate(cases):
        key = f"{run}-{number}"
        prompt = f"prompt {number}"
        answer = await guarded(client.complete(prompt, headers=call(spec, key)), f"complete() under {spec}")
        assert_same(answer, answer_to(prompt), f"the answer after the 429s of {spec}")
        records = [r for r in server.log if r.key == key]
        statuses = [r.status for r in records]
        assert statuses[-1] == 200 and all(s == 429 for s in statuses[:-1]), (
            f"under {spec} the call should be retried until it succeeds; the server saw {statuses}"
        )
        shown = [round(g, 3) for g in gaps(records)]
        assert all(g >= floor - TOLERANCE_S for g in gaps(records)), (
            f"under {spec} with base_delay=0.1 every retry should wait at least {floor} s "
            f"(the larger of Retry-After and the backoff); the server saw gaps of {shown} s"
        )
        logged = logs.of(records[0].request_id)
        assert all(d >= floor for _, _, d in logged[:-1]), (
            f"the delays logged before each retry should be at least {floor} s: {logged}"
        )


@exercise("rate_limited_client", points=1, hint="Only 429, 5xx and transport errors are worth a retry: "
          "any other status (400, 401, 404, 422) raises APIError after one request.")
async def test_client_errors_are_not_retried(
    notebook: Module, server: LLMServer, make_client: Callable[..., Any], logs: Captured, run: str
) -> None:
    client = make_client()
    statuses = [400, 401, 404, 422]
    calls = [client.complete(f"prompt {s}", headers=call(f"error:{s}", f"{run}-{s}")) for s in statuses]
    errors = await guarded(
        asyncio.gather(*(failure(c, f"a call that gets {s}") for c, s in zip(calls, statuses, strict=True))),
        "calls that get 4xx errors",
    )
    for status, error in zip(statuses, errors, strict=True):
        check_api_error(notebook, error, status, 1, f"a call answered with {status}")
    for status in statuses:
        records = [r for r in server.log if r.key == f"{run}-{status}"]
        assert len(records) == 1, (
            f"a {status} means the request is wrong: it should not be retried; the server saw "
            f"{len(records)} requests"
        )
        logged = logs.of(records[0].request_id)
        assert logged == [(1, status, 0.0)], (
            f"the client should log the one attempt as (attempt=1, status={status}, delay=0.0); got {logged}"
        )


RATE = 100.0  # requests per second in the 200-call test: 6,000 a minute
BURST = 10
SLACK_S = 0.3  # how far the server's arrival times may bunch up requests the client spaced out


def worst_window(arrivals: list[float]) -> tuple[float, int, float]:
    """The stretch of arrivals that most exceeds BURST + RATE * (its length + SLACK_S):
    (excess, requests in it, its length). A token bucket keeps the excess at or below 0."""
    worst = (-math.inf, 0, 0.0)
    for i, start in enumerate(arrivals):
        for j in range(i, len(arrivals)):
            length = arrivals[j] - start
            excess = (j - i + 1) - (BURST + RATE * (length + SLACK_S) + 1)
            if excess > worst[0]:
                worst = (excess, j - i + 1, length)
    return worst


class CountingBucket:
    """Wraps the client's bucket to count the tokens it hands out."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.acquired = inner, 0

    async def acquire(self) -> None:
        await self.inner.acquire()
        self.acquired += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@exercise("rate_limited_client", points=2, hint="Every attempt, retries included, must first await "
          "self.bucket.acquire(), and log itself with the call's request ID and the status it got.")
async def test_200_concurrent_calls_keep_the_rate_and_stay_traceable(
    notebook: Module, server: LLMServer, make_client: Callable[..., Any], logs: Captured, run: str
) -> None:
    client = make_client(requests_per_minute=RATE * 60, burst=BURST, max_attempts=3, base_delay=0.01)
    client.bucket = bucket_spy = CountingBucket(client.bucket)

    def spec(i: int) -> str:
        return {7: "fail_first:1", 13: "error:400"}.get(i % 20, "ok")

    prompts = [f"prompt {i}" for i in range(200)]
    results = await guarded(asyncio.gather(
        *(client.complete(p, headers=call(spec(i), f"{run}-{i}")) for i, p in enumerate(prompts)),
        return_exceptions=True,
    ), "200 concurrent calls")
    for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
        if spec(i) == "error:400":
            check_api_error(notebook, result, 400, 1, f"call {i} (answered 400)")
        else:
            assert_same(result, answer_to(prompt), f"the answer to call {i} (scenario {spec(i)})")

    records = records_of(server, run)
    grouped = by_request_id(records)
    assert len(grouped) == 200, f"200 calls should use 200 distinct request IDs; got {len(grouped)}"
    shapes = sorted({tuple(r.status for r in group) for group in grouped.values()}, key=str)
    assert shapes == sorted({(200,), (400,), (503, 200)}, key=str), (
        "each call should be one request (200 or 400), or a 503 retried once under the same ID; "
        f"the status sequences per ID were {shapes}"
    )
    assert bucket_spy.acquired == len(records), (
        f"every attempt should take a token first: the server saw {len(records)} requests, and "
        f"self.bucket.acquire() handed out {bucket_spy.acquired} tokens"
    )
    excess, count, length = worst_window([r.monotonic for r in records])
    assert excess <= 0, (
        f"rate limit {RATE:g}/s, bursts of {BURST}: {count} requests reached the server within "
        f"{length * 1000:.0f} ms, where at most {BURST} + {RATE:g} * {length:.3f} s (+ a slack of "
        f"{SLACK_S * 1000:.0f} ms) fit"
    )
    logged = sorted((r, s) for r, _, s, _ in logs.attempts())
    served = sorted((r.request_id, r.status) for r in records)
    assert logged == served, (
        "every request the server saw should be logged by the client with its request ID and status "
        f"(one log record per attempt): {len(served)} requests, {len(logged)} log records, "
        f"{len(set(served) - set(logged))} requests missing from the logs"
    )


# ================================================================ bounded_batch


class Tagging(httpx.AsyncBaseTransport):
    """Lets a test set the scenario of each prompt, fail some before they leave, and see
    which prompts were sent and from which thread."""

    def __init__(self, scenario: Callable[[str], str | None]) -> None:
        self.scenario = scenario
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        self.sent.append(prompt)
        spec = self.scenario(prompt)
        if spec == "refused":
            raise httpx.ConnectError("connection refused (a test fault)", request=request)
        if spec is not None:
            request.headers["X-Mock-Scenario"] = spec
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


Batch = tuple[httpx.AsyncClient, Tagging]


@pytest.fixture
async def batch_client(server: LLMServer, run: str) -> AsyncIterator[Callable[..., Batch]]:
    """An httpx.AsyncClient as the learner's function receives it, and its transport."""
    made: list[httpx.AsyncClient] = []

    def make(scenario: Callable[[str], str | None]) -> Batch:
        transport = Tagging(scenario)
        client = httpx.AsyncClient(
            base_url=server.base_url, headers={**AUTH, "X-Mock-Key": run}, transport=transport, timeout=10.0
        )
        made.append(client)
        return client, transport

    yield make
    for client in made:
        await client.aclose()


async def idle(server: LLMServer) -> None:
    """Wait until no request is in progress, so in_flight counts only this test's."""
    for _ in range(500):
        if not server_state(server.app).in_flight:
            return
        await asyncio.sleep(0.01)


async def answer_all(notebook: Module, client: httpx.AsyncClient, prompts: list[str], limit: int) -> Any:
    return await guarded(notebook.answer_all(client, prompts, limit), f"answer_all({len(prompts)} prompts)")


@exercise("bounded_batch", points=1, hint="Return the answers in the order of the prompts, not the order "
          "they arrive in: asyncio.gather keeps the order of its arguments.")
async def test_answers_come_back_in_input_order(
    notebook: Module, batch_client: Callable[..., Batch]
) -> None:
    prompts = [f"prompt {i}" for i in range(12)]
    # Later prompts answer faster, so answers arrive out of order.
    client, _ = batch_client(lambda p: f"latency:{(12 - int(p.split()[1])) * 10}ms")
    answers = await answer_all(notebook, client, prompts, 4)
    assert_same(answers, [answer_to(p) for p in prompts], "answer_all() for 12 prompts")
    assert_same(await answer_all(notebook, client, [], 4), [], "answer_all() with no prompts")


@exercise("bounded_batch", points=1, hint="Send the requests concurrently (gather or a TaskGroup), each "
          "inside `async with semaphore:` where asyncio.Semaphore(limit); raise ValueError for limit < 1.")
async def test_concurrent_but_never_above_the_limit(
    notebook: Module, server: LLMServer, batch_client: Callable[..., Batch], run: str
) -> None:
    client, _ = batch_client(lambda p: "latency:40ms")
    for count, limit in ((20, 5), (6, 2)):
        await idle(server)
        before = len(records_of(server, run))
        prompts = [f"prompt {limit}-{i}" for i in range(count)]
        answers = await answer_all(notebook, client, prompts, limit)
        assert_same(answers, [answer_to(p) for p in prompts], f"answer_all({count} prompts, limit={limit})")
        records = records_of(server, run)[before:]
        peak = max((r.in_flight for r in records), default=0)
        assert len(records) == count, f"{count} prompts should make {count} requests; got {len(records)}"
        assert peak > 1, (
            f"{count} prompts with limit={limit}: requests should overlap, but the server never had more "
            "than one in flight; the script is still sequential"
        )
        assert peak <= limit, (
            f"{count} prompts with limit={limit}: the server had {peak} requests in flight at once"
        )
    for limit in (0, -3):
        with pytest.raises(ValueError):
            await answer_all(notebook, client, ["prompt x"], limit)
    one = await answer_all(notebook, client, ["prompt y", "prompt z"], 1)  # 1 is the smallest limit
    assert_same(one, [answer_to("prompt y"), answer_to("prompt z")], "answer_all(2 prompts, limit=1)")


@exercise("bounded_batch", points=1, hint="Catch failures per prompt: a non-200 status or an "
          "httpx.HTTPError gives None in that prompt's place, and the other prompts still get their answers.")
async def test_failures_become_none_and_spare_the_rest(
    notebook: Module, batch_client: Callable[..., Batch]
) -> None:
    faults = {"prompt 2": "error:500", "prompt 5": "error:400", "prompt 7": "refused",
              "prompt 8": "error:429"}
    client, transport = batch_client(faults.get)
    prompts = [f"prompt {i}" for i in range(10)]
    answers = await answer_all(notebook, client, prompts, 3)
    want = [None if p in faults else answer_to(p) for p in prompts]
    assert_same(answers, want, "answer_all() when prompts 2, 5, 7 and 8 fail (500, 400, refused, 429)")
    assert sorted(transport.sent) == sorted(prompts), (
        f"each prompt should be sent once (no retries here, none skipped); sent: {sorted(transport.sent)}"
    )


class LoopWatch:
    """Records blocking calls made on the event loop's thread."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.blocking: list[str] = []

    def wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self.loop_thread:
                self.blocking.append(name)
            return original(*args, **kwargs)

        return watched


@exercise("bounded_batch", points=1, hint="Nothing may block the event loop: asyncio.sleep, not time.sleep; "
          "the httpx.AsyncClient you are given, not httpx.get/post or httpx.Client.")
async def test_never_blocks_the_event_loop(
    notebook: Module, batch_client: Callable[..., Batch], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = LoopWatch(threading.get_ident())
    original_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", watch.wrap("time.sleep", original_sleep))
    for name, value in vars(notebook).items():
        if value is original_sleep:  # `from time import sleep`
            monkeypatch.setattr(notebook, name, watch.wrap(name, original_sleep))
    monkeypatch.setattr(httpx.Client, "send", watch.wrap("httpx.Client.send", httpx.Client.send))

    latency = 0.3
    client, _ = batch_client(lambda p: f"latency:{latency * 1000:.0f}ms")
    ticks: list[float] = []
    loop = asyncio.get_running_loop()

    async def heartbeat() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.005)

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    prompts = [f"prompt {i}" for i in range(4)]
    try:
        answers = await answer_all(notebook, client, prompts, 4)
    finally:
        ticks.append(loop.time())
        beating.cancel()
    assert not watch.blocking, (
        f"answer_all() made blocking calls on the event loop's thread: {sorted(set(watch.blocking))}"
    )
    longest = max(b - a for a, b in itertools.pairwise(ticks))
    assert longest < 0.8 * latency, (
        f"a heartbeat task should tick every 5 ms while answer_all() runs, but the event loop was blocked "
        f"for {longest * 1000:.0f} ms (each request takes {latency * 1000:.0f} ms)"
    )
    assert_same(answers, [answer_to(p) for p in prompts], "answer_all() for 4 prompts")


