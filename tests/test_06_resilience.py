"""Graded tests of chapter 6's exercise: a circuit breaker, a fallback chain, hedged requests.

They run against the course's local LLM server (one per module) and make providers fail
with the ``X-Mock-Scenario`` header. Each provider gets its own ``X-Mock-Key``, so the
server log tells which provider was called, in which order. The breaker's clock is a
``FakeClock`` the tests move by hand: nothing sleeps, and nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from course.llm_server import LLMServer
from course.pytest_plugin import exercise
from course.testing import same

Module = types.ModuleType
COOLDOWN = 30.0
GUARD_S = 10.0  # no test should come near this; it only stops a broken submission hanging


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


class Providers:
    """Makes providers that count their calls and record the order they start in."""

    def __init__(self, notebook: Module, http: httpx.AsyncClient, server: LLMServer) -> None:
        self.notebook, self.http, self.server = notebook, http, server
        self.starts: list[str] = []
        self.keys: dict[str, str] = {}

    def make(self, name: str, scenario: str = "ok", style: str = "openai") -> Any:
        key = f"{name}-{uuid.uuid4().hex[:8]}"
        self.keys[key] = name
        model = "mock-gpt" if style == "openai" else "mock-claude"
        provider = self.notebook.Provider(
            name, self.http, self.server.base_url, style=style, model=model,
            headers={"X-Mock-Key": key, "X-Mock-Scenario": scenario},
        )
        provider.started = provider.cancelled = provider.finished = 0
        plain = provider.complete
        starts = self.starts

        async def complete(prompt: str) -> Any:
            provider.started += 1
            starts.append(name)
            try:
                return await plain(prompt)
            except asyncio.CancelledError:
                provider.cancelled += 1
                raise
            finally:
                provider.finished += 1

        provider.complete = complete
        return provider

    def requests(self) -> list[str]:
        """Names of the providers the server received requests for, in arrival order."""
        return [self.keys[r.key] for r in self.server.log if r.key in self.keys]


@pytest.fixture
def providers(notebook: Module, http: httpx.AsyncClient, server: LLMServer) -> Providers:
    return Providers(notebook, http, server)


def state_of(notebook: Module, breaker: Any) -> str:
    """The breaker's state as a plain str (safe to compare with ==); it must be a BreakerState member."""
    state = breaker.state
    for member in notebook.BreakerState:
        if state is member:
            return str.__str__(member.value)
    raise AssertionError(f"breaker.state should be a BreakerState member, got {state!r}")


async def outcome(breaker: Any, operation: Any) -> str:
    """Call through the breaker; return 'ok' or the exception's class name, as a plain str."""
    try:
        await breaker.call(operation)
    except Exception as exc:
        return str.__str__(type(exc).__name__)
    return "ok"


def breaker_for(notebook: Module, clock: FakeClock, threshold: int = 3) -> Any:
    return notebook.CircuitBreaker(failure_threshold=threshold, cooldown_s=COOLDOWN, clock=clock, name="p")


def ask(provider: Any, prompt: str = "Hello") -> Any:
    return lambda: provider.complete(prompt)


# ---------------------------------------------------------------- circuit_breaker


@exercise("circuit_breaker", points=1, hint="Count RetryableErrors in a row while closed; open at "
          "failure_threshold; a success resets the count. Re-raise the provider's own error.")
async def test_opens_after_threshold_failures(notebook: Module, providers: Providers) -> None:
    clock = FakeClock()
    failing = providers.make("p", "error:503")
    breaker = breaker_for(notebook, clock)
    seen = []
    for _ in range(3):
        seen.append((await outcome(breaker, ask(failing)), state_of(notebook, breaker)))
    expected = [("RetryableError", "closed"), ("RetryableError", "closed"), ("RetryableError", "open")]
    assert same(seen, expected), (
        f"three 503s with failure_threshold=3: expected (error, state) "
        f"[RetryableError/closed, RetryableError/closed, RetryableError/open], got {seen}"
    )
    assert providers.requests().count("p") == 3, "each of the three calls should reach the server"

    flaky = providers.make("q", "error:503")
    breaker = breaker_for(notebook, clock)
    states = []
    for scenario in ("error:503", "error:503", "ok", "error:503", "error:503"):
        flaky.headers["X-Mock-Scenario"] = scenario
        await outcome(breaker, ask(flaky))
        states.append(state_of(notebook, breaker))
    assert same(states, ["closed"] * 5), (
        f"fail, fail, succeed, fail, fail: a success resets the count, so the breaker stays closed; "
        f"states were {states}"
    )


