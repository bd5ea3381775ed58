"""Faults on demand: a scenario spec such as ``latency:200ms,fail_first:2:503`` parsed into steps.

A spec is one or more steps separated by commas. A step is ``name`` or ``name:arg[:arg...]``
where an argument is positional (``error:503``) or ``key=value`` (``drop_stream:after=3``).
Steps are applied in phases, whatever order they are written in: first every delay, then
the gates (the first that refuses the request answers it), then the delivery faults that
change how the body travels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

MAX_SECONDS = 60.0
"""No delay may exceed this: a typo such as ``latency:2000s`` must not hang a book build."""

Phase = Literal["delay", "gate", "delivery", "meta"]


class ScenarioError(ValueError):
    """A spec that does not parse; the message names the offending part."""


@dataclass(frozen=True)
class Step:
    spec: str
    """The step as written (normalised): the name the log and the counters use."""

    @property
    def phase(self) -> Phase:
        raise NotImplementedError


@dataclass(frozen=True)
class Delay(Step):
    low: float
    high: float

    @property
    def phase(self) -> Phase:
        return "delay"


@dataclass(frozen=True)
class RateLimited(Step):
    retry_after: float

    @property
    def phase(self) -> Phase:
        return "gate"


@dataclass(frozen=True)
class RateLimit(Step):
    limit: int
    window: float

    @property
    def phase(self) -> Phase:
        return "gate"


@dataclass(frozen=True)
class Concurrency(Step):
    limit: int

    @property
    def phase(self) -> Phase:
        return "gate"


@dataclass(frozen=True)
class Error(Step):
    status: int

    @property
    def phase(self) -> Phase:
        return "gate"


@dataclass(frozen=True)
class Stall(Step):
    after: int | None
    """None: no byte at all. A number: stall after that many body pieces."""
    seconds: float | None
    """None: until the client gives up (bounded by the server's ``stall_timeout``)."""

    @property
    def phase(self) -> Phase:
        return "gate" if self.after is None else "delivery"


@dataclass(frozen=True)
class DropStream(Step):
    after: int

    @property
    def phase(self) -> Phase:
        return "delivery"


@dataclass(frozen=True)
class Malformed(Step):
    at: int
    """Which body piece (1-based) is cut short: SSE event, or the whole JSON body."""

    @property
    def phase(self) -> Phase:
        return "delivery"


@dataclass(frozen=True)
class Trickle(Step):
    interval: float

    @property
    def phase(self) -> Phase:
        return "delivery"


@dataclass(frozen=True)
class StreamError(Step):
    after: int

    @property
    def phase(self) -> Phase:
        return "delivery"


@dataclass(frozen=True)
class FailFirst(Step):
    count: int
    fault: Step

    @property
    def phase(self) -> Phase:
        return "meta"


@dataclass(frozen=True)
class Scenario:
    spec: str
    steps: tuple[Step, ...]

    @property
    def is_ok(self) -> bool:
        return not self.steps


OK = Scenario("ok", ())


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    syntax: str
    summary: str


SCENARIOS: tuple[ScenarioInfo, ...] = (
    ScenarioInfo("ok", "ok", "No fault: overrides the server's default scenario."),
    ScenarioInfo("latency", "latency:200ms", "Wait this long before answering."),
    ScenarioInfo("jitter", "jitter:50-150ms", "Wait a random time in this range (seeded)."),
    ScenarioInfo(
        "rate_limited",
        "rate_limited[:retry_after=1]",
        "Always 429 with Retry-After (seconds) and retry-after-ms headers.",
    ),
    ScenarioInfo("rpm", "rpm:60", "Server-side limit of N requests per 60 s window; 429 beyond it."),
    ScenarioInfo("rps", "rps:5", "The same limit per 1 s window, for lessons that run fast."),
    ScenarioInfo("concurrency", "concurrency:4", "429 when more than N requests are in progress at once."),
    ScenarioInfo("error", "error:503", "Answer with this status (400-599) and the provider's error body."),
    ScenarioInfo(
        "fail_first",
        "fail_first:3[:503]",
        "Fail the first N calls per key (X-Mock-Key), then succeed; the fault is a status "
        "(default 503) or another step, e.g. fail_first:1:stall.",
    ),
    ScenarioInfo(
        "stall",
        "stall[:after=N][:for=2s]",
        "Send nothing (or nothing after N body pieces) until the client gives up.",
    ),
    ScenarioInfo(
        "drop_stream",
        "drop_stream[:after=3]",
        "Close the connection after N body pieces: no [DONE], no message_stop.",
    ),
    ScenarioInfo("malformed_json", "malformed_json", "200 with a JSON body cut short (or first SSE event)."),
    ScenarioInfo(
        "malformed_chunk",
        "malformed_chunk[:at=2]",
        "The Nth SSE event carries JSON cut short; the rest of the stream is fine.",
    ),
    ScenarioInfo("trickle", "trickle:50ms", "Send the body piece by piece with this gap."),
    ScenarioInfo(
        "stream_error",
        "stream_error[:after=3]",
        "After N SSE events, send the provider's in-stream error event (overloaded).",
    ),
)
"""Every scenario, one line each: the single source of the docs and of the 400 message."""

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"^{_NUMBER}(ms|s)$")
_RANGE = re.compile(rf"^{_NUMBER}(ms|s)?-{_NUMBER}(ms|s)$")


def _unit(value: float, unit: str) -> float:
    return value / 1000 if unit == "ms" else value


