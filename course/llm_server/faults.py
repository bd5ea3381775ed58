"""Turn a scenario into a plan for one request: how long to wait, whether to refuse it, and
how to deliver the body. Counting (fail_first, rpm) happens here, once per request."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from course.llm_server.config import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE
from course.llm_server.scenarios import (
    Concurrency,
    Delay,
    DropStream,
    Error,
    FailFirst,
    Malformed,
    RateLimit,
    RateLimited,
    Scenario,
    Stall,
    Step,
    StreamError,
    Trickle,
)
from course.llm_server.state import ServerState


@dataclass(frozen=True)
class Rejection:
    """An error response a gate decided on; the API style renders its body."""

    status: int
    reason: str
    """``rate_limited``, ``rpm``, ``concurrency`` or ``error``: picks the message."""
    retry_after: float | None = None
    limit: int | None = None


@dataclass(frozen=True)
class RateInfo:
    """For the x-ratelimit-* headers a provider sends with every response."""

    limit: int
    remaining: int
    reset: float
    """Seconds until the oldest request in the window leaves it."""
    tokens_limit: int = TOKENS_PER_MINUTE
    tokens_remaining: int = TOKENS_PER_MINUTE
    """The token budget is reported, not simulated: it never runs out."""


def default_rate(state: ServerState) -> RateInfo:
    """The headers' numbers when no rpm/rps scenario applies: this server's request budget,
    counted over every request in the last minute."""
    remaining, reset = state.take_slot("", "(every request)", REQUESTS_PER_MINUTE, 60.0)
    return RateInfo(REQUESTS_PER_MINUTE, max(remaining, 0), reset)


@dataclass
class Delivery:
    """How the body travels. Pieces are SSE events when streaming, else slices of the body."""

    trickle: float = 0.0
    drop_after: int | None = None
    stall_after: int | None = None
    stall_for: float | None = None
    malformed_at: int | None = None
    error_after: int | None = None
    specs: dict[str, str] = field(default_factory=dict)
    """Which step asked for each fault, to name it in the log when it fires."""


@dataclass
class Plan:
    delay: float = 0.0
    rejection: Rejection | None = None
    stall: Stall | None = None
    rate: RateInfo | None = None
    delivery: Delivery = field(default_factory=Delivery)
    fired: list[str] = field(default_factory=list)


def active_steps(scenario: Scenario, state: ServerState, key: str) -> list[Step]:
    """Resolve fail_first: its fault is active for the first N calls under ``key``."""
    steps: list[Step] = []
    for step in scenario.steps:
        if isinstance(step, FailFirst):
            if state.next_call(key, step.spec) <= step.count:
                steps.append(step.fault)
        else:
            steps.append(step)
    return steps


def make_plan(scenario: Scenario, state: ServerState, key: str, in_flight: int) -> Plan:
    plan = Plan()
    steps = active_steps(scenario, state, key)
    for step in steps:
        if isinstance(step, Delay):
            plan.delay += state.jitter(step.low, step.high) if step.high > step.low else step.low
            plan.fired.append(step.spec)
    for step in steps:
        if step.phase != "gate" or plan.rejection is not None or plan.stall is not None:
            continue
        if isinstance(step, RateLimit):
            remaining, reset = state.take_slot(key, step.spec, step.limit, step.window)
            if remaining < 0:
                plan.rejection = Rejection(429, "rpm", retry_after=reset, limit=step.limit)
                plan.rate = RateInfo(step.limit, 0, reset)
                plan.fired.append(step.spec)
            else:
                plan.rate = RateInfo(step.limit, remaining, reset)
            continue
        if isinstance(step, RateLimited):
            plan.rejection = Rejection(429, "rate_limited", retry_after=step.retry_after)
        elif isinstance(step, Concurrency):
            if in_flight <= step.limit:
                continue
            plan.rejection = Rejection(429, "concurrency", retry_after=1.0, limit=step.limit)
        elif isinstance(step, Error):
            plan.rejection = Rejection(step.status, "error", retry_after=_retry(step.status))
        elif isinstance(step, Stall):
            plan.stall = step
        plan.fired.append(step.spec)
    delivery = plan.delivery
    for step in steps:
        if isinstance(step, Trickle):
            delivery.trickle = step.interval
            delivery.specs["trickle"] = step.spec
        elif isinstance(step, DropStream):
            delivery.drop_after = step.after
            delivery.specs["drop"] = step.spec
        elif isinstance(step, Stall) and step.after is not None:
            delivery.stall_after, delivery.stall_for = step.after, step.seconds
            delivery.specs["stall"] = step.spec
        elif isinstance(step, Malformed):
            delivery.malformed_at = step.at
            delivery.specs["malformed"] = step.spec
        elif isinstance(step, StreamError):
            delivery.error_after = step.after
            delivery.specs["error"] = step.spec
    return plan


def _retry(status: int) -> float | None:
    # A 429 from any source carries Retry-After; the providers send it with nothing else.
    return 1.0 if status == 429 else None


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds (RFC 9110); round up so a client never retries early."""
    return str(max(0, math.ceil(seconds)))