def _plain(value: object) -> object:
    """A value the judge can compare: a plain str, int, float, bool or None, else its repr."""
    if value is None or type(value) in (bool, int, float):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    return repr(value)


def _state_name(nb: Module, breaker: Any) -> object:
    state = breaker.state
    return next((str.__str__(m.value) for m in nb.BreakerState if state is m), repr(state))


def _provider(nb: Module, http: httpx.AsyncClient, base_url: str, name: str, scenario: str,
              style: str = "openai") -> Any:
    return nb.Provider(name, http, base_url, style=style,
                       model="mock-gpt" if style == "openai" else "mock-claude",
                       headers={"X-Mock-Key": f"{name}-{uuid.uuid4().hex[:8]}",
                                "X-Mock-Scenario": scenario})


def probe_breaker_failure_count(nb: Module, base_url: str) -> list[list[object]]:
    """[outcome, state, failures] after each call: three 503s, a cool-down, a success, a 503."""
    async def run() -> list[list[object]]:
        clock = FakeClock()
        seen: list[list[object]] = []
        async with httpx.AsyncClient() as http:
            provider = _provider(nb, http, base_url, "p", "error:503")
            breaker = breaker_for(nb, clock)
            for scenario, wait in (("error:503", 0.0),) * 3 + (("ok", COOLDOWN), ("error:503", 0.0)):
                clock.now += wait
                provider.headers["X-Mock-Scenario"] = scenario
                async with asyncio.timeout(GUARD_S):
                    result = await outcome(breaker, ask(provider))
                seen.append([result, _state_name(nb, breaker), _plain(breaker.failures)])
        return seen

    return asyncio.run(run())


@exercise("circuit_breaker", points=1, hint="failures counts the current closed period: it goes back to "
          "0 when the breaker opens and when a call succeeds, and counts up again from there.")
def test_failure_count_restarts_when_the_breaker_opens(notebook: Module, server: LLMServer) -> None:
    got = probe_breaker_failure_count(notebook, server.base_url)
    want = [["RetryableError", "closed", 1], ["RetryableError", "closed", 2],
            ["RetryableError", "open", 0], ["ok", "closed", 0], ["RetryableError", "closed", 1]]
    assert got == want, (
        "threshold 3: three 503s, the cool-down, a success, one more 503; [outcome, state, failures] "
        f"after each call should be {want}, got {got}"
    )


@exercise("circuit_breaker", points=1, hint="While open (clock() - opened_at < cooldown_s), raise "
          "CircuitOpenError before calling the operation.")
async def test_rejects_fast_while_open(notebook: Module, providers: Providers) -> None:
    clock = FakeClock()
    failing = providers.make("p", "error:503")
    breaker = breaker_for(notebook, clock, threshold=2)
    for _ in range(2):
        await outcome(breaker, ask(failing))
    assert state_of(notebook, breaker) == "open", "two failures with failure_threshold=2 should open it"
    before = failing.started
    results = [await outcome(breaker, ask(failing)) for _ in range(4)]
    clock.now += COOLDOWN - 0.001
    results.append(await outcome(breaker, ask(failing)))
    assert same(results, ["CircuitOpenError"] * 5), (
        f"calls while open (even 1 ms before the cool-down ends) should raise CircuitOpenError; got {results}"
    )
    assert same(failing.started, before) and providers.requests().count("p") == 2, (
        "an open breaker must not call the provider: "
        f"{failing.started - before} calls went through"
    )
    assert state_of(notebook, breaker) == "open"


@exercise("circuit_breaker", points=1, hint="state is computed on read: open plus clock() - opened_at "
          ">= cooldown_s is half-open. A successful trial closes it and resets the count.")
