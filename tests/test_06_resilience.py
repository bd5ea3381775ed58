"""Graded tests of chapter 6's exercise: a circuit breaker, a fallback chain, hedged requests.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data. The tests run the
course's local LLM server (one per module, in the judge) and make providers fail with the
``X-Mock-Scenario`` header. Each provider gets its own ``X-Mock-Key``, so the server log,
which the test reads itself, tells which provider was called, in which order. In the
worker, each provider counts its calls (started, cancelled, finished) and the breaker's
clock is a ``FakeClock`` the probe moves by hand: nothing sleeps, and nothing asserts on
timing. Provider names, thresholds, cool-downs and prompts are drawn at random per run.
"""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from course.llm_server import LLMServer
from course.probing import kind, probe, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any
Spec = dict[str, str]  # {"name", "key", "scenario", "style"}: a provider as the test describes it
GUARD_S = 10.0  # no test should come near this; it only stops a broken submission hanging


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def names(count: int) -> list[str]:
    """Distinct random provider names."""
    found: list[str] = []
    while len(found) < count:
        name = f"{word(random.randint(3, 7))}"
        if name not in found:
            found.append(name)
    return found


def spec(name: str, scenario: str = "ok", style: str = "openai") -> Spec:
    return {"name": name, "key": f"{name}-{uuid.uuid4().hex[:8]}", "scenario": scenario,
            "style": style}


def cooldown() -> float:
    return float(random.randint(10, 90))


def prompt() -> str:
    return " ".join(word(random.randint(2, 7)) for _ in range(random.randint(2, 6))) + "?"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def requests(server: LLMServer, specs: list[Spec]) -> list[str]:
    """Names of the providers the server received requests for, in arrival order (judge side)."""
    by_key = {s["key"]: s["name"] for s in specs}
    return [by_key[r.key] for r in server.log if r.key in by_key]


# --------------------------------------------------------------- worker-side helpers


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Counted:
    """The notebook's providers, each counting its calls and recording the order they start in."""

    def __init__(self, nb: Any, http: httpx.AsyncClient, base_url: str) -> None:
        self.nb, self.http, self.base_url = nb, http, base_url
        self.starts: list[str] = []
        self.made: list[Any] = []

    def make(self, s: Spec) -> Any:
        model = "mock-gpt" if s["style"] == "openai" else "mock-claude"
        provider = self.nb.Provider(
            s["name"], self.http, self.base_url, style=s["style"], model=model,
            headers={"X-Mock-Key": s["key"], "X-Mock-Scenario": s["scenario"]},
        )
        provider.started = provider.cancelled = provider.finished = 0
        plain, starts = provider.complete, self.starts

        async def complete(prompt: str) -> Any:
            provider.started += 1
            starts.append(s["name"])
            try:
                return await plain(prompt)
            except asyncio.CancelledError:
                provider.cancelled += 1
                raise
            finally:
                provider.finished += 1

        provider.complete = complete
        self.made.append(provider)
        return provider

    def counts(self) -> dict[str, Data]:
        return {p.name: {"started": p.started, "cancelled": p.cancelled, "finished": p.finished}
                for p in self.made}


def state_of(nb: Any, breaker: Any) -> str:
    """The breaker's state as a plain str; it must be a BreakerState member."""
    state = breaker.state
    for member in nb.BreakerState:
        if state is member:
            return str.__str__(member.value)
    return f"<not a BreakerState: {shown(state)}>"


async def outcome(breaker: Any, operation: Callable[[], Any]) -> str:
    """Call through the breaker; 'ok' or the exception's class name."""
    try:
        await breaker.call(operation)
    except Exception as exc:
        return kind(exc)
    return "ok"


def ask(provider: Any, text: str = "Hello") -> Callable[[], Any]:
    return lambda: provider.complete(text)


def completion_view(nb: Any, result: Any) -> Data:
    if not isinstance(result, nb.Completion):
        return {"completion": False, "type": kind(result)}
    values = {name: getattr(result, name) for name in ("text", "source", "degraded")}
    return {"completion": True, **{name: value if type(value) in (str, bool) else
                                   f"<{kind(value)}: {shown(value)}>"
                                   for name, value in values.items()}}


