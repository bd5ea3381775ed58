"""Helpers for writing exercise tests that a clever submission cannot fool.

``assert notebook.add(1, 2) == 3`` passes when ``add`` returns an object whose ``__eq__``
always says yes. :func:`same` first checks that the types match exactly (``bool`` is not
``int``, a subclass of ``str`` is not ``str``), recursively through lists, tuples, dicts
and sets, and only then compares values: for built-in types the comparison is then
Python's own, which a submission cannot override.

    from course.testing import same
    assert same(notebook.count_tokens("a b"), 2), "count_tokens('a b') should be 2"
"""

from __future__ import annotations

import math
from typing import Any

# Bound at import, before any student code runs, so replacing the builtins later has no effect.
_type, _len, _isinstance, _all, _any, _list = type, len, isinstance, all, any, list


def same(actual: Any, expected: Any) -> bool:
    """True when ``actual`` has exactly the type of ``expected`` (all the way down) and equals it."""
    if _type(actual) is not _type(expected):
        return False
    if _isinstance(expected, (list, tuple)):
        return _len(actual) == _len(expected) and _all(
            same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if _isinstance(expected, dict):
        if _len(actual) != _len(expected):
            return False
        pairs = _list(expected.items())
        return _all(_any(same(ka, ke) and same(va, ve) for ke, ve in pairs)
                    for ka, va in actual.items())
    if _isinstance(expected, (set, frozenset)):
        items = _list(expected)
        return _len(actual) == _len(expected) and _all(
            _any(same(a, e) for e in items) for a in actual
        )
    if _isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    return bool(expected == actual)


def assert_same(actual: Any, expected: Any, what: str = "the result") -> None:
    """Like ``assert same(...)``, with a message that names both values and their types."""
    if not same(actual, expected):
        raise AssertionError(
            f"{what}: expected {expected!r} ({_type(expected).__name__}), "
            f"got {actual!r} ({_type(actual).__name__})"
        )
