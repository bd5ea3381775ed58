"""Probes: the only way a judged test touches a learner's notebook.

A graded test is split in two. The **probe** runs the learner's code and returns what it
saw as plain data; the **test** asserts on that data::

    @probe
    def probe_tokens(nb, text):
        provider = nb.OpenAIProvider("gpt-4o-mini")
        return {"tokens": provider.count_tokens(text), "blank": raised(nb.OpenAIProvider, " ")}

    @exercise("providers", points=1, hint="Count words with str.split().")
    def test_counts_words(notebook):
        words = random_words(7)
        got = probe_tokens(notebook, " ".join(words))
        assert_same(got["tokens"], 7, "count_tokens")

When the grader runs the test, the probe runs in a sandboxed worker process and only its
JSON-encoded return value comes back; the assertions run in the judge, which never
imports the notebook. So a probe returns data (dicts, lists, str, int, float, bool,
None; tuples arrive as lists) and never a learner's object; arguments are data too.
Code that needs state across several steps does all the steps in one probe.

Probes may be ``async def``; helpers here (:func:`raised`, :func:`shown`) are for use
inside probes, where they run on the learner's side.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def probe(function: F) -> F:
    """Make ``function(nb, *args)`` a probe: called with a test's ``notebook``, it runs remotely."""

    @functools.wraps(function)
    def call(notebook: Any, *args: Any) -> Any:
        run_probe = getattr(notebook, "run_probe", None)
        if run_probe is None or isinstance(notebook, types.ModuleType):
            raise TypeError(f"{function.__name__} is a probe: call it with a test's `notebook` "
                            "fixture, which runs it in a worker")
        return run_probe(function, _as_data(list(args)))

    return call  # type: ignore[return-value]


def _as_data(value: Any) -> Any:
    """A JSON round trip: what the test sees is exactly what would cross from a worker."""
    return json.loads(json.dumps(value))


def raised(function: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, str] | None:
    """Call ``function``; the exception it raised as ``{"type", "message"}``, or None."""
    try:
        function(*args, **kwargs)
    except Exception as exc:
        return {"type": type(exc).__name__, "message": shown(exc, str)}
    return None


async def araised(awaitable: Any) -> dict[str, str] | None:
    """:func:`raised` for an awaitable."""
    try:
        await awaitable
    except Exception as exc:
        return {"type": type(exc).__name__, "message": shown(exc, str)}
    return None


def shown(value: Any, how: Callable[[Any], str] = repr, limit: int = 400) -> str:
    """``repr`` (or ``how``) of a learner's value, capped, and never raising."""
    try:
        text = how(value)
        if type(text) is not str:
            text = "(not a string)"
    except Exception as exc:
        text = f"(could not be shown: {type(exc).__name__})"
    return text if len(text) <= limit else text[:limit] + " [...]"


def plain(value: Any) -> Any:
    """A learner's scalar as data: itself if it is exactly a built-in scalar, else shown."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return f"(a {type(value).__name__}) {shown(value)}"


def as_data(value: Any) -> Any:
    """A learner's value as data if it is exactly plain data all the way down, else shown."""
    from course.grader.worker import NotData, to_data

    try:
        return to_data(value)
    except NotData:
        return f"(not plain data) {shown(value)}"


def kind(value: Any) -> str:
    """The exact type's name (``type(value).__name__``), for tests that check types."""
    return type(value).__name__
