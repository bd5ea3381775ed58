"""Feedback a learner can act on: short messages, each failure's own hint, one next step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from course.check import check
from course.grader import report
from course.grader.engine import Options, grade
from course.grader.feedback import DETAIL, full_part, short_part, shorten
from course.grader.layout import Course
from course.grader.sandbox import Limits
from course.layout import ROOT

FIXTURE = Path(__file__).parent / "fixtures" / "course"
SOLUTION = FIXTURE / "solutions" / "00_fixture.py"
EXERCISE = FIXTURE / "exercises" / "00_fixture.py"
COURSE = Course.at(FIXTURE)
LIMITS = Limits(exercise_timeout=5, notebook_timeout=30, total_timeout=120)


def test_introspection_and_addresses_move_behind_the_detail_marker() -> None:
    text = ("AssertionError: add(-2, -3) should be -5\nassert False\n"
            " +  where False = same(<nb_00_fixture.Total object at 0x7f3a2b1c>, -5)")
    message = shorten(text) + "\n(raised at line 9 of 00_fixture.py)"
    assert DETAIL in message
    assert short_part(message) == ("AssertionError: add(-2, -3) should be -5\n"
                                   "(raised at line 9 of 00_fixture.py)")
    assert "+  where" in full_part(message) and full_part(message).endswith("00_fixture.py)")


def test_a_bare_assert_keeps_its_comparison_and_loses_its_object_dumps() -> None:
    short = short_part(shorten("assert <nb_01_x.Box object at 0xdeadbeef> == 3\n +  where ..."))
    assert short == "assert <Box object> == 3"


def test_a_short_message_is_left_as_it_is() -> None:
    assert shorten("not written yet: Write add(): see the instructions above.") == (
        "not written yet: Write add(): see the instructions above.")


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> Options:
    return Options(limits=LIMITS, cache_dir=tmp_path_factory.mktemp("cache"))


def _with_hints(rep: report.Report) -> report.Report:
    from course.grader.cli import with_hints

    return with_hints(rep, COURSE)  # type: ignore[no-any-return]


def test_each_failure_shows_its_own_hint_and_the_report_ends_with_a_next_step(
    options: Options, tmp_path: Path
) -> None:
    text = SOLUTION.read_text().replace("return a + b", "return abs(a) + abs(b)")
    (tmp_path / "00_fixture.py").write_text(text)
    rep = _with_hints(grade(tmp_path, COURSE, options))
    table = report.table(rep)
    assert "Negative numbers add up too." in table  # test_add_negative's hint
    assert "Return the sum; do not print it." not in table  # the passing test's hint
    assert table.rstrip().splitlines()[-1].startswith("Next: fix test_add_negative (add)")


def test_an_untouched_chapter_is_one_line(options: Options) -> None:
    rep = _with_hints(grade(EXERCISE, COURSE, options))
    table = report.table(rep)
    assert "00_fixture  (00_fixture.py)  0/8  not started" in table
    assert "hint" not in table and "not written yet" not in table
    assert "Next: start with add" in table
    verbose = report.table(rep, verbose=True)
    assert "not written yet" in verbose and "hint: " in verbose


def test_check_in_a_notebook_says_not_started_and_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "00_fixture.py").write_text(EXERCISE.read_text())
    check("add", tmp_path, course=COURSE)
    out = capsys.readouterr().out
    assert "add: 0/3 (not started)" in out
    assert "Next: replace its `raise NotImplementedError`" in out


def test_course_check_verbose_shows_everything(tmp_path: Path) -> None:
    text = SOLUTION.read_text().replace("return a + b", "return abs(a) + abs(b)")
    (tmp_path / "00_fixture.py").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "course", "check", "--course-root", str(FIXTURE),
         "--target", str(tmp_path), "--verbose"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"add\(-\d+, -\d+\) should be -\d+", done.stdout), done.stdout
    assert "+  where" in done.stdout, "--verbose keeps pytest's explanation of the assert"
    assert "hint: Negative numbers add up too." in done.stdout
    short = subprocess.run(
        [sys.executable, "-m", "course", "check", "--course-root", str(FIXTURE),
         "--target", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert re.search(r"add\(-\d+, -\d+\) should be -\d+", short.stdout), short.stdout
    assert "+  where" not in short.stdout and "RemoteNotebook" not in short.stdout, short.stdout


def test_an_untouched_notebook_is_not_started_even_when_its_tests_fail_with_data() -> None:
    """Judged tests report a stub's failure as data ("expected ..., got ..."), not as
    NotImplementedError; the notebook's fingerprint still says nothing was written."""
    from course.grader.results import (
        RUNS_ID,
        UNTOUCHED_NOTE,
        ChapterResult,
        ExerciseResult,
        Report,
        TestVerdict,
    )

    failed = TestVerdict("t::x", "test_x", "alpha", 2, "failed", "AssertionError: expected 3, got {}")
    chapter = ChapterResult("01_demo", "01_demo.py", [
        ExerciseResult("alpha", "01_demo", 2, tests=[failed]),
        ExerciseResult(RUNS_ID, "01_demo", 1, note=f"{UNTOUCHED_NOTE}: no work to run",
                       earned_override=0),
    ])
    text = report.table(Report("01_demo.py", [chapter]))
    assert "01_demo  (01_demo.py)  0/3  not started" in text
    assert "expected 3" not in text
    assert text.rstrip().splitlines()[-1].startswith("Next: start with alpha in 01_demo.py")
