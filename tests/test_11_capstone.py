"""Graded tests of chapter 11's exercise: the ticket triage service, assembled.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data.

Each exercise is tested on its own, with the tests' stand-ins for the others: a settings
object of the tests' own, a spy for the telemetry, a reference parser, a fake service for
the batch functions. So a learner gets the points of one exercise without finishing the
others, and a mistake in one does not fail the tests of another. The stand-ins run in the
worker, next to the learner's code; what they recorded comes back as data.

The network tests run in the worker against the course's local LLM server, which the judge
runs (one per module), whose "model" is ``FakeModel``: it answers the ticket in the prompt
with JSON, or with prose for tickets that ask for it, and records the prompts it saw (in
the judge). Faults come in through the base URL (``server.url(scenario, key=...)``), and
each test has its own key, so the server log shows what that test sent. The retry loop
sleeps through a function the tests replace: nothing asserts on time.

Settings, answers, ticket IDs, metrics and log fields are drawn at random per run, so an
answer that returns the published examples earns nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import math
import os
import random
import string
import threading
import types
import uuid
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from course.llm_server import LLMServer
from course.probing import as_data, plain, probe, shown
from course.pytest_plugin import exercise
from course.testing import assert_same

Data = Any
GUARD_S = 4.0  # no test comes near this; it only stops a broken submission hanging
LABELS = ("billing", "bug", "account", "question")
PRIORITIES = ("low", "normal", "high", "urgent")
TRIAGE_FIELDS = ("label", "priority", "summary", "needs_human")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # as the notebook gives them


def word(length: int | None = None) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length or random.randint(3, 8)))


def words(count: int) -> str:
    return " ".join(word() for _ in range(count))


def ticket_id(prefix: str = "") -> str:
    return f"{prefix or word(2).upper()}-{random.randint(1, 999)}"






def check_hung(got: Any) -> None:
    if isinstance(got, dict) and "hung" in got:
        pytest.fail(str(got["hung"]), pytrace=False)


# ---------------------------------------------------------------- the server and its model


class FakeModel:
    """Plays the LLM (in the judge's server): labels the ticket in the prompt, and records
    every prompt it saw."""

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


def seen(server: LLMServer, key: str) -> list[tuple[str, int | None]]:
    """(request ID, status) of every request the server received under ``key``, in order."""
    return [(record.request_id, record.status) for record in server.log if record.key == key]


# ---------------------------------------------------------------- stand-ins (in the worker)


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

    def calls_data(self) -> Data:
        return [{name: plain(value) for name, value in call.items()} for call in self.calls]


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


def reference_parse(nb: Any) -> Any:
    """A parser independent of the learner's: JSON (bare or fenced) without validation."""

    def parse(text: str) -> Any:
        body = text.split("```json\n", 1)[-1].split("\n```", 1)[0]
        try:
            data = json.loads(body)
        except ValueError:
            raise nb.InvalidOutput("no JSON object in the answer") from None
        return nb.Triage.model_construct(**data)

    return parse


@dataclass
class Run:
    service: Any
    telemetry: SpyTelemetry
    sleep: FakeSleep
    gate: SpyGate


def make_run(nb: Any, http: Any, base_url: str, seed: int, config: dict[str, Any]) -> Run:
    nb.parse_triage = reference_parse(nb)
    telemetry, gate = SpyTelemetry(), SpyGate()
    sleep = FakeSleep(gate)
    service = nb.TriageService(Config(base_url, **config), http, telemetry, rng=random.Random(seed),
                               sleep=sleep)
    service.gate = gate
    return Run(service, telemetry, sleep, gate)


class Hung(Exception):
    """A guarded await that ran out of time (in a worker)."""


async def guarded(work: Any, what: str) -> Any:
    try:
        async with asyncio.timeout(GUARD_S):
            return await work
    except TimeoutError:
        raise Hung(f"{what} did not finish: are the tickets run concurrently (one task each), "
                   "or does it wait for one ticket before starting the next?") from None


def outcome_data(nb: Any, outcome: Any) -> Data:
    return {"is_outcome": isinstance(outcome, nb.TicketOutcome), "shown": shown(outcome),
            "ticket_id": plain(getattr(outcome, "ticket_id", None)),
            "has_triage": getattr(outcome, "triage", None) is not None,
            "error": plain(getattr(outcome, "error", None)),
            "attempts": plain(getattr(outcome, "attempts", None)),
            "request_ids": as_data(getattr(outcome, "request_ids", None))}


# ---------------------------------------------------------------- triage_settings

SETTINGS_VARS = ("BASE_URL", "API_KEY", "MODEL", "MAX_CONCURRENCY", "REQUESTS_PER_SECOND", "MAX_ATTEMPTS",
                 "BACKOFF_BASE_S", "BACKOFF_MAX_S", "TIMEOUT_S", "UNRELATED")
SETTINGS_FIELDS = ("base_url", "model", "max_concurrency", "requests_per_second", "max_attempts",
                   "backoff_base_s", "backoff_max_s", "timeout_s")
PREFIX = "TRIAGE_"


@probe
def probe_settings(nb: Any, cases: list[dict[str, str]]) -> Data:
    """TriageSettings() under exactly each case's TRIAGE_ variables: its values, or the
    locations of its validation errors."""
    saved = {name: value for name, value in os.environ.items() if name.startswith(PREFIX)}
    out: list[Data] = []
    try:
        for case in cases:
            for name in [name for name in os.environ if name.startswith(PREFIX)]:
                del os.environ[name]
            for name, value in case.items():
                os.environ[PREFIX + name] = value
            try:
                settings = nb.TriageSettings()
            except ValidationError as exc:
                out.append({"locs": [[str(part) for part in error["loc"]] for error in exc.errors()]})
                continue
            key = getattr(settings, "api_key", None)
            out.append({"values": {name: plain(getattr(settings, name, None)) for name in SETTINGS_FIELDS},
                        "key_kind": type(key).__name__, "key_is_secret": isinstance(key, SecretStr),
                        "secret": plain(key.get_secret_value()) if isinstance(key, SecretStr) else None,
                        "shown": [shown(settings, str, 4000), shown(settings, repr, 4000),
                                  shown(settings, lambda s: s.model_dump_json(), 4000)]})
    finally:
        for name in [name for name in os.environ if name.startswith(PREFIX)]:
            del os.environ[name]
        os.environ.update(saved)
    return out


def env(**values: str | None) -> dict[str, str]:
    """Exactly these TRIAGE_ variables, and an API key unless given (None: leave it out)."""
    key = values.pop("API_KEY", "sk-test-" + word(12))
    case = {name: value for name, value in values.items() if value is not None}
    if key is not None:
        case["API_KEY"] = key
    return case


def settings_of(result: dict[str, Any], what: str) -> dict[str, Any]:
    assert "locs" not in result, f"{what} should load, but failed with errors at {result['locs']}"
    return result


@exercise("triage_settings", points=1, hint="env_prefix='TRIAGE_' in SettingsConfigDict, SecretStr for the "
          "key, the defaults from the table, and a validator that cuts a final '/' from base_url.")
def test_settings_read_the_environment(notebook: Any) -> None:
    host = f"https://{word()}.example.com"
    expected = {"base_url": host, "model": f"mock-{word()}", "max_concurrency": random.randint(1, 32),
                "requests_per_second": random.randint(1, 199) / 2, "max_attempts": random.randint(1, 10),
                "backoff_base_s": random.randint(1, 10) / 4, "backoff_max_s": float(random.randint(3, 60)),
                "timeout_s": float(random.randint(1, 120))}
    raw = {"BASE_URL": host + "/", "MODEL": expected["model"],
           "MAX_CONCURRENCY": str(expected["max_concurrency"]),
           "REQUESTS_PER_SECOND": str(expected["requests_per_second"]),
           "MAX_ATTEMPTS": str(expected["max_attempts"]), "BACKOFF_BASE_S": str(expected["backoff_base_s"]),
           "BACKOFF_MAX_S": str(int(expected["backoff_max_s"])), "TIMEOUT_S": str(int(expected["timeout_s"])),
           "UNRELATED": word()}
    key = f"sk-test-{word(12)}"
    loaded, defaults = probe_settings(notebook, [env(**raw, API_KEY=key), env()])
    loaded = settings_of(loaded, f"the environment {raw}")
    for name, value in expected.items():
        assert_same(loaded["values"][name], value, f"TriageSettings().{name} (from TRIAGE_{name.upper()})")
    assert loaded["key_is_secret"], f"api_key should be a SecretStr, got a {loaded['key_kind']}"
    assert_same(loaded["secret"], key, "api_key.get_secret_value()")
    for text in loaded["shown"]:
        assert key not in text, f"the API key shows in {text!r}"

    want = {"base_url": "http://127.0.0.1:8000", "model": "mock-gpt", "max_concurrency": 4,
            "requests_per_second": 10.0, "max_attempts": 3, "backoff_base_s": 0.1, "backoff_max_s": 2.0,
            "timeout_s": 30.0}
    defaults = settings_of(defaults, "the settings with only TRIAGE_API_KEY")
    for name, value in want.items():
        assert_same(defaults["values"][name], value, f"the default of {name}")


@exercise("triage_settings", points=1, hint="Field(ge=..., le=...) or gt= for each range; api_key is "
          "required with min_length=8; base_url must start with http:// or https://.")
def test_settings_reject_bad_values(notebook: Any) -> None:
    bad = [("MAX_CONCURRENCY", random.choice(["0", "-1"])), ("MAX_CONCURRENCY", str(random.randint(33, 99))),
           ("REQUESTS_PER_SECOND", random.choice(["0", "-0.5"])),
           ("REQUESTS_PER_SECOND", str(random.randint(101, 500))),
           ("MAX_ATTEMPTS", random.choice(["0", "-2"])), ("MAX_ATTEMPTS", str(random.randint(11, 50))),
           ("BACKOFF_BASE_S", "0"), ("BACKOFF_BASE_S", f"{random.randint(1, 50) / 10 + 10:g}"),
           ("BACKOFF_MAX_S", "0"), ("BACKOFF_MAX_S", str(random.randint(61, 200))),
           ("TIMEOUT_S", "0"), ("TIMEOUT_S", str(random.randint(121, 999))),
           ("BASE_URL", f"ftp://files.{word()}.com"), ("BASE_URL", f"{word()}.example.com"),
           ("API_KEY", word(random.randint(1, 7))), ("MODEL", "")]
    results = probe_settings(notebook, [*(env(**{name: value}) for name, value in bad), env(API_KEY=None)])
    for (name, value), result in zip(bad, results[:len(bad)], strict=True):
        locs = result.get("locs", [])
        assert locs == [[name.lower()]], (
            f"TRIAGE_{name}={value!r} should fail with one error on {name.lower()!r}; errors at {locs}"
        )
    assert results[-1].get("locs") == [["api_key"]], (
        f"without TRIAGE_API_KEY the settings must not load (one error on 'api_key'); got {results[-1]}"
    )


@exercise("triage_settings", points=1, hint="Ranges include their ends. The backoff_max_s rule is a "
          "field_validator that reads info.data['backoff_base_s']; it applies to the default too.")
def test_settings_edges_and_the_backoff_rule(notebook: Any) -> None:
    equal = str(random.randint(1, 10))
    good = [{"MAX_CONCURRENCY": "1"}, {"MAX_CONCURRENCY": "32"}, {"REQUESTS_PER_SECOND": "100"},
            {"MAX_ATTEMPTS": "1"}, {"MAX_ATTEMPTS": "10"}, {"TIMEOUT_S": "120"},
            {"BASE_URL": f"http://{word()}"}, {"BACKOFF_BASE_S": equal, "BACKOFF_MAX_S": equal},
            {"BACKOFF_MAX_S": "60"}]
    base = random.randint(6, 100) / 10
    too_low = ({"BACKOFF_BASE_S": f"{base:g}", "BACKOFF_MAX_S": f"{base - random.randint(1, 5) / 10:g}"},
               {"BACKOFF_BASE_S": "0.5", "BACKOFF_MAX_S": "0.4"},
               {"BACKOFF_BASE_S": f"{random.randint(21, 100) / 10:g}"})  # against the default, 2.0
    results = probe_settings(notebook, [*(env(**values) for values in good), *(env(**v) for v in too_low)])
    for values, result in zip(good, results[:len(good)], strict=True):
        assert "locs" not in result, (
            f"{values} is within the rules and should load; errors at {result['locs']}"
        )
    for values, result in zip(too_low, results[len(good):], strict=True):
        locs = result.get("locs", [])
        assert locs == [["backoff_max_s"]], (
            f"with {values} backoff_max_s is below backoff_base_s (the default is 2.0): expected one error "
            f"on 'backoff_max_s', got errors at {locs}"
        )


# ---------------------------------------------------------------- triage_output


def triage_data(nb: Any, result: Any) -> Data:
    return {"is_triage": isinstance(result, nb.Triage), "shown": shown(result),
            "fields": {name: plain(getattr(result, name, None)) for name in TRIAGE_FIELDS}}


def check_triage(got: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    assert got["is_triage"], f"{where}: expected a Triage, got {got['shown']}"
    for name, value in expected.items():
        assert_same(got["fields"][name], value, f"{where}: {name}")


def random_answer() -> dict[str, Any]:
    return {"label": random.choice(LABELS), "priority": random.choice(PRIORITIES),
            "summary": words(random.randint(2, 5)).capitalize(), "needs_human": random.choice([True, False])}


@probe
def probe_parse(nb: Any, texts: list[str]) -> Data:
    return [triage_data(nb, nb.parse_triage(text)) for text in texts]


@exercise("triage_output", points=1, hint="Try the whole text, then each fenced block, then the text from "
          "each '{' (json.JSONDecoder().raw_decode stops at the end of one value); keep the first object.")
def test_parse_triage_finds_the_json(notebook: Any, server: LLMServer) -> None:
    answer = random_answer()
    body = json.dumps(answer)
    styles = ("plain", "fence", "prose", "prose_fence")
    texts = []
    with httpx.Client(timeout=GUARD_S) as http:  # the judge asks its server for the styled answers
        for style in styles:
            response = http.post(
                f"{server.base_url}/v1/chat/completions",
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Triage this."}]},
                headers={"Authorization": f"Bearer {server.api_key}", "X-Mock-Reply": body,
                         "X-Mock-Reply-Style": style},
            )
            texts.append(response.json()["choices"][0]["message"]["content"])
    others = [f"```\n{body}\n```", f"Note {{{word()}}} first. Then: {body} Bye {{{word()}}}.",
              f"  {body}\n\n"]
    got = probe_parse(notebook, texts + others)
    for style, result in zip(styles, got, strict=False):
        check_triage(result, answer, f"parse_triage of a {style!r} answer")
    for text, result in zip(others, got[len(styles):], strict=True):
        check_triage(result, answer, f"parse_triage({text!r})")


@probe
def probe_validate(nb: Any, messy: dict[str, Any], long: dict[str, Any], wrong: list[dict[str, Any]],
                   incomplete: dict[str, Any]) -> Data:
    def failure(data: dict[str, Any]) -> Data:
        try:
            result = nb.Triage.model_validate(data)
        except ValidationError as exc:
            return {"validation_error": True, "message": shown(exc, str, 4000)}
        except Exception as exc:
            return {"validation_error": False, "message": f"{type(exc).__name__}: {shown(exc, str)}"}
        return {"validation_error": False, "message": f"it returned {shown(result)}"}

    result = nb.Triage.model_validate(messy)
    return {"messy": triage_data(nb, result), "dumped": sorted(str(k) for k in result.model_dump()),
            "long": triage_data(nb, nb.Triage.model_validate(long)),
            "wrong": [failure(data) for data in wrong], "incomplete": failure(incomplete)}


def messy_case(text: str) -> str:
    return random.choice([text.upper(), text.capitalize(), text]).center(len(text) + random.randint(1, 4))


@exercise("triage_output", points=1, hint="A mode='before' field_validator for label and priority (strip "
          "and lower strings only); summary is stripped, then 1 to 200 characters.")
def test_triage_normalises_and_checks(notebook: Any) -> None:
    answer = random_answer()
    messy = {"label": messy_case(answer["label"]), "priority": messy_case(answer["priority"]),
             "summary": "  " + answer["summary"] + " " * random.randint(1, 3),
             "needs_human": answer["needs_human"],
             "reasoning": words(4)}
    long = {**answer, "summary": "x" * 200}
    changes = [{"label": word()}, {"label": random.randint(1, 9)}, {"priority": word()}, {"priority": None},
               {"summary": " " * random.randint(1, 5)}, {"summary": "x" * random.randint(201, 400)},
               {"needs_human": random.choice(["maybe", "perhaps", "sometimes"])}]
    wrong = [{**answer, **change} for change in changes]
    incomplete = {"label": answer["label"], "priority": answer["priority"]}
    got = probe_validate(notebook, messy, long, wrong, incomplete)
    check_triage(got["messy"], answer, "Triage of a messy answer")
    assert "reasoning" not in got["dumped"], f"keys the model adds should be ignored: {got['dumped']}"
    check_triage(got["long"], {"summary": "x" * 200}, "a 200-character summary")
    for change, failure in zip(changes, got["wrong"], strict=True):
        name = next(iter(change))
        assert failure["validation_error"] and name in failure["message"], (
            f"Triage.model_validate with {change} should raise a ValidationError that names {name!r}; "
            f"{failure['message']}"
        )
    assert got["incomplete"]["validation_error"], (
        f"a Triage without summary and needs_human should not validate; {got['incomplete']['message']}"
    )


@probe
def probe_invalid(nb: Any, texts: list[str], schema_text: str) -> Data:
    def attempt(text: str) -> Data:
        try:
            result = nb.parse_triage(text)
        except Exception as exc:
            cause = exc.__cause__
            return {"invalid_output": isinstance(exc, nb.InvalidOutput), "type": type(exc).__name__,
                    "message": shown(exc, str, 4000), "cause_ok": isinstance(cause, ValidationError),
                    "cause": type(cause).__name__}
        return {"invalid_output": False, "type": None, "message": f"it returned {shown(result)}"}

    return {"plain": [attempt(text) for text in texts], "schema": attempt(schema_text)}


@exercise("triage_output", points=1, hint="Raise InvalidOutput(...) from the original error; build the "
          "message from exc.errors() (loc and type), never from str(exc), which shows the input.")
def test_invalid_answers_raise_invalid_output(notebook: Any) -> None:
    texts = [f"I could not decide, {word()}.", "", f"[{random.randint(0, 9)}, 2, 3]",
             f'{{"label": "{random.choice(LABELS)}"', "{}"]
    secret = f"customer-said-SECRET-{random.randint(10, 99)}"
    # Long random words: none can turn up in a message by chance.
    wrongs = {"label": (word(10), "literal_error"), "priority": (word(10), "literal_error"),
              "summary": (secret + "!" * 300, "string_too_long"), "needs_human": (word(10), "bool_parsing")}
    failing = random.sample(sorted(wrongs), 2)
    if "summary" not in failing:
        failing[0] = "summary"  # the secret is in the summary: its echo must be caught
    answer = random_answer()
    answer["summary"] = secret + " " + answer["summary"]
    answer.update({name: wrongs[name][0] for name in failing})
    got = probe_invalid(notebook, texts, f"Here you go: {json.dumps(answer)}")
    for text, result in zip(texts, got["plain"], strict=True):
        assert result["invalid_output"], (
            f"parse_triage({text!r}) should raise InvalidOutput; {result['type'] or ''} {result['message']}"
        )
    error = got["schema"]
    assert error["invalid_output"], f"an answer that breaks the schema should raise InvalidOutput: {error}"
    assert error["cause_ok"], (
        f"raise InvalidOutput(...) from the ValidationError; __cause__ is a {error['cause']}"
    )
    message = error["message"]
    for name in failing:
        for part in (name, wrongs[name][1]):
            assert part in message, (
                f"the message should name each failing field and its error type ({part!r}): {message!r}"
            )
    for part in [secret, *(str(wrongs[name][0])[:20] for name in failing if name != "summary")]:
        assert part not in message, f"the message must not repeat the input ({part!r}): {message!r}"


# ---------------------------------------------------------------- triage_telemetry


def outcome_of(nb: Any, spec: dict[str, Any]) -> Any:
    """A TicketOutcome that does not depend on the learner's Triage."""
    triage = types.SimpleNamespace(label=spec["label"]) if spec["ok"] else None
    return nb.TicketOutcome.model_construct(ticket_id=spec["ticket_id"], triage=triage, error=spec["error"],
                                            attempts=spec["attempts"], request_ids=[])


def samples(registry: CollectorRegistry) -> Data:
    return [{"name": sample.name, "labels": dict(sample.labels), "value": sample.value}
            for metric in registry.collect() for sample in metric.samples]


@probe
def probe_telemetry(nb: Any, calls: list[dict[str, Any]], tickets: list[dict[str, Any]],
                    second_calls: list[dict[str, Any]]) -> Data:
    stream, registry = io.StringIO(), CollectorRegistry()
    reporter = nb.Telemetry(nb.make_logger(stream), registry)
    for call in calls:
        reporter.call_finished(**call)
    for spec in tickets:
        reporter.ticket_finished(outcome_of(nb, spec))
    got = {"lines": stream.getvalue().splitlines()}
    other = CollectorRegistry()
    second = nb.Telemetry(nb.make_logger(io.StringIO()), other)
    for call in second_calls:
        second.call_finished(**call)
    got.update({"first": samples(registry), "second": samples(other)})
    return got


def sample(found: list[dict[str, Any]], name: str, **labels: str) -> float | None:
    for item in found:
        if item["name"] == name and item["labels"] == labels:
            return float(item["value"])
    return None


def read_events(lines: list[str]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {line!r}", pytrace=False)
    return events


def call_spec(outcome: str, seconds: float, attempt: int = 1) -> dict[str, Any]:
    ticket = ticket_id("T")
    return {"ticket_id": ticket, "request_id": f"{ticket}-{attempt}", "attempt": attempt, "outcome": outcome,
            "seconds": seconds}


def ticket_spec(ok: bool, attempts: int, error: str | None = None) -> dict[str, Any]:
    return {"ticket_id": ticket_id("T"), "ok": ok, "attempts": attempts, "error": error,
            "label": random.choice(LABELS) if ok else None}


@exercise("triage_telemetry", points=1, hint="Create the three metrics in __init__ with registry=registry "
          "(never at module level); the histogram uses buckets=LATENCY_BUCKETS.")
def test_telemetry_counts_in_its_registry(notebook: Any) -> None:
    outcomes = ["ok", "server_error", "rate_limited", "timeout"]
    # Between the bucket bounds, never on one: which bucket a value falls in is not in doubt.
    spots = [0.03, 0.07, 0.2, 0.4, 0.8, 2.0, 4.0, 8.0, 20.0, 45.0]
    calls = [call_spec(random.choice(outcomes), random.choice(spots) * random.uniform(0.95, 1.05))
             for _ in range(random.randint(3, 8))]
    tickets = [ticket_spec(True, random.randint(1, 3)),
               ticket_spec(False, 3, random.choice(["invalid_output", "server_error"]))]
    got = probe_telemetry(notebook, calls, tickets, [call_spec("ok", 0.2)])
    first = got["first"]
    for outcome in outcomes:
        count = sum(call["outcome"] == outcome for call in calls)
        assert_same(sample(first, "triage_llm_calls_total", outcome=outcome), float(count) if count else None,
                    f"triage_llm_calls_total{{outcome={outcome!r}}}")
    seconds = [call["seconds"] for call in calls]
    assert_same(sample(first, "triage_llm_call_seconds_count"), float(len(calls)),
                "triage_llm_call_seconds_count")
    for bound in LATENCY_BUCKETS:
        assert_same(sample(first, "triage_llm_call_seconds_bucket", le=str(bound)),
                    float(sum(s <= bound for s in seconds)), f"triage_llm_call_seconds_bucket{{le={bound}}}")
    for ticket in tickets:
        name = "ok" if ticket["ok"] else ticket["error"]
        assert_same(sample(first, "triage_tickets_total", outcome=name), 1.0,
                    f"triage_tickets_total{{outcome={name!r}}}")
    total = sample(first, "triage_llm_call_seconds_sum")
    assert total is not None and math.isclose(total, sum(seconds)), (
        f"the histogram's sum should be {sum(seconds)}: {total}"
    )
    assert_same(sample(got["second"], "triage_llm_calls_total", outcome="ok"), 1.0,
                "a second Telemetry, on a fresh registry, should count from zero")
    oks = sum(call["outcome"] == "ok" for call in calls)
    assert_same(sample(first, "triage_llm_calls_total", outcome="ok"), float(oks) if oks else None,
                "the first registry is untouched")


@exercise("triage_telemetry", points=1, hint="log.info for 'ok', log.warning otherwise; the fields are "
          "ticket_id, request_id, attempt, outcome and latency_ms=round(seconds * 1000, 1).")
def test_telemetry_logs_each_call(notebook: Any) -> None:
    failed = call_spec(random.choice(["rate_limited", "server_error", "timeout"]), random.uniform(0.001, 0.5))
    worked = call_spec("ok", random.uniform(0.5, 9.0), attempt=random.randint(2, 5))
    got = probe_telemetry(notebook, [failed, worked], [], [])
    events = read_events(got["lines"])
    assert len(events) == 2, f"expected one log line per call, got {events}"
    for event, call, level in zip(events, [failed, worked], ["warning", "info"], strict=True):
        fields = {"event": "llm.call", "level": level, "ticket_id": call["ticket_id"],
                  "request_id": call["request_id"], "attempt": call["attempt"], "outcome": call["outcome"],
                  "latency_ms": round(call["seconds"] * 1000, 1)}
        for name, value in fields.items():
            assert_same(event.get(name), value, f"the log line's {name!r} (line: {event})")


@exercise("triage_telemetry", points=1, hint="ticket.done is logged at info when the ticket worked and at "
          "error when it failed, with ticket_id, ok, attempts, error and label (None when absent).")
def test_telemetry_logs_each_ticket(notebook: Any) -> None:
    worked = ticket_spec(True, random.randint(1, 3))
    error = random.choice(["server_error", "timeout", "bad_request"])
    failed = ticket_spec(False, random.randint(1, 5), error)
    got = probe_telemetry(notebook, [], [worked, failed], [])
    events = read_events(got["lines"])
    assert len(events) == 2, f"expected one log line per ticket, got {events}"
    for event, spec, level in zip(events, [worked, failed], ["info", "error"], strict=True):
        fields = {"event": "ticket.done", "level": level, "ticket_id": spec["ticket_id"], "ok": spec["ok"],
                  "attempts": spec["attempts"], "error": spec["error"], "label": spec["label"]}
        for name, value in fields.items():
            assert name in event, f"the log line should have the field {name!r}: {event}"
            assert_same(event[name], value, f"the log line's {name!r} (line: {event})")


# ---------------------------------------------------------------- triage_retries


@probe
async def probe_triage(nb: Any, base_url: str, ticket: list[str], config: dict[str, Any], seed: int) -> Data:
    """triage_one on the learner's TriageService with the tests' stand-ins; what it returned,
    what the spies recorded."""
    async with httpx.AsyncClient() as http:
        run = make_run(nb, http, base_url, seed, config)
        try:
            outcome = await guarded(run.service.triage_one(nb.Ticket(id=ticket[0], text=ticket[1])),
                                    "triage_one")
        except Hung as exc:
            return {"hung": str(exc)}
    tickets = run.telemetry.tickets
    return {"outcome": outcome_data(nb, outcome), "calls": run.telemetry.calls_data(),
            "finished": len(tickets), "finished_with_it": len(tickets) == 1 and tickets[0] is outcome,
            "finished_shown": shown(tickets), "delays": [plain(d) for d in run.sleep.delays],
            "held": run.sleep.held, "entered": run.gate.entered}


def triaged(notebook: Any, server: LLMServer, scenario: str, ticket: list[str], seed: int = 7,
            **config: Any) -> tuple[dict[str, Any], str]:
    key = f"retry-{uuid.uuid4().hex[:8]}"
    got = probe_triage(notebook, server.url(scenario, key=key), ticket, config, seed)
    check_hung(got)
    assert got["outcome"]["is_outcome"], (
        f"triage_one should return a TicketOutcome: {got['outcome']['shown']}"
    )
    return got, key


def check_calls(got: dict[str, Any], ticket: str, outcomes: list[str]) -> None:
    calls = got["calls"]
    assert_same([c["outcome"] for c in calls], outcomes, "the outcomes passed to telemetry.call_finished")
    assert_same([c["attempt"] for c in calls], list(range(1, len(outcomes) + 1)), "the attempts reported")
    assert_same([c["ticket_id"] for c in calls], [ticket] * len(outcomes), "the ticket_ids reported")
    expected_ids = [f"{ticket}-{n}" for n in range(1, len(outcomes) + 1)]
    assert_same([c["request_id"] for c in calls], expected_ids, "the request_ids reported")
    assert all(type(c["seconds"]) is float and c["seconds"] >= 0 for c in calls), (
        f"seconds should be the attempt's duration as a float: {[c['seconds'] for c in calls]}"
    )


def check_finished(got: dict[str, Any]) -> None:
    assert got["finished_with_it"], (
        "telemetry.ticket_finished(outcome) should be called once, with the outcome returned; "
        f"it was called with {got['finished_shown']}"
    )


@exercise("triage_retries", points=1, hint="Attempt n uses the request ID f'{ticket.id}-{n}'; a retryable "
          "error sleeps self.backoff(n) through self.sleep, then tries again, up to max_attempts.")
def test_server_errors_are_retried(notebook: Any, server: LLMServer) -> None:
    ticket = ticket_id("R")
    base = random.randint(2, 10) / 4
    attempts = random.randint(4, 6)  # the last attempt is the one that works
    fails = attempts - 1
    got, key = triaged(notebook, server, f"fail_first:{fails}:503",
                       [ticket, f"Where is my invoice {word()}?"],
                       backoff_base_s=base, backoff_max_s=60.0, max_attempts=attempts)
    outcome = got["outcome"]
    assert outcome["has_triage"], (
        f"{fails} 503s then a 200, with max_attempts={attempts}: the ticket should succeed, "
        f"got {outcome['shown']}"
    )
    assert_same(outcome["error"], None, "outcome.error")
    assert_same(outcome["attempts"], attempts, "outcome.attempts")
    ids = [f"{ticket}-{n}" for n in range(1, attempts + 1)]
    assert_same(outcome["request_ids"], ids, "outcome.request_ids")
    assert seen(server, key) == list(zip(ids, [503] * fails + [200], strict=True)), (
        f"the server should see {attempts} attempts with these X-Request-IDs: {seen(server, key)}"
    )
    delays = got["delays"]
    assert len(delays) == fails, f"expected a sleep after each failed attempt but the last, got {delays}"
    assert all(type(d) is float for d in delays), f"sleep for a float number of seconds: {delays}"
    caps = [base * 2 ** (n - 1) for n in range(1, attempts)]
    assert all(0 <= d <= cap for d, cap in zip(delays, caps, strict=True)), (
        f"the waits should be self.backoff(1), self.backoff(2)... (0 to {caps} s with "
        f"backoff_base_s={base}), got {delays}"
    )
    check_calls(got, ticket, ["server_error"] * fails + ["ok"])
    check_finished(got)


@exercise("triage_retries", points=1, hint="A RateLimited error's retry_after is the wait when it has one; "
          "BadRequest is not retried; no sleep after the last attempt.")
def test_rate_limits_and_bad_requests(notebook: Any, server: LLMServer) -> None:
    ticket, wait, attempts = ticket_id("R"), random.randint(12, 60) / 100, random.randint(2, 5)
    got, key = triaged(notebook, server, f"rate_limited:retry_after={wait}",
                       [ticket, f"Where is my invoice {word()}?"], max_attempts=attempts)
    outcome = got["outcome"]
    assert not outcome["has_triage"], (
        f"every attempt got a 429: the ticket should fail, got {outcome['shown']}"
    )
    assert_same(outcome["error"], "rate_limited", "outcome.error")
    assert_same(outcome["attempts"], attempts, f"outcome.attempts (max_attempts is {attempts})")
    assert_same(outcome["request_ids"], [f"{ticket}-{n}" for n in range(1, attempts + 1)],
                "outcome.request_ids")
    assert_same(got["delays"], [wait] * (attempts - 1),
                f"the waits (Retry-After is {wait} s; no wait after the last attempt)")
    statuses = [status for _, status in seen(server, key)]
    assert statuses == [429] * attempts, f"server saw {seen(server, key)}"
    check_calls(got, ticket, ["rate_limited"] * attempts)
    check_finished(got)

    ticket = ticket_id("R")
    got, key = triaged(notebook, server, "error:400", [ticket, f"Where is my invoice {word()}?"])
    outcome = got["outcome"]
    assert_same(outcome["error"], "bad_request", "outcome.error after a 400")
    assert_same(outcome["attempts"], 1, "attempts after a 400: a bad request is not retried")
    assert_same(got["delays"], [], "sleeps after a 400")
    assert len(seen(server, key)) == 1, f"a 400 must not be sent again: {seen(server, key)}"
    check_finished(got)


@exercise("triage_retries", points=1, hint="After an InvalidOutput, build the next prompt with "
          "build_prompt(ticket, feedback=str(error)), and keep that feedback for the later attempts.")
def test_invalid_output_is_repaired(notebook: Any, server: LLMServer, model: FakeModel) -> None:
    marker = f"repair-me {uuid.uuid4().hex[:8]}"
    ticket = ticket_id("R")
    got, _ = triaged(notebook, server, "ok", [ticket, marker])
    prompts = model.prompts_with(marker)
    assert len(prompts) == 2 and "was not valid" not in prompts[0], f"expected two prompts, got {prompts}"
    assert "no JSON object in the answer" in prompts[1], (
        f"the second prompt should carry the first error (feedback=str(error)); it was {prompts[1]!r}"
    )
    outcome = got["outcome"]
    assert outcome["has_triage"], (
        f"the repaired answer is valid: the ticket should succeed: {outcome['shown']}"
    )
    assert_same(outcome["attempts"], 2, "outcome.attempts")
    check_calls(got, ticket, ["invalid_output", "ok"])

    marker = f"never-json {uuid.uuid4().hex[:8]}"
    attempts = random.randint(2, 5)
    got, _ = triaged(notebook, server, "ok", [ticket_id("R"), marker], max_attempts=attempts)
    outcome = got["outcome"]
    assert_same(outcome["error"], "invalid_output", "outcome.error when the model never answers in JSON")
    assert_same(outcome["attempts"], attempts, "outcome.attempts")
    assert len(got["delays"]) == attempts - 1, (
        f"an invalid answer is retried after a backoff: {got['delays']}"
    )
    assert len(model.prompts_with(marker)) == attempts, (
        f"the server should see one prompt per attempt: {len(model.prompts_with(marker))}"
    )
    check_finished(got)


@probe
def probe_backoff(nb: Any, attempts: list[int], config: dict[str, Any], seed: int) -> Data:
    http = httpx.AsyncClient()  # built, never used: backoff() does no I/O
    run = make_run(nb, http, "http://127.0.0.1:9", seed, config)
    twins = [make_run(nb, http, "http://127.0.0.1:9", seed, config) for _ in range(2)]
    return {"values": [[plain(run.service.backoff(a)) for _ in range(200)] for a in attempts],
            "twins": [[plain(twin.service.backoff(2)) for _ in range(5)] for twin in twins]}


@exercise("triage_retries", points=1, hint="backoff: self.rng.uniform(0, min(backoff_max_s, backoff_base_s "
          "* 2 ** (attempt - 1))). Each attempt enters self.gate once; sleep after leaving it.")
def test_backoff_and_the_gate(notebook: Any, server: LLMServer) -> None:
    base = random.randint(2, 8) / 4
    top = base * random.choice([3, 5, 6])
    attempts = [1, 2, 3, 4, random.randint(6, 12)]
    config = {"backoff_base_s": base, "backoff_max_s": top}
    got = probe_backoff(notebook, attempts, config, random.randint(0, 10**6))
    for attempt, values in zip(attempts, got["values"], strict=True):
        cap = min(top, base * 2 ** (attempt - 1))
        numbers = [v for v in values if type(v) is float]
        assert len(numbers) == len(values) and all(0 <= v <= cap for v in numbers), (
            f"backoff({attempt}) with backoff_base_s={base}, backoff_max_s={top} should be a float from 0 to "
            f"{cap}; got {sorted(set(map(str, values)))[:5]}..."
        )
        assert max(numbers) > 0.8 * cap and len(set(numbers)) > 100, (
            f"backoff({attempt}) should be random over the whole range 0 to {cap} (full jitter), got "
            f"{len(set(numbers))} distinct values up to {max(numbers)}"
        )
    assert_same(got["twins"][0], got["twins"][1], "backoff with the same seed (draw from self.rng)")

    ticket = ticket_id("R")
    got, _ = triaged(notebook, server, "fail_first:1:drop_stream:after=3",
                     [ticket, f"The app crashes at {word()}."], **config)
    outcome = got["outcome"]
    assert outcome["has_triage"], (
        f"a dropped stream is retryable; the ticket should succeed: {outcome['shown']}"
    )
    assert_same(outcome["attempts"], 2, "outcome.attempts after one dropped stream")
    check_calls(got, ticket, ["stream_broken", "ok"])
    assert got["entered"] == 2, f"each attempt should enter self.gate once; entered: {got['entered']}"
    assert got["held"] == [0], (
        "sleep outside the gate: a sleeping task must not hold a concurrency slot "
        f"(slots held while sleeping: {got['held']})"
    )


# ---------------------------------------------------------------- triage_batch


class FakeTriager:
    """Stands in for TriageService. Each ticket waits until every ticket has started, then
    until it is released: all at once, or one by one in ``order`` (the first at once, the
    next each time the test calls ``release_next``)."""

    def __init__(self, nb: Any, tickets: list[Any], order: list[str] | None = None,
                 crash: frozenset[str] = frozenset()) -> None:
        self.nb, self.total, self.order, self.crash = nb, len(tickets), order, crash
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
            result = self.nb.TicketOutcome.model_construct(
                ticket_id=item.id, triage=None if failed else types.SimpleNamespace(label="question"),
                error="rate_limited" if failed else None, attempts=1, request_ids=[f"{item.id}-1"])
            self.results[item.id] = result
            return result
        except asyncio.CancelledError:
            self.cancelled.append(item.id)
            raise
        finally:
            self.finished.append(item.id)


def batch(nb: Any, prefix: str, count: int) -> list[Any]:
    return [nb.Ticket(id=f"{prefix}-{i}", text=f"Question number {i}.") for i in range(count)]


async def open_stream(nb: Any, service: Any, tickets: list[Any]) -> Any:
    """stream_outcomes(...), or a description of what it was instead of an async generator."""
    stream = nb.stream_outcomes(service, tickets)
    if inspect.iscoroutine(stream):
        await stream  # the untouched stub raises NotImplementedError here
        return "a coroutine: `yield` each outcome to make stream_outcomes an async generator"
    if not inspect.isasyncgen(stream):
        return f"a {type(stream).__name__}, not an async generator"
    return stream


def report_data(nb: Any, report: Any, fake: FakeTriager) -> Data:
    outcomes = list(getattr(report, "outcomes", None) or [])
    return {"is_report": isinstance(report, nb.TriageReport), "shown": shown(report),
            "ids": [plain(getattr(o, "ticket_id", None)) for o in outcomes],
            "theirs": all(o is fake.results.get(getattr(o, "ticket_id", None)) for o in outcomes),
            "succeeded": plain(getattr(report, "succeeded", None)),
            "failed": plain(getattr(report, "failed", None)),
            "batch_id": plain(getattr(report, "batch_id", None))}


@probe
async def probe_batch_order(
    nb: Any, prefix: str, count: int, order: list[str], stream_order: list[str]
) -> Data:
    tickets = batch(nb, prefix, count)
    fake = FakeTriager(nb, tickets, order=list(order))
    progress: list[Data] = []

    def on_progress(done: int, total: int, outcome: Any) -> None:
        progress.append([plain(done), plain(total), plain(getattr(outcome, "ticket_id", None))])
        fake.release_next()

    try:
        report = await guarded(nb.run_batch(fake, tickets, on_progress), "run_batch")
        got = {"progress": progress, "report": report_data(nb, report, fake)}
        fake = FakeTriager(nb, tickets, order=list(stream_order))
        seen_order: list[Data] = []

        async def consume() -> Data:
            stream = await open_stream(nb, fake, tickets)
            if isinstance(stream, str):
                return stream
            async for outcome in stream:
                seen_order.append(plain(getattr(outcome, "ticket_id", None)))
                fake.release_next()
            return None

        got["not_generator"] = await guarded(consume(), "stream_outcomes")
        got["stream_order"] = seen_order
    except Hung as exc:
        return {"hung": str(exc)}
    return got


def shuffled(items: list[str]) -> list[str]:
    return random.sample(items, len(items))


@exercise("triage_batch", points=1, hint="One task per ticket; asyncio.as_completed(tasks) yields them as "
          "they finish. The report lists the outcomes in the tickets' order; on_progress counts from 1.")
def test_batch_report_and_progress(notebook: Any) -> None:
    prefix, count = word(3).upper(), random.randint(4, 8)
    ids = [f"{prefix}-{i}" for i in range(count)]
    order, stream_order = shuffled(ids), shuffled(ids)
    got = probe_batch_order(notebook, prefix, count, order, stream_order)
    check_hung(got)
    expected = [[n, count, ticket] for n, ticket in enumerate(order, start=1)]
    assert_same(got["progress"], expected, "on_progress calls (done, total, ticket_id), in completion order")
    report = got["report"]
    assert report["is_report"], f"run_batch should return a TriageReport: {report['shown']}"
    assert_same(report["ids"], ids, "the report's order")
    assert report["theirs"], "the report should hold the outcomes that triage_one returned"
    assert_same([report["succeeded"], report["failed"]], [count - 1, 1], "(succeeded, failed)")
    batch_id = report["batch_id"]
    assert type(batch_id) is str and len(batch_id) == 8 and all(c in "0123456789abcdef" for c in batch_id), (
        f"batch_id should be uuid.uuid4().hex[:8], got {batch_id!r}"
    )
    if got["not_generator"]:
        pytest.fail(f"stream_outcomes should be an async generator; it returned {got['not_generator']}",
                    pytrace=False)
    assert_same(got["stream_order"], stream_order, "stream_outcomes' order (completion order)")


@probe
async def probe_batch_http(nb: Any, base_url: str, prefix: str, count: int, gate: int) -> Data:
    class HttpTriager:
        """Sends one real request per ticket, through a gate of ``gate``."""

        def __init__(self, http: httpx.AsyncClient) -> None:
            self.telemetry = SpyTelemetry()
            self.gate = nb.RateGate(gate, 100.0)
            self.client = nb.LLMClient(Config(base_url), http)
            self.started = 0

        async def triage_one(self, item: Any) -> Any:
            self.started += 1
            async with self.gate:
                await self.client.complete(nb.build_prompt(item), f"{item.id}-1")
            return nb.TicketOutcome(ticket_id=item.id, error="invalid_output", attempts=1)

    tickets = batch(nb, prefix, count)
    async with httpx.AsyncClient() as http:
        try:
            report = await guarded(nb.run_batch(HttpTriager(http), tickets), "run_batch")
            triager = HttpTriager(http)
            try:
                await guarded(nb.run_batch(triager, [tickets[0], tickets[1], tickets[0]]), "run_batch")
                duplicate = None
            except Hung:
                raise
            except Exception as exc:
                duplicate = type(exc).__name__
        except Hung as exc:
            return {"hung": str(exc)}
    return {"failed": plain(getattr(report, "failed", None)), "duplicate": duplicate,
            "started": triager.started}


@exercise("triage_batch", points=1, hint="Start every ticket's task before awaiting any; check for duplicate "
          "ticket IDs before starting anything.")
def test_batch_runs_tickets_concurrently(notebook: Any, server: LLMServer) -> None:
    key = f"batch-{uuid.uuid4().hex[:8]}"
    prefix, gate = word(3).upper(), random.randint(2, 4)
    count = random.randint(2 * gate + 1, 10)
    got = probe_batch_http(notebook, server.url("latency:200ms", key=key), prefix, count, gate)
    check_hung(got)
    assert_same(got["failed"], count, "report.failed")
    ids = sorted(request_id for request_id, _ in seen(server, key))
    assert_same(ids, sorted(f"{prefix}-{i}-1" for i in range(count)), "the request IDs the server saw")
    peak = max((record.in_flight for record in server.log if record.key == key), default=0)
    assert peak == gate, (
        f"with a gate of {gate} and 200 ms per answer, {gate} requests should be in flight at once; the "
        f"server saw at most {peak}: run the tickets concurrently"
    )
    assert got["duplicate"] == "ValueError", (
        f"run_batch with a duplicate ticket ID should raise ValueError, got {got['duplicate'] or 'no error'}"
    )
    assert got["started"] == 0, "duplicate ticket IDs must be rejected before any ticket starts"


@probe
async def probe_batch_close(nb: Any, prefix: str, count: int, order: list[str]) -> Data:
    tickets = batch(nb, prefix, count)
    fake = FakeTriager(nb, tickets, order=list(order))

    async def first_only() -> Data:
        stream = await open_stream(nb, fake, tickets)
        if isinstance(stream, str):
            return {"not_generator": stream}
        async with aclosing(stream) as outcomes:
            async for outcome in outcomes:
                return {"first": plain(getattr(outcome, "ticket_id", None))}
        return {"first": None}

    try:
        got = await guarded(first_only(), "stream_outcomes")
    except Hung as exc:
        return {"hung": str(exc)}
    return {**got, "cancelled": sorted(fake.cancelled), "finished": sorted(fake.finished)}


@exercise("triage_batch", points=1, hint="In stream_outcomes, a finally: block cancels the tasks still "
          "running and awaits them (asyncio.gather(..., return_exceptions=True)).")
def test_closing_the_stream_cancels_the_rest(notebook: Any) -> None:
    prefix, count = word(3).upper(), random.randint(3, 7)
    ids = [f"{prefix}-{i}" for i in range(count)]
    order = shuffled(ids)
    got = probe_batch_close(notebook, prefix, count, order)
    check_hung(got)
    if "not_generator" in got:
        pytest.fail(f"stream_outcomes should be an async generator; it returned {got['not_generator']}",
                    pytrace=False)
    assert got["first"] is not None, "stream_outcomes yielded nothing"
    assert_same(got["first"], order[0], "the first outcome's ticket_id")
    assert_same(got["cancelled"], sorted(order[1:]), "the tickets cancelled when the stream closed")
    assert_same(got["finished"], sorted(ids),
                "the tickets finished when the stream closed (cancel them, then await them)")


@probe
async def probe_batch_crash(nb: Any, prefix: str, count: int, crash: str) -> Data:
    tickets = batch(nb, prefix, count)
    fake = FakeTriager(nb, tickets, crash=frozenset({crash}))
    try:
        report = await guarded(nb.run_batch(fake, tickets), "run_batch")
    except Hung as exc:
        return {"hung": str(exc)}
    outcomes = list(getattr(report, "outcomes", None) or [])
    crashed = next((o for o in outcomes if getattr(o, "ticket_id", None) == crash), None)
    reported = fake.telemetry.tickets
    return {"crashed": None if crashed is None else outcome_data(nb, crashed),
            "counts": [plain(getattr(report, "succeeded", None)), plain(getattr(report, "failed", None))],
            "reported_it": crashed is not None and len(reported) == 1 and reported[0] is crashed,
            "reported": shown(reported), "batch_id": plain(getattr(report, "batch_id", None)),
            "contexts": [as_data(context.get("batch_id")) for context in fake.contexts],
            "leftover": sorted(str(k) for k in structlog.contextvars.get_contextvars())}


@exercise("triage_batch", points=1, hint="Wrap each triage_one: an Exception becomes TicketOutcome(ticket_id="
          "..., error='internal_error', attempts=0), reported with service.telemetry.ticket_finished. Bind "
          "batch_id with bound_contextvars around the whole batch.")
def test_a_crash_is_accounted_for(notebook: Any) -> None:
    prefix, count = word(3).upper(), random.randint(3, 7)
    crash = f"{prefix}-{random.choice([i for i in range(count) if i != 1])}"
    got = probe_batch_crash(notebook, prefix, count, crash)
    check_hung(got)
    crashed = got["crashed"]
    assert crashed is not None, f"the report should hold an outcome for {crash}, whose triage_one raised"
    assert_same([crashed["ticket_id"], crashed["error"], crashed["attempts"]], [crash, "internal_error", 0],
                "(ticket_id, error, attempts) of the ticket whose triage_one raised")
    assert not crashed["has_triage"], f"a crashed ticket has no triage: {crashed['shown']}"
    assert_same(got["counts"], [count - 2, 2],
                f"(succeeded, failed): {prefix}-1 failed, {crash} crashed")
    assert got["reported_it"], (
        "the crash should be reported once with service.telemetry.ticket_finished(outcome); "
        f"it got {got['reported']}"
    )
    assert_same(got["contexts"], [got["batch_id"]] * count,
                "structlog's context variables seen by each triage_one (batch_id bound for the batch)")
    assert "batch_id" not in got["leftover"], f"batch_id should be unbound after the batch: {got['leftover']}"