async def answer(nb: Any, client: Any, text: str) -> Data:
    """client.complete(text) within the guard: the completion, or the exception it raised."""
    try:
        async with asyncio.timeout(GUARD_S):
            return completion_view(nb, await client.complete(text))
    except TimeoutError:
        return {"timed_out": True}
    except Exception as exc:
        return {"raised": error_view(nb, exc)}


def error_view(nb: Any, exc: BaseException) -> Data:
    view: dict[str, Data] = {"type": kind(exc), "message": shown(exc, str),
                             "non_retryable": isinstance(exc, nb.NonRetryableError),
                             "all_failed": isinstance(exc, nb.AllProvidersFailed)}
    if isinstance(exc, nb.AllProvidersFailed):
        entries = []
        for entry in exc.errors:
            name, error = entry
            entries.append({"name": name if type(name) is str else f"<{kind(name)}>",
                            "provider_error": isinstance(error, nb.ProviderError)})
        view["errors"] = entries
    return view


def check_answer(got: Data, source: str, degraded: bool = False, what: str = "complete()") -> None:
    """Judge side: the answer came from ``source``, with ``degraded`` as given."""
    assert "timed_out" not in got, f"{what} did not finish within {GUARD_S} s"
    assert "raised" not in got, (
        f"{what}: expected the answer from {source!r}, but it raised {got.get('raised')}"
    )
    assert got["completion"], f"{what}: expected a Completion, got {got['type']}"
    assert same(got["source"], source), (
        f"{what}: expected the answer from {source!r}, got it from {got['source']!r}"
    )
    assert same(got["degraded"], degraded), (
        f"{what}: expected degraded={degraded}, got {got['degraded']!r}"
    )


# ---------------------------------------------------------------- circuit_breaker


def breaker_for(nb: Any, clock: FakeClock, threshold: int, cool: float) -> Any:
    return nb.CircuitBreaker(failure_threshold=threshold, cooldown_s=cool, clock=clock, name="p")


@probe
async def probe_opens(nb: Any, base_url: str, threshold: int, cool: float, failing: Spec,
                      flaky: Spec, scenarios: list[str]) -> Data:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        provider = made.make(failing)
        breaker = breaker_for(nb, clock, threshold, cool)
        seen = []
        for _ in range(threshold):
            seen.append([await outcome(breaker, ask(provider)), state_of(nb, breaker)])
        changing = made.make(flaky)
        breaker = breaker_for(nb, clock, threshold, cool)
        states = []
        for scenario in scenarios:
            changing.headers["X-Mock-Scenario"] = scenario
            await outcome(breaker, ask(changing))
            states.append(state_of(nb, breaker))
    return {"seen": seen, "states": states}


@exercise("circuit_breaker", points=1, hint="Count RetryableErrors in a row while closed; open at "
          "failure_threshold; a success resets the count. Re-raise the provider's own error.")
def test_opens_after_threshold_failures(notebook: Any, server: LLMServer) -> None:
    threshold = random.randint(3, 6)
    failing, flaky = spec("p", "error:503"), spec("q", "error:503")
    scenarios = ["error:503"] * (threshold - 1) + ["ok"] + ["error:503"] * (threshold - 1)
    got = probe_opens(notebook, server.base_url, threshold, cooldown(), failing, flaky, scenarios)
    expected = [["RetryableError", "closed"]] * (threshold - 1) + [["RetryableError", "open"]]
    assert same(got["seen"], expected), (
        f"{threshold} 503s with failure_threshold={threshold}: expected (error, state) {expected}, "
        f"got {got['seen']}"
    )
    sent = requests(server, [failing]).count("p")
    assert sent == threshold, f"each of the {threshold} calls should reach the server; it saw {sent}"
    assert same(got["states"], ["closed"] * len(scenarios)), (
        f"{threshold - 1} failures, a success, {threshold - 1} failures: a success resets the count, "
        f"so the breaker stays closed; states were {got['states']}"
    )


