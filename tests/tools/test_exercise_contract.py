"""The contract every chapter keeps: files paired by slug, and no test that passes on a stub.

The exercise tests themselves run against ``solutions/`` in the main test run, where all
must pass. Here they run once more against the untouched exercises, where every one must
fail: a test that passes on a stub would hand out points for no work. "Untouched" means
what ``course generate`` writes from ``solutions/``, not the files in ``exercises/``,
which a learner fills in: this check must not fail because someone did the exercises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from course.authoring.generate import expected_exercises
from course.grader import runner
from course.layout import ROOT

EXERCISE_TESTS = sorted((ROOT / "tests").glob("test_*.py"))
SLUGS = [path.stem.removeprefix("test_") for path in EXERCISE_TESTS]


def test_there_are_chapters_with_exercises() -> None:
    assert SLUGS, "no tests/test_<slug>.py found"


@pytest.mark.parametrize("slug", SLUGS)
def test_each_chapter_has_its_files(slug: str) -> None:
    for folder in ("chapters", "solutions", "exercises"):
        assert (ROOT / folder / f"{slug}.py").is_file(), f"{folder}/{slug}.py is missing"


@pytest.fixture(scope="module")
def stub_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    folder = tmp_path_factory.mktemp("stubs")
    for path, text in expected_exercises(ROOT).items():
        (folder / path.name).write_text(text, encoding="utf-8")
    report = folder / "report.json"
    subprocess.run(
        runner.command(sys.executable, ROOT / "pyproject.toml", ROOT, *map(str, EXERCISE_TESTS),
                       "-q", "--target", str(folder), "--course-report", str(report)),
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )
    results: list[dict[str, object]] = json.loads(report.read_text(encoding="utf-8"))
    return results


def test_every_exercise_test_is_graded(stub_results: list[dict[str, object]]) -> None:
    ungraded = [r["nodeid"] for r in stub_results if r["exercise"] is None]
    assert not ungraded, f"tests without @exercise(...): {ungraded}"


@pytest.mark.parametrize("slug", SLUGS)
def test_every_graded_test_fails_on_the_stubs(
    slug: str, stub_results: list[dict[str, object]]
) -> None:
    mine = [r for r in stub_results if str(r["nodeid"]).startswith(f"tests/test_{slug}.py::")]
    assert mine, f"no graded test ran for {slug}"
    passing = [r["nodeid"] for r in mine if r["outcome"] == "passed"]
    assert not passing, f"these tests pass on the untouched exercise: {passing}"


def test_exercise_ids_are_unique_across_chapters(stub_results: list[dict[str, object]]) -> None:
    owner: dict[str, str] = {}
    for result in stub_results:
        chapter = Path(str(result["nodeid"]).split("::")[0]).stem
        exercise = str(result["exercise"])
        assert owner.setdefault(exercise, chapter) == chapter, (
            f"exercise id {exercise!r} is used by both {owner[exercise]} and {chapter}"
        )
