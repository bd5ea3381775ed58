"""Graded tests of chapter 11's exercise: the ticket triage service, assembled.

Each exercise is tested on its own, with the tests' stand-ins for the others: a settings
object of the tests' own, a spy for the telemetry, a reference parser, a fake service for
the batch functions. So a learner gets the points of one exercise without finishing the
others, and a mistake in one does not fail the tests of another.

The network tests run against the course's local LLM server (one per module), whose
"model" is ``FakeModel``: it answers the ticket in the prompt with JSON, or with prose for
tickets that ask for it. Faults come in through the base URL (``server.url(scenario,
key=...)``), and each test has its own key, so the server log shows what that test sent.
The retry loop sleeps through a function the tests replace: nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import math
import random
import threading
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from course.llm_server import LLMServer
from course.pytest_plugin import exercise
from course.testing import assert_same

Module = types.ModuleType
GUARD_S = 4.0  # no test comes near this; it only stops a broken submission hanging


# ---------------------------------------------------------------- the server and its model


class FakeModel:
    """Plays the LLM: labels the ticket in the prompt, and records every prompt it saw."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.lock = threading.Lock()  # the server calls it from its own thread

    def __call__(self, prompt: str) -> str:
        with self.lock:
            self.prompts.append(prompt)
        ticket = prompt.split("Ticket:", 1)[1].split("\n", 1)[0].strip()
        if "never-json" in ticket or ("repair-me" in ticket and "was not valid" not in prompt):
            return "Sure, happy to help with that! What else can you tell me?"
        label = "billing" if "invoice" in ticket else "bug" if "crash" in ticket else "question"
        answer = json.dumps({"label": label, "priority": "normal", "summary": ticket[:50],
                             "needs_human": False})
        return f"```json\n{answer}\n```" if label == "bug" else answer

    def prompts_with(self, marker: str) -> list[str]:
        with self.lock:
            return [prompt for prompt in self.prompts if marker in prompt]


@pytest.fixture(scope="module")
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture(scope="module")
def server(model: FakeModel) -> Iterator[LLMServer]:
    with LLMServer(replies={"Ticket:": model}) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def seen(server: LLMServer, key: str) -> list[tuple[str, int | None]]:
    """(request ID, status) of every request the server received under ``key``, in order."""
    return [(record.request_id, record.status) for record in server.log if record.key == key]


# ---------------------------------------------------------------- stand-ins


@dataclass
class Config:
    """The tests' own settings: the attributes TriageService and LLMClient read."""

    base_url: str
    api_key: SecretStr = field(default_factory=lambda: SecretStr("sk-course-local"))
    model: str = "mock-gpt"
    max_concurrency: int = 4
    requests_per_second: float = 100.0
    max_attempts: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 8.0
    timeout_s: float = 5.0


class SpyTelemetry:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.tickets: list[Any] = []

    def call_finished(self, *, ticket_id: str, request_id: str, attempt: int, outcome: str,
                      seconds: float) -> None:
        self.calls.append({"ticket_id": ticket_id, "request_id": request_id, "attempt": attempt,
                           "outcome": outcome, "seconds": seconds})

    def ticket_finished(self, outcome: Any) -> None:
        self.tickets.append(outcome)


class SpyGate:
    """Stands in for the RateGate: counts entries, knows whether someone is inside."""

    def __init__(self) -> None:
        self.entered = 0
        self.held = 0

    async def __aenter__(self) -> None:
        self.entered += 1
        self.held += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self.held -= 1


class FakeSleep:
    """Records each requested delay, and whether the gate was held at that moment."""

    def __init__(self, gate: SpyGate) -> None:
        self.gate = gate
        self.delays: list[float] = []
        self.held: list[int] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.held.append(self.gate.held)
        await asyncio.sleep(0)


def reference_parse(notebook: Module) -> Any:
    """A parser independent of the learner's: JSON (bare or fenced) without validation."""

    def parse(text: str) -> Any:
        body = text.split("```json\n", 1)[-1].split("\n```", 1)[0]
        try:
            data = json.loads(body)
        except ValueError:
            raise notebook.InvalidOutput("no JSON object in the answer") from None
        return notebook.Triage.model_construct(**data)

    return parse


@dataclass
class Run:
    service: Any
    key: str
    telemetry: SpyTelemetry
    sleep: FakeSleep
    gate: SpyGate


