"""The pytest side of the course: the ``--target`` switch, exercise metadata, reports.

Exercise tests live in ``tests/test_<slug>.py`` and take the ``notebook`` fixture, which
is the chapter's exercise notebook loaded from the current target. Each graded test is
marked with the exercise it belongs to, its points and a hint::

    @exercise("provider_registry", points=2, hint="Look at __init_subclass__.")
    def test_subclasses_register_themselves(notebook): ...
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from course.notebook import NotebookError
from course.targets import TARGET_ENV, load_exercise, resolve_target

F = TypeVar("F", bound=Callable[..., Any])
MARKER = "exercise"


def exercise(exercise_id: str, *, points: int = 1, hint: str = "") -> Callable[[F], F]:
    """Mark a test as graded: it belongs to ``exercise_id`` and earns ``points``."""
    if points < 1:
        raise ValueError("a graded test is worth at least one point")
    marker: Callable[[F], F] = getattr(pytest.mark, MARKER)(exercise_id, points=points, hint=hint)
    return marker


@dataclass
class TestResult:
    nodeid: str
    exercise: str | None
    points: int
    hint: str
    outcome: str  # passed, failed, error or skipped
    message: str = ""


def graded_info(item: pytest.Item) -> tuple[str | None, int, str]:
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None, 0, ""
    return str(mark.args[0]), int(mark.kwargs.get("points", 1)), str(mark.kwargs.get("hint", ""))


def chapter_slug(module_name: str) -> str:
    """``tests/test_01_classes.py`` tests the chapter ``01_classes``."""
    return module_name.rsplit(".", 1)[-1].removeprefix("test_")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course")
    group.addoption(
        "--target",
        default=None,
        help=f"solutions (default), exercises, or a path to a submission; also ${TARGET_ENV}",
    )
    group.addoption("--course-report", default=None, help="write per-test results as JSON here")
    group.addoption(
        "--exercise", action="append", default=[], help="run only the tests of this exercise id"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(id, points, hint): a graded exercise test")
    config.stash[_results_key] = []


_results_key = pytest.StashKey[list[TestResult]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(config.getoption("--exercise"))
    if not wanted:
        return
    keep = [item for item in items if graded_info(item)[0] in wanted]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


@pytest.fixture
def notebook(request: pytest.FixtureRequest) -> types.ModuleType:
    """The exercise notebook of this test file's chapter, freshly loaded from the target."""
    slug = chapter_slug(request.module.__name__)
    try:
        target = resolve_target(request.config.getoption("--target"))
        return load_exercise(slug, target)
    except NotebookError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Any:
    report: pytest.TestReport = yield
    exercise_id, points, hint = graded_info(item)
    failed_setup = report.when == "setup" and not report.passed
    if report.when == "call" or failed_setup:
        outcome = report.outcome if report.when == "call" else ("skipped" if report.skipped else "error")
        message = _short_message(call.excinfo) if call.excinfo else ""
        item.config.stash[_results_key].append(
            TestResult(item.nodeid, exercise_id, points, hint, outcome, message)
        )
    return report


def _short_message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    exc = excinfo.value
    if isinstance(exc, NotImplementedError):
        return f"not written yet: {exc}"
    text = excinfo.exconly(tryshort=True).strip()
    return text if len(text) < 2000 else text[:2000] + " [...]"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--course-report")
    if path:
        results = [asdict(r) for r in session.config.stash[_results_key]]
        Path(path).write_text(json.dumps(results, indent=2), encoding="utf-8")
