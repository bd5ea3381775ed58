"""The ASGI app: routes, the request recorder, and the steps every API request goes through
(scenario, key, body, model, faults, answer), in the order a real provider checks them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course.llm_server import anthropic_shapes, headers, openai_shapes
from course.llm_server.answers import STYLES, Style, wrap
from course.llm_server.config import ServerConfig
from course.llm_server.delivery import Delivered, Stalled
from course.llm_server.exchange import Exchange
from course.llm_server.faults import make_plan, retry_after_header
from course.llm_server.log import RequestLog
from course.llm_server.models import ChatCompletionRequest, EmbeddingsRequest, MessagesRequest
from course.llm_server.reply import Context, Output
from course.llm_server.scenarios import OK, ScenarioError, parse_scenario
from course.llm_server.state import ServerState
from course.llm_server.styles import (
    ANTHROPIC,
    GATEWAY_STATUSES,
    OPENAI,
    ApiStyle,
    Body,
    gateway_html,
    style_for,
)

RequestT = TypeVar("RequestT", bound=BaseModel)
Builder = Callable[[RequestT, Context], Output]


class Recorder:
    """Outer middleware: gives each request an ID and an Exchange, strips a
    ``/mock/<scenario>[@<key>]`` prefix, echoes the ID, and makes sure every request is logged."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        request_id = request_headers.get(headers.REQUEST_ID) or f"req_{uuid.uuid4().hex[:24]}"
        path: str = scope["path"]
        url_scenario = url_key = None
        if path.startswith(headers.MOCK_PREFIX):
            segment, _, rest = path[len(headers.MOCK_PREFIX) :].partition("/")
            url_scenario, _, url_key = unquote(segment).partition("@")
            path = "/" + rest
            scope = {**scope, "path": path, "raw_path": path.encode()}
        exchange = Exchange(self.state, scope["method"], path, request_id, self.state.enter())
        exchange.url_scenario, exchange.url_key = url_scenario or None, url_key or None
        scope = {**scope, "state": {**scope.get("state", {}), "exchange": exchange}}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                echoed = [(b"x-request-id", request_id.encode("latin-1"))]
                if exchange.api == ANTHROPIC.name:
                    echoed.append((b"request-id", request_id.encode("latin-1")))
                message = {**message, "headers": [*message.get("headers", []), *echoed]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                exchange.commit(exchange.status)
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException:
            exchange.commit(exchange.status or 500)
            raise
        finally:
            self.state.leave()
            exchange.commit(exchange.status)


def _state(request: Request) -> ServerState:
    return cast(ServerState, request.app.state.llm)


def _exchange(request: Request) -> Exchange:
    return cast(Exchange, request.state.exchange)


def _header(request: Request, name: str) -> str | None:
    """Header text; a client may send UTF-8 bytes, which Starlette decodes as latin-1."""
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _error(
    style: ApiStyle, exchange: Exchange, status: int, body: Body, extra: dict[str, str] | None = None
) -> JSONResponse:
    if style is ANTHROPIC:
        body["request_id"] = exchange.request_id
    return JSONResponse(body, status_code=status, headers=extra)


def _scripted(request: Request, config: ServerConfig) -> Callable[[str], str | None]:
    reply = _header(request, headers.REPLY)
    style = cast(Style, (_header(request, headers.REPLY_STYLE) or "plain").strip())

    def scripted(prompt: str) -> str | None:
        if reply is not None:
            return wrap(reply, style)
        for marker, source in config.replies.items():
            if marker in prompt:
                return source if isinstance(source, str) else source(prompt)
        return None

    return scripted


async def _serve(
    request: Request,
    style: ApiStyle,
    model_type: type[RequestT],
    build: Builder[RequestT],
    models: tuple[str, ...],
) -> Response:
    state, exchange = _state(request), _exchange(request)
    config = state.config
    exchange.api = style.name
    spec = _header(request, headers.SCENARIO) or exchange.url_scenario or config.scenario
    try:
        scenario = parse_scenario(spec) if spec else OK
    except ScenarioError as exc:
        return _error(style, exchange, 400, style.error(400, str(exc), param=headers.SCENARIO))
    exchange.scenario = scenario.spec if spec else None
    exchange.key = _header(request, headers.KEY) or exchange.url_key

    refused = style.check_auth(request.headers, config)
    if refused is not None:
        return _error(style, exchange, *refused)
    try:
        body = model_type.model_validate_json(await request.body())
    except ValidationError as exc:
        return _error(style, exchange, 400, style.invalid_body(exc))
    model = str(getattr(body, "model", ""))
    exchange.model = model
    exchange.streamed = bool(getattr(body, "stream", False))
    if model not in models:
        return _error(style, exchange, 404, style.unknown_model(model))
    reply_style = (_header(request, headers.REPLY_STYLE) or "plain").strip()
    if reply_style not in STYLES:
        message = f"Unknown X-Mock-Reply-Style '{reply_style}'. Known: {', '.join(STYLES)}."
        return _error(style, exchange, 400, style.error(400, message))

    plan = make_plan(scenario, state, exchange.key or "", exchange.in_flight)
    exchange.faults.extend(plan.fired)
    if plan.delay and not await state.pause(plan.delay):
        return _error(style, exchange, 503, style.error(503, "The server is shutting down."))
    extra = style.rate_headers(plan.rate) if plan.rate else {}
    rejection = plan.rejection
    if rejection is not None:
        if rejection.retry_after is not None:
            extra["retry-after"] = retry_after_header(rejection.retry_after)
            extra["retry-after-ms"] = str(round(rejection.retry_after * 1000))
        if rejection.status in GATEWAY_STATUSES:
            return HTMLResponse(gateway_html(rejection.status, "Bad Gateway"), rejection.status)
        return _error(style, exchange, rejection.status, style.rejection(rejection, model), extra)
    if plan.stall is not None:
        return Stalled(plan.stall, exchange)
    context = Context(config, _scripted(request, config), int(time.time()))
    return Delivered(build(body, context), plan.delivery, exchange, extra)


async def chat_completions(request: Request) -> Response:
    config = _state(request).config
    return await _serve(request, OPENAI, ChatCompletionRequest, openai_shapes.chat, config.chat_models)


async def messages(request: Request) -> Response:
    config = _state(request).config
    return await _serve(request, ANTHROPIC, MessagesRequest, anthropic_shapes.message, config.chat_models)


async def embeddings(request: Request) -> Response:
    config = _state(request).config
    return await _serve(request, OPENAI, EmbeddingsRequest, openai_shapes.embeddings, config.embedding_models)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_models(request: Request) -> Response:
    style, exchange, config = style_for(request.headers), _exchange(request), _state(request).config
    exchange.api = style.name
    refused = style.check_auth(request.headers, config)
    if refused is not None:
        return _error(style, exchange, *refused)
    model = request.path_params.get("model")
    if model is None:
        shapes: Any = anthropic_shapes if style is ANTHROPIC else openai_shapes
        return JSONResponse(shapes.model_list(config.models))
    if model not in config.models:
        return _error(style, exchange, 404, style.unknown_model(model))
    card = (anthropic_shapes if style is ANTHROPIC else openai_shapes).model_card(model)
    return JSONResponse(card)


async def http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 in the provider's shape rather than Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    style, exchange = style_for(request.headers), _exchange(request)
    body = style.not_found(request.method, request.url.path)
    if status != 404:
        body = style.error(status, f"Method {request.method} is not allowed on {request.url.path}")
    return _error(style, exchange, status, body)


def create_app(config: ServerConfig | None = None) -> Starlette:
    """The server as an ASGI app. ``request_log(app)`` reads what it has seen."""
    state = ServerState(config or ServerConfig())
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model}", list_models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Recorder, state=state)],
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.llm = state
    return app


def server_state(app: Starlette) -> ServerState:
    return cast(ServerState, app.state.llm)


def request_log(app: Starlette) -> RequestLog:
    """The log of an app made by ``create_app``: read it after in-process requests."""
    return server_state(app).log