@probe
async def probe_rejects(nb: Any, base_url: str, threshold: int, cool: float, failing: Spec,
                        calls: int) -> Data:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        provider = Counted(nb, http, base_url).make(failing)
        breaker = breaker_for(nb, clock, threshold, cool)
        for _ in range(threshold):
            await outcome(breaker, ask(provider))
        opened = state_of(nb, breaker)
        before = provider.started
        results = [await outcome(breaker, ask(provider)) for _ in range(calls)]
        clock.now += cool - 0.001
        results.append(await outcome(breaker, ask(provider)))
    return {"opened": opened, "results": results, "through": provider.started - before,
            "after": state_of(nb, breaker)}


@probe
async def probe_failure_count(nb: Any, base_url: str, threshold: int, cool: float,
                              p: Spec) -> Data:
    """[outcome, state, failures] after each call: threshold 503s, the cool-down, a success,
    then one more 503."""
    clock = FakeClock()
    seen: list[Data] = []
    async with httpx.AsyncClient() as http:
        provider = Counted(nb, http, base_url).make(p)
        breaker = breaker_for(nb, clock, threshold, cool)
        steps = [("error:503", 0.0)] * threshold + [("ok", cool), ("error:503", 0.0)]
        for scenario, wait in steps:
            clock.now += wait
            provider.headers["X-Mock-Scenario"] = scenario
            async with asyncio.timeout(GUARD_S):
                result = await outcome(breaker, ask(provider))
            failures = breaker.failures
            seen.append([result, state_of(nb, breaker),
                         failures if type(failures) is int else f"<{kind(failures)}: {shown(failures)}>"])
    return seen


@exercise("circuit_breaker", points=1, hint="failures counts the current closed period: it goes back to "
          "0 when the breaker opens and when a call succeeds, and counts up again from there.")
def test_failure_count_restarts_when_the_breaker_opens(notebook: Any, server: LLMServer) -> None:
    threshold, cool = random.randint(3, 6), cooldown()
    got = probe_failure_count(notebook, server.base_url, threshold, cool, spec("p", "error:503"))
    want = ([["RetryableError", "closed", n] for n in range(1, threshold)]
            + [["RetryableError", "open", 0], ["ok", "closed", 0], ["RetryableError", "closed", 1]])
    assert got == want, (
        f"threshold {threshold}: {threshold} 503s, the cool-down, a success, one more 503; "
        f"[outcome, state, failures] after each call should be {want}, got {got}"
    )


@exercise("circuit_breaker", points=1, hint="While open (clock() - opened_at < cooldown_s), raise "
          "CircuitOpenError before calling the operation.")
def test_rejects_fast_while_open(notebook: Any, server: LLMServer) -> None:
    threshold, calls = random.randint(3, 6), random.randint(2, 5)
    failing = spec("p", "error:503")
    got = probe_rejects(notebook, server.base_url, threshold, cooldown(), failing, calls)
    assert_same(got["opened"], "open",
                f"the state after {threshold} failures with failure_threshold={threshold}")
    assert same(got["results"], ["CircuitOpenError"] * (calls + 1)), (
        f"calls while open (even 1 ms before the cool-down ends) should raise CircuitOpenError; "
        f"got {got['results']}"
    )
    sent = requests(server, [failing]).count("p")
    assert same(got["through"], 0) and sent == threshold, (
        f"an open breaker must not call the provider: {got['through']} calls went through, "
        f"the server saw {sent} requests ({threshold} expected)"
    )
    assert_same(got["after"], "open", "the state before the cool-down has passed")


@probe
async def probe_half_open(nb: Any, base_url: str, threshold: int, cool: float,
                          provider_spec: Spec) -> Data:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        provider = Counted(nb, http, base_url).make(provider_spec)
        breaker = breaker_for(nb, clock, threshold, cool)
        for _ in range(threshold):
            await outcome(breaker, ask(provider))
        clock.now += cool
        observed: dict[str, Data] = {"after_cooldown": state_of(nb, breaker)}
        provider.headers["X-Mock-Scenario"] = "ok"
        observed["trial"] = completion_view(nb, await breaker.call(ask(provider)))
        observed["after_trial"] = state_of(nb, breaker)
        provider.headers["X-Mock-Scenario"] = "error:503"
        states = []
        for _ in range(threshold):
            await outcome(breaker, ask(provider))
            states.append(state_of(nb, breaker))
        observed["states"] = states
    return observed


