"""The ASGI app: routes, the request recorder, and the steps every API request goes through
(controls, key, body, model, faults, answer), in the order a real provider checks them.

The app knows providers only through ``providers.base.Provider``: each one lists its
endpoints, and every endpoint goes through the same ``_serve`` pipeline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import unquote

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course.llm_server import headers
from course.llm_server.answers import wrap
from course.llm_server.config import ServerConfig
from course.llm_server.delivery import Delivered, Stalled
from course.llm_server.exchange import Exchange
from course.llm_server.faults import default_rate, make_plan, retry_after_header
from course.llm_server.headers import ControlError, Controls, parse_controls
from course.llm_server.instances import SchemaError
from course.llm_server.log import RequestLog
from course.llm_server.providers import PROVIDERS, Endpoint, Provider, provider_for
from course.llm_server.providers.base import GATEWAY_STATUSES, gateway_html
from course.llm_server.reply import BadRequest, Context
from course.llm_server.state import ServerState


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
                second = exchange.provider.request_id_header if exchange.provider else None
                if second:
                    echoed.append((second.encode(), request_id.encode("latin-1")))
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


def _scripted(controls: Controls, config: ServerConfig) -> Callable[[str], str | None]:
    def scripted(prompt: str) -> str | None:
        if controls.reply is not None:
            return wrap(controls.reply, controls.reply_style)
        for marker, source in config.replies.items():
            if marker in prompt:
                return source if isinstance(source, str) else source(prompt)
        return None

    return scripted


async def _serve(request: Request, provider: Provider, endpoint: Endpoint) -> Response:
    state, exchange = _state(request), _exchange(request)
    config = state.config
    exchange.provider = provider

    def refuse(status: int, body: dict[str, object], extra: dict[str, str] | None = None) -> JSONResponse:
        return provider.respond_error(exchange.request_id, status, body, extra)

    try:
        controls = parse_controls(request.headers, config.scenario, exchange.url_scenario, exchange.url_key)
    except ControlError as exc:
        exchange.key = headers.text(request.headers, headers.KEY) or exchange.url_key
        return refuse(400, provider.error(400, str(exc), param=exc.header))
    exchange.scenario = controls.scenario_spec
    exchange.key = controls.key

    refused = provider.check_auth(request.headers, config)
    if refused is not None:
        return refuse(*refused)
    # From here on every answer carries the rate-limit headers, as the providers' do.
    extra = provider.rate_headers(default_rate(state))
    try:
        body = endpoint.request.model_validate_json(await request.body())
    except ValidationError as exc:
        return refuse(400, provider.invalid_body(exc), extra)
    exchange.unknown_params = body.unknown_params
    model = str(getattr(body, "model", ""))
    exchange.model = model
    exchange.streamed = bool(getattr(body, "stream", False))
    target = config.resolve(model, endpoint.models)
    if target is None:
        return refuse(404, provider.unknown_model(model, config.names(endpoint.models)), extra)
    # The answer is decided before any fault, so a request that makes no sense is a 400
    # whatever the scenario (and does not count as a fail_first call).
    context = Context(config, _scripted(controls, config), int(time.time()), target, controls)
    try:
        output = endpoint.build(body, context)
    except BadRequest as exc:
        return refuse(400, provider.error(400, str(exc), param=exc.param), extra)
    except SchemaError as exc:
        return refuse(400, provider.error(400, f"Invalid JSON Schema: {exc}"), extra)

    plan = make_plan(controls.scenario, state, exchange.key or "", exchange.in_flight)
    exchange.faults.extend(plan.fired)
    if plan.delay and not await state.pause(plan.delay):
        return refuse(503, provider.error(503, "The server is shutting down."), extra)
    if plan.rate:
        extra.update(provider.rate_headers(plan.rate))
    rejection = plan.rejection
    if rejection is not None:
        if rejection.retry_after is not None:
            extra["retry-after"] = retry_after_header(rejection.retry_after)
            extra["retry-after-ms"] = str(round(rejection.retry_after * 1000))
        if rejection.status in GATEWAY_STATUSES:
            return HTMLResponse(gateway_html(rejection.status, "Bad Gateway"), rejection.status)
        return refuse(rejection.status, provider.rejection(rejection, model), extra)
    if plan.stall is not None:
        return Stalled(plan.stall, exchange)
    return Delivered(output, plan.delivery, exchange, extra)


def _endpoint(provider: Provider, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await _serve(request, provider, endpoint)

    return handle


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_models(request: Request) -> Response:
    provider, exchange, config = provider_for(request.headers), _exchange(request), _state(request).config
    exchange.provider = provider
    refused = provider.check_auth(request.headers, config)
    if refused is not None:
        return provider.respond_error(exchange.request_id, *refused)
    extra = provider.rate_headers(default_rate(_state(request)))
    model = request.path_params.get("model")
    if model is None:
        return JSONResponse(provider.model_list(config.models), headers=extra)
    if config.resolve(model) is None:
        body = provider.unknown_model(model, config.models)
        return provider.respond_error(exchange.request_id, 404, body, extra)
    return JSONResponse(provider.model_card(model), headers=extra)


async def http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 in the provider's shape rather than Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    provider, exchange = provider_for(request.headers), _exchange(request)
    exchange.provider = exchange.provider or provider
    body = provider.not_found(request.method, request.url.path)
    if status != 404:
        body = provider.error(status, f"Method {request.method} is not allowed on {request.url.path}")
    return provider.respond_error(exchange.request_id, status, body)


def create_app(config: ServerConfig | None = None) -> Starlette:
    """The server as an ASGI app. ``request_log(app)`` reads what it has seen."""
    state = ServerState(config or ServerConfig())
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model}", list_models, methods=["GET"]),
    ]
    for provider in PROVIDERS:
        routes += [
            Route(endpoint.path, _endpoint(provider, endpoint), methods=["POST"])
            for endpoint in provider.endpoints
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