async def test_half_opens_after_cooldown_and_closes_on_success(
    notebook: Module, providers: Providers
) -> None:
    clock = FakeClock()
    provider = providers.make("p", "error:503")
    breaker = breaker_for(notebook, clock, threshold=2)
    for _ in range(2):
        await outcome(breaker, ask(provider))
    clock.now += COOLDOWN
    assert state_of(notebook, breaker) == "half_open", "after exactly cooldown_s the breaker is half-open"
    provider.headers["X-Mock-Scenario"] = "ok"
    result = await breaker.call(ask(provider))
    assert isinstance(result, notebook.Completion), (
        f"call() should return the operation's result, got {result!r}"
    )
    assert state_of(notebook, breaker) == "closed", "a successful trial closes the breaker"
    provider.headers["X-Mock-Scenario"] = "error:503"
    await outcome(breaker, ask(provider))
    assert state_of(notebook, breaker) == "closed", (
        "after closing, the count starts again from 0: one failure must not reopen it"
    )
    await outcome(breaker, ask(provider))
    assert state_of(notebook, breaker) == "open", "failure_threshold new failures open it again"


@exercise("circuit_breaker", points=1, hint="A failed trial reopens the breaker with opened_at = clock() "
          "(a fresh cool-down). NonRetryableError means the provider answered: not a failure.")
async def test_failed_trial_reopens_and_client_errors_do_not_count(
    notebook: Module, providers: Providers
) -> None:
    clock = FakeClock()
    provider = providers.make("p", "error:503")
    breaker = breaker_for(notebook, clock, threshold=2)
    for _ in range(2):
        await outcome(breaker, ask(provider))
    clock.now += COOLDOWN + 5
    trial = await outcome(breaker, ask(provider))
    assert trial == "RetryableError", f"the half-open trial should reach the provider and fail; got {trial}"
    assert state_of(notebook, breaker) == "open", "a failed trial opens the breaker again"
    clock.now += COOLDOWN - 1
    assert state_of(notebook, breaker) == "open", "the cool-down restarts when the trial fails"
    clock.now += 1
    assert state_of(notebook, breaker) == "half_open", "a full cool-down after the failed trial: half-open"

    bad_request = providers.make("bad", "error:400")
    breaker = breaker_for(notebook, clock, threshold=2)
    results = [await outcome(breaker, ask(bad_request)) for _ in range(4)]
    assert same(results, ["NonRetryableError"] * 4), f"a 400 is raised to the caller each time; got {results}"
    assert state_of(notebook, breaker) == "closed", "400s are the caller's fault: the breaker stays closed"


@exercise("circuit_breaker", points=1, hint="Half-open allows one trial at a time; others get "
          "CircuitOpenError. Free the trial slot in a finally block, so a cancelled trial does not "
          "leave the breaker stuck.")
async def test_one_trial_at_a_time_and_cancellation_frees_it(notebook: Module, providers: Providers) -> None:
    clock = FakeClock()
    failing = providers.make("p", "error:503")
    breaker = breaker_for(notebook, clock, threshold=1)
    await outcome(breaker, ask(failing))
    clock.now += COOLDOWN
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_trial() -> str:
        started.set()
        await release.wait()
        return "late"

    trial = asyncio.create_task(breaker.call(slow_trial))
    async with asyncio.timeout(GUARD_S):
        await started.wait()
    second = await outcome(breaker, ask(failing))
    assert second == "CircuitOpenError", (
        f"a second call during the half-open trial should be rejected; got {second}"
    )
    assert same(failing.started, 1), "the rejected call must not reach the provider"
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert state_of(notebook, breaker) == "half_open", "a cancelled trial is neither a success nor a failure"
    healthy = providers.make("ok")
    result = await outcome(breaker, ask(healthy))
    assert result == "ok", f"after a cancelled trial, the next call is the new trial; got {result}"
    assert state_of(notebook, breaker) == "closed"


# ---------------------------------------------------------------- fallback_chain


