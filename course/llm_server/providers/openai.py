"""The OpenAI-style API: chat completions and the Responses API (plain and streamed, with
tool calls and structured output), embeddings, the model list; its request bodies, response
shapes, errors and auth.

Errors: ``{"error": {"message", "type", "param", "code"}}``; key in ``Authorization: Bearer``.
Streams: Chat Completions sends unnamed SSE events (``data: {...}``) ending with ``data:
[DONE]``; the Responses API names each event (``event: response.output_text.delta``).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, cast

from pydantic import Field, ValidationError, field_validator

from course.llm_server.answers import count_tokens, digest, embedding, pieces, short_id
from course.llm_server.config import ServerConfig
from course.llm_server.faults import RateInfo, Rejection
from course.llm_server.instances import strict_problem
from course.llm_server.providers.base import (
    Body,
    Endpoint,
    Part,
    Provider,
    RequestBody,
    is_json_error,
    loc,
    mask,
)
from course.llm_server.reply import (
    Answer,
    BadRequest,
    Context,
    Conversation,
    Mode,
    Output,
    Tool,
    ToolChoice,
    ToolResult,
    check_choice,
    fragments,
    input_tokens,
    respond,
)
from course.llm_server.sse import DONE, Event, event

FINGERPRINT = "fp_course_mock"
MODEL_CREATED = 1_735_689_600  # 2025-01-01: fixed, so the model list is deterministic

_FINISH = {"stop": "stop", "length": "length", "stop_sequence": "stop", "tool_calls": "tool_calls"}


# --- request bodies -------------------------------------------------------------------------


class ContentPart(Part):
    type: str
    text: str | None = None


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text or "" for part in content)


class FunctionCall(Part):
    name: str
    arguments: str


class ToolCallPart(Part):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(Part):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallPart] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        calls = [f"{call.function.name} {call.function.arguments}" for call in self.tool_calls or []]
        return "\n".join(filter(None, [_text(self.content), *calls]))


class StreamOptions(Part):
    include_usage: bool = False


class JsonSchemaFormat(Part):
    name: str
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(Part):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class FunctionDef(Part):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ChatTool(Part):
    type: str = "function"
    function: FunctionDef | None = None
    """None for tool types other than ``function`` (custom tools): accepted, never called."""


class ChatCompletionRequest(RequestBody):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=8)
    stop: str | list[str] | None = None
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    tools: list[ChatTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else self.stop


class EmbeddingsRequest(RequestBody):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=4096)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(
        cls, value: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        if value == "" or value == [] or (isinstance(value, list) and "" in value):
            raise ValueError("input must be a non-empty string or array")
        return value

    @property
    def texts(self) -> list[str]:
        """Each input as text; token arrays become their numbers joined by spaces."""
        value = self.input
        if isinstance(value, str):
            return [value]
        texts: list[str] = []
        numbers: list[str] = []
        for item in value:
            if isinstance(item, int):
                numbers.append(str(item))  # one token array: a single input
            elif isinstance(item, str):
                texts.append(item)
            else:
                texts.append(" ".join(map(str, item)))
        return [" ".join(numbers)] if numbers else texts


# --- response shapes ------------------------------------------------------------------------


def tool_choice(value: str | dict[str, Any] | None, tools: list[Tool]) -> tuple[ToolChoice, list[Tool]]:
    """OpenAI's tool_choice forms as a ToolChoice, with the tools it allows (Chat
    Completions nests the name in ``function``; the Responses API does not)."""
    if value is None:
        return ToolChoice("auto" if tools else "none"), tools
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise BadRequest(
                f"Invalid value for 'tool_choice': '{value}'. Expected 'none', 'auto', 'required' "
                "or a named function.",
                "tool_choice",
            )
        return ToolChoice(cast(Mode, value)), tools
    kind = value.get("type")
    if kind == "allowed_tools":
        allowed = value.get("allowed_tools", value)
        names = {_tool_name(item) for item in allowed.get("tools", [])}
        mode = allowed.get("mode", "auto")
        return ToolChoice("required" if mode == "required" else "auto"), [t for t in tools if t.name in names]
    name = _tool_name(value)
    if kind != "function" or not name:
        raise BadRequest(
            'Invalid value for \'tool_choice\': expected {"type": "function", "function": {"name": ...}}.',
            "tool_choice",
        )
    return ToolChoice("named", name), tools


def _tool_name(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    function = item.get("function")
    name = function.get("name") if isinstance(function, dict) else item.get("name")
    return name if isinstance(name, str) else None


def _check_strict(schema: dict[str, Any], what: str, param: str) -> None:
    """Strict mode refuses a schema it cannot enforce, before any answer, as OpenAI does."""
    problem = strict_problem(schema)
    if problem is not None:
        raise BadRequest(f"Invalid schema for {what}: {problem}", param)


def conversation(request: ChatCompletionRequest) -> Conversation:
    tools = [
        Tool(tool.function.name, tool.function.description, tool.function.parameters)
        for tool in request.tools or []
        if tool.function is not None
    ]
    choice, allowed = tool_choice(request.tool_choice, tools)
    check_choice(allowed, choice)
    names = {call.id: call.function.name for message in request.messages for call in message.tool_calls or []}
    results: list[ToolResult] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            break
        name = names.get(message.tool_call_id or "", message.name or "tool")
        results.insert(0, ToolResult(name, message.text))
    for index, tool in enumerate(request.tools or []):
        if tool.function is not None and tool.function.strict:
            _check_strict(
                tool.function.parameters,
                f"function '{tool.function.name}'",
                f"tools[{index}].function.parameters",
            )
    form = request.response_format
    schema = None
    if form is not None and form.type == "json_schema":
        if form.json_schema is None:
            raise BadRequest("Missing required parameter: 'response_format.json_schema'.", "response_format")
        schema = form.json_schema.schema_
        if form.json_schema.strict:
            _check_strict(schema, f"response_format '{form.json_schema.name}'", "response_format")
    asked = [message.text for message in request.messages if message.role == "user"]
    return Conversation(
        texts=[message.text for message in request.messages],
        question=asked[-1] if asked else None,
        tools=allowed,
        choice=choice,
        results=results,
        schema=schema,
        json_mode=form is not None and form.type == "json_object",
        parallel=request.parallel_tool_calls is not False,
    )


def chat(request: ChatCompletionRequest, ctx: Context) -> Output:
    talk = conversation(request)
    messages = [message.model_dump(exclude_none=True) for message in request.messages]
    limit = request.max_completion_tokens or request.max_tokens
    seeds = [
        digest("chat", ctx.model, messages, request.seed, ctx.config.seed, index)
        for index in range(request.n)
    ]
    answers = [respond(ctx, talk, seed, max_tokens=limit, stops=request.stops) for seed in seeds]
    ident = "chatcmpl-" + short_id(seeds[0])
    usage = _usage(input_tokens(talk), answers)
    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return Output(
            events=_chunks(request, ctx, ident, answers, usage, include_usage),
            error_event=event(OPENAI.error(503, "The server is overloaded or not ready yet.")),
        )
    body = {
        "id": ident,
        "object": "chat.completion",
        "created": ctx.created,
        "model": request.model,
        "choices": [
            {
                "index": index,
                "message": _message(item),
                "logprobs": None,
                "finish_reason": _FINISH[item.finish],
            }
            for index, item in enumerate(answers)
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    return Output(body=body)


def _message(item: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": item.text, "refusal": None, "annotations": []}
    if item.calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in item.calls
        ]
    return message


def _usage(prompt: int, answers: list[Answer]) -> dict[str, Any]:
    completion = sum(item.tokens for item in answers)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        # No prompt cache, no reasoning, no audio on this server: the details say so.
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chunks(
    request: ChatCompletionRequest,
    ctx: Context,
    ident: str,
    answers: list[Answer],
    usage: dict[str, Any],
    include_usage: bool,
) -> list[Event]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> Event:
        payload: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": request.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = None
        payload.update(extra)
        return event(payload)

    def choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [
        chunk([choice(i, {"role": "assistant", "content": None if item.calls else "", "refusal": None})])
        for i, item in enumerate(answers)
    ]
    for index, item in enumerate(answers):
        events += [chunk([choice(index, {"content": piece})]) for piece in pieces(item.text)]
        for number, call in enumerate(item.calls):
            # The first delta of a call names it; the arguments follow in fragments that
            # only parse once joined (the client assembles them by "index").
            head = {"index": number, "id": call.id, "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            events.append(chunk([choice(index, {"tool_calls": [head]})]))
            events += [
                chunk([choice(index, {"tool_calls": [{"index": number, "function": {"arguments": part}}]})])
                for part in fragments(call.arguments)
            ]
    events += [chunk([choice(i, {}, _FINISH[item.finish])]) for i, item in enumerate(answers)]
    if include_usage:
        events.append(chunk([], usage=usage))
    events.append(DONE)
    return events


def embeddings(request: EmbeddingsRequest, ctx: Context) -> Output:
    dimensions = request.dimensions or ctx.config.embedding_dim
    texts = request.texts
    data = []
    for index, text in enumerate(texts):
        vector = embedding(ctx.model, text, dimensions, ctx.config.seed)
        encoded: list[float] | str = vector
        if request.encoding_format == "base64":
            # The providers send little-endian float32 bytes, base64-encoded.
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(text) for text in texts)
    return Output(
        body={
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


# --- the Responses API: POST /v1/responses -----------------------------------------------


class InputItem(Part):
    """A message (``role`` + ``content``), a function call the model made earlier, or the
    output of one (``function_call_output``); other item types are accepted and skipped."""

    type: str = "message"
    role: str | None = None
    content: str | list[ContentPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if self.type == "function_call":
            return f"{self.name} {self.arguments}"
        if self.type == "function_call_output":
            return _text(self.output)
        return _text(self.content)


class TextFormat(Part):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(Part):
    format: TextFormat | None = None


class ResponseTool(Part):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesRequest(RequestBody):
    model: str
    input: str | list[InputItem] = Field(min_length=1)
    instructions: str | None = None
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[ResponseTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    previous_response_id: str | None = None
    """Accepted, but this server keeps no past responses: send the whole conversation."""
    store: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None

    @property
    def items(self) -> list[InputItem]:
        if isinstance(self.input, str):
            return [InputItem(role="user", content=self.input)]
        return self.input


def responses_conversation(request: ResponsesRequest) -> Conversation:
    tools = [
        Tool(tool.name, tool.description or "", tool.parameters or {"type": "object", "properties": {}})
        for tool in request.tools or []
        if tool.type == "function" and tool.name
    ]
    choice, allowed = tool_choice(request.tool_choice, tools)
    check_choice(allowed, choice)
    items = request.items
    names = {item.call_id: item.name or "tool" for item in items if item.type == "function_call"}
    results: list[ToolResult] = []
    for item in reversed(items):
        if item.type != "function_call_output":
            break
        results.insert(0, ToolResult(names.get(item.call_id, "tool"), item.text))
    for index, tool in enumerate(request.tools or []):
        if tool.type == "function" and tool.strict and tool.parameters is not None:
            _check_strict(tool.parameters, f"function '{tool.name}'", f"tools[{index}].parameters")
    form = request.text.format if request.text else None
    if form is not None and form.type == "json_schema" and form.strict:
        _check_strict(form.schema_ or {}, f"text.format '{form.name}'", "text.format.schema")
    texts = [item.text for item in items if item.type in ("message", "function_call", "function_call_output")]
    asked = [item.text for item in items if item.type == "message" and item.role == "user"]
    return Conversation(
        texts=[request.instructions, *texts] if request.instructions else texts,
        question=asked[-1] if asked else None,
        tools=allowed,
        choice=choice,
        results=results,
        schema=form.schema_ if form is not None and form.type == "json_schema" else None,
        json_mode=form is not None and form.type == "json_object",
        parallel=request.parallel_tool_calls is not False,
    )


def responses(request: ResponsesRequest, ctx: Context) -> Output:
    talk = responses_conversation(request)
    items = [item.model_dump(exclude_none=True) for item in request.items]
    seed = digest("responses", ctx.model, request.instructions, items, ctx.config.seed)
    reply = respond(ctx, talk, seed, max_tokens=request.max_output_tokens, stops=[])
    ident = short_id(seed)
    output: list[dict[str, Any]]
    if reply.calls:
        output = [
            {
                "type": "function_call",
                "id": f"fc_{short_id(digest('fc', call.id))}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
            for call in reply.calls
        ]
    else:
        text: dict[str, Any] = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        output = [
            {
                "type": "message",
                "id": f"msg_{ident}",
                "status": "completed",
                "role": "assistant",
                "content": [text],
            }
        ]
    cost = input_tokens(talk)
    cut = reply.finish == "length"
    body: dict[str, Any] = {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": ctx.created,
        "status": "incomplete" if cut else "completed",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": request.store is not False,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": {
            "format": (
                request.text.format if request.text and request.text.format else TextFormat()
            ).model_dump(by_alias=True, exclude_none=True)
        },
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": [tool.model_dump(exclude_none=True) for tool in request.tools or []],
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": cost,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": cost + reply.tokens,
        },
        "user": request.user,
        "metadata": request.metadata or {},
    }
    if not request.stream:
        return Output(body=body)
    error = {"type": "error", "code": "server_error", "message": "The server is overloaded.", "param": None}
    return Output(events=_response_events(body), error_event=event({**error, "sequence_number": 0}, "error"))


def _response_events(done: dict[str, Any]) -> list[Event]:
    """The Responses API's stream: named events, each numbered, from response.created to
    response.completed (or response.incomplete when max_output_tokens cut the text)."""
    events: list[Event] = []

    def emit(kind: str, **payload: Any) -> None:
        events.append(event({"type": kind, "sequence_number": len(events), **payload}, kind))

    start = {**done, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(done["output"]):
        ident = item["id"]
        if item["type"] == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            for part in fragments(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=ident, output_index=index, delta=part)
            emit(
                "response.function_call_arguments.done",
                item_id=ident,
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            text = item["content"][0]["text"]
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            where = {"item_id": ident, "output_index": index, "content_index": 0}
            emit(
                "response.content_part.added",
                **where,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
            for piece in pieces(text):
                emit("response.output_text.delta", **where, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, text=text, logprobs=[])
            emit("response.content_part.done", **where, part=item["content"][0])
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.incomplete" if done["status"] == "incomplete" else "response.completed", response=done)
    return events


# --- errors, auth, models -------------------------------------------------------------------


class OpenAI(Provider):
    name = "openai"
    endpoints = (
        Endpoint("/v1/chat/completions", ChatCompletionRequest, chat),
        Endpoint("/v1/embeddings", EmbeddingsRequest, embeddings, models="embedding"),
        Endpoint("/v1/responses", ResponsesRequest, responses),
    )
    _types: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "permission_error",
        404: "invalid_request_error",
        409: "invalid_request_error",
        422: "invalid_request_error",
        429: "requests",
    }
    _messages: ClassVar[dict[int, str]] = {
        500: "The server had an error while processing your request. Sorry about that!",
        503: "The server is overloaded or not ready yet.",
        504: "The server did not answer in time.",
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
        kind = kind or self._types.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}

    def check_auth(self, headers: Mapping[str, str], config: ServerConfig) -> tuple[int, Body] | None:
        value = headers.get("authorization", "")
        scheme, _, key = value.partition(" ")
        if not value:
            return 401, self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        key = key.strip()
        if scheme.lower() != "bearer" or not key or (config.api_key and key != config.api_key):
            return 401, self.error(
                401,
                f"Incorrect API key provided: {mask(key or value)}. Use the key this course "
                "server was started with.",
                code="invalid_api_key",
            )
        return None

    def invalid_body(self, exc: ValidationError) -> Body:
        if is_json_error(exc):
            return self.error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)",
            )
        first = exc.errors()[0]
        where = loc(first)
        if first["type"] == "missing":
            return self.error(
                400, f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter"
            )
        return self.error(
            400, f"Invalid value for '{where}': {first['msg']}.", param=where, code="invalid_value"
        )

    def rejection(self, rejection: Rejection, model: str) -> Body:
        status = rejection.status
        wait = f"{rejection.retry_after:.3g}s" if rejection.retry_after is not None else "a moment"
        if rejection.reason == "rpm":
            message = (
                f"Rate limit reached for {model} on requests per min (RPM): "
                f"Limit {rejection.limit}, Used {rejection.limit}, Requested 1. "
                f"Please try again in {wait}."
            )
            return self.error(429, message, code="rate_limit_exceeded")
        if rejection.reason == "concurrency":
            return self.error(
                429,
                f"Too many concurrent requests for {model}: "
                f"limit {rejection.limit}. Please try again in {wait}.",
                code="rate_limit_exceeded",
            )
        if status == 429:
            return self.error(
                429,
                f"Rate limit reached for {model}. Please try again in {wait}.",
                code="rate_limit_exceeded",
            )
        return self.error(status, self._messages.get(status, f"Request failed with status {status}."))

    def rate_headers(self, rate: RateInfo) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(rate.limit),
            "x-ratelimit-remaining-requests": str(max(rate.remaining, 0)),
            "x-ratelimit-reset-requests": f"{max(rate.reset, 0):.3f}s",
            "x-ratelimit-limit-tokens": str(rate.tokens_limit),
            "x-ratelimit-remaining-tokens": str(rate.tokens_remaining),
            "x-ratelimit-reset-tokens": "0s",
        }

    def not_found(self, method: str, path: str) -> Body:
        return self.error(404, f"Invalid URL ({method} {path})")

    def unknown_model(self, model: str, known: tuple[str, ...]) -> Body:
        return self.error(
            404,
            f"The model `{model}` does not exist or you do not have access to it. "
            f"This course server knows: {', '.join(known)}.",
            code="model_not_found",
        )

    def model_card(self, model: str) -> Body:
        return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "course"}

    def model_list(self, models: tuple[str, ...]) -> Body:
        return {"object": "list", "data": [self.model_card(model) for model in models]}


OPENAI = OpenAI()