@pytest.fixture
def make_run(notebook: Module, server: LLMServer, http: httpx.AsyncClient,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(notebook, "parse_triage", reference_parse(notebook))

    def make(scenario: str = "ok", seed: int = 7, **config: Any) -> Run:
        key = f"retry-{uuid.uuid4().hex[:8]}"
        telemetry, gate = SpyTelemetry(), SpyGate()
        sleep = FakeSleep(gate)
        service = notebook.TriageService(Config(server.url(scenario, key=key), **config), http, telemetry,
                                         rng=random.Random(seed), sleep=sleep)
        service.gate = gate
        return Run(service, key, telemetry, sleep, gate)

    return make


def ticket(notebook: Module, ticket_id: str, text: str) -> Any:
    return notebook.Ticket(id=ticket_id, text=text)


async def triage(run: Run, item: Any) -> Any:
    async with asyncio.timeout(GUARD_S):
        return await run.service.triage_one(item)


def check_calls(run: Run, ticket_id: str, outcomes: list[str]) -> None:
    calls = run.telemetry.calls
    assert_same([c["outcome"] for c in calls], outcomes, "the outcomes passed to telemetry.call_finished")
    assert_same([c["attempt"] for c in calls], list(range(1, len(outcomes) + 1)), "the attempts reported")
    assert_same([c["ticket_id"] for c in calls], [ticket_id] * len(outcomes), "the ticket_ids reported")
    expected_ids = [f"{ticket_id}-{n}" for n in range(1, len(outcomes) + 1)]
    assert_same([c["request_id"] for c in calls], expected_ids, "the request_ids reported")
    assert all(type(c["seconds"]) is float and c["seconds"] >= 0 for c in calls), (
        f"seconds should be the attempt's duration as a float: {[c['seconds'] for c in calls]}"
    )


def check_finished(run: Run, outcome: Any) -> None:
    assert len(run.telemetry.tickets) == 1 and run.telemetry.tickets[0] is outcome, (
        "telemetry.ticket_finished(outcome) should be called once, with the outcome returned; "
        f"it was called with {run.telemetry.tickets!r}"
    )


# ---------------------------------------------------------------- triage_settings

SETTINGS_VARS = ("BASE_URL", "API_KEY", "MODEL", "MAX_CONCURRENCY", "REQUESTS_PER_SECOND", "MAX_ATTEMPTS",
                 "BACKOFF_BASE_S", "BACKOFF_MAX_S", "TIMEOUT_S", "UNRELATED")
KEY = "sk-test-0123456789"


def environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Exactly these TRIAGE_ variables (and an API key unless given), nothing else."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(f"TRIAGE_{name}", raising=False)
    for name, value in {"API_KEY": KEY, **values}.items():
        if value is not None:
            monkeypatch.setenv(f"TRIAGE_{name}", value)


def error_locs(notebook: Module) -> list[tuple[Any, ...]]:
    try:
        notebook.TriageSettings()
    except ValidationError as exc:
        return [tuple(error["loc"]) for error in exc.errors()]
    return []


@exercise("triage_settings", points=1, hint="env_prefix='TRIAGE_' in SettingsConfigDict, SecretStr for the "
          "key, the defaults from the table, and a validator that cuts a final '/' from base_url.")
def test_settings_read_the_environment(notebook: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    environment(monkeypatch, BASE_URL="https://llm.example.com/", MODEL="mock-gpt-mini", MAX_CONCURRENCY="8",
                REQUESTS_PER_SECOND="2.5", MAX_ATTEMPTS="5", BACKOFF_BASE_S="0.5", BACKOFF_MAX_S="4",
                TIMEOUT_S="12", UNRELATED="ignored")
    settings = notebook.TriageSettings()
    expected = {"base_url": "https://llm.example.com", "model": "mock-gpt-mini", "max_concurrency": 8,
                "requests_per_second": 2.5, "max_attempts": 5, "backoff_base_s": 0.5, "backoff_max_s": 4.0,
                "timeout_s": 12.0}
    for name, value in expected.items():
        assert_same(getattr(settings, name, None), value, f"TriageSettings().{name}")
    assert isinstance(settings.api_key, SecretStr), f"api_key should be a SecretStr, got {settings.api_key!r}"
    assert_same(settings.api_key.get_secret_value(), KEY, "api_key.get_secret_value()")
    for shown in (str(settings), repr(settings), settings.model_dump_json()):
        assert KEY not in shown, f"the API key shows in {shown!r}"

    environment(monkeypatch)
    defaults = {"base_url": "http://127.0.0.1:8000", "model": "mock-gpt", "max_concurrency": 4,
                "requests_per_second": 10.0, "max_attempts": 3, "backoff_base_s": 0.1, "backoff_max_s": 2.0,
                "timeout_s": 30.0}
    settings = notebook.TriageSettings()
    for name, value in defaults.items():
        assert_same(getattr(settings, name, None), value, f"the default of {name}")


@exercise("triage_settings", points=1, hint="Field(ge=..., le=...) or gt= for each range; api_key is "
          "required with min_length=8; base_url must start with http:// or https://.")
def test_settings_reject_bad_values(notebook: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = [("MAX_CONCURRENCY", "0"), ("MAX_CONCURRENCY", "33"), ("REQUESTS_PER_SECOND", "0"),
           ("REQUESTS_PER_SECOND", "101"), ("MAX_ATTEMPTS", "0"), ("MAX_ATTEMPTS", "11"),
           ("BACKOFF_BASE_S", "0"), ("BACKOFF_BASE_S", "10.5"), ("BACKOFF_MAX_S", "0"),
           ("BACKOFF_MAX_S", "61"),
           ("TIMEOUT_S", "0"), ("TIMEOUT_S", "121"), ("BASE_URL", "ftp://files.example.com"),
           ("BASE_URL", "llm.example.com"), ("API_KEY", "short"), ("MODEL", "")]
    for name, value in bad:
        environment(monkeypatch, **{name: value})
        locs = error_locs(notebook)
        assert locs == [(name.lower(),)], (
            f"TRIAGE_{name}={value!r} should fail with one error on {name.lower()!r}; errors at {locs}"
        )
    environment(monkeypatch, API_KEY=None)
    assert error_locs(notebook) == [("api_key",)], "without TRIAGE_API_KEY the settings must not load"


@exercise("triage_settings", points=1, hint="Ranges include their ends. The backoff_max_s rule is a "
          "field_validator that reads info.data['backoff_base_s']; it applies to the default too.")
def test_settings_edges_and_the_backoff_rule(notebook: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    good = [{"MAX_CONCURRENCY": "1"}, {"MAX_CONCURRENCY": "32"}, {"REQUESTS_PER_SECOND": "100"},
            {"MAX_ATTEMPTS": "1"}, {"MAX_ATTEMPTS": "10"}, {"TIMEOUT_S": "120"}, {"BASE_URL": "http://llm"},
            {"BACKOFF_BASE_S": "10", "BACKOFF_MAX_S": "10"}, {"BACKOFF_MAX_S": "60"}]
    for values in good:
        environment(monkeypatch, **values)
        assert error_locs(notebook) == [], f"{values} is within the rules and should load"
    too_low = ({"BACKOFF_BASE_S": "5", "BACKOFF_MAX_S": "1"},
               {"BACKOFF_BASE_S": "0.5", "BACKOFF_MAX_S": "0.4"},
               {"BACKOFF_BASE_S": "3"})  # against the default, 2.0
    for values in too_low:
        environment(monkeypatch, **values)
        locs = error_locs(notebook)
        assert locs == [("backoff_max_s",)], (
            f"with {values} backoff_max_s is below backoff_base_s (the default is 2.0): expected one error "
            f"on 'backoff_max_s', got errors at {locs}"
        )


# ---------------------------------------------------------------- triage_output

ANSWER = {"label": "bug", "priority": "high", "summary": "Export crashes", "needs_human": False}


def check_triage(notebook: Module, result: Any, expected: dict[str, Any], where: str) -> None:
    assert isinstance(result, notebook.Triage), f"{where}: expected a Triage, got {result!r}"
    for name, value in expected.items():
        assert_same(getattr(result, name, None), value, f"{where}: {name}")


@exercise("triage_output", points=1, hint="Try the whole text, then each fenced block, then the text from "
          "each '{' (json.JSONDecoder().raw_decode stops at the end of one value); keep the first object.")
async def test_parse_triage_finds_the_json(notebook: Module, server: LLMServer,
                                           http: httpx.AsyncClient) -> None:
    for style in ("plain", "fence", "prose", "prose_fence"):
        response = await http.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Triage this."}]},
            headers={"Authorization": f"Bearer {server.api_key}", "X-Mock-Reply": json.dumps(ANSWER),
                     "X-Mock-Reply-Style": style},
        )
        text = response.json()["choices"][0]["message"]["content"]
        check_triage(notebook, notebook.parse_triage(text), ANSWER, f"parse_triage of a {style!r} answer")
    body = json.dumps(ANSWER)
    for text in (f"```\n{body}\n```", f"Note {{this}} first. Then: {body} Bye {{now}}.", f"  {body}\n\n"):
        check_triage(notebook, notebook.parse_triage(text), ANSWER, f"parse_triage({text!r})")


@exercise("triage_output", points=1, hint="A mode='before' field_validator for label and priority (strip "
          "and lower strings only); summary is stripped, then 1 to 200 characters.")
def test_triage_normalises_and_checks(notebook: Module) -> None:
    messy = {"label": " Billing ", "priority": "URGENT", "summary": "  Refund twice  ", "needs_human": True,
             "reasoning": "the customer says so"}
    result = notebook.Triage.model_validate(messy)
    check_triage(notebook, result, {"label": "billing", "priority": "urgent", "summary": "Refund twice",
                                    "needs_human": True}, "Triage of a messy answer")
    assert "reasoning" not in result.model_dump(), "keys the model adds should be ignored"
    check_triage(notebook, notebook.Triage.model_validate({**ANSWER, "summary": "x" * 200}),
                 {"summary": "x" * 200}, "a 200-character summary")
    wrong = [{"label": "complaint"}, {"label": 3}, {"priority": "soon"}, {"priority": None},
             {"summary": "   "}, {"summary": "x" * 201}, {"needs_human": "maybe"}]
    for change in wrong:
        with pytest.raises(ValidationError, match=next(iter(change))):
            notebook.Triage.model_validate({**ANSWER, **change})
    with pytest.raises(ValidationError):
        notebook.Triage.model_validate({"label": "bug", "priority": "low"})


@exercise("triage_output", points=1, hint="Raise InvalidOutput(...) from the original error; build the "
          "message from exc.errors() (loc and type), never from str(exc), which shows the input.")
def test_invalid_answers_raise_invalid_output(notebook: Module) -> None:
    for text in ("I could not decide, sorry.", "", "[1, 2, 3]", '{"label": "bug"', "{}"):
        with pytest.raises(notebook.InvalidOutput):
            notebook.parse_triage(text)
    secret = "customer-said-SECRET-42"
    answer = {"label": "complaint", "priority": "high", "summary": secret + "!" * 300, "needs_human": False}
    with pytest.raises(notebook.InvalidOutput) as caught:
        notebook.parse_triage(f"Here you go: {json.dumps(answer)}")
    error = caught.value
    assert isinstance(error.__cause__, ValidationError), (
        f"raise InvalidOutput(...) from the ValidationError; __cause__ is {error.__cause__!r}"
    )
    message = str(error)
    for part in ("label", "literal_error", "summary", "string_too_long"):
        assert part in message, (
            f"the message should name each failing field and its error type ({part!r}): {message!r}"
        )
    for part in ("SECRET-42", "complaint"):
        assert part not in message, f"the message must not repeat the input ({part!r}): {message!r}"


# ---------------------------------------------------------------- triage_telemetry


def read_events(stream: io.StringIO) -> list[dict[str, Any]]:
    events = []
    for line in stream.getvalue().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return events


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def outcome_of(notebook: Module, ok: bool, attempts: int, error: str | None = None) -> Any:
    """A TicketOutcome that does not depend on the learner's Triage."""
    triage = types.SimpleNamespace(label="bug") if ok else None
    return notebook.TicketOutcome.model_construct(ticket_id="T-9", triage=triage, error=error,
                                                   attempts=attempts, request_ids=[])


def telemetry(notebook: Module) -> tuple[Any, io.StringIO, CollectorRegistry]:
    stream, registry = io.StringIO(), CollectorRegistry()
    return notebook.Telemetry(notebook.make_logger(stream), registry), stream, registry


@exercise("triage_telemetry", points=1, hint="Create the three metrics in __init__ with registry=registry "
          "(never at module level); the histogram uses buckets=LATENCY_BUCKETS.")
def test_telemetry_counts_in_its_registry(notebook: Module) -> None:
    first, _, registry = telemetry(notebook)
    for outcome, seconds in (("server_error", 0.07), ("ok", 0.3), ("ok", 12.0)):
        first.call_finished(ticket_id="T-1", request_id="T-1-1", attempt=1, outcome=outcome, seconds=seconds)
    first.ticket_finished(outcome_of(notebook, ok=True, attempts=3))
    first.ticket_finished(outcome_of(notebook, ok=False, attempts=3, error="invalid_output"))
    expected = [("triage_llm_calls_total", {"outcome": "ok"}, 2.0),
                ("triage_llm_calls_total", {"outcome": "server_error"}, 1.0),
                ("triage_llm_call_seconds_count", {}, 3.0),
                ("triage_llm_call_seconds_bucket", {"le": "0.05"}, 0.0),
                ("triage_llm_call_seconds_bucket", {"le": "0.1"}, 1.0),
                ("triage_llm_call_seconds_bucket", {"le": "10.0"}, 2.0),
                ("triage_llm_call_seconds_bucket", {"le": "30.0"}, 3.0),
                ("triage_tickets_total", {"outcome": "ok"}, 1.0),
                ("triage_tickets_total", {"outcome": "invalid_output"}, 1.0)]
    for name, labels, value in expected:
        assert_same(sample(registry, name, **labels), value, f"{name}{labels}")
    total = sample(registry, "triage_llm_call_seconds_sum")
    assert total is not None and math.isclose(total, 12.37), f"the histogram's sum should be 12.37: {total}"

    second, _, other = telemetry(notebook)
    second.call_finished(ticket_id="T-2", request_id="T-2-1", attempt=1, outcome="ok", seconds=0.2)
    assert_same(sample(other, "triage_llm_calls_total", outcome="ok"), 1.0,
                "a second Telemetry, on a fresh registry, should count from zero")
    assert_same(sample(registry, "triage_llm_calls_total", outcome="ok"), 2.0,
                "the first registry is untouched")


@exercise("triage_telemetry", points=1, hint="log.info for 'ok', log.warning otherwise; the fields are "
          "ticket_id, request_id, attempt, outcome and latency_ms=round(seconds * 1000, 1).")
def test_telemetry_logs_each_call(notebook: Module) -> None:
    reporter, stream, _ = telemetry(notebook)
    reporter.call_finished(ticket_id="T-1", request_id="T-1-1", attempt=1, outcome="rate_limited",
                           seconds=0.01234)
    reporter.call_finished(ticket_id="T-1", request_id="T-1-2", attempt=2, outcome="ok", seconds=1.50049)
    events = read_events(stream)
    assert len(events) == 2, f"expected one log line per call, got {events}"
    expected = [
        {"event": "llm.call", "level": "warning", "ticket_id": "T-1", "request_id": "T-1-1", "attempt": 1,
         "outcome": "rate_limited", "latency_ms": 12.3},
        {"event": "llm.call", "level": "info", "ticket_id": "T-1", "request_id": "T-1-2", "attempt": 2,
         "outcome": "ok", "latency_ms": 1500.5},
    ]
    for event, fields in zip(events, expected, strict=True):
        for name, value in fields.items():
            assert_same(event.get(name), value, f"the log line's {name!r} (line: {event})")


@exercise("triage_telemetry", points=1, hint="ticket.done is logged at info when the ticket worked and at "
          "error when it failed, with ticket_id, ok, attempts, error and label (None when absent).")
def test_telemetry_logs_each_ticket(notebook: Module) -> None:
    reporter, stream, _ = telemetry(notebook)
    reporter.ticket_finished(outcome_of(notebook, ok=True, attempts=1))
    reporter.ticket_finished(outcome_of(notebook, ok=False, attempts=3, error="server_error"))
    events = read_events(stream)
    assert len(events) == 2, f"expected one log line per ticket, got {events}"
    expected = [
        {"event": "ticket.done", "level": "info", "ticket_id": "T-9", "ok": True, "attempts": 1,
         "error": None, "label": "bug"},
        {"event": "ticket.done", "level": "error", "ticket_id": "T-9", "ok": False, "attempts": 3,
         "error": "server_error", "label": None},
    ]
    for event, fields in zip(events, expected, strict=True):
        for name, value in fields.items():
            assert name in event, f"the log line should have the field {name!r}: {event}"
            assert_same(event[name], value, f"the log line's {name!r} (line: {event})")


# ---------------------------------------------------------------- triage_retries


@exercise("triage_retries", points=1, hint="Attempt n uses the request ID f'{ticket.id}-{n}'; a retryable "
          "error sleeps self.backoff(n) through self.sleep, then tries again, up to max_attempts.")
async def test_server_errors_are_retried(notebook: Module, server: LLMServer, make_run: Any) -> None:
    run = make_run("fail_first:2:503", backoff_base_s=1.0, backoff_max_s=8.0)
    outcome = await triage(run, ticket(notebook, "R-1", "Where is my invoice?"))
    assert isinstance(outcome, notebook.TicketOutcome), f"triage_one should return a TicketOutcome: {outcome}"
    assert outcome.triage is not None, f"two 503s then a 200: the ticket should succeed, got {outcome!r}"
    assert_same(outcome.error, None, "outcome.error")
    assert_same(outcome.attempts, 3, "outcome.attempts")
    assert_same(outcome.request_ids, ["R-1-1", "R-1-2", "R-1-3"], "outcome.request_ids")
    assert seen(server, run.key) == [("R-1-1", 503), ("R-1-2", 503), ("R-1-3", 200)], (
        f"the server should see three attempts with these X-Request-IDs: {seen(server, run.key)}"
    )
    delays = run.sleep.delays
    assert len(delays) == 2, f"expected a sleep after each failed attempt but the last, got {delays}"
    assert all(type(d) is float for d in delays), f"sleep for a float number of seconds: {delays}"
    assert 0 <= delays[0] <= 1.0 and 0 <= delays[1] <= 2.0, (
        f"the waits should be self.backoff(1) (0 to 1 s) and self.backoff(2) (0 to 2 s), got {delays}"
    )
    check_calls(run, "R-1", ["server_error", "server_error", "ok"])
    check_finished(run, outcome)


@exercise("triage_retries", points=1, hint="A RateLimited error's retry_after is the wait when it has one; "
          "BadRequest is not retried; no sleep after the last attempt.")
async def test_rate_limits_and_bad_requests(notebook: Module, server: LLMServer, make_run: Any) -> None:
    run = make_run("rate_limited:retry_after=0.25")
    outcome = await triage(run, ticket(notebook, "R-2", "Where is my invoice?"))
    assert outcome.triage is None, f"every attempt got a 429: the ticket should fail, got {outcome!r}"
    assert_same(outcome.error, "rate_limited", "outcome.error")
    assert_same(outcome.attempts, 3, "outcome.attempts (max_attempts is 3)")
    assert_same(outcome.request_ids, ["R-2-1", "R-2-2", "R-2-3"], "outcome.request_ids")
    assert_same(run.sleep.delays, [0.25, 0.25],
                "the waits (Retry-After is 0.25 s; no wait after the last attempt)")
    assert [status for _, status in seen(server, run.key)] == [429] * 3, f"server saw {seen(server, run.key)}"
    check_calls(run, "R-2", ["rate_limited"] * 3)
    check_finished(run, outcome)

    run = make_run("error:400")
    outcome = await triage(run, ticket(notebook, "R-3", "Where is my invoice?"))
    assert_same(outcome.error, "bad_request", "outcome.error after a 400")
    assert_same(outcome.attempts, 1, "attempts after a 400: a bad request is not retried")
    assert_same(run.sleep.delays, [], "sleeps after a 400")
    assert len(seen(server, run.key)) == 1, f"a 400 must not be sent again: {seen(server, run.key)}"
    check_finished(run, outcome)


@exercise("triage_retries", points=1, hint="After an InvalidOutput, build the next prompt with "
          "build_prompt(ticket, feedback=str(error)), and keep that feedback for the later attempts.")
async def test_invalid_output_is_repaired(notebook: Module, model: FakeModel, make_run: Any) -> None:
    marker = f"repair-me {uuid.uuid4().hex[:8]}"
    run = make_run()
    outcome = await triage(run, ticket(notebook, "R-4", marker))
    prompts = model.prompts_with(marker)
    assert len(prompts) == 2 and "was not valid" not in prompts[0], f"expected two prompts, got {prompts}"
    assert "no JSON object in the answer" in prompts[1], (
        f"the second prompt should carry the first error (feedback=str(error)); it was {prompts[1]!r}"
    )
    assert outcome.triage is not None, f"the repaired answer is valid: the ticket should succeed: {outcome!r}"
    assert_same(outcome.attempts, 2, "outcome.attempts")
    check_calls(run, "R-4", ["invalid_output", "ok"])

    marker = f"never-json {uuid.uuid4().hex[:8]}"
    run = make_run()
    outcome = await triage(run, ticket(notebook, "R-5", marker))
    assert_same(outcome.error, "invalid_output", "outcome.error when the model never answers in JSON")
    assert_same(outcome.attempts, 3, "outcome.attempts")
    assert len(run.sleep.delays) == 2, f"an invalid answer is retried after a backoff: {run.sleep.delays}"
    check_finished(run, outcome)


@exercise("triage_retries", points=1, hint="backoff: self.rng.uniform(0, min(backoff_max_s, backoff_base_s "
          "* 2 ** (attempt - 1))). Each attempt enters self.gate once; sleep after leaving it.")
async def test_backoff_and_the_gate(notebook: Module, server: LLMServer, make_run: Any) -> None:
    run = make_run("fail_first:1:drop_stream:after=3", backoff_base_s=0.5, backoff_max_s=3.0)
    for attempt, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)):
        values = [run.service.backoff(attempt) for _ in range(200)]
        assert all(type(v) is float and 0 <= v <= cap for v in values), (
            f"backoff({attempt}) should be from 0 to {cap}; got values from {min(values)} to {max(values)}"
        )
        assert max(values) > 0.8 * cap and len(set(values)) > 100, (
            f"backoff({attempt}) should be random over the whole range 0 to {cap} (full jitter), got "
            f"{len(set(values))} distinct values up to {max(values)}"
        )
    twin_a, twin_b = make_run(seed=3), make_run(seed=3)
    assert_same([twin_a.service.backoff(2) for _ in range(5)], [twin_b.service.backoff(2) for _ in range(5)],
                "backoff with the same seed (draw from self.rng)")

    outcome = await triage(run, ticket(notebook, "R-6", "The app crashes at start."))
    assert outcome.triage is not None, f"a dropped stream is retryable; the ticket should succeed: {outcome}"
    assert_same(outcome.attempts, 2, "outcome.attempts after one dropped stream")
    check_calls(run, "R-6", ["stream_broken", "ok"])
    assert run.gate.entered == 2, f"each attempt should enter self.gate once; entered: {run.gate.entered}"
    assert run.sleep.held == [0], (
        "sleep outside the gate: a sleeping task must not hold a concurrency slot "
        f"(slots held while sleeping: {run.sleep.held})"
    )


# ---------------------------------------------------------------- triage_batch


class FakeTriager:
    """Stands in for TriageService. Each ticket waits until every ticket has started, then
    until it is released: all at once, or one by one in ``order`` (the first at once, the
    next each time the test calls ``release_next``)."""

    def __init__(self, notebook: Module, tickets: list[Any], order: list[str] | None = None,
                 crash: frozenset[str] = frozenset()) -> None:
        self.notebook, self.total, self.order, self.crash = notebook, len(tickets), order, crash
        self.telemetry = SpyTelemetry()
        self.events = {t.id: asyncio.Event() for t in tickets}
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.finished: list[str] = []
        self.contexts: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}

    def release_next(self) -> None:
        if self.order:
            self.events[self.order.pop(0)].set()

    async def triage_one(self, item: Any) -> Any:
        self.started.append(item.id)
        self.contexts.append(dict(structlog.contextvars.get_contextvars()))
        if len(self.started) == self.total:
            if self.order is None:
                for event in self.events.values():
                    event.set()
            else:
                self.release_next()
        try:
            await self.events[item.id].wait()
            if item.id in self.crash:
                raise RuntimeError("a bug in triage_one")
            failed = item.id.endswith("-1")
            result = self.notebook.TicketOutcome.model_construct(
                ticket_id=item.id, triage=None if failed else types.SimpleNamespace(label="question"),
                error="rate_limited" if failed else None, attempts=1, request_ids=[f"{item.id}-1"])
            self.results[item.id] = result
            return result
        except asyncio.CancelledError:
            self.cancelled.append(item.id)
            raise
        finally:
            self.finished.append(item.id)