def resilient(notebook: Module, chain: list[Any], clock: FakeClock | None = None, **kwargs: Any) -> Any:
    return notebook.ResilientClient(chain, clock=clock or FakeClock(), cooldown_s=COOLDOWN, **kwargs)


def check_answer(notebook: Module, result: Any, source: str, degraded: bool = False) -> None:
    assert isinstance(result, notebook.Completion), f"expected a Completion, got {type(result).__name__}"
    assert type(result.source) is str and result.source == source, (
        f"expected the answer from {source!r}, got it from {result.source!r}"
    )
    assert type(result.degraded) is bool and result.degraded is degraded, (
        f"expected degraded={degraded}, got {result.degraded!r}"
    )


@exercise("fallback_chain", points=1, hint="Try the providers one at a time, in the given order; a "
          "RetryableError (429 and 5xx included) moves on to the next; stop at the first answer.")
async def test_fallback_order_is_respected(notebook: Module, providers: Providers) -> None:
    chain = [providers.make("first", "rate_limited:retry_after=0.01"),
             providers.make("second", "error:529", style="anthropic"),
             providers.make("third", "ok"),
             providers.make("fourth", "ok")]
    client = resilient(notebook, chain)
    async with asyncio.timeout(GUARD_S):
        result = await client.complete("Which provider answers?")
    check_answer(notebook, result, "third")
    assert type(result.text) is str and result.text, "the answer should carry the provider's text"
    assert providers.requests() == ["first", "second", "third"], (
        f"expected requests to first, second, third (in that order, fourth never); got {providers.requests()}"
    )
    assert providers.starts == ["first", "second", "third"], (
        f"providers should be tried one at a time in order; calls started: {providers.starts}"
    )


@exercise("fallback_chain", points=1, hint="Call every provider through its own breaker "
          "(self.breakers[name].call(...)) and treat CircuitOpenError like a failure: move on.")
async def test_open_breaker_is_skipped_without_a_request(notebook: Module, providers: Providers) -> None:
    clock = FakeClock()
    primary, secondary = providers.make("primary", "error:503"), providers.make("secondary", "ok")
    client = resilient(notebook, [primary, secondary], clock, failure_threshold=2)
    assert same(set(client.breakers), {"primary", "secondary"}), "one breaker per provider, keyed by name"
    for _ in range(4):
        check_answer(notebook, await client.complete("Hello"), "secondary")
    assert providers.requests().count("primary") == 2, (
        "after 2 failures the primary's breaker is open: later calls must skip it without a request; "
        f"the server saw {providers.requests().count('primary')} requests to it"
    )
    assert state_of(notebook, client.breakers["primary"]) == "open"
    primary.headers["X-Mock-Scenario"] = "ok"
    clock.now += COOLDOWN
    check_answer(notebook, await client.complete("Hello"), "primary")
    assert state_of(notebook, client.breakers["primary"]) == "closed", "its trial succeeded: closed again"


@exercise("fallback_chain", points=1, hint="Cache each good answer by prompt; only when every provider "
          "failed, serve the cache (source='cache', degraded=True) or raise AllProvidersFailed(errors).")
async def test_cache_then_graceful_error(notebook: Module, providers: Providers) -> None:
    first, second = providers.make("p1", "ok"), providers.make("p2", "ok")
    client = resilient(notebook, [first, second], failure_threshold=10)
    fresh = await client.complete("What is 2 + 2?")
    check_answer(notebook, fresh, "p1")
    for provider in (first, second):
        provider.headers["X-Mock-Scenario"] = "error:503"
    cached = await client.complete("What is 2 + 2?")
    check_answer(notebook, cached, "cache", degraded=True)
    assert type(fresh.text) is str and same(cached.text, fresh.text), (
        f"the cached text is the last good answer {fresh.text!r}; got {cached.text!r}"
    )
    with pytest.raises(notebook.AllProvidersFailed) as caught:
        await client.complete("A prompt never answered before")
    errors = caught.value.errors
    names = [name for name, _ in errors]
    assert all(type(name) is str for name in names), f"each entry is (provider name, error): {errors!r}"
    assert same(names, ["p1", "p2"]), (
        f"AllProvidersFailed.errors should list every provider tried, in order: {names}"
    )
    assert all(isinstance(exc, notebook.ProviderError) for _, exc in errors), "each entry holds the error"
    for provider in (first, second):
        provider.headers["X-Mock-Scenario"] = "ok"
    check_answer(notebook, await client.complete("What is 2 + 2?"), "p1")