def _seconds(text: str, where: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ScenarioError(f"'{where}': expected a duration such as 200ms or 1.5s, got '{text}'")
    return _bounded(_unit(float(match[1]), match[2]), where)


def _bounded(seconds: float, where: str) -> float:
    if seconds > MAX_SECONDS:
        raise ScenarioError(f"'{where}': at most {MAX_SECONDS:g}s, got {seconds:g}s")
    return seconds


def _int(text: str, where: str, *, low: int = 0, high: int = 1_000_000) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ScenarioError(f"'{where}': expected a whole number from {low} to {high}, got '{text}'")
    return int(text)


def _args(rest: str, where: str, positional: tuple[str, ...], named: tuple[str, ...]) -> dict[str, str]:
    """Split ``a:key=b`` into {name: value}; positional values fill ``positional`` in order."""
    values: dict[str, str] = {}
    slots = list(positional)
    for part in filter(None, rest.split(":")):
        key, eq, value = part.partition("=")
        if not eq:
            if not slots:
                raise ScenarioError(f"'{where}': unexpected argument '{part}'")
            key, value = slots.pop(0), part
        elif key not in named:
            raise ScenarioError(f"'{where}': unknown option '{key}' (expected one of: {', '.join(named)})")
        values[key] = value
    return values


def _latency(rest: str, where: str) -> Step:
    seconds = _seconds(_args(rest, where, ("duration",), ()).get("duration", ""), where)
    return Delay(where, seconds, seconds)


def _jitter(rest: str, where: str) -> Step:
    match = _RANGE.match(rest)
    if not match:
        raise ScenarioError(f"'{where}': expected a range such as jitter:50-150ms")
    low = _unit(float(match[1]), match[2] or match[4])
    high = _bounded(_unit(float(match[3]), match[4]), where)
    if low > high:
        raise ScenarioError(f"'{where}': the range must go from low to high")
    return Delay(where, low, high)


def _rate_limited(rest: str, where: str) -> Step:
    value = _args(rest, where, ("retry_after",), ("retry_after",)).get("retry_after", "1")
    try:
        retry_after = float(value)
    except ValueError:
        raise ScenarioError(f"'{where}': retry_after is a number of seconds, got '{value}'") from None
    return RateLimited(where, _bounded(retry_after, where))


def _window(seconds: float) -> Callable[[str, str], Step]:
    def parse(rest: str, where: str) -> Step:
        limit = _int(_args(rest, where, ("limit",), ()).get("limit", ""), where, low=1)
        return RateLimit(where, limit, seconds)

    return parse


def _concurrency(rest: str, where: str) -> Step:
    return Concurrency(where, _int(_args(rest, where, ("limit",), ()).get("limit", ""), where, low=1))


def _error(rest: str, where: str) -> Step:
    status = _args(rest, where, ("status",), ()).get("status", "")
    return Error(where, _int(status, where, low=400, high=599))


def _fail_first(rest: str, where: str) -> Step:
    count, _, fault = rest.partition(":")
    fault = fault or "503"
    nested = (
        Error(f"error:{fault}", _int(fault, where, low=400, high=599)) if fault.isdigit() else (_step(fault))
    )
    if isinstance(nested, FailFirst | Delay):
        raise ScenarioError(f"'{where}': the fault of fail_first is a status or a fault step")
    return FailFirst(where, _int(count, where), nested)


def _stall(rest: str, where: str) -> Step:
    values = _args(rest, where, (), ("after", "for"))
    after = _int(values["after"], where) if "after" in values else None
    seconds = _seconds(values["for"], where) if "for" in values else None
    return Stall(where, after, seconds)


def _drop_stream(rest: str, where: str) -> Step:
    return DropStream(where, _int(_args(rest, where, ("after",), ("after",)).get("after", "3"), where))


def _malformed_json(rest: str, where: str) -> Step:
    _args(rest, where, (), ())
    return Malformed(where, 1)


def _malformed_chunk(rest: str, where: str) -> Step:
    at = _args(rest, where, ("at",), ("at",)).get("at", "2")
    return Malformed(where, _int(at, where, low=1))


def _trickle(rest: str, where: str) -> Step:
    interval = _args(rest, where, ("interval",), ()).get("interval", "")
    return Trickle(where, _seconds(interval, where))


def _stream_error(rest: str, where: str) -> Step:
    after = _args(rest, where, ("after",), ("after",)).get("after", "3")
    return StreamError(where, _int(after, where))


_PARSERS: dict[str, Callable[[str, str], Step]] = {
    "latency": _latency,
    "jitter": _jitter,
    "rate_limited": _rate_limited,
    "rpm": _window(60.0),
    "rps": _window(1.0),
    "concurrency": _concurrency,
    "error": _error,
    "fail_first": _fail_first,
    "stall": _stall,
    "drop_stream": _drop_stream,
    "malformed_json": _malformed_json,
    "malformed_chunk": _malformed_chunk,
    "trickle": _trickle,
    "stream_error": _stream_error,
}


def _step(text: str) -> Step:
    name, _, rest = text.partition(":")
    parser = _PARSERS.get(name)
    if parser is None:
        known = ", ".join(info.name for info in SCENARIOS)
        raise ScenarioError(f"Unknown scenario '{name}' in '{text}'. Known scenarios: {known}.")
    return parser(rest, text)


def parse_scenario(spec: str) -> Scenario:
    """Parse a spec; raise ScenarioError with a message fit for a 400 error body."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        raise ScenarioError("Empty scenario: name one, or 'ok' for no fault.")
    steps = tuple(_step(part) for part in parts if part != "ok")
    return Scenario(",".join(parts), steps) if steps else OK
