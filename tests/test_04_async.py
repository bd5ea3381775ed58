"""Graded tests of chapter 4's exercises: a token bucket, backoff with jitter, a rate-limited
async client, and a slow script made concurrent.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data. The bucket and the
backoff run on a fake clock and a fake random source inside the probe: nothing sleeps.
Rates, capacities, bases and random draws are picked per run, so an answer that returns
the published examples earns nothing.

The client and the batch run in the worker against the course's local LLM server, which
the judge runs (one per module), and are judged from the server's own request log: when
each request arrived, which ``X-Request-ID`` it carried, how many requests were in flight.
The worker only reports what the learner's code returned and logged. Each test counts under
its own ``X-Mock-Key`` prefix, so its records are told apart from the others'; prompts hold
random words, so every expected answer is known to the judge alone. Delays are tens of
milliseconds.

Timing enters only as bounds a correct answer meets by construction, with wide margins: a
retry reaches the server no sooner than the wait the client logged; no stretch of arrivals
holds more requests than the bucket allows in it, plus ``SLACK_S`` worth (scheduling can
bunch requests up on their way to the server); a heartbeat task never stalls for most of
one request's latency. Every await in a probe is guarded by a timeout, so a broken
submission fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import string
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from course.llm_server import LLMServer, RequestRecord, server_state
from course.probing import plain, probe, raised, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any
T = TypeVar("T")
GUARD_S = 15.0  # no test comes near this; it only stops a broken submission hanging
TOLERANCE_S = 0.01  # how much earlier than the client's wait a retry may reach the server
AUTH = {"Authorization": "Bearer sk-course-local"}


class Answers:
    """The server's scripted reply to a prompt: it holds a word drawn when the server starts,
    so only an answer that came from the server can match it."""

    def __init__(self) -> None:
        self.salt = word(8)

    def __call__(self, prompt: str) -> str:
        return f"answer to {prompt} ({self.salt})"


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def prompt_text(label: object = "") -> str:
    """A prompt the server answers with Answers (it holds "prompt") and nobody can guess."""
    return f"prompt {label} {word()}".replace("  ", " ")


@pytest.fixture(scope="module")
def answer_to() -> Answers:
    return Answers()


@pytest.fixture(scope="module")
def server(answer_to: Answers) -> Iterator[LLMServer]:
    # A scripted reply per prompt, so every expected answer is known (to the judge only).
    with LLMServer(replies={"prompt": answer_to}) as running:
        yield running


@pytest.fixture
def run() -> str:
    """This test's X-Mock-Key prefix."""
    return uuid.uuid4().hex[:10]


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




def check_hung(got: Any) -> None:
    """Fail with the probe's description if a guarded await ran out of time."""
    if isinstance(got, dict) and "hung" in got:
        pytest.fail(str(got["hung"]), pytrace=False)


# --------------------------------------------------------------- worker-side helpers


async def guarded(awaitable: Awaitable[T], what: str, seconds: float = GUARD_S) -> T:
    """Await with a deadline; on expiry raise Hung (which a probe turns into data)."""
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if deadline.expired():
            raise Hung(f"{what} did not finish within {seconds:g} s") from None
        raise


class Hung(Exception):
    """A guarded await that ran out of time (in a worker)."""


# ================================================================ token_bucket