@exercise("circuit_breaker", points=1, hint="state is computed on read: open plus clock() - opened_at "
          ">= cooldown_s is half-open. A successful trial closes it and resets the count.")
def test_half_opens_after_cooldown_and_closes_on_success(notebook: Any, server: LLMServer) -> None:
    threshold = random.randint(3, 6)
    got = probe_half_open(notebook, server.base_url, threshold, cooldown(), spec("p", "error:503"))
    assert_same(got["after_cooldown"], "half_open", "the state after exactly cooldown_s")
    assert got["trial"]["completion"], (
        f"call() should return the operation's result (a Completion), got {got['trial']['type']}"
    )
    assert_same(got["after_trial"], "closed", "the state after a successful trial")
    expected = ["closed"] * (threshold - 1) + ["open"]
    assert same(got["states"], expected), (
        f"after closing, the count starts again from 0: {threshold - 1} failures must not reopen "
        f"it and the {threshold}th does; states were {got['states']}"
    )


@probe
async def probe_failed_trial(nb: Any, base_url: str, threshold: int, cool: float, failing: Spec,
                             bad: Spec, calls: int) -> Data:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        provider = made.make(failing)
        breaker = breaker_for(nb, clock, threshold, cool)
        for _ in range(threshold):
            await outcome(breaker, ask(provider))
        clock.now += cool + 5
        observed: dict[str, Data] = {"trial": await outcome(breaker, ask(provider)),
                                     "after_trial": state_of(nb, breaker)}
        clock.now += cool - 1
        observed["almost"] = state_of(nb, breaker)
        clock.now += 1
        observed["cooled"] = state_of(nb, breaker)
        bad_request = made.make(bad)
        breaker = breaker_for(nb, clock, threshold, cool)
        observed["bad"] = [await outcome(breaker, ask(bad_request)) for _ in range(calls)]
        observed["bad_state"] = state_of(nb, breaker)
    return observed


@exercise("circuit_breaker", points=1, hint="A failed trial reopens the breaker with opened_at = clock() "
          "(a fresh cool-down). NonRetryableError means the provider answered: not a failure.")
def test_failed_trial_reopens_and_client_errors_do_not_count(
    notebook: Any, server: LLMServer
) -> None:
    threshold = random.randint(3, 6)
    calls = threshold + random.randint(1, 3)
    got = probe_failed_trial(notebook, server.base_url, threshold, cooldown(),
                             spec("p", "error:503"), spec("bad", "error:400"), calls)
    assert_same(got["trial"], "RetryableError",
                "the half-open trial (it should reach the provider and fail)")
    assert_same(got["after_trial"], "open", "the state after a failed trial")
    assert_same(got["almost"], "open", "the state 1 s before the restarted cool-down ends")
    assert_same(got["cooled"], "half_open", "the state a full cool-down after the failed trial")
    assert same(got["bad"], ["NonRetryableError"] * calls), (
        f"a 400 is raised to the caller each time; got {got['bad']}"
    )
    assert_same(got["bad_state"], "closed",
                f"the state after {calls} 400s (the caller's fault: the breaker stays closed)")


@probe
async def probe_one_trial(nb: Any, base_url: str, cool: float, failing: Spec,
                          healthy: Spec) -> Data:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        provider = made.make(failing)
        breaker = breaker_for(nb, clock, 1, cool)
        await outcome(breaker, ask(provider))
        clock.now += cool
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_trial() -> str:
            started.set()
            await release.wait()
            return "late"

        trial = asyncio.create_task(breaker.call(slow_trial))
        try:
            async with asyncio.timeout(GUARD_S):
                await started.wait()
        except TimeoutError:
            trial.cancel()
            return {"trial_started": False}
        observed: dict[str, Data] = {"trial_started": True,
                                     "second": await outcome(breaker, ask(provider)),
                                     "provider_calls": provider.started}
        trial.cancel()
        try:
            await trial
            observed["trial_end"] = "returned"
        except asyncio.CancelledError:
            observed["trial_end"] = "cancelled"
        except Exception as exc:
            observed["trial_end"] = kind(exc)
        observed["after_cancel"] = state_of(nb, breaker)
        observed["next"] = await outcome(breaker, ask(made.make(healthy)))
        observed["after_next"] = state_of(nb, breaker)
    return observed


