"""The grader on honest input: full marks, zero, the four formats, bad input, the
student-side commands, the signed channel, the tamper guard, the Gradescope bundle.

Hostile submissions are in ``test_grader_hostile.py``. Everything here runs against the
small fixture course in ``fixtures/course`` (three exercises, eight points), except one
test that grades every real chapter's solutions and exercises.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import pytest

from course.authoring.generate import expected_exercises
from course.check import check
from course.grader import guard, report
from course.grader.channel import RecordReader, make_writer
from course.grader.discover import SubmissionError, chapter_for
from course.grader.engine import Options, grade
from course.grader.layout import Course
from course.grader.results import Report
from course.grader.sandbox import SANDBOX_ENV, Limits
from course.layout import ROOT
from course.testing import same

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "course"
SOLUTION = FIXTURE / "solutions" / "00_fixture.py"
EXERCISE = FIXTURE / "exercises" / "00_fixture.py"
COURSE = Course.at(FIXTURE)
LIMITS = Limits(exercise_timeout=5, notebook_timeout=30, total_timeout=120)


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> Options:
    return Options(limits=LIMITS, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def solved(options: Options) -> Report:
    return grade(SOLUTION, COURSE, options)


def _earned(rep: Report) -> dict[str, int]:
    return {e.id: e.earned for e in rep.exercises()}


def _course_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "course", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)


# -- the verdict ------------------------------------------------------------------------

def test_the_solution_gets_full_marks(solved: Report) -> None:
    assert (solved.earned, solved.points) == (8, 8)
    assert _earned(solved) == {"add": 3, "greet": 1, "counter": 3, "runs_top_to_bottom": 1}


def test_the_untouched_exercise_gets_zero(options: Options) -> None:
    rep = grade(EXERCISE, COURSE, options)
    assert (rep.earned, rep.points) == (0, 8)
    assert {e.status for e in rep.exercises() if e.id != "runs_top_to_bottom"} == {"not started"}


def test_the_stub_notebook_also_fails_to_run_on_its_own(options: Options, tmp_path: Path) -> None:
    # Not only because it is recognised as untouched: its demo cells call the stubs.
    edited = tmp_path / "00_fixture.py"
    edited.write_text(EXERCISE.read_text() + "\n# %%\nprint('an edit')\n")
    rep = grade(edited, COURSE, options)
    runs = next(e for e in rep.exercises() if e.id == "runs_top_to_bottom")
    assert runs.earned == 0
    assert "NotImplementedError" in runs.note


def test_a_partial_answer_earns_partial_points(options: Options, tmp_path: Path) -> None:
    text = SOLUTION.read_text().replace("return a + b", "return abs(a) + abs(b)")
    (tmp_path / "00_fixture.ipynb").write_text(_as_ipynb(text))
    rep = grade(tmp_path, COURSE, options)
    add = next(e for e in rep.exercises() if e.id == "add")
    assert (add.earned, add.points, add.status) == (1, 3, "partial")
    failed = add.failures()[0]
    assert failed.name == "test_add_negative"
    assert re.search(r"add\(-\d+, -\d+\) should be -\d+", failed.message), failed.message
    assert "Negative numbers add up too." in add.hint


def _as_ipynb(py_text: str) -> str:
    import jupytext
    import nbformat

    return str(nbformat.writes(jupytext.reads(py_text, fmt="py:percent")))


def test_every_real_chapter_scores_zero_on_its_untouched_exercises(tmp_path: Path) -> None:
    """Full marks for every chapter's solutions are proven once, through a student
    release and its grader-only tests (tests/tools/test_release.py)."""
    course = Course.at()
    stubs = tmp_path / "exercises"  # as generated: exercises/ may hold someone's work
    stubs.mkdir()
    for path, text in expected_exercises(course.root).items():
        (stubs / path.name).write_text(text, encoding="utf-8")
    rep = grade(stubs, course, Options(cache_dir=tmp_path))
    assert {c.slug for c in rep.chapters} == set(course.chapters), rep.problems
    assert rep.earned == 0, report.table(rep)
    assert {e.status for c in rep.chapters for e in c.exercises} == {"not started"}


# -- the four formats -------------------------------------------------------------------

def test_table(solved: Report) -> None:
    text = report.render(solved, "table")
    assert "00_fixture  (00_fixture.py)  8/8" in text
    assert "notebook runs top to bottom" in text
    assert "Total: 8/8" in text


def test_json(solved: Report) -> None:
    data = json.loads(report.render(solved, "json"))
    assert (data["score"], data["max_score"]) == (8, 8)
    ex = data["chapters"][0]["exercises"][0]
    assert {"id", "points", "earned", "status", "hint", "tests"} <= set(ex)
    assert ex["tests"][0]["status"] == "passed"


def _check_gradescope(data: dict[str, Any]) -> None:
    """The fields Gradescope documents for results.json, with their types and values."""
    assert isinstance(data["score"], (int, float))
    assert isinstance(data.get("execution_time", 0), (int, float))
    assert isinstance(data["output"], str)
    assert data["visibility"] in report.GRADESCOPE_VISIBILITY
    assert data.get("stdout_visibility", "hidden") in report.GRADESCOPE_VISIBILITY
    for test in data["tests"]:
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["score"], (int, float))
        assert isinstance(test["max_score"], (int, float))
        assert 0 <= test["score"] <= test["max_score"]
        assert isinstance(test["output"], str)
        assert test["visibility"] in report.GRADESCOPE_VISIBILITY
        assert test.get("status", "passed") in report.GRADESCOPE_STATUS
    assert data["score"] == sum(t["score"] for t in data["tests"])


def test_gradescope(solved: Report, options: Options) -> None:
    data = json.loads(report.render(solved, "gradescope"))
    _check_gradescope(data)
    assert data["score"] == 8 and len(data["tests"]) == 4
    failing = json.loads(report.render(grade(EXERCISE, COURSE, options), "gradescope"))
    _check_gradescope(failing)
    add = failing["tests"][0]
    assert add["status"] == "failed" and add["output"] == "add: 0/3 (not started)"


def test_junit(options: Options) -> None:
    rep = grade(EXERCISE, COURSE, options)
    root = ET.fromstring(report.render(rep, "junit"))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "00_fixture"
    cases = suite.findall("testcase")
    assert len(cases) == 6 and suite.get("tests") == "6" and suite.get("failures") == "6"
    failure = cases[0].find("failure")
    assert failure is not None and "not written yet" in (failure.text or "")
    assert cases[0].get("classname") == "00_fixture.add"


def test_junit_survives_control_characters() -> None:
    from course.grader.results import ChapterResult, ExerciseResult, TestVerdict

    verdict = TestVerdict("id", "t\x00", "add", 1, "failed", "bad \x1b[31m\x00 bytes")
    rep = Report("s", [ChapterResult("00_fixture", "x.py", [ExerciseResult("add", "00", 1,
                                                                           tests=[verdict])])])
    ET.fromstring(report.render(rep, "junit"))


# -- bad input --------------------------------------------------------------------------

def test_an_empty_zip(tmp_path: Path, options: Options) -> None:
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    rep = grade(path, COURSE, options)
    assert rep.chapters == [] and "the zip is empty" in rep.problems[0]


def test_not_a_zip(tmp_path: Path, options: Options) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(SubmissionError, match="not a readable zip"):
        grade(path, COURSE, options)


def test_a_notebook_that_is_not_json(tmp_path: Path, options: Options) -> None:
    path = tmp_path / "00_fixture.ipynb"
    path.write_text("{ this is not json")
    rep = grade(path, COURSE, options)
    assert rep.earned == 0 and rep.points == 8
    assert "not a valid .ipynb notebook" in rep.chapters[0].problems[0]


def test_a_py_file_that_is_not_a_notebook(tmp_path: Path, options: Options) -> None:
    path = tmp_path / "00_fixture.py"
    path.write_text("def add(a, b):\n    return a + b\n")
    rep = grade(path, COURSE, options)
    assert rep.earned == 0
    assert "without '# %%' cell markers" in rep.chapters[0].problems[0]


def test_a_chapter_that_does_not_exist(tmp_path: Path, options: Options) -> None:
    (tmp_path / "99_nope.py").write_text("# %%\nx = 1\n")
    rep = grade(tmp_path, COURSE, Options(limits=LIMITS, cache_dir=options.cache_dir,
                                         chapters=("99_nope",)))
    text = " ".join(rep.problems)
    assert "99_nope.py: not an exercise notebook of this course" in text
    assert "99_nope: no such chapter" in text
    assert "no exercise notebook found" in text
    assert rep.chapters == []


def test_an_expected_chapter_not_submitted(tmp_path: Path, options: Options) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    rep = grade(tmp_path, COURSE, Options(limits=LIMITS, cache_dir=options.cache_dir,
                                         chapters=("00_fixture",)))
    assert (rep.earned, rep.points) == (0, 8)
    assert "no notebook submitted" in rep.chapters[0].problems[0]


def test_a_syntax_error(tmp_path: Path, options: Options) -> None:
    path = tmp_path / "00_fixture.py"
    path.write_text(SOLUTION.read_text().replace("return a + b", "return a +* b"))
    rep = grade(path, COURSE, options)
    assert rep.earned == 0
    test = rep.exercises()[0].tests[0]
    assert test.status == "error"
    assert "syntax error in cell" in test.message and "a +* b" in test.message


def test_a_missing_function(tmp_path: Path, options: Options) -> None:
    text = SOLUTION.read_text().replace("def greet(", "def greeting(")
    path = tmp_path / "00_fixture.py"
    path.write_text(text)
    rep = grade(path, COURSE, options)
    assert _earned(rep) == {"add": 3, "greet": 0, "counter": 3, "runs_top_to_bottom": 0}
    greet = next(e for e in rep.exercises() if e.id == "greet")
    assert "has no attribute 'greet'" in greet.tests[0].message


def test_a_copy_named_by_the_browser_is_graded(tmp_path: Path, options: Options) -> None:
    shutil.copy(SOLUTION, tmp_path / "00_fixture (1).py")
    rep = grade(tmp_path, COURSE, options)
    assert rep.earned == 8
    assert "graded 00_fixture (1).py as 00_fixture.py" in rep.chapters[0].problems


def test_names_and_links(tmp_path: Path) -> None:
    chapters = ["00_fixture"]
    assert chapter_for("a/00_fixture.ipynb", chapters) == ("00_fixture", True)
    assert chapter_for("00_fixture-Copy1.ipynb", chapters) == ("00_fixture", False)
    assert chapter_for("00_fixture_v2.py", chapters) == (None, False)
    link = tmp_path / "00_fixture.py"
    link.symlink_to(SOLUTION)
    with pytest.raises(SubmissionError, match="symbolic link"):
        grade(link, COURSE)


def test_cli_exit_status_is_about_grading_not_the_score(tmp_path: Path) -> None:
    fixture = ["--course-root", str(FIXTURE), "--timeout", "5"]
    done = _course_cli("grade", str(EXERCISE), *fixture, "--no-notebook-run")
    assert done.returncode == 0 and "Total: 0/7" in done.stdout
    done = _course_cli("grade", str(tmp_path / "missing.zip"), *fixture)
    assert done.returncode == 2 and "does not exist" in done.stderr
    out = tmp_path / "r.json"
    done = _course_cli("grade", str(SOLUTION), *fixture, "--format", "gradescope", "-o", str(out))
    assert done.returncode == 0
    _check_gradescope(json.loads(out.read_text()))


# -- the student side -------------------------------------------------------------------

def test_check_prints_the_graders_feedback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(EXERCISE, tmp_path / "00_fixture.py")
    check("add", tmp_path, course=COURSE)
    out = capsys.readouterr().out
    assert "add: 0/3 (not started)" in out and "hint" not in out  # one line, nothing to fix yet
    shutil.copy(SOLUTION, tmp_path / "00_fixture.py")
    check("greet", tmp_path, course=COURSE)
    assert "greet: 1/1 (passed)" in capsys.readouterr().out


def test_check_explains_what_it_cannot_find(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check("no_such_exercise", tmp_path, course=COURSE)
    assert "There is no exercise called 'no_such_exercise'" in capsys.readouterr().out
    check("add", tmp_path, course=COURSE)
    assert "No 00_fixture.ipynb or 00_fixture.py" in capsys.readouterr().out


def test_check_is_a_no_op_inside_the_grader(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(SANDBOX_ENV, "1")
    check("add")
    assert "skipped while the grader runs this notebook" in capsys.readouterr().out


def test_course_check_and_progress(tmp_path: Path) -> None:
    fixture = ["--course-root", str(FIXTURE), "--timeout", "5"]
    shutil.copy(SOLUTION, tmp_path / "00_fixture.py")
    done = _course_cli("check", "00_fixture", "--target", str(tmp_path), *fixture)
    assert done.returncode == 0 and "Total: 8/8" in done.stdout, done.stderr
    done = _course_cli("progress", *fixture)
    assert done.returncode == 0, done.stderr
    assert "[ ] add" in done.stdout and "0/8 points" in done.stdout
    done = _course_cli("check", "99_nope", *fixture)
    assert done.returncode == 2 and "no chapter '99_nope'" in done.stderr


# -- the pieces -------------------------------------------------------------------------

def test_the_channel_keeps_only_signed_records() -> None:
    import threading

    read_fd, write_fd = os.pipe()

    def send() -> None:
        make_writer(write_fd, "secret")({"t": "result", "id": "x", "outcome": "passed"})
        os.write(write_fd, b'{"t": "result", "id": "y", "outcome": "passed", "nonce": "guess"}\n')
        os.write(write_fd, b'{"t": "result", "id": "z", "outcome": "passed"}\nnot json\n')
        os.write(write_fd, b"x" * 300_000 + b"\n")  # longer than any record: dropped
        os.close(write_fd)

    sender = threading.Thread(target=send)
    sender.start()
    reader = RecordReader("secret")
    records = []
    while data := os.read(read_fd, 1 << 16):
        records += list(reader.feed(data))
    sender.join()
    os.close(read_fd)
    assert records == [{"t": "result", "id": "x", "outcome": "passed"}]
    assert reader.rejected == 4


def test_the_writer_ignores_patched_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    emit = make_writer(write_fd, "n")
    monkeypatch.setattr(builtins, "isinstance", lambda *args: True)
    monkeypatch.setattr(json, "dumps", lambda *args, **kw: "forged")
    emit({"t": "done", "status": "ok"})
    monkeypatch.undo()
    os.close(write_fd)
    assert list(RecordReader("n").feed(os.read(read_fd, 1000))) == [{"t": "done", "status": "ok"}]
    os.close(read_fd)


def test_the_guard_sees_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    import _pytest.reports

    before = guard.take()
    assert guard.changed(before) == []
    monkeypatch.setattr(builtins, "abs", lambda obj: 0)
    monkeypatch.setattr(_pytest.reports.TestReport, "passed", True, raising=False)
    import _pytest.runner

    monkeypatch.setattr(_pytest.runner.call_and_report, "__code__", (lambda: None).__code__)
    found = guard.changed(before)
    monkeypatch.undo()
    assert "builtins.abs" in found
    assert "_pytest.reports.TestReport attributes" in found
    assert "_pytest.runner.call_and_report" in found


def test_same_checks_exact_types() -> None:
    class Sneaky(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    assert same([1, {"a": (2.0, None)}], [1, {"a": (2.0, None)}])
    assert not same(Sneaky(0), 5)
    assert not same([Sneaky(0)], [5])
    assert not same({"a": Sneaky(1)}, {"a": 2})
    assert not same(True, 1)
    assert same(float("nan"), float("nan"))


# -- Gradescope -------------------------------------------------------------------------

def test_the_gradescope_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "autograder.zip"
    done = _course_cli("bundle", "gradescope", "--course-root", str(FIXTURE), "-o", str(bundle))
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
        archive.extractall(tmp_path / "source")
    assert {"setup.sh", "run_autograder", "tests/test_00_fixture.py",
            "exercises/00_fixture.py", "course/grader/engine.py"} <= names
    assert not any(n.startswith("solutions/") for n in names)
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111

    # Lay out a temporary root as Gradescope lays out /autograder, and run it there.
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    shutil.copy(SOLUTION, root / "submission" / "00_fixture.py")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "COURSE_PYTHON": sys.executable}
    run = subprocess.run(["bash", str(tmp_path / "source" / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    _check_gradescope(results)
    assert results["score"] == 8, results

    # A submission the grader cannot read still leaves a results.json with the reason.
    shutil.rmtree(root / "submission")
    run = subprocess.run(["bash", str(tmp_path / "source" / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "does not exist" in results["output"]
