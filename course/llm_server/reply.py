"""What a chat endpoint answers, before it is dressed in one provider's shapes.

Each provider turns its request into a ``Conversation`` (texts, tools, tool choice, tool
results, output schema); ``respond`` decides, the same way for every provider:

1. **Tool calls**, when tools are offered and the choice allows one: the calls scripted in
   ``X-Mock-Tool-Calls``, else one call of the tool the choice names, or (``required``) the
   tool that best matches the last user message, or (``auto``) that tool only when the
   last turn is the user's and some tool's name or description shares a word with it.
   Arguments are an instance of the tool's JSON Schema, seeded by the request.
2. Otherwise **text**: a scripted reply (header or server replies); else an instance of the
   output schema (structured output); else, after tool results, a sentence that reports
   them; else the generated sentences. Stop sequences and max tokens apply to the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from course.llm_server.answers import apply_stop, count_tokens, digest, generate, short_id, truncate
from course.llm_server.config import ServerConfig
from course.llm_server.headers import Controls
from course.llm_server.instances import instance, prompt_names
from course.llm_server.sse import Event, dumps

Finish = Literal["stop", "length", "stop_sequence", "tool_calls"]
Mode = Literal["auto", "none", "required", "named"]


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
    controls: Controls | None = None


@dataclass(frozen=True)
class Output:
    """A response body, either one JSON document or a list of SSE events."""

    body: dict[str, Any] | None = None
    events: list[Event] | None = None
    error_event: Event | None = None
    """The provider's in-stream error event, sent by the stream_error scenario."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    mode: Mode = "auto"
    name: str | None = None
    """The tool a ``named`` choice forces."""


@dataclass(frozen=True)
class ToolResult:
    name: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """A chat request in provider-neutral terms."""

    texts: list[str]
    """The text of each message (the system prompt first, if any)."""
    tools: list[Tool] = field(default_factory=list)
    choice: ToolChoice = field(default_factory=ToolChoice)
    results: list[ToolResult] = field(default_factory=list)
    """Tool results in the last turn: the question being answered is "what did they say"."""
    schema: dict[str, Any] | None = None
    """Structured output: the answer is an instance of this JSON Schema."""
    json_mode: bool = False
    """JSON mode without a schema: the answer is a JSON object."""
    parallel: bool = True
    """False: at most one tool call per answer (parallel_tool_calls, disable_parallel_tool_use)."""
    question: str | None = None
    """The last thing the user asked (not a tool result): what picks a tool and its
    arguments. None: the last text."""

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """JSON text, as the providers send it inside a call."""


@dataclass(frozen=True)
class Answer:
    text: str
    finish: Finish
    stop_sequence: str | None
    tokens: int
    calls: tuple[ToolCall, ...] = ()


class BadRequest(ValueError):
    """A body that validates but makes no sense (a tool choice naming no offered tool): the
    provider answers 400 with this message, naming ``param``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def check_choice(tools: list[Tool], choice: ToolChoice) -> None:
    if choice.mode in ("required", "named") and not tools:
        raise BadRequest("tool_choice forces a tool call, but the request offers no tools", "tool_choice")
    if choice.mode == "named" and choice.name not in {tool.name for tool in tools}:
        offered = ", ".join(tool.name for tool in tools)
        message = f"tool_choice names '{choice.name}', which is not in tools ({offered})"
        raise BadRequest(message, "tool_choice")


_WORD = re.compile(r"[a-z]{4,}")
_COMMON = frozenset({"what", "when", "where", "which", "with", "from", "that", "this", "your", "have"})


def _words(text: str) -> set[str]:
    # snake_case and camelCase names count as words too: get_weather -> get, weather
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ").lower()
    return {word.rstrip("s") for word in _WORD.findall(spaced)} - _COMMON


def best_tool(tools: list[Tool], question: str) -> tuple[Tool, int]:
    """The tool whose name and description share the most words with the question."""
    asked = _words(question)
    scored = [(len(asked & _words(f"{tool.name} {tool.description}")), tool) for tool in tools]
    score, tool = max(scored, key=lambda pair: pair[0])  # max keeps the first of equals
    return tool, score


def _calls(ctx: Context, conversation: Conversation, seed: bytes, prefix: str) -> tuple[ToolCall, ...]:
    tools, choice = conversation.tools, conversation.choice
    if not tools or choice.mode == "none":
        return ()
    scripted = ctx.controls.tool_calls if ctx.controls else None
    ids = (f"{prefix}{short_id(digest('call', seed.hex(), index))}" for index in range(1_000))
    if scripted is not None:
        chosen = scripted if conversation.parallel else scripted[:1]
        return tuple(ToolCall(next(ids), call.name, call.arguments) for call in chosen)
    question = conversation.question
    if question is None:
        question = conversation.texts[-1] if conversation.texts else ""
    if choice.mode == "named":
        tool = next(tool for tool in tools if tool.name == choice.name)
    else:
        tool, score = best_tool(tools, question)
        answered = bool(conversation.results) or ctx.scripted(conversation.prompt) is not None
        if choice.mode == "auto" and (score == 0 or answered):
            return ()
    arguments = instance(tool.parameters, digest("arguments", seed.hex(), tool.name), prompt_names(question))
    return (ToolCall(next(ids), tool.name, dumps(arguments)),)


def _text(ctx: Context, conversation: Conversation, seed: bytes) -> str:
    scripted = ctx.scripted(conversation.prompt)
    if scripted is not None:
        return scripted
    if conversation.schema is not None:
        return dumps(instance(conversation.schema, seed, prompt_names(conversation.prompt)))
    if conversation.results:
        reports = "; ".join(
            f"{result.name} returned {result.content[:200]}" for result in conversation.results
        )
        text = f"Here is what the tools said: {reports}."
        return dumps({"answer": text}) if conversation.json_mode else text
    text = generate(seed)
    return dumps({"answer": text}) if conversation.json_mode else text


def respond(
    ctx: Context,
    conversation: Conversation,
    seed: bytes,
    *,
    max_tokens: int | None,
    stops: list[str],
    call_prefix: str = "call_",
) -> Answer:
    """Tool calls if the request leads to them, else the text answer; then stops and limits."""
    calls = _calls(ctx, conversation, seed, call_prefix)
    if calls:
        tokens = sum(count_tokens(call.name) + count_tokens(call.arguments) for call in calls)
        return Answer("", "tool_calls", None, tokens, calls)
    text, stop = apply_stop(_text(ctx, conversation, seed), stops)
    text, cut = truncate(text, max_tokens)
    finish: Finish = "length" if cut else "stop_sequence" if stop else "stop"
    return Answer(text, finish, stop if not cut else None, count_tokens(text))


def prompt_tokens(texts: list[str], per_message: int = 3) -> int:
    """Input tokens: the words of every message plus a fixed framing cost per message."""
    return sum(count_tokens(text) + per_message for text in texts) + 3


def input_tokens(conversation: Conversation) -> int:
    """What the request costs: its messages, plus each tool's definition."""
    tools = [f"{tool.name} {tool.description} {dumps(tool.parameters)}" for tool in conversation.tools]
    return prompt_tokens(conversation.texts) + (prompt_tokens(tools) if tools else 0)


def fragments(text: str, size: int = 12) -> list[str]:
    """Streamed tool-call arguments: JSON text cut into small pieces with no regard for
    tokens or quotes, as the providers send it; only the joined whole parses."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