@exercise("circuit_breaker", points=1, hint="Half-open allows one trial at a time; others get "
          "CircuitOpenError. Free the trial slot in a finally block, so a cancelled trial does not "
          "leave the breaker stuck.")
def test_one_trial_at_a_time_and_cancellation_frees_it(notebook: Any, server: LLMServer) -> None:
    got = probe_one_trial(notebook, server.base_url, cooldown(), spec("p", "error:503"),
                          spec("ok"))
    assert got["trial_started"], "the half-open trial's operation never started"
    assert_same(got["second"], "CircuitOpenError", "a second call during the half-open trial")
    assert_same(got["provider_calls"], 1,
                "calls that reached the provider (the rejected call must not)")
    assert_same(got["trial_end"], "cancelled", "how the cancelled trial ended")
    assert_same(got["after_cancel"], "half_open",
                "the state after a cancelled trial (neither a success nor a failure)")
    assert_same(got["next"], "ok", "the next call after a cancelled trial (the new trial)")
    assert_same(got["after_next"], "closed", "the state after that trial succeeded")


# ---------------------------------------------------------------- fallback_chain


def resilient(nb: Any, chain: list[Any], clock: FakeClock, cool: float, **kwargs: Any) -> Any:
    return nb.ResilientClient(chain, clock=clock, cooldown_s=cool, **kwargs)


@probe
async def probe_order(nb: Any, base_url: str, specs: list[Spec], text: str) -> Data:
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        client = resilient(nb, [made.make(s) for s in specs], FakeClock(), 30.0)
        result = await answer(nb, client, text)
    return {"answer": result, "starts": made.starts}


@exercise("fallback_chain", points=1, hint="Try the providers one at a time, in the given order; a "
          "RetryableError (429 and 5xx included) moves on to the next; stop at the first answer.")
def test_fallback_order_is_respected(notebook: Any, server: LLMServer) -> None:
    failures = [("rate_limited:retry_after=0.01", "openai"), ("error:529", "anthropic"),
                ("error:503", "openai"), ("error:500", "anthropic")]
    failing = random.sample(failures, random.randint(1, 3))
    who = names(len(failing) + 2)
    specs = [spec(name, scenario, style) for name, (scenario, style) in zip(who, failing, strict=False)]
    specs += [spec(who[-2], "ok"), spec(who[-1], "ok")]
    got = probe_order(notebook, server.base_url, specs, prompt())
    check_answer(got["answer"], who[-2])
    text = got["answer"]["text"]
    assert type(text) is str and text, f"the answer should carry the provider's text, got {text!r}"
    tried = who[:-1]
    seen = requests(server, specs)
    assert seen == tried, (
        f"expected requests to {tried} (in that order, {who[-1]} never); the server saw {seen}"
    )
    assert got["starts"] == tried, (
        f"providers should be tried one at a time in order; calls started: {got['starts']}"
    )


@probe
async def probe_skips_open(nb: Any, base_url: str, specs: list[Spec], threshold: int,
                           cool: float, calls: int) -> Data:
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        primary, secondary = made.make(specs[0]), made.make(specs[1])
        client = resilient(nb, [primary, secondary], clock, cool, failure_threshold=threshold)
        breakers = client.breakers
        observed: dict[str, Data] = {
            "keys": sorted(shown(key, str) for key in breakers) if isinstance(breakers, dict)
            else f"<not a dict: {kind(breakers)}>"}
        observed["answers"] = [await answer(nb, client, "Hello") for _ in range(calls)]
        name = specs[0]["name"]
        observed["state"] = state_of(nb, client.breakers[name])
        primary.headers["X-Mock-Scenario"] = "ok"
        clock.now += cool
        observed["recovered"] = await answer(nb, client, "Hello")
        observed["after"] = state_of(nb, client.breakers[name])
    return observed


