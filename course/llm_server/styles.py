"""How each provider says no: error bodies, authentication and rate-limit headers.

OpenAI: ``{"error": {"message", "type", "param", "code"}}``, key in ``Authorization: Bearer``.
Anthropic: ``{"type": "error", "error": {"type", "message"}, "request_id"}``, key in
``x-api-key``, plus a required ``anthropic-version`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import ValidationError

from course.llm_server.config import ServerConfig
from course.llm_server.faults import RateInfo, Rejection

Body = dict[str, Any]

GATEWAY_HTML = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
"""A 502 comes from the proxy in front of the API, not from the API: HTML, not JSON."""

GATEWAY_STATUSES = frozenset({502})


def mask(key: str) -> str:
    return key[:3] + "*" * max(4, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)


class ApiStyle:
    name = ""

    def error(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> Body:
        raise NotImplementedError

    def check_auth(self, headers: Mapping[str, str], config: ServerConfig) -> tuple[int, Body] | None:
        raise NotImplementedError

    def invalid_body(self, exc: ValidationError) -> Body:
        raise NotImplementedError

    def rejection(self, rejection: Rejection, model: str) -> Body:
        raise NotImplementedError

    def rate_headers(self, rate: RateInfo) -> dict[str, str]:
        raise NotImplementedError

    def not_found(self, method: str, path: str) -> Body:
        raise NotImplementedError

    def unknown_model(self, model: str) -> Body:
        raise NotImplementedError


def _loc(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"])


def _is_json_error(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors())


class OpenAIStyle(ApiStyle):
    name = "openai"
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
        if _is_json_error(exc):
            return self.error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)",
            )
        first = exc.errors()[0]
        loc = _loc(first)
        if first["type"] == "missing":
            return self.error(
                400, f"Missing required parameter: '{loc}'.", param=loc, code="missing_required_parameter"
            )
        if first["type"] == "extra_forbidden":
            return self.error(400, f"Unrecognized request argument supplied: {loc}", param=loc)
        return self.error(400, f"Invalid value for '{loc}': {first['msg']}.", param=loc, code="invalid_value")

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
        }

    def not_found(self, method: str, path: str) -> Body:
        return self.error(404, f"Invalid URL ({method} {path})")

    def unknown_model(self, model: str) -> Body:
        return self.error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )


class AnthropicStyle(ApiStyle):
    name = "anthropic"
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

    def check_auth(self, headers: Mapping[str, str], config: ServerConfig) -> tuple[int, Body] | None:
        key = headers.get("x-api-key", "").strip()
        if not key:
            return 401, self.error(401, "x-api-key header is required")
        if config.api_key and key != config.api_key:
            return 401, self.error(401, "invalid x-api-key")
        if config.require_anthropic_version and not headers.get("anthropic-version"):
            return 400, self.error(400, "anthropic-version: header is required")
        return None

    def invalid_body(self, exc: ValidationError) -> Body:
        if _is_json_error(exc):
            return self.error(
                400, "There was an error parsing the body of your request: it is not valid JSON."
            )
        first = exc.errors()[0]
        message = "Field required" if first["type"] == "missing" else first["msg"]
        if first["type"] == "extra_forbidden":
            message = "Extra inputs are not permitted"
        return self.error(400, f"{_loc(first)}: {message}")

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
        reset = datetime.now(UTC) + timedelta(seconds=max(rate.reset, 0))
        return {
            "anthropic-ratelimit-requests-limit": str(rate.limit),
            "anthropic-ratelimit-requests-remaining": str(max(rate.remaining, 0)),
            "anthropic-ratelimit-requests-reset": reset.isoformat(timespec="seconds"),
        }

    def not_found(self, method: str, path: str) -> Body:
        return self.error(404, f"Not found: {method} {path}")

    def unknown_model(self, model: str) -> Body:
        return self.error(404, f"model: {model}")


OPENAI = OpenAIStyle()
ANTHROPIC = AnthropicStyle()


def style_for(headers: Mapping[str, str]) -> ApiStyle:
    """Shared paths (/v1/models, unknown URLs) answer in the style the client speaks."""
    if "x-api-key" in headers or "anthropic-version" in headers:
        return ANTHROPIC
    return OPENAI


def gateway_html(status: int, phrase: str) -> str:
    return GATEWAY_HTML.format(status=status, phrase=phrase)