def batch(notebook: Module, prefix: str, count: int) -> list[Any]:
    return [notebook.Ticket(id=f"{prefix}-{i}", text=f"Question number {i}.") for i in range(count)]


async def open_stream(notebook: Module, service: Any, tickets: list[Any]) -> Any:
    """stream_outcomes(...), checked to be an async generator."""
    stream = notebook.stream_outcomes(service, tickets)
    if inspect.iscoroutine(stream):
        await stream  # the untouched stub raises NotImplementedError here
        pytest.fail("stream_outcomes should be an async generator: `yield` each outcome")
    assert inspect.isasyncgen(stream), f"stream_outcomes should be an async generator, got {stream!r}"
    return stream


async def guarded(work: Any, what: str) -> Any:
    try:
        async with asyncio.timeout(GUARD_S):
            return await work
    except TimeoutError:
        pytest.fail(f"{what} did not finish: are the tickets run concurrently (one task each), "
                    "or does it wait for one ticket before starting the next?")


@exercise("triage_batch", points=1, hint="One task per ticket; asyncio.as_completed(tasks) yields them as "
          "they finish. The report lists the outcomes in the tickets' order; on_progress counts from 1.")
async def test_batch_report_and_progress(notebook: Module) -> None:
    tickets = batch(notebook, "B", 5)
    fake = FakeTriager(notebook, tickets, order=["B-3", "B-0", "B-4", "B-1", "B-2"])
    progress: list[tuple[int, int, str]] = []

    def on_progress(done: int, total: int, outcome: Any) -> None:
        progress.append((done, total, outcome.ticket_id))
        fake.release_next()

    report = await guarded(notebook.run_batch(fake, tickets, on_progress), "run_batch")
    expected = [(1, 5, "B-3"), (2, 5, "B-0"), (3, 5, "B-4"), (4, 5, "B-1"), (5, 5, "B-2")]
    assert_same(progress, expected, "on_progress calls (done, total, ticket_id), in completion order")
    assert isinstance(report, notebook.TriageReport), f"run_batch should return a TriageReport: {report!r}"
    assert_same([o.ticket_id for o in report.outcomes], [t.id for t in tickets], "the report's order")
    assert all(o is fake.results.get(o.ticket_id) for o in report.outcomes), (
        "the report should hold the outcomes that triage_one returned"
    )
    assert_same((report.succeeded, report.failed), (4, 1), "(succeeded, failed)")
    batch_id = report.batch_id
    assert type(batch_id) is str and len(batch_id) == 8 and all(c in "0123456789abcdef" for c in batch_id), (
        f"batch_id should be uuid.uuid4().hex[:8], got {batch_id!r}"
    )

    fake = FakeTriager(notebook, tickets, order=["B-2", "B-4", "B-0", "B-3", "B-1"])
    seen_order: list[str] = []

    async def consume() -> None:
        async for outcome in await open_stream(notebook, fake, tickets):
            seen_order.append(outcome.ticket_id)
            fake.release_next()

    await guarded(consume(), "stream_outcomes")
    assert_same(seen_order, ["B-2", "B-4", "B-0", "B-3", "B-1"], "stream_outcomes' order (completion order)")