@exercise("fallback_chain", points=1, hint="Call every provider through its own breaker "
          "(self.breakers[name].call(...)) and treat CircuitOpenError like a failure: move on.")
def test_open_breaker_is_skipped_without_a_request(notebook: Any, server: LLMServer) -> None:
    threshold = random.randint(3, 6)
    calls = threshold + random.randint(2, 4)
    primary, secondary = names(2)
    specs = [spec(primary, "error:503"), spec(secondary, "ok")]
    got = probe_skips_open(notebook, server.base_url, specs, threshold, cooldown(), calls)
    assert_same(got["keys"], sorted([primary, secondary]),
                "the keys of client.breakers (one breaker per provider, keyed by name)")
    for number, result in enumerate(got["answers"], start=1):
        check_answer(result, secondary, what=f"call {number}")
    sent = requests(server, specs).count(primary)
    assert sent == threshold + 1, (
        f"after {threshold} failures the primary's breaker is open: later calls must skip it "
        f"without a request until its one trial after the cool-down; the server saw {sent} "
        f"requests to it ({threshold + 1} expected)"
    )
    assert_same(got["state"], "open", "the primary's breaker state")
    check_answer(got["recovered"], primary, what="the call after the cool-down")
    assert_same(got["after"], "closed", "the primary's breaker after its trial succeeded")


@probe
async def probe_cache(nb: Any, base_url: str, specs: list[Spec], asked: str, new: str) -> Data:
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        chain = [made.make(s) for s in specs]
        client = resilient(nb, chain, FakeClock(), 30.0, failure_threshold=10)
        observed: dict[str, Data] = {"fresh": await answer(nb, client, asked)}
        for provider in chain:
            provider.headers["X-Mock-Scenario"] = "error:503"
        observed["cached"] = await answer(nb, client, asked)
        observed["new"] = await answer(nb, client, new)
        for provider in chain:
            provider.headers["X-Mock-Scenario"] = "ok"
        observed["back"] = await answer(nb, client, asked)
    return observed


@exercise("fallback_chain", points=1, hint="Cache each good answer by prompt; only when every provider "
          "failed, serve the cache (source='cache', degraded=True) or raise AllProvidersFailed(errors).")
def test_cache_then_graceful_error(notebook: Any, server: LLMServer) -> None:
    first, second = names(2)
    asked, new = prompt(), "never asked " + prompt()
    got = probe_cache(notebook, server.base_url, [spec(first), spec(second)], asked, new)
    check_answer(got["fresh"], first, what="the first answer")
    check_answer(got["cached"], "cache", degraded=True, what="the answer while both providers fail")
    fresh_text = got["fresh"]["text"]
    assert type(fresh_text) is str and same(got["cached"]["text"], fresh_text), (
        f"the cached text is the last good answer {fresh_text!r}; got {got['cached']['text']!r}"
    )
    raised = got["new"].get("raised")
    assert raised is not None and raised["all_failed"], (
        f"a prompt never answered before, with every provider failing, should raise "
        f"AllProvidersFailed; got {raised or got['new']}"
    )
    errors = raised["errors"]
    assert same([entry["name"] for entry in errors], [first, second]), (
        f"AllProvidersFailed.errors should list (provider name, error) for every provider "
        f"tried, in order: {errors}"
    )
    assert all(entry["provider_error"] for entry in errors), f"each entry holds the error: {errors}"
    check_answer(got["back"], first, what="the answer once the providers are back")


@probe
async def probe_client_error(nb: Any, base_url: str, specs: list[Spec], text: str) -> Data:
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        first, second = made.make(specs[0]), made.make(specs[1])
        client = resilient(nb, [first, second], FakeClock(), 30.0)
        observed: dict[str, Data] = {"before": await answer(nb, client, text)}
        first.headers["X-Mock-Scenario"] = "error:400"
        observed["bad"] = await answer(nb, client, text)
        observed["second_calls"] = second.started
    return observed