@exercise("fallback_chain", points=1, hint="A NonRetryableError (a 4xx other than 429) means the request "
          "is wrong: raise it at once instead of trying the next provider or the cache.")
async def test_client_error_stops_the_chain(notebook: Module, providers: Providers) -> None:
    first, second = providers.make("p1", "ok"), providers.make("p2", "ok")
    client = resilient(notebook, [first, second])
    await client.complete("Hello")
    first.headers["X-Mock-Scenario"] = "error:400"
    with pytest.raises(notebook.NonRetryableError):
        await client.complete("Hello")
    assert same(second.started, 0), "after a 400 from the first provider, the second must not be called"


# ---------------------------------------------------------------- hedged_requests


def hedging(notebook: Module, chain: list[Any], hedge_after_s: float) -> Any:
    return notebook.HedgingClient(chain, hedge_after_s=hedge_after_s, clock=FakeClock(), cooldown_s=COOLDOWN)


def assert_all_settled(chain: list[Any]) -> None:
    for provider in chain:
        assert same(provider.finished, provider.started), (
            f"{provider.name}: {provider.started - provider.finished} attempt(s) still running after "
            "complete() returned; cancel the losers and await them before returning"
        )


@exercise("hedged_requests", points=1, hint="If nothing finished within hedge_after_s, start the next "
          "provider as well; when one wins, cancel the others and await them (gather) before returning.")
async def test_slow_primary_is_hedged_and_cancelled(notebook: Module, providers: Providers) -> None:
    slow, fast = providers.make("slow", "latency:3s"), providers.make("fast", "ok", style="anthropic")
    client = hedging(notebook, [slow, fast], hedge_after_s=0.05)
    async with asyncio.timeout(GUARD_S):
        result = await client.complete("Hello")
    check_answer(notebook, result, "fast")
    assert providers.starts == ["slow", "fast"], (
        f"expected slow to start first, then fast: {providers.starts}"
    )
    assert same(slow.cancelled, 1), (
        "the losing (slow) attempt should be cancelled, and the cancellation awaited, before "
        "complete() returns"
    )
    assert_all_settled([slow, fast])


@exercise("hedged_requests", points=1, hint="Hedge only after hedge_after_s without an answer; the first "
          "success wins even if it is the primary, and the hedge still running is cancelled.")
async def test_hedge_only_when_needed(notebook: Module, providers: Providers) -> None:
    quick, spare = providers.make("quick", "ok"), providers.make("spare", "ok")
    client = hedging(notebook, [quick, spare], hedge_after_s=5.0)
    async with asyncio.timeout(GUARD_S):
        check_answer(notebook, await client.complete("Hello"), "quick")
    assert same(spare.started, 0), "a primary that answers before hedge_after_s needs no hedge"

    primary, hedge = providers.make("primary", "latency:300ms"), providers.make("hedge", "latency:3s")
    client = hedging(notebook, [primary, hedge], hedge_after_s=0.05)
    async with asyncio.timeout(GUARD_S):
        check_answer(notebook, await client.complete("Hello"), "primary")
    assert same((hedge.started, hedge.cancelled), (1, 1)), (
        f"the hedge should start after 50 ms and be cancelled when the primary wins "
        f"(started {hedge.started}, cancelled {hedge.cancelled})"
    )
    assert_all_settled([primary, hedge])


@exercise("hedged_requests", points=1, hint="A failed attempt starts the next provider at once, without "
          "waiting for hedge_after_s; slow attempts keep running alongside until someone wins.")