@exercise("triage_batch", points=1, hint="Start every ticket's task before awaiting any; check for duplicate "
          "ticket IDs before starting anything.")
async def test_batch_runs_tickets_concurrently(notebook: Module, server: LLMServer,
                                               http: httpx.AsyncClient) -> None:
    key = f"batch-{uuid.uuid4().hex[:8]}"

    class HttpTriager:
        """Sends one real request per ticket, through a gate of three."""

        def __init__(self) -> None:
            self.telemetry = SpyTelemetry()
            self.gate = notebook.RateGate(3, 100.0)
            self.client = notebook.LLMClient(Config(server.url("latency:200ms", key=key)), http)
            self.started = 0

        async def triage_one(self, item: Any) -> Any:
            self.started += 1
            async with self.gate:
                await self.client.complete(notebook.build_prompt(item), f"{item.id}-1")
            return notebook.TicketOutcome(ticket_id=item.id, error="invalid_output", attempts=1)

    tickets = batch(notebook, "C", 9)
    triager = HttpTriager()
    report = await guarded(notebook.run_batch(triager, tickets), "run_batch")
    assert_same(report.failed, 9, "report.failed")
    ids = sorted(request_id for request_id, _ in seen(server, key))
    assert_same(ids, sorted(f"C-{i}-1" for i in range(9)), "the request IDs the server saw")
    peak = max(record.in_flight for record in server.log if record.key == key)
    assert peak == 3, (
        f"with a gate of 3 and 200 ms per answer, 3 requests should be in flight at once; the server saw at "
        f"most {peak}: run the tickets concurrently"
    )

    triager = HttpTriager()
    with pytest.raises(ValueError):
        await guarded(notebook.run_batch(triager, [tickets[0], tickets[1], tickets[0]]), "run_batch")
    assert triager.started == 0, "duplicate ticket IDs must be rejected before any ticket starts"