@exercise("fallback_chain", points=1, hint="A NonRetryableError (a 4xx other than 429) means the request "
          "is wrong: raise it at once instead of trying the next provider or the cache.")
def test_client_error_stops_the_chain(notebook: Any, server: LLMServer) -> None:
    first, second = names(2)
    got = probe_client_error(notebook, server.base_url, [spec(first), spec(second)], prompt())
    check_answer(got["before"], first, what="the first answer")
    raised = got["bad"].get("raised")
    assert raised is not None and raised["non_retryable"], (
        f"a 400 from the first provider should raise NonRetryableError; got {raised or got['bad']}"
    )
    assert_same(got["second_calls"], 0,
                "calls to the second provider (after a 400 from the first, it must not be called)")


# ---------------------------------------------------------------- hedged_requests


@probe
async def probe_hedged(nb: Any, base_url: str, runs: list[dict[str, Any]]) -> Data:
    """Each run: a HedgingClient over ``specs`` with ``hedge`` seconds, asked once."""
    out = []
    async with httpx.AsyncClient() as http:
        for run in runs:
            made = Counted(nb, http, base_url)
            chain = [made.make(s) for s in run["specs"]]
            client = nb.HedgingClient(chain, hedge_after_s=run["hedge"], clock=FakeClock(),
                                      cooldown_s=30.0)
            result = await answer(nb, client, "Hello")
            out.append({"answer": result, "starts": made.starts, "counts": made.counts()})
    return out


def assert_all_settled(counts: dict[str, dict[str, int]]) -> None:
    for name, count in counts.items():
        assert same(count["finished"], count["started"]), (
            f"{name}: {count['started'] - count['finished']} attempt(s) still running after "
            "complete() returned; cancel the losers and await them before returning"
        )


@exercise("hedged_requests", points=1, hint="If nothing finished within hedge_after_s, start the next "
          "provider as well; when one wins, cancel the others and await them (gather) before returning.")
def test_slow_primary_is_hedged_and_cancelled(notebook: Any, server: LLMServer) -> None:
    slow, fast = names(2)
    specs = [spec(slow, "latency:3s"), spec(fast, "ok", style="anthropic")]
    (got,) = probe_hedged(notebook, server.base_url, [{"specs": specs, "hedge": 0.05}])
    check_answer(got["answer"], fast)
    assert got["starts"] == [slow, fast], f"expected {slow} to start first, then {fast}: {got['starts']}"
    assert_same(got["counts"][slow]["cancelled"], 1,
                "cancellations of the losing (slow) attempt (it should be cancelled, and the "
                "cancellation awaited, before complete() returns)")
    assert_all_settled(got["counts"])


@exercise("hedged_requests", points=1, hint="Hedge only after hedge_after_s without an answer; the first "
          "success wins even if it is the primary, and the hedge still running is cancelled.")
def test_hedge_only_when_needed(notebook: Any, server: LLMServer) -> None:
    quick, spare, primary, hedge = names(4)
    runs = [{"specs": [spec(quick), spec(spare)], "hedge": 5.0},
            {"specs": [spec(primary, "latency:300ms"), spec(hedge, "latency:3s")], "hedge": 0.05}]
    needless, needed = probe_hedged(notebook, server.base_url, runs)
    check_answer(needless["answer"], quick, what="a quick primary's call")
    assert_same(needless["counts"][spare]["started"], 0,
                "calls to the spare (a primary that answers before hedge_after_s needs no hedge)")
    check_answer(needed["answer"], primary, what="a primary answering after 300 ms")
    count = needed["counts"][hedge]
    assert same((count["started"], count["cancelled"]), (1, 1)), (
        f"the hedge should start after 50 ms and be cancelled when the primary wins "
        f"(started {count['started']}, cancelled {count['cancelled']})"
    )
    assert_all_settled(needed["counts"])


@exercise("hedged_requests", points=1, hint="A failed attempt starts the next provider at once, without "
          "waiting for hedge_after_s; slow attempts keep running alongside until someone wins.")
