"""What a chat endpoint answers, before it is dressed in one provider's shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from course.llm_server.answers import apply_stop, count_tokens, generate, truncate
from course.llm_server.config import ServerConfig
from course.llm_server.sse import Event, dumps

Finish = Literal["stop", "length", "stop_sequence"]


@dataclass(frozen=True)
class Context:
    """What a builder needs from the server besides the request body."""

    config: ServerConfig
    scripted: Callable[[str], str | None]
    """The scripted reply for a prompt (header or server replies), or None."""
    created: int
    """Unix time of the response: the one field that is not deterministic."""
    model: str = ""
    """The mock model that answers (the request may name it by a real model's name)."""


@dataclass(frozen=True)
class Output:
    """A response body, either one JSON document or a list of SSE events."""

    body: dict[str, Any] | None = None
    events: list[Event] | None = None
    error_event: Event | None = None
    """The provider's in-stream error event, sent by the stream_error scenario."""


@dataclass(frozen=True)
class Answer:
    text: str
    finish: Finish
    stop_sequence: str | None
    tokens: int


def answer(
    ctx: Context,
    prompt: str,
    seed: bytes,
    *,
    max_tokens: int | None,
    stops: list[str],
    json_mode: bool = False,
) -> Answer:
    """The scripted reply if there is one, else the generated text; then stops and limits."""
    scripted = ctx.scripted(prompt)
    text = scripted if scripted is not None else generate(seed)
    if scripted is None and json_mode:
        text = dumps({"answer": text})
    text, stop = apply_stop(text, stops)
    text, cut = truncate(text, max_tokens)
    finish: Finish = "length" if cut else "stop_sequence" if stop else "stop"
    return Answer(text, finish, stop if not cut else None, count_tokens(text))


def prompt_tokens(texts: list[str], per_message: int = 3) -> int:
    """Input tokens: the words of every message plus a fixed framing cost per message."""
    return sum(count_tokens(text) + per_message for text in texts) + 3