@exercise("triage_batch", points=1, hint="In stream_outcomes, a finally: block cancels the tasks still "
          "running and awaits them (asyncio.gather(..., return_exceptions=True)).")
async def test_closing_the_stream_cancels_the_rest(notebook: Module) -> None:
    tickets = batch(notebook, "D", 4)
    fake = FakeTriager(notebook, tickets, order=["D-2", "D-0", "D-1", "D-3"])

    async def first_only() -> Any:
        async with aclosing(await open_stream(notebook, fake, tickets)) as outcomes:
            async for outcome in outcomes:
                return outcome
        return None

    first = await guarded(first_only(), "stream_outcomes")
    assert first is not None, "stream_outcomes yielded nothing"
    assert_same(first.ticket_id, "D-2", "the first outcome's ticket_id")
    assert_same(sorted(fake.cancelled), ["D-0", "D-1", "D-3"], "the tickets cancelled when the stream closed")
    assert_same(sorted(fake.finished), ["D-0", "D-1", "D-2", "D-3"],
                "the tickets finished when the stream closed (cancel them, then await them)")


@exercise("triage_batch", points=1, hint="Wrap each triage_one: an Exception becomes TicketOutcome(ticket_id="
          "..., error='internal_error', attempts=0), reported with service.telemetry.ticket_finished. Bind "
          "batch_id with bound_contextvars around the whole batch.")