async def test_failure_starts_the_next_at_once(notebook: Module, providers: Providers) -> None:
    broken, backup = providers.make("broken", "error:503"), providers.make("backup", "ok")
    client = hedging(notebook, [broken, backup], hedge_after_s=30.0)
    try:
        async with asyncio.timeout(GUARD_S):
            check_answer(notebook, await client.complete("Hello"), "backup")
    except TimeoutError:
        pytest.fail("after the first provider failed, the next should start at once, not after hedge_after_s")

    chain = [providers.make("a", "latency:3s"), providers.make("b", "latency:3s"), providers.make("c", "ok")]
    client = hedging(notebook, chain, hedge_after_s=0.05)
    async with asyncio.timeout(GUARD_S):
        check_answer(notebook, await client.complete("Hello"), "c")
    assert providers.starts[-3:] == ["a", "b", "c"], (
        f"hedges start in provider order: {providers.starts[-3:]}"
    )
    assert same([p.cancelled for p in chain[:2]], [1, 1]), "both slow attempts should be cancelled"
    assert_all_settled(chain)


def probe_hedged_answer_is_cached(nb: Module, base_url: str) -> dict[str, object]:
    """A hedged call that the second provider wins, then the same prompt with both down."""
    async def run() -> dict[str, object]:
        async with httpx.AsyncClient() as http:
            slow = _provider(nb, http, base_url, "slow", "latency:3s")
            fast = _provider(nb, http, base_url, "fast", "ok", style="anthropic")
            client = hedging(nb, [slow, fast], hedge_after_s=0.05)
            async with asyncio.timeout(GUARD_S):
                first = await client.complete("Hello")
            cache = client.cache
            cached = dict.get(cache, "Hello") if isinstance(cache, dict) else repr(cache)
            for provider in (slow, fast):
                provider.headers["X-Mock-Scenario"] = "error:503"
            async with asyncio.timeout(GUARD_S):
                again = await client.complete("Hello")
        return {
            "first": [_plain(first.text), _plain(first.source)],
            "cached": _plain(cached),
            "again": [_plain(again.text), _plain(again.source), _plain(again.degraded)],
        }

    return asyncio.run(run())


@exercise("hedged_requests", points=1, hint="The winning answer goes into self.cache[prompt] before you "
          "return it, as in fallback_chain: it is what degrade() falls back on later.")
def test_hedged_success_is_cached(notebook: Module, server: LLMServer) -> None:
    got = probe_hedged_answer_is_cached(notebook, server.base_url)
    text, source = got["first"]  # type: ignore[misc]
    assert source == "fast" and isinstance(text, str) and text, (
        f"the fast provider should win the hedged call, got {got['first']}"
    )
    assert got["cached"] == text, (
        f"after a hedged success, client.cache['Hello'] should hold its text {text!r}; "
        f"it holds {got['cached']!r}"
    )
    assert got["again"] == [text, "cache", True], (
        f"with both providers down, the same prompt should get the cached answer "
        f"[text, 'cache', degraded=True], got {got['again']}"
    )


@exercise("hedged_requests", points=1, hint="When every attempt failed, use self.degrade(prompt, errors); "
          "a NonRetryableError is raised at once, after cancelling the attempts still running.")
async def test_all_fail_and_client_errors(notebook: Module, providers: Providers) -> None:
    chain = [providers.make("x", "error:503"), providers.make("y", "error:500")]
    client = hedging(notebook, chain, hedge_after_s=0.05)
    with pytest.raises(notebook.AllProvidersFailed) as caught:
        async with asyncio.timeout(GUARD_S):
            await client.complete("Hello")
    names = [name for name, _ in caught.value.errors]
    assert all(type(name) is str for name in names), f"each entry is (provider name, error): {names!r}"
    assert same(sorted(names), ["x", "y"]), f"every failed attempt is listed: {names}"

    slow, bad = providers.make("slow", "latency:3s"), providers.make("bad", "error:400")
    client = hedging(notebook, [slow, bad], hedge_after_s=0.05)
    with pytest.raises(notebook.NonRetryableError):
        async with asyncio.timeout(GUARD_S):
            await client.complete("Hello")
    assert same(slow.cancelled, 1), "the slow attempt should be cancelled when the hedge gets a 400"
    assert_all_settled([slow, bad])
