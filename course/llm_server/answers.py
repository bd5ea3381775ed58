"""Deterministic answers: text, token counts and embeddings derived from a hash of the request.

The same request always gives the same bytes, so a notebook's output is stable and nbval can
compare it; a different prompt gives a different answer, so a cache or a test can tell them
apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from typing import Literal

SENTENCES = (
    "A timeout is a decision about how long an answer is worth waiting for.",
    "Retries help only when the failure is transient and the request is safe to repeat.",
    "Backoff with jitter keeps a crowd of clients from retrying in lockstep.",
    "Streaming shows the first words sooner, even when the whole answer takes as long.",
    "A rate limit is a contract: read Retry-After before you try again.",
    "Validate what the model returns before the rest of the program trusts it.",
    "Structured output still needs parsing, and parsing still needs error handling.",
    "Logs with request IDs turn a vague bug report into a single line to search for.",
    "Concurrency is bounded by the slowest shared resource, not by the number of tasks.",
    "A semaphore is the simplest way to respect a provider's concurrency limit.",
    "Caching identical requests saves both money and latency.",
    "Token counts decide the bill, so measure them where the request is made.",
    "An idempotency key lets a retried request do its work only once.",
    "Circuit breakers stop a failing dependency from taking the caller down with it.",
    "Every network call can fail in three ways: refused, slow, or half finished.",
    "Small, typed functions are easier to test than one large prompt handler.",
    "Pydantic models make the shape of a request explicit and checkable.",
    "Async code waits in parallel; it does not compute in parallel.",
    "A good error message says what was expected and what arrived instead.",
    "Deterministic tests make flaky behaviour visible instead of random.",
    "Metrics answer how often; traces answer where the time went.",
    "The cheapest request is the one you did not need to make.",
    "Prompt templates belong in version control like any other code.",
    "A fallback model is a plan for the day the main one is down.",
    "Measure latency at the percentiles your users feel, not only the average.",
    "Cancel work nobody is waiting for; it frees capacity for work somebody is.",
    "Evaluation sets turn opinions about a prompt into numbers.",
    "Secrets belong in the environment, never in the notebook.",
    "A streaming parser must cope with an event that arrives in pieces.",
    "Graceful degradation means a partial answer beats an error page.",
    "Queues smooth bursts, but they also hide how far behind you are.",
    "Read the provider's error body: it usually says exactly what went wrong.",
)

Style = Literal["plain", "fence", "prose", "prose_fence"]
STYLES: tuple[Style, ...] = ("plain", "fence", "prose", "prose_fence")

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*\S+|\s+")


def digest(*parts: object) -> bytes:
    """A stable hash of JSON-able parts (sorted keys, so dict order does not matter)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def short_id(seed: bytes, length: int = 24) -> str:
    return hashlib.sha256(seed).hexdigest()[:length]


def generate(seed: bytes) -> str:
    """Two to four sentences picked by the seed."""
    rng = random.Random(int.from_bytes(seed[:16], "big"))
    return " ".join(rng.sample(SENTENCES, rng.randint(2, 4)))


def count_tokens(text: str) -> int:
    """The server's tokenizer: a word or a punctuation mark is one token (stable, simple)."""
    return len(_TOKEN.findall(text))


def pieces(text: str) -> list[str]:
    """Split text into stream deltas (a word with its leading space); they join back exactly."""
    return _PIECE.findall(text)


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cut the text to at most ``max_tokens`` tokens; say whether anything was cut."""
    if max_tokens is None or count_tokens(text) <= max_tokens:
        return text, False
    kept: list[str] = []
    used = 0
    for piece in pieces(text):
        cost = count_tokens(piece)
        if used + cost > max_tokens:
            break
        kept.append(piece)
        used += cost
    return "".join(kept), True


def apply_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Cut the text before the earliest stop sequence; return the sequence that matched."""
    hits = [(text.find(stop), stop) for stop in stops if stop and stop in text]
    if not hits:
        return text, None
    index, stop = min(hits)
    return text[:index], stop


def wrap(text: str, style: Style) -> str:
    """Present a scripted reply the way models often do: bare, fenced, or inside prose."""
    fenced = f"```json\n{text}\n```"
    if style == "fence":
        return fenced
    if style == "prose":
        return f"Sure! Here is the JSON you asked for: {text} Let me know if you need anything else."
    if style == "prose_fence":
        return f"Sure! Here is the JSON you asked for:\n\n{fenced}\n\nLet me know if you need anything else."
    return text


def embedding(model: str, text: str, dimensions: int, seed: int = 0) -> list[float]:
    """A unit vector seeded by (model, text): equal texts give equal vectors."""
    rng = random.Random(int.from_bytes(digest("embedding", model, text, seed)[:16], "big"))
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
