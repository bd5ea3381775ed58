"""What every provider module supplies: its endpoints, how it checks a key, how it says no
(error bodies, rate-limit headers) and how it lists models. The app knows only this class.

A provider module holds all of one API's knowledge: request bodies, response shapes, errors
and auth. What the model answers is decided once, provider-neutrally, in ``reply.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import JSONResponse

from course.llm_server.config import ModelKind, ServerConfig
from course.llm_server.faults import RateInfo, Rejection
from course.llm_server.reply import Context, Output

Body = dict[str, Any]

GATEWAY_HTML = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
"""A 502 comes from the proxy in front of the API, not from the API: HTML, not JSON."""

GATEWAY_STATUSES = frozenset({502})


def gateway_html(status: int, phrase: str) -> str:
    return GATEWAY_HTML.format(status=status, phrase=phrase)


def mask(key: str) -> str:
    return key[:3] + "*" * max(4, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)


# --- request bodies -------------------------------------------------------------------------


class RequestBody(BaseModel):
    """A top-level request body. Known parameters are type-checked strictly (a wrong value is
    a 400 naming it); unknown ones are accepted, as the real APIs add parameters faster than
    any mock, and recorded in the request log so a typo is still visible."""

    model_config = ConfigDict(extra="allow", strict=True)

    @property
    def unknown_params(self) -> tuple[str, ...]:
        return tuple(sorted(self.model_extra or {}))


class Part(BaseModel):
    """A nested object (a message, a content block): extra fields allowed, as they evolve
    fastest upstream."""

    model_config = ConfigDict(extra="allow", strict=True)


@dataclass(frozen=True)
class Endpoint:
    path: str
    request: type[RequestBody]
    build: Callable[[Any, Context], Output]
    """Turns the validated body into the response (``Context`` carries the rest)."""
    models: ModelKind = "chat"


def loc(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"])


def is_json_error(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors())


class Provider(ABC):
    name: ClassVar[str]
    endpoints: ClassVar[tuple[Endpoint, ...]]
    request_id_header: ClassVar[str | None] = None
    """A second header that echoes the request ID, besides ``x-request-id``."""

    @abstractmethod
    def error(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> Body: ...

    @abstractmethod
    def check_auth(self, headers: Mapping[str, str], config: ServerConfig) -> tuple[int, Body] | None:
        """None when the request may go on, else (status, error body)."""

    @abstractmethod
    def invalid_body(self, exc: ValidationError) -> Body: ...

    @abstractmethod
    def rejection(self, rejection: Rejection, model: str) -> Body: ...

    @abstractmethod
    def rate_headers(self, rate: RateInfo) -> dict[str, str]: ...

    @abstractmethod
    def not_found(self, method: str, path: str) -> Body: ...

    @abstractmethod
    def unknown_model(self, model: str, known: tuple[str, ...]) -> Body: ...

    @abstractmethod
    def model_list(self, models: tuple[str, ...]) -> Body: ...

    @abstractmethod
    def model_card(self, model: str) -> Body: ...

    def respond_error(
        self, request_id: str, status: int, body: Body, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))
