"""Notice when student code has changed pytest, the course plugin or Python's builtins.

The plugin takes a snapshot of the identity of every callable the verdict depends on
once the course's tests are collected, before any student code is loaded, and compares
after each test. A test that ran while any of them was replaced is not trusted, whatever
it reports. Functions are compared by identity *and* by their code object, so swapping
``__code__`` is seen too.

This stops monkeypatching from Python. It cannot stop code that reads or rewrites the
interpreter's memory (``ctypes``); running the tests in a different process from the
student's code would be the only cure for that, at a large cost in speed.
"""

from __future__ import annotations

import builtins
import sys
import types
from typing import Any

# Modules whose callables decide a test's outcome or carry the result to the grader.
WATCHED_MODULES = (
    "builtins",
    "os",
    "json",
    "pytest",
    "_pytest.runner",
    "_pytest.python",
    "_pytest.reports",
    "_pytest.outcomes",
    "_pytest.fixtures",
    "_pytest.main",
    "_pytest.nodes",
    "_pytest.skipping",
    "_pytest.assertion.rewrite",
    "_pytest.assertion.util",
    "pluggy._callers",
    "pluggy._hooks",
    "pluggy._manager",
    "pluggy._result",
    "course.pytest_plugin",
    "course.testing",
    "course.grader.channel",
    "course.grader.guard",
)
WATCHED_CLASSES = (
    ("_pytest.reports", "TestReport"),
    ("_pytest.reports", "BaseReport"),
    ("_pytest.runner", "CallInfo"),
    ("_pytest.python", "Function"),
    ("_pytest.nodes", "Item"),
    ("_pytest.nodes", "Node"),
    ("_pytest.outcomes", "OutcomeException"),
    ("_pytest.fixtures", "FixtureDef"),
    ("_pytest.fixtures", "FixtureRequest"),
    ("_pytest.fixtures", "SubRequest"),
    ("pluggy._hooks", "HookCaller"),
    ("pluggy._manager", "PluginManager"),
    ("pluggy._result", "Result"),
)
SYS_NAMES = ("exit", "modules")

Snapshot = dict[str, tuple[int, int]]
# Bound at import, before student code runs: patching the builtins cannot blind the guard.
_vars, _list, _callable, _isinstance, _id, _getattr = vars, list, callable, isinstance, id, getattr
_sorted, _hash, _tuple, _type = sorted, hash, tuple, type


def _key(value: Any) -> tuple[int, int]:
    code = _getattr(value, "__code__", None)
    return _id(value), _id(code) if _isinstance(code, types.CodeType) else 0


def _watch(value: Any) -> bool:
    return _callable(value) or _isinstance(value, (types.ModuleType, property, classmethod, staticmethod))


def take() -> Snapshot:
    snap: Snapshot = {}
    for name in WATCHED_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        snap[f"sys.modules[{name!r}]"] = _key(module)
        for attr, value in _list(_vars(module).items()):
            if _watch(value) and not attr.endswith("hook"):
                snap[f"{name}.{attr}"] = _key(value)
    for module_name, class_name in WATCHED_CLASSES:
        cls = _getattr(sys.modules.get(module_name), class_name, None)
        if _isinstance(cls, _type):
            for attr, value in _list(_vars(cls).items()):
                snap[f"{module_name}.{class_name}.{attr}"] = _key(value)
            # A new class attribute can shadow an inherited one (TestReport.passed).
            snap[f"{module_name}.{class_name} attributes"] = (_hash(_tuple(_sorted(_vars(cls)))), 0)
    for attr in SYS_NAMES:
        snap[f"sys.{attr}"] = _key(_getattr(sys, attr))
    snap["builtins.__dict__"] = _key(_vars(builtins))
    return snap


def changed(before: Snapshot) -> list[str]:
    """Names whose object changed since ``before`` (new names are not a concern)."""
    now = take()
    return _sorted(name for name, key in before.items() if now.get(name) != key)
