"""The peers' copy of chapter 1's tests (benchmarks/peers/chapter1_checks.py) still matches
the course's: the same graded tests, each under the same exercise and worth the same points.
Otherwise ``make bench-peers`` would compare graders running different work. Parsing only:
the benchmark itself runs on request, not here."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def course_tests() -> dict[str, tuple[str, int]]:
    """test name -> (exercise, points), from the @exercise decorators of the course's tests."""
    module = ast.parse((ROOT / "tests" / "test_01_classes.py").read_text(encoding="utf-8"))
    found = {}
    for node in module.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "exercise":
                points = next(k.value for k in decorator.keywords if k.arg == "points")
                found[node.name] = (ast.literal_eval(decorator.args[0]), ast.literal_eval(points))
    return found


def test_peer_checks_rebuild_every_graded_test_of_chapter_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = importlib.util.spec_from_file_location("peer_build", ROOT / "benchmarks/peers/build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "peer_build", build)  # its dataclass looks itself up there
    spec.loader.exec_module(build)
    helpers, tests = build.read_checks()
    rebuilt = {t.name: (t.exercise, t.points) for t in tests}
    assert rebuilt == course_tests()
    assert "def tiny_provider" in helpers and "def graded" not in helpers
