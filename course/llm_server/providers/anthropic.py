"""The Anthropic-style API: messages (plain and streamed as named events) and the model
list; its request bodies, response shapes, errors and auth.

Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``; every response
echoes ``request-id``; a request needs an ``anthropic-version`` header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError
from starlette.responses import JSONResponse

from course.llm_server.answers import digest, pieces, short_id
from course.llm_server.config import ServerConfig
from course.llm_server.faults import RateInfo, Rejection
from course.llm_server.providers.base import Body, Endpoint, Part, Provider, RequestBody, is_json_error, loc
from course.llm_server.reply import (
    BadRequest,
    Context,
    Conversation,
    Output,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    check_choice,
    fragments,
    input_tokens,
    respond,
)
from course.llm_server.sse import Event, dumps, event

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
}
MODEL_CREATED_AT = "2025-01-01T00:00:00Z"


# --- request bodies -------------------------------------------------------------------------


class ContentBlock(Part):
    type: str
    text: str | None = None
    # tool_use (assistant) and tool_result (user) blocks:
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[ContentBlock] | None = None

    @property
    def as_text(self) -> str:
        if self.type == "tool_use":
            return f"{self.name} {dumps(self.input or {})}"
        if self.type == "tool_result":
            return _text(self.content)
        return self.text or ""


def _text(content: str | list[ContentBlock] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.as_text for part in content)


class Message(Part):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]

    @property
    def text(self) -> str:
        return _text(self.content)

    @property
    def blocks(self) -> list[ContentBlock]:
        return [] if isinstance(self.content, str) else self.content


class ToolDef(Part):
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    input_schema: dict[str, Any] | None = None
    """None for server tools (web search and such): accepted, never called here."""
    type: str | None = None


class OutputFormat(Part):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(Part):
    format: OutputFormat | None = None


class MessagesRequest(RequestBody):
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[ContentBlock] | None = None
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None
    output_config: OutputConfig | None = None
    """Structured output (generally available): ``{"format": {"type": "json_schema", ...}}``."""
    output_format: OutputFormat | None = None
    """The same, as the structured-outputs beta sent it."""

    @property
    def system_text(self) -> str:
        return _text(self.system)


class CountTokensRequest(MessagesRequest):
    max_tokens: int = Field(default=1, ge=1)


# --- response shapes ------------------------------------------------------------------------


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    # No prompt cache on this server: nothing is ever written to it or read from it.
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }


def _parallel(value: dict[str, Any] | None) -> bool:
    return not (value or {}).get("disable_parallel_tool_use", False)


def _choice(value: dict[str, Any] | None, tools: list[Tool]) -> ToolChoice:
    if value is None:
        return ToolChoice("auto" if tools else "none")
    kind = value.get("type")
    if kind in ("auto", "none"):
        return ToolChoice(kind)
    if kind == "any":
        return ToolChoice("required")
    if kind == "tool" and isinstance(value.get("name"), str):
        return ToolChoice("named", value["name"])
    raise BadRequest(
        'tool_choice: expected {"type": "auto"}, {"type": "any"}, {"type": "none"} or '
        '{"type": "tool", "name": ...}',
        "tool_choice",
    )


def conversation(request: MessagesRequest) -> Conversation:
    tools = [
        Tool(tool.name, tool.description, tool.input_schema)
        for tool in request.tools or []
        if tool.input_schema is not None
    ]
    choice = _choice(request.tool_choice, tools)
    check_choice(tools, choice)
    names = {
        block.id: block.name or "tool"
        for item in request.messages
        for block in item.blocks
        if block.type == "tool_use" and block.id
    }
    last = request.messages[-1]
    results = [
        ToolResult(names.get(block.tool_use_id or "", "tool"), block.as_text)
        for block in last.blocks
        if last.role == "user" and block.type == "tool_result"
    ]
    form = request.output_format or (request.output_config.format if request.output_config else None)
    system = request.system_text
    texts = [item.text for item in request.messages]
    asked = [
        item.content
        if isinstance(item.content, str)
        else "\n".join(b.text or "" for b in item.content if b.type == "text")
        for item in request.messages
        if item.role == "user"
    ]
    asked = [text for text in asked if text]
    return Conversation(
        texts=[system, *texts] if system else texts,
        question=asked[-1] if asked else None,
        parallel=_parallel(request.tool_choice),
        tools=tools,
        choice=choice,
        results=results,
        schema=form.schema_ if form is not None else None,
    )


def _block(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError:
        arguments = None
    # "input" is always an object; scripted arguments that are not one arrive as {} here
    # (and verbatim in a stream, where the client must parse them).
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": arguments if isinstance(arguments, dict) else {},
    }


def message(request: MessagesRequest, ctx: Context) -> Output:
    talk = conversation(request)
    messages = [item.model_dump(exclude_none=True) for item in request.messages]
    system = request.system_text
    seed = digest("chat", ctx.model, system, messages, ctx.config.seed)
    reply = respond(
        ctx,
        talk,
        seed,
        max_tokens=request.max_tokens,
        stops=request.stop_sequences or [],
        call_prefix="toolu_",
    )
    ident = "msg_" + short_id(seed)
    cost = input_tokens(talk)
    usage = _usage(cost, reply.tokens)
    stop_reason = _STOP[reply.finish]
    content = [_block(call) for call in reply.calls] or [{"type": "text", "text": reply.text}]
    if not request.stream:
        return Output(
            body={
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": reply.stop_sequence,
                "usage": usage,
            }
        )
    start: dict[str, Any] = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(cost, 1),
    }
    events: list[Event] = [event({"type": "message_start", "message": start}, "message_start")]
    if reply.calls:
        for index, call in enumerate(reply.calls):
            events += _tool_use_events(index, call)
            if index == 0:
                events.append(event({"type": "ping"}, "ping"))
    else:
        events += _text_events(reply.text)
    events += [
        event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": {"output_tokens": reply.tokens},
            },
            "message_delta",
        ),
        event({"type": "message_stop"}, "message_stop"),
    ]
    error = event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    return Output(events=events, error_event=error)


def _text_events(text: str) -> list[Event]:
    events = [
        event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        event({"type": "ping"}, "ping"),
    ]
    events += [
        event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            "content_block_delta",
        )
        for piece in pieces(text)
    ]
    events.append(event({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    return events


def _tool_use_events(index: int, call: ToolCall) -> list[Event]:
    # The block starts with an empty input; the arguments follow as partial JSON that
    # parses only once every fragment is joined.
    start = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
    events = [
        event({"type": "content_block_start", "index": index, "content_block": start}, "content_block_start")
    ]
    events += [
        event(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": part},
            },
            "content_block_delta",
        )
        for part in fragments(call.arguments)
    ]
    events.append(event({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return events


def count_tokens(request: CountTokensRequest, ctx: Context) -> Output:
    """POST /v1/messages/count_tokens: what the same request would cost in input tokens."""
    talk = conversation(request)
    return Output(body={"input_tokens": input_tokens(talk)})


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# --- errors, auth, models -------------------------------------------------------------------


class Anthropic(Provider):
    name = "anthropic"
    endpoints = (
        Endpoint("/v1/messages", MessagesRequest, message),
        Endpoint("/v1/messages/count_tokens", CountTokensRequest, count_tokens),
    )
    request_id_header = "request-id"
    _types: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    _messages: ClassVar[dict[int, str]] = {
        500: "Internal server error",
        529: "Overloaded",
        504: "Request timed out",
        503: "Service unavailable",
    }

    def error(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> Body:
        kind = kind or self._types.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}

    def respond_error(
        self, request_id: str, status: int, body: Body, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        return super().respond_error(request_id, status, {**body, "request_id": request_id}, headers)

    def check_auth(self, headers: Mapping[str, str], config: ServerConfig) -> tuple[int, Body] | None:
        # The API documents x-api-key; the official SDK sends Authorization: Bearer since
        # 2.0. Both carry the same key, so both are accepted.
        key = headers.get("x-api-key", "").strip()
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        if not key and scheme.lower() == "bearer":
            key = bearer.strip()
        if not key:
            return 401, self.error(
                401, "x-api-key header is required (or send the key as Authorization: Bearer)"
            )
        if config.api_key and key != config.api_key:
            return 401, self.error(401, "invalid x-api-key")
        if config.require_anthropic_version and not headers.get("anthropic-version"):
            return 400, self.error(400, "anthropic-version: header is required")
        return None

    def invalid_body(self, exc: ValidationError) -> Body:
        if is_json_error(exc):
            return self.error(
                400, "There was an error parsing the body of your request: it is not valid JSON."
            )
        first = exc.errors()[0]
        message = "Field required" if first["type"] == "missing" else first["msg"]
        return self.error(400, f"{loc(first)}: {message}")

    def rejection(self, rejection: Rejection, model: str) -> Body:
        status = rejection.status
        if rejection.reason == "concurrency":
            message = (
                f"Number of concurrent connections has exceeded your rate limit "
                f"({rejection.limit}). Please try again later."
            )
        elif status == 429:
            message = (
                "This request would exceed the rate limit for your organization of "
                f"{rejection.limit or 'N'} requests per minute. Please try again later."
            )
        else:
            message = self._messages.get(status, f"Request failed with status {status}.")
        return self.error(status, message)

    def rate_headers(self, rate: RateInfo) -> dict[str, str]:
        now = datetime.now(UTC)
        reset = now + timedelta(seconds=max(rate.reset, 0))
        headers = {
            "anthropic-ratelimit-requests-limit": str(rate.limit),
            "anthropic-ratelimit-requests-remaining": str(max(rate.remaining, 0)),
            "anthropic-ratelimit-requests-reset": _rfc3339(reset),
        }
        for kind in ("tokens", "input-tokens", "output-tokens"):
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(rate.tokens_limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(rate.tokens_remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = _rfc3339(now)
        return headers

    def not_found(self, method: str, path: str) -> Body:
        return self.error(404, f"Not found: {method} {path}")

    def unknown_model(self, model: str, known: tuple[str, ...]) -> Body:
        return self.error(404, f"model: {model} (this course server knows: {', '.join(known)})")

    def model_list(self, models: tuple[str, ...]) -> Body:
        data = [self.model_card(model) for model in models]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def model_card(self, model: str) -> Body:
        return {
            "type": "model",
            "id": model,
            "display_name": model.replace("-", " ").title(),
            "created_at": MODEL_CREATED_AT,
        }


ANTHROPIC = Anthropic()