def test_failure_starts_the_next_at_once(notebook: Any, server: LLMServer) -> None:
    broken, backup, a, b, c = names(5)
    runs = [{"specs": [spec(broken, "error:503"), spec(backup)], "hedge": 30.0},
            {"specs": [spec(a, "latency:3s"), spec(b, "latency:3s"), spec(c)], "hedge": 0.05}]
    failed, slow = probe_hedged(notebook, server.base_url, runs)
    if "timed_out" in failed["answer"]:
        pytest.fail("after the first provider failed, the next should start at once, not after "
                    "hedge_after_s")
    check_answer(failed["answer"], backup, what="the call whose first provider failed")
    check_answer(slow["answer"], c, what="the call with two slow providers")
    assert slow["starts"] == [a, b, c], f"hedges start in provider order: {slow['starts']}"
    cancelled = [slow["counts"][name]["cancelled"] for name in (a, b)]
    assert same(cancelled, [1, 1]), f"both slow attempts should be cancelled, got {cancelled}"
    assert_all_settled(slow["counts"])


@probe
async def probe_hedged_cache(nb: Any, base_url: str, slow: Spec, fast: Spec, text: str) -> Data:
    """A hedged call the second provider wins, then the same prompt with both down."""
    async with httpx.AsyncClient() as http:
        made = Counted(nb, http, base_url)
        chain = [made.make(slow), made.make(fast)]
        client = nb.HedgingClient(chain, hedge_after_s=0.05, clock=FakeClock(), cooldown_s=30.0)
        first = await answer(nb, client, text)
        cache = client.cache
        cached = dict.get(cache, text) if isinstance(cache, dict) else f"<{kind(cache)}>"
        for provider in chain:
            provider.headers["X-Mock-Scenario"] = "error:503"
        again = await answer(nb, client, text)
    return {"first": first, "cached": cached if type(cached) in (str, type(None)) else shown(cached),
            "again": again}


@exercise("hedged_requests", points=1, hint="The winning answer goes into self.cache[prompt] before you "
          "return it, as in fallback_chain: it is what degrade() falls back on later.")
def test_hedged_success_is_cached(notebook: Any, server: LLMServer) -> None:
    slow, fast = names(2)
    text = prompt()
    got = probe_hedged_cache(notebook, server.base_url, spec(slow, "latency:3s"),
                             spec(fast, "ok", style="anthropic"), text)
    check_answer(got["first"], fast, what="the hedged call")
    answer_text = got["first"]["text"]
    assert got["cached"] == answer_text, (
        f"after a hedged success, client.cache[prompt] should hold its text {answer_text!r}; "
        f"it holds {got['cached']!r}"
    )
    check_answer(got["again"], "cache", degraded=True, what="the same prompt with both providers down")
    assert got["again"]["text"] == answer_text, (
        f"the cached answer should be the text of the hedged success, got {got['again']['text']!r}"
    )


@exercise("hedged_requests", points=1, hint="When every attempt failed, use self.degrade(prompt, errors); "
          "a NonRetryableError is raised at once, after cancelling the attempts still running.")
def test_all_fail_and_client_errors(notebook: Any, server: LLMServer) -> None:
    x, y, slow, bad = names(4)
    runs = [{"specs": [spec(x, "error:503"), spec(y, "error:500")], "hedge": 0.05},
            {"specs": [spec(slow, "latency:3s"), spec(bad, "error:400")], "hedge": 0.05}]
    all_fail, client_error = probe_hedged(notebook, server.base_url, runs)
    raised = all_fail["answer"].get("raised")
    assert raised is not None and raised["all_failed"], (
        f"when every attempt failed, expected AllProvidersFailed; got {raised or all_fail['answer']}"
    )
    listed = [entry["name"] for entry in raised["errors"]]
    assert same(sorted(listed), sorted([x, y])), f"every failed attempt is listed: {listed}"
    raised = client_error["answer"].get("raised")
    assert raised is not None and raised["non_retryable"], (
        f"a 400 from the hedge should raise NonRetryableError; got {raised or client_error['answer']}"
    )
    assert_same(client_error["counts"][slow]["cancelled"], 1,
                "cancellations of the slow attempt (it should be cancelled when the hedge gets a 400)")
    assert_all_settled(client_error["counts"])
