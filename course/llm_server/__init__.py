"""The course's local LLM API server: OpenAI- and Anthropic-style endpoints, deterministic
answers, faults on demand and a request log, with no API key and no internet.

Endpoints: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings`` (OpenAI style),
``/v1/messages`` and ``/v1/messages/count_tokens`` (Anthropic style), ``/v1/models``,
``/health``; tool calls and structured output in both formats, plain and streamed. The
official ``openai`` and ``anthropic`` packages work against it with only ``base_url`` set.
Each provider's knowledge lives in ``providers/`` (one module per API); what a model
answers is decided provider-neutrally in ``reply.py``.

    from course.llm_server import LLMServer

    with LLMServer() as server:
        response = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {server.api_key}"},
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Hi"}]},
        )

Per-request control is by header (``HEADERS``); the faults are named in ``SCENARIOS``.
In-process tests use ``httpx.ASGITransport(app=create_app())`` and ``request_log(app)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from course.llm_server.cli import register

if TYPE_CHECKING:
    from course.llm_server.answers import STYLES, count_tokens, wrap
    from course.llm_server.app import create_app, request_log, server_state
    from course.llm_server.config import CHAT_MODELS, EMBEDDING_MODELS, ServerConfig
    from course.llm_server.exchange import StreamDropped
    from course.llm_server.headers import HEADERS
    from course.llm_server.log import RequestLog, RequestRecord
    from course.llm_server.runner import LLMServer
    from course.llm_server.scenarios import SCENARIOS, ScenarioError, parse_scenario

# Where each public name lives. They are imported on first use: the web application
# takes a quarter of a second to import, and every `course` command imports this
# package for `register` (`course check` should not pay for a server it never starts).
_HOMES = {
    "STYLES": "answers", "count_tokens": "answers", "wrap": "answers",
    "create_app": "app", "request_log": "app", "server_state": "app",
    "CHAT_MODELS": "config", "EMBEDDING_MODELS": "config", "ServerConfig": "config",
    "StreamDropped": "exchange", "HEADERS": "headers", "RequestLog": "log",
    "RequestRecord": "log", "LLMServer": "runner", "SCENARIOS": "scenarios",
    "ScenarioError": "scenarios", "parse_scenario": "scenarios",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CHAT_MODELS",
    "EMBEDDING_MODELS",
    "HEADERS",
    "SCENARIOS",
    "STYLES",
    "LLMServer",
    "RequestLog",
    "RequestRecord",
    "ScenarioError",
    "ServerConfig",
    "StreamDropped",
    "count_tokens",
    "create_app",
    "parse_scenario",
    "register",
    "request_log",
    "server_state",
    "wrap",
]