async def test_a_crash_is_accounted_for(notebook: Module) -> None:
    tickets = batch(notebook, "E", 3)
    fake = FakeTriager(notebook, tickets, crash=frozenset({"E-2"}))
    report = await guarded(notebook.run_batch(fake, tickets), "run_batch")
    crashed = report.outcomes[2]
    assert_same((crashed.ticket_id, crashed.error, crashed.attempts), ("E-2", "internal_error", 0),
                "(ticket_id, error, attempts) of the ticket whose triage_one raised")
    assert crashed.triage is None, f"a crashed ticket has no triage: {crashed!r}"
    assert_same((report.succeeded, report.failed), (1, 2), "(succeeded, failed): E-1 failed, E-2 crashed")
    assert len(fake.telemetry.tickets) == 1 and fake.telemetry.tickets[0] is crashed, (
        "the crash should be reported once with service.telemetry.ticket_finished(outcome); "
        f"it got {fake.telemetry.tickets!r}"
    )
    batch_ids = [context.get("batch_id") for context in fake.contexts]
    assert_same(batch_ids, [report.batch_id] * 3,
                "structlog's context variables seen by each triage_one (batch_id bound for the batch)")
    leftover = structlog.contextvars.get_contextvars()
    assert "batch_id" not in leftover, f"batch_id should be unbound after the batch: {leftover}"
