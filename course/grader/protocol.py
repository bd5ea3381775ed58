"""What crosses between the judge and a worker: one line of JSON at a time, both ways.

The judge runs the course's tests and decides every outcome; it never imports a
submission. A worker runs the submission's code in the sandbox and answers the judge's
requests with plain data. Anything a worker sends is the student's to forge, so the
judge reads it as untrusted bytes: a capped line, parsed by ``json`` (linear, no object
hooks), then checked for shape, types and depth before any test sees it. Nothing
richer than JSON (no pickle, no live objects) ever crosses.

Requests (judge to worker)::

    {"call": 7, "module": "tests/test_01_classes.py", "probe": "probe_repr", "args": [...]}

Replies (worker to judge), answering the request with the same ``call``::

    {"call": 7, "value": <data>}
    {"call": 7, "error": {"type": "ValueError", "message": "...", "where": "line 12 of 01_classes.py"}}

The first reply, with ``call`` 0, says the worker has started: ``{"call": 0, "value": "ready"}``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, TypedDict

MAX_LINE = 4 * 2**20  # a reply longer than this is refused, whatever it holds
MAX_DEPTH = 40  # nesting of lists and dicts in one value
MAX_TEXT = 4000  # an error's message, as the judge keeps it
READY = "ready"

Data = None | bool | int | float | str | list["Data"] | dict[str, "Data"]


class Request(TypedDict):
    call: int
    module: str  # the test file that defines the probe, relative to the tests' root
    probe: str  # the probe's name in that module
    args: list[Data]


class ErrorInfo(TypedDict):
    type: str  # the exception's class name, as the submission's code raised it
    message: str
    where: str  # the deepest line of the notebook in the traceback, or ""


class Reply(TypedDict, total=False):
    call: int
    value: Data
    error: ErrorInfo


class Ending(StrEnum):
    """How a worker stopped answering, as the judge tells a test."""

    CRASHED = "crashed"  # the process ended (exit, signal, memory)
    TIMEOUT = "timeout"  # no reply within the time left to the exercise
    GARBLED = "garbled"  # it sent something that is not a valid reply


class ProtocolError(Exception):
    """A worker's line is not a valid reply; the message says what is wrong with it."""


def encode(message: Request | Reply) -> bytes:
    return json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


def decode_reply(line: bytes, expected_call: int) -> Reply:
    """Parse and check one line from a worker. Raises ProtocolError."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a reply of {len(line)} bytes (at most {MAX_LINE})")
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a reply that is not JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or set(raw) - {"call", "value", "error"}:
        raise ProtocolError("a reply that is not an object of call, value and error")
    if type(raw.get("call")) is not int or raw["call"] != expected_call:
        raise ProtocolError(f"a reply to call {raw.get('call')!r}, expected {expected_call}")
    if ("value" in raw) == ("error" in raw):
        raise ProtocolError("a reply must hold exactly one of value and error")
    if "error" in raw:
        return {"call": expected_call, "error": _error_info(raw["error"])}
    check_data(raw["value"])
    return {"call": expected_call, "value": raw["value"]}


def _error_info(raw: Any) -> ErrorInfo:
    if not isinstance(raw, dict) or set(raw) != {"type", "message", "where"}:
        raise ProtocolError("an error reply must hold type, message and where")
    if not all(type(raw[key]) is str for key in raw):
        raise ProtocolError("an error reply's type, message and where must be strings")
    return {"type": raw["type"][:200], "message": raw["message"][:MAX_TEXT],
            "where": raw["where"][:200]}


def check_data(value: Any) -> None:
    """Check that ``value`` is plain JSON data no deeper than MAX_DEPTH, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ProtocolError(f"a value nested deeper than {MAX_DEPTH} levels")
        kind = type(item)
        if kind is list:
            stack.extend((child, depth + 1) for child in item)
        elif kind is dict:
            stack.extend((child, depth + 1) for child in item.values())
        elif kind not in (str, int, float, bool, type(None)):
            raise ProtocolError(f"a value of type {kind.__name__}")