class FakeClock:
    """A clock the probe moves; its sleep moves it instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def bucket(nb: Any, clock: FakeClock, rate: float, capacity: float) -> Any:
    return nb.TokenBucket(rate=rate, capacity=capacity, clock=clock, sleep=clock.sleep)


def bucket_settings() -> tuple[float, int, float]:
    """A random rate (a power of two, so the fake clock's sums are exact), capacity and start."""
    return float(random.choice([2, 4, 8, 16])), random.randint(2, 6), float(random.randint(10, 10_000))


@probe
def probe_bucket_refills(nb: Any, rate: float, capacity: int, start: float) -> Data:
    clock = FakeClock(start)
    limiter = bucket(nb, clock, rate, capacity)
    got: dict[str, Any] = {"taken": [plain(limiter.try_acquire()) for _ in range(capacity + 1)]}
    got["empty_waits"] = [plain(limiter.wait_time()), plain(limiter.wait_time())]
    clock.now += 0.5 / rate
    got["half_taken"] = plain(limiter.try_acquire())
    got["half_wait"] = plain(limiter.wait_time())
    clock.now += 0.5 / rate
    got["full_wait"] = plain(limiter.wait_time())
    got["after"] = [plain(limiter.try_acquire()), plain(limiter.try_acquire())]
    return got


@exercise("token_bucket", points=1, hint="Start full. try_acquire takes a token only when a whole one is "
          "there; wait_time is (1 - tokens) / rate, and takes nothing. Read time only through self.clock().")
def test_starts_full_then_refills_at_the_rate(notebook: Any) -> None:
    rate, capacity, start = bucket_settings()
    got = probe_bucket_refills(notebook, rate, capacity, start)
    assert_same(got["taken"], [True] * capacity + [False],
                f"try_acquire() {capacity + 1} times on a new bucket of capacity {capacity}")
    assert all(close(w, 1 / rate) for w in got["empty_waits"]), (
        f"an empty bucket at {rate:g} tokens/s has a token in {1 / rate:g} s; wait_time() returned "
        f"{got['empty_waits']}"
    )
    assert_same(got["half_taken"], False, "try_acquire() with half a token")
    assert close(got["half_wait"], 0.5 / rate), (
        f"half a token at {rate:g} tokens/s: the next is {0.5 / rate:g} s away; got {got['half_wait']}"
    )
    assert close(got["full_wait"], 0.0), (
        f"with a whole token there, wait_time() should be 0.0, got {got['full_wait']}"
    )
    assert_same(got["after"], [True, False],
                f"try_acquire() twice, {1 / rate:g} s after the bucket was emptied")


@probe
def probe_bucket_capacity(nb: Any, rate: float, capacity: int, start: float, refill: int) -> Data:
    clock = FakeClock(start)
    limiter = bucket(nb, clock, rate, capacity)
    for _ in range(capacity):
        limiter.try_acquire()
    clock.now += refill / rate
    got: dict[str, Any] = {"refilled": sum(same(limiter.try_acquire(), True) for _ in range(capacity + 5))}
    got["after_an_hour"] = {}
    for used in (capacity, 1, 0):
        limiter = bucket(nb, clock, rate, capacity)
        for _ in range(used):
            limiter.try_acquire()
        clock.now += 3600
        got["after_an_hour"][str(used)] = sum(same(limiter.try_acquire(), True) for _ in range(50))
    return got


@exercise("token_bucket", points=1, hint="Refill with min(capacity, tokens + elapsed * rate): however long "
          "the bucket sat idle, it never holds more than capacity tokens.")
def test_refill_never_exceeds_capacity(notebook: Any) -> None:
    rate, capacity, start = bucket_settings()
    refill = random.randint(1, capacity - 1)
    got = probe_bucket_capacity(notebook, rate, capacity, start, refill)
    assert got["refilled"] == refill, (
        f"{refill / rate:g} s at {rate:g} tokens/s refills {refill} tokens; try_acquire() succeeded "
        f"{got['refilled']} times"
    )
    for used in (capacity, 1, 0):
        after = got["after_an_hour"][str(used)]
        assert after == capacity, (
            f"a bucket of capacity {capacity}, {capacity - used} tokens left, then idle for an hour holds "
            f"{capacity} tokens, not more: try_acquire() succeeded {after} times"
        )


@probe
async def probe_bucket_acquire(nb: Any, rate: float, capacity: int, start: float, more: int) -> Data:
    clock = FakeClock(start)
    limiter = bucket(nb, clock, rate, capacity)
    hint = "(the test's sleep moves its fake clock: wait with self.sleep, read time with self.clock)"
    try:
        for _ in range(capacity):
            await guarded(limiter.acquire(), f"acquire() on a bucket with tokens {hint}", 2.0)
        got: dict[str, Any] = {"full_sleeps": [plain(s) for s in clock.sleeps]}
        for _ in range(more):
            await guarded(limiter.acquire(), f"acquire() on an empty bucket {hint}", 2.0)
        got["waited"] = clock.now - start
        got["sleeps"] = [plain(s) for s in clock.sleeps]
        got["then"] = plain(limiter.try_acquire())
        await guarded(asyncio.gather(*(limiter.acquire() for _ in range(3))),
                      f"three acquire() calls at once {hint}", 2.0)
    except Hung as exc:
        return {"hung": str(exc)}
    return got


@exercise("token_bucket", points=1, hint="acquire(): loop on try_acquire(), and when it fails await "
          "self.sleep(self.wait_time()); never sleep when a token is there, never asyncio.sleep directly.")
def test_acquire_waits_through_the_given_sleep(notebook: Any) -> None:
    rate, capacity, start = bucket_settings()
    more = random.randint(2, 4)
    got = probe_bucket_acquire(notebook, rate, capacity, start, more)
    check_hung(got)
    assert got["full_sleeps"] == [], f"acquire() slept {got['full_sleeps']} although a token was available"
    need = more / rate
    waited = got["waited"]
    assert need - 1e-9 <= waited <= need + 0.2 / rate, (
        f"{more} more tokens at {rate:g} tokens/s take {need:g} s of waiting; acquire() slept "
        f"{waited:.4f} s in all ({got['sleeps']})"
    )
    assert_same(got["then"], False, "try_acquire() right after acquire() emptied the bucket")


# ================================================================ backoff_delay


class Draws:
    """A random source that returns a fixed value and counts its calls."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


@probe
def probe_backoff(nb: Any, cases: list[list[float]]) -> Data:
    """Each case is [attempts, base, cap, drawn]; the delays and the number of draws."""
    out = []
    for attempts, base, cap, value in cases:
        draws = Draws(value)
        delays = [plain(nb.backoff_delay(a, base=base, cap=cap, rand=draws))
                  for a in range(1, int(attempts) + 1)]
        out.append({"delays": delays, "calls": draws.calls})
    return out


# The two jitter schemes the exercise accepts: the share of the ceiling for a rand() value.
JITTER = {"equal jitter": lambda r: 0.5 + r / 2, "full jitter": lambda r: r}


@exercise("backoff_delay", points=1, hint="ceiling = min(cap, base * 2 ** (attempt - 1)); the delay is "
          "ceiling / 2 + rand() * ceiling / 2 (equal jitter) or rand() * ceiling (full jitter), with "
          "one call of the rand you are given.")
def test_backoff_doubles_with_equal_jitter(notebook: Any) -> None:
    base = random.choice([0.05, 0.1, 0.2, 0.3, 0.5, 1.5])
    values = [0.0, round(random.uniform(0.05, 0.95), 3), 1.0]
    got = probe_backoff(notebook, [[5, base, 1000.0, value] for value in values])
    for result in got:
        assert result["calls"] == 5, (
            f"rand() should be called once per delay: 5 delays, {result['calls']} calls"
        )
    delays = {value: result["delays"] for value, result in zip(values, got, strict=True)}
    wants = {name: {v: [base * 2 ** (a - 1) * share(v) for a in range(1, 6)] for v in values}
             for name, share in JITTER.items()}
    assert any(
        all(close(g, w) for v in values for g, w in zip(delays[v], want[v], strict=True))
        for want in wants.values()
    ), (
        f"base={base}, attempts 1-5, with rand() returning {values} the delays were {delays}; "
        f"equal jitter gives {wants['equal jitter']}, full jitter {wants['full jitter']}"
    )


@probe
def probe_backoff_cap(nb: Any, attempts: list[int], base: float, cap: float, default_attempt: int) -> Data:
    return {
        "low": [plain(nb.backoff_delay(a, base=base, cap=cap, rand=Draws(0.0))) for a in attempts],
        "high": [plain(nb.backoff_delay(a, base=base, cap=cap, rand=Draws(1.0))) for a in attempts],
        "below_one": [raised(nb.backoff_delay, a, base=base, cap=cap) for a in (0, -1)],
        "default": [plain(nb.backoff_delay(default_attempt, base=base, cap=cap)) for _ in range(20)],
    }


@exercise("backoff_delay", points=1, hint="Cap the ceiling (not only the result) at cap, and raise "
          "ValueError for an attempt below 1.")
def test_backoff_is_capped_and_checks_its_input(notebook: Any) -> None:
    base = random.choice([0.25, 0.5, 1.0, 2.0, 3.0])
    doublings = random.randint(2, 4)
    cap = base * 2 ** doublings  # reached at attempt doublings + 1
    attempts = [doublings + 1, doublings + 2, random.randint(10, 20), 60]
    default_attempt = random.randint(2, doublings)
    got = probe_backoff_cap(notebook, attempts, base, cap, default_attempt)
    for attempt, low, high in zip(attempts, got["low"], got["high"], strict=True):
        assert (close(low, cap / 2) or close(low, 0.0)) and close(high, cap), (
            f"attempt {attempt}, base={base}, cap={cap}: the ceiling is {cap}, so the delay spans "
            f"{cap / 2} to {cap} (equal jitter) or 0.0 to {cap} (full jitter); got {low} and {high}"
        )
    for attempt, error in zip((0, -1), got["below_one"], strict=True):
        assert error is not None and error["type"] == "ValueError", (
            f"backoff_delay({attempt}, ...) should raise ValueError, got {error}"
        )
    ceiling = base * 2 ** (default_attempt - 1)
    delays = got["default"]
    numbers = [d for d in delays if type(d) in (int, float)]
    spread = len(set(numbers)) > 10 and len(numbers) == 20
    assert spread and all(0.0 <= d <= ceiling for d in numbers), (
        f"with the default rand, 20 delays for attempt {default_attempt} (base {base}) should differ and "
        f"lie in [0, {ceiling}]: {delays}"
    )


# ================================================================ rate_limited_client


class Captured(logging.Handler):
    """Keeps (request_id, attempt, status, delay) of every record that has all four."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.rows: list[list[Data]] = []

    def emit(self, record: logging.LogRecord) -> None:
        missing = object()
        row = [getattr(record, f, missing) for f in ("request_id", "attempt", "status", "delay")]
        if not any(value is missing for value in row):
            self.rows.append([plain(value) for value in row])


def capture_logs() -> tuple[logging.Logger, Captured]:
    logger = logging.getLogger(f"tests.chapter4.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Captured()
    logger.addHandler(handler)
    return logger, handler


class CountingBucket:
    """Wraps the client's bucket to count the tokens it hands out."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.acquired = inner, 0

    async def acquire(self) -> None:
        await self.inner.acquire()
        self.acquired += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def outcome_of(nb: Any, result: Any) -> Data:
    """What one complete() call gave: its answer, or the error it raised, as data."""
    if not isinstance(result, BaseException):
        return {"answer": plain(result)}
    return {"error": {"type": type(result).__name__, "message": shown(result, str),
                      "api_error": isinstance(result, nb.APIError),
                      "status": plain(getattr(result, "status", None)),
                      "attempts": plain(getattr(result, "attempts", None)),
                      "request_id": plain(getattr(result, "request_id", None))}}


@probe
async def probe_client(nb: Any, base_url: str, calls: list[list[str]], options: dict[str, Any]) -> Data:
    """Run complete(prompt, headers={scenario, key}) for each [prompt, scenario, key] on one client
    (all at once when options["together"]); what each returned or raised, and the client's log."""
    logger, logs = capture_logs()
    settings: dict[str, Any] = {
        "requests_per_minute": 60_000, "burst": 100, "max_attempts": 4, "base_delay": 0.01,
        "max_delay": 1.0, "timeout": 5.0,
    }
    settings.update({k: v for k, v in options.items()
                     if k not in ("seed", "together", "count_tokens", "rand_one")})
    rand = (lambda: 1.0) if options.get("rand_one") else random.Random(options.get("seed", 4)).random
    client = nb.RateLimitedClient(base_url, **settings, rand=rand, logger=logger)
    spy = None
    if options.get("count_tokens"):
        client.bucket = spy = CountingBucket(client.bucket)
    results: list[Any] = []
    try:
        def complete(prompt: str, spec: str, key: str) -> Any:
            return client.complete(prompt, headers={"X-Mock-Scenario": spec, "X-Mock-Key": key})

        if options.get("together"):
            results = list(await guarded(
                asyncio.gather(*(complete(*c) for c in calls), return_exceptions=True),
                f"{len(calls)} concurrent calls of complete()"))
        else:
            for prompt, spec, key in calls:
                try:
                    results.append(await guarded(complete(prompt, spec, key), f"complete() under {spec}"))
                except Hung:
                    raise
                except Exception as exc:
                    results.append(exc)
    except Hung as exc:
        return {"hung": str(exc)}
    finally:
        await client.http.aclose()
    return {"results": [outcome_of(nb, r) for r in results], "logs": logs.rows,
            "tokens": spy.acquired if spy is not None else None}


class Logs:
    """The client's log rows (from the worker), checked for their types."""

    def __init__(self, rows: list[list[Any]]) -> None:
        for row in rows:
            request_id, attempt, status, delay = row
            typed = (type(request_id) is str and type(attempt) is int
                     and (status is None or type(status) is int) and type(delay) in (int, float))
            assert typed, (
                "log fields should be request_id: str, attempt: int, status: int or None, delay: float; "
                f"got {row!r}"
            )
        self.rows = [tuple(row) for row in rows]

    def attempts(self) -> list[tuple[Any, ...]]:
        return self.rows

    def of(self, request_id: str) -> list[tuple[int, int | None, float]]:
        return [(a, s, float(d)) for r, a, s, d in self.rows if r == request_id]


def run_client(
    notebook: Any, server: LLMServer, calls: list[list[str]], **options: Any
) -> tuple[list[Any], Logs]:
    got = probe_client(notebook, server.base_url, calls, options)
    check_hung(got)
    return got["results"], Logs(got["logs"])


def answer_of(result: dict[str, Any], what: str) -> Any:
    if "error" in result:
        error = result["error"]
        pytest.fail(f"{what}: complete() raised {error['type']}: {error['message']}", pytrace=False)
    return result["answer"]


def check_api_error(result: dict[str, Any], status: int, attempts: int, what: str) -> dict[str, Any]:
    assert "error" in result, f"{what} should raise APIError, but returned {result['answer']!r}"
    error = result["error"]
    assert error["api_error"], f"{what} should raise APIError, raised {error['type']}: {error['message']}"
    got = [error["status"], error["attempts"]]
    assert same(got, [status, attempts]), (
        f"{what}: expected APIError with status={status}, attempts={attempts}; got {tuple(got)!r}"
    )
    return error


@exercise("rate_limited_client", points=1, hint="Make one ID per complete() call (uuid4) and send it as the "
          "X-Request-ID header; log each attempt on self.logger with extra={'request_id': ..., 'attempt': "
          "..., 'status': ..., 'delay': ...}.")
def test_each_call_carries_its_own_request_id(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    same_prompt = prompt_text("same")
    prompts = [same_prompt, same_prompt, prompt_text("other")]
    results, logs = run_client(notebook, server, [[p, "ok", run] for p in prompts])
    answers = [answer_of(r, "a call that should succeed") for r in results]
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
def test_retries_server_errors_and_timeouts_under_one_id(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    cases = {
        "fail_first:2": [503, 503, 200], "fail_first:1:500": [500, 200], "fail_first:1:stall": [None, 200],
    }
    prompts = [prompt_text(number) for number in range(len(cases))]
    calls = [[prompt, spec, f"{run}-{number}"]
             for number, (prompt, spec) in enumerate(zip(prompts, cases, strict=True))]
    results, logs = run_client(notebook, server, calls, timeout=0.5)
    for number, (spec, statuses) in enumerate(cases.items()):
        answer = answer_of(results[number], f"complete() under {spec}")
        assert_same(answer, answer_to(prompts[number]), f"the answer after the failures of {spec}")
        records = [r for r in server.log if r.key == f"{run}-{number}"]
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
def test_backoff_grows_with_jitter_and_stops(server: LLMServer, notebook: Any, run: str) -> None:
    base, calls = 0.04, 6
    results, logs = run_client(
        notebook, server, [[prompt_text(i), "error:503", f"{run}-{i}"] for i in range(calls)],
        base_delay=base, max_attempts=4, seed=random.randint(0, 10**6), together=True)
    errors = [check_api_error(r, 503, 4, "a call that gets 503 on each of its 4 attempts") for r in results]
    grouped = by_request_id(records_of(server, run))
    counts = sorted(len(records) for records in grouped.values())
    assert counts == [4] * calls, (
        f"{calls} calls, max_attempts=4: the server should see {calls} request IDs with 4 requests each; "
        f"it saw {len(grouped)} IDs with {counts} requests"
    )
    assert same(sorted(str(e["request_id"]) for e in errors), sorted(grouped)), (
        "APIError.request_id should be the ID the call sent"
    )
    floors = [base * 2 ** k / 2 for k in range(3)]  # half of each ceiling
    spacing = {request_id: gaps(records) for request_id, records in grouped.items()}
    for request_id, spaced in spacing.items():
        shown_gaps = [round(g, 3) for g in spaced]
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
            f"the client logged delays of {delays} s but its retries reached the server after {shown_gaps} s"
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
def test_honours_retry_after(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    cases = [
        ("fail_first:2:rate_limited:retry_after=0.15", 0.15),  # Retry-After is the longer wait
        ("fail_first:1:rate_limited:retry_after=0.01", 0.1),  # the backoff is
    ]
    prompts = [prompt_text(number) for number in range(len(cases))]
    calls = [[prompt, spec, f"{run}-{number}"]
             for number, (prompt, (spec, _)) in enumerate(zip(prompts, cases, strict=True))]
    # rand() always 1.0: the backoff is the whole ceiling (0.1 s, then 0.2 s) with either
    # jitter scheme the exercise accepts.
    results, logs = run_client(notebook, server, calls, base_delay=0.1, max_attempts=4, rand_one=True)
    for number, (spec, floor) in enumerate(cases):
        answer = answer_of(results[number], f"complete() under {spec}")
        assert_same(answer, answer_to(prompts[number]), f"the answer after the 429s of {spec}")
        records = [r for r in server.log if r.key == f"{run}-{number}"]
        statuses = [r.status for r in records]
        assert statuses[-1] == 200 and all(s == 429 for s in statuses[:-1]), (
            f"under {spec} the call should be retried until it succeeds; the server saw {statuses}"
        )
        shown_gaps = [round(g, 3) for g in gaps(records)]
        assert all(g >= floor - TOLERANCE_S for g in gaps(records)), (
            f"under {spec} with base_delay=0.1 every retry should wait at least {floor} s "
            f"(the larger of Retry-After and the backoff); the server saw gaps of {shown_gaps} s"
        )
        logged = logs.of(records[0].request_id)
        assert all(d >= floor for _, _, d in logged[:-1]), (
            f"the delays logged before each retry should be at least {floor} s: {logged}"
        )


@exercise("rate_limited_client", points=1, hint="Only 429, 5xx and transport errors are worth a retry: "
          "any other status (400, 401, 404, 422) raises APIError after one request.")
def test_client_errors_are_not_retried(server: LLMServer, notebook: Any, run: str) -> None:
    statuses = [400, 401, 404, 422]
    random.shuffle(statuses)
    calls = [[prompt_text(s), f"error:{s}", f"{run}-{s}"] for s in statuses]
    results, logs = run_client(notebook, server, calls, together=True)
    for status, result in zip(statuses, results, strict=True):
        check_api_error(result, status, 1, f"a call answered with {status}")
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


@exercise("rate_limited_client", points=2, hint="Every attempt, retries included, must first await "
          "self.bucket.acquire(), and log itself with the call's request ID and the status it got.")
def test_200_concurrent_calls_keep_the_rate_and_stay_traceable(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    retried, refused = random.sample(range(20), 2)

    def spec(i: int) -> str:
        return {retried: "fail_first:1", refused: "error:400"}.get(i % 20, "ok")

    prompts = [prompt_text(i) for i in range(200)]
    got = probe_client(notebook, server.base_url,
                       [[p, spec(i), f"{run}-{i}"] for i, p in enumerate(prompts)],
                       {"requests_per_minute": RATE * 60, "burst": BURST, "max_attempts": 3,
                        "base_delay": 0.01, "together": True, "count_tokens": True})
    check_hung(got)
    results, logs = got["results"], Logs(got["logs"])
    for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
        if spec(i) == "error:400":
            check_api_error(result, 400, 1, f"call {i} (answered 400)")
        else:
            answer = answer_of(result, f"call {i} (scenario {spec(i)})")
            assert_same(answer, answer_to(prompt), f"the answer to call {i} (scenario {spec(i)})")

    records = records_of(server, run)
    grouped = by_request_id(records)
    assert len(grouped) == 200, f"200 calls should use 200 distinct request IDs; got {len(grouped)}"
    shapes = sorted({tuple(r.status for r in group) for group in grouped.values()}, key=str)
    assert shapes == sorted({(200,), (400,), (503, 200)}, key=str), (
        "each call should be one request (200 or 400), or a 503 retried once under the same ID; "
        f"the status sequences per ID were {shapes}"
    )
    assert got["tokens"] == len(records), (
        f"every attempt should take a token first: the server saw {len(records)} requests, and "
        f"self.bucket.acquire() handed out {got['tokens']} tokens"
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
    """Sets the scenario of each prompt, fails some before they leave ("refused"), and
    records which prompts were sent."""

    def __init__(self, scenarios: dict[str, str]) -> None:
        self.scenarios = scenarios
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        self.sent.append(str(prompt))
        spec = self.scenarios.get(prompt)
        if spec == "refused":
            raise httpx.ConnectError("connection refused (a test fault)", request=request)
        if spec is not None:
            request.headers["X-Mock-Scenario"] = spec
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def batch_client(base_url: str, key: str, scenarios: dict[str, str]) -> tuple[httpx.AsyncClient, Tagging]:
    """An httpx.AsyncClient as the learner's function receives it, and its transport."""
    transport = Tagging(scenarios)
    client = httpx.AsyncClient(base_url=base_url, headers={**AUTH, "X-Mock-Key": key}, transport=transport,
                               timeout=10.0)
    return client, transport


@probe
async def probe_answer_all(nb: Any, base_url: str, key: str, batches: list[list[Any]],
                           scenarios: dict[str, str]) -> Data:
    """answer_all(client, prompts, limit) for each [prompts, limit] in turn, on one client; what
    each returned (or raised), and the prompts the client sent."""
    client, transport = batch_client(base_url, key, scenarios)
    out: list[Data] = []
    try:
        for prompts, limit in batches:
            try:
                answers = await guarded(nb.answer_all(client, prompts, limit),
                                        f"answer_all({len(prompts)} prompts)")
            except Hung as exc:
                return {"hung": str(exc)}
            except Exception as exc:
                out.append({"error": {"type": type(exc).__name__, "message": shown(exc, str)}})
                continue
            out.append({"answers": [plain(a) for a in answers] if type(answers) is list else shown(answers)})
    finally:
        await client.aclose()
    return {"batches": out, "sent": transport.sent}


def answers_of(result: dict[str, Any], what: str) -> Any:
    if "error" in result:
        error = result["error"]
        pytest.fail(f"{what} raised {error['type']}: {error['message']}", pytrace=False)
    return result["answers"]


@exercise("bounded_batch", points=1, hint="Return the answers in the order of the prompts, not the order "
          "they arrive in: asyncio.gather keeps the order of its arguments.")
def test_answers_come_back_in_input_order(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    count = random.randint(9, 14)
    prompts = [prompt_text(i) for i in range(count)]
    # Later prompts answer faster, so answers arrive out of order.
    scenarios = {p: f"latency:{(count - i) * 10}ms" for i, p in enumerate(prompts)}
    got = probe_answer_all(notebook, server.base_url, run, [[prompts, 4], [[], 4]], scenarios)
    check_hung(got)
    first, empty = got["batches"]
    assert_same(answers_of(first, f"answer_all({count} prompts)"), [answer_to(p) for p in prompts],
                f"answer_all() for {count} prompts")
    assert_same(answers_of(empty, "answer_all([])"), [], "answer_all() with no prompts")


def idle(server: LLMServer) -> None:
    """Wait until no request is in progress, so in_flight counts only this test's."""
    for _ in range(500):
        if not server_state(server.app).in_flight:
            return
        time.sleep(0.01)


@exercise("bounded_batch", points=1, hint="Send the requests concurrently (gather or a TaskGroup), each "
          "inside `async with semaphore:` where asyncio.Semaphore(limit); raise ValueError for limit < 1.")
def test_concurrent_but_never_above_the_limit(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    rounds = [(random.randint(16, 24), random.randint(3, 6)), (random.randint(5, 8), 2)]
    for count, limit in rounds:
        idle(server)
        key = f"{run}-{limit}"
        prompts = [prompt_text(f"{limit}-{i}") for i in range(count)]
        got = probe_answer_all(notebook, server.base_url, key, [[prompts, limit]],
                               {p: "latency:40ms" for p in prompts})
        check_hung(got)
        answers = answers_of(got["batches"][0], f"answer_all({count} prompts, limit={limit})")
        assert_same(answers, [answer_to(p) for p in prompts], f"answer_all({count} prompts, limit={limit})")
        records = [r for r in server.log if r.key == key]
        peak = max((r.in_flight for r in records), default=0)
        assert len(records) == count, f"{count} prompts should make {count} requests; got {len(records)}"
        assert peak > 1, (
            f"{count} prompts with limit={limit}: requests should overlap, but the server never had more "
            "than one in flight; the script is still sequential"
        )
        assert peak <= limit, (
            f"{count} prompts with limit={limit}: the server had {peak} requests in flight at once"
        )
    pair = [prompt_text("one-a"), prompt_text("one-b")]
    got = probe_answer_all(notebook, server.base_url, f"{run}-1", [[pair, 1]], {})
    check_hung(got)
    assert_same(answers_of(got["batches"][0], "answer_all(2 prompts, limit=1)"),
                [answer_to(p) for p in pair], "answer_all(2 prompts, limit=1) (1 is the smallest limit)")
    bad = [0, -random.randint(1, 9)]
    got = probe_answer_all(notebook, server.base_url, run, [[[prompt_text()], limit] for limit in bad], {})
    check_hung(got)
    for limit, result in zip(bad, got["batches"], strict=True):
        error = result.get("error")
        assert error is not None and error["type"] == "ValueError", (
            f"answer_all(client, prompts, {limit}) should raise ValueError, got {error or result}"
        )


@exercise("bounded_batch", points=1, hint="Catch failures per prompt: a non-200 status or an "
          "httpx.HTTPError gives None in that prompt's place, and the other prompts still get their answers.")
def test_failures_become_none_and_spare_the_rest(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    prompts = [prompt_text(i) for i in range(10)]
    failing = random.sample(prompts, 4)
    kinds = ["error:500", "error:400", "refused", "error:429"]
    random.shuffle(kinds)
    faults = dict(zip(failing, kinds, strict=True))
    got = probe_answer_all(notebook, server.base_url, run, [[prompts, 3]], faults)
    check_hung(got)
    answers = answers_of(got["batches"][0], "answer_all() with failing prompts")
    want = [None if p in faults else answer_to(p) for p in prompts]
    which = ", ".join(f"{prompts.index(p)} ({kind})" for p, kind in faults.items())
    assert_same(answers, want, f"answer_all() when prompts {which} fail")
    assert sorted(got["sent"]) == sorted(prompts), (
        f"each prompt should be sent once (no retries here, none skipped); sent: {sorted(got['sent'])}"
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


@probe
async def probe_heartbeat(nb: Any, base_url: str, key: str, prompts: list[str], latency: float) -> Data:
    """answer_all under watch: blocking calls on the loop's thread, and the longest gap of a
    heartbeat task that ticks every 5 ms."""
    watch = LoopWatch(threading.get_ident())
    original_sleep, original_send = time.sleep, httpx.Client.send
    # `from time import sleep` in the notebook makes an alias the patch of time.sleep misses
    aliases = [name for name, value in vars(nb).items() if value is original_sleep]
    time.sleep = watch.wrap("time.sleep", original_sleep)  # type: ignore[assignment]
    for name in aliases:
        setattr(nb, name, watch.wrap(name, original_sleep))
    httpx.Client.send = watch.wrap("httpx.Client.send", original_send)  # type: ignore[method-assign]
    client, _ = batch_client(base_url, key, {p: f"latency:{latency * 1000:.0f}ms" for p in prompts})
    ticks: list[float] = []
    loop = asyncio.get_running_loop()

    async def heartbeat() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.005)

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    try:
        answers = await guarded(nb.answer_all(client, prompts, len(prompts)),
                                f"answer_all({len(prompts)} prompts)")
    except Hung as exc:
        return {"hung": str(exc)}
    finally:
        ticks.append(loop.time())
        beating.cancel()
        time.sleep = original_sleep  # type: ignore[assignment]
        httpx.Client.send = original_send  # type: ignore[method-assign]
        await client.aclose()
    return {"blocking": sorted(set(watch.blocking)),
            "longest": max(b - a for a, b in itertools.pairwise(ticks)),
            "answers": [plain(a) for a in answers] if type(answers) is list else shown(answers)}


@exercise("bounded_batch", points=1, hint="Nothing may block the event loop: asyncio.sleep, not time.sleep; "
          "the httpx.AsyncClient you are given, not httpx.get/post or httpx.Client.")
def test_never_blocks_the_event_loop(
    server: LLMServer, notebook: Any, run: str, answer_to: Answers
) -> None:
    latency = 0.3
    prompts = [prompt_text(i) for i in range(4)]
    got = probe_heartbeat(notebook, server.base_url, run, prompts, latency)
    check_hung(got)
    assert not got["blocking"], (
        f"answer_all() made blocking calls on the event loop's thread: {got['blocking']}"
    )
    longest = got["longest"]
    assert longest < 0.8 * latency, (
        f"a heartbeat task should tick every 5 ms while answer_all() runs, but the event loop was blocked "
        f"for {longest * 1000:.0f} ms (each request takes {latency * 1000:.0f} ms)"
    )
    assert_same(got["answers"], [answer_to(p) for p in prompts], "answer_all() for 4 prompts")
