"""The request headers that steer the server, in one place (the docs print ``HEADERS``), and
``Controls``: all of them read once per request, so no other module looks at a header."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from course.llm_server.answers import STYLES, Style
from course.llm_server.scenarios import OK, Scenario, ScenarioError, parse_scenario

SCENARIO = "x-mock-scenario"
KEY = "x-mock-key"
REPLY = "x-mock-reply"
REPLY_STYLE = "x-mock-reply-style"
TOOL_CALLS = "x-mock-tool-calls"
REQUEST_ID = "x-request-id"

MOCK_PREFIX = "/mock/"
"""``/mock/<scenario>[@<key>]/v1/...``: the same controls, carried in a base URL, for client
code that takes a base URL but no extra headers."""

HEADERS: dict[str, str] = {
    "X-Mock-Scenario": "A scenario spec for this request, e.g. `fail_first:2:503`; "
    "overrides the server's default (`ok` clears it).",
    "X-Mock-Key": "The counter a stateful scenario (fail_first, rpm, rps) uses; "
    "give each test or lesson its own.",
    "X-Mock-Reply": "The answer text to return verbatim, e.g. a JSON object.",
    "X-Mock-Reply-Style": "How to wrap a scripted reply: plain (default), fence, prose, prose_fence.",
    "X-Mock-Tool-Calls": 'The tool calls to answer with, as JSON: `{"name": "f", "arguments": '
    "{...}}` or a list of them; arguments may be a string, even broken JSON, to test a "
    "client's validation. Used when the request offers tools and allows a call.",
    "X-Request-ID": "Echoed in the response and recorded in the request log (generated when absent).",
}


class ControlError(ValueError):
    """A control header that does not parse; ``header`` names it for the 400 body."""

    def __init__(self, message: str, header: str) -> None:
        super().__init__(message)
        self.header = header


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    arguments: str
    """The arguments exactly as the client will receive them (JSON text, maybe broken)."""


@dataclass(frozen=True)
class Controls:
    """What the client asked of the mock for this one request."""

    scenario: Scenario
    scenario_spec: str | None
    """The spec as given (header, URL prefix or server default); None when none was."""
    key: str | None
    reply: str | None
    reply_style: Style
    tool_calls: tuple[ScriptedCall, ...] | None


def text(headers: Headers, name: str) -> str | None:
    """Header text; a client may send UTF-8 bytes, which Starlette decodes as latin-1."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _tool_calls(raw: str) -> tuple[ScriptedCall, ...]:
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(f"X-Mock-Tool-Calls is not valid JSON: {exc}", TOOL_CALLS) from None
    items = data if isinstance(data, list) else [data]
    calls = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ControlError(
                f'X-Mock-Tool-Calls item {index} needs a "name" (and optional "arguments").',
                TOOL_CALLS,
            )
        arguments = item.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(ScriptedCall(item["name"], arguments))
    if not calls:
        raise ControlError("X-Mock-Tool-Calls is an empty list: name at least one call.", TOOL_CALLS)
    return tuple(calls)


def parse_controls(
    headers: Headers, default_scenario: str | None, url_scenario: str | None, url_key: str | None
) -> Controls:
    """Read every control header; raise ControlError naming the first one that is wrong."""
    spec = text(headers, SCENARIO) or url_scenario or default_scenario
    try:
        scenario = parse_scenario(spec) if spec else OK
    except ScenarioError as exc:
        raise ControlError(str(exc), SCENARIO) from None
    style = (text(headers, REPLY_STYLE) or "plain").strip()
    if style not in STYLES:
        message = f"Unknown X-Mock-Reply-Style '{style}'. Known: {', '.join(STYLES)}."
        raise ControlError(message, REPLY_STYLE)
    calls = text(headers, TOOL_CALLS)
    return Controls(
        scenario=scenario,
        scenario_spec=scenario.spec if spec else None,
        key=text(headers, KEY) or url_key,
        reply=text(headers, REPLY),
        reply_style=style,
        tool_calls=_tool_calls(calls) if calls is not None else None,
    )
