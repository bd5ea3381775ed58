"""Hostile submissions: each tries to earn points it does not deserve, or to break grading.

Every file in ``tests/tools/hostile/`` is the fixture chapter (``add`` 3 points, ``greet``
1, ``counter`` 3, and 1 for running top to bottom) with one attack in it. They are graded
together as one class with ``grade-all`` (which is also that command's test), and each
must earn exactly what it honestly deserves: the attacked exercise nothing, the others
everything they earn on their merits.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from course.grader.batch import grade_all
from course.grader.engine import Options
from course.grader.layout import Course
from course.grader.sandbox import Limits

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "course"
HOSTILE = HERE / "hostile"
SOLUTION = FIXTURE / "solutions" / "00_fixture.py"
LIMITS = Limits(exercise_timeout=4, notebook_timeout=20, total_timeout=120, memory_mb=1024,
                processes=32, output_kb=16)

# (add, greet, counter, runs top to bottom), out of (3, 1, 3, 1).
EXPECTED: dict[str, tuple[int | None, ...]] = {
    "fake_passed_print": (0, 1, 3, 1),  # printing "5 passed" is just printing
    "sys_exit": (0, 1, 3, 0),  # SystemExit fails the test, and the demo cell
    "os_exit": (0, 1, 3, 0),  # the run dies; the others are re-run alone
    "atexit_exit": (0, 1, 3, 1),  # exit handlers never run in the grader's pytest
    "systemexit_at_import": (0, 0, 0, 0),  # nothing loads, nothing runs
    "keyboard_interrupt": (0, 1, 3, 0),
    "pytest_skip": (0, 1, 3, 0),  # a skipped test earns nothing
    "always_equal": (0, 1, 3, 1),  # same() checks the exact type first
    "monkeypatch_pytest": (0, 1, 3, 1),  # the guard sees the patch: the test is void
    "monkeypatch_builtins": (0, 1, 3, 0),  # void too; the patched kernel then hangs
    "writes_results_file": (0, 1, 3, 1),  # no file is ever read back
    "edits_tests": (0, 1, 3, 1),  # the tests are read-only copies, already imported
    "nbval_skip_markers": (3, 1, 3, 0),  # the markers are stripped: the cell fails
    # A worker's output goes nowhere, so the flood costs the grader nothing and add's
    # answer is right. When the notebook runs, the kernel either ships the flood (over the
    # 10 MB a cell cap: fails) or, at the memory limit, drops it in its I/O thread (the
    # cell then ran, printing nothing): not asserted.
    "print_flood": (3, 1, 3, None),
    "infinite_loop": (0, 1, 3, 0),
    "sleep_forever": (0, 1, 3, 0),
    "fork_loop": (0, 1, 3, 0),
    "memory_bomb": (0, 1, 3, 0),
    # Sixteen processes of 100 MB each, every one within the per-process limit: the run's
    # memory quota kills one (where cgroups are usable; else add runs out of time).
    "hoards_in_many_processes": (0, 1, 3, 0),
    "forges_channel": (0, 1, 3, 0),  # unsigned records are dropped; the kernel breaks
    "partly_correct": (3, 0, 0, 0),  # add keeps its points beside os._exit and a loop
    "detached_daemon": (3, 1, 3, 1),  # right answers; the stray process is killed
    "ships_conftest": (0, 1, 3, 1),  # its conftest.py, tests and pytest.ini are ignored
    "zip_traversal": (3, 1, 3, 1),  # ../ and absolute paths are refused, the rest graded
    # It searches /proc, /tmp, the course and the (world-readable) class folder for a
    # right `add` to copy, and /tmp, /var/tmp, /dev/shm for other runs' files: none is there.
    "reads_classmates": (0, 1, 3, 1),
    # Signed records of the wrong shape (an id that is a list, ...) are dropped, not a crash.
    "forges_malformed_records": (0, 1, 3, 1),
    # Malformed input is a report: each costs its own points, and grade-all goes on.
    "tags_number": (0, 0, 0, 0),
    "zip_of_copies": (0, 0, 0, 0),
    # Named to collide with a classmate's output folder: each keeps its own report.
    "partly_correct-2": (3, 1, 3, 1),
    # The worker's answer loop replaced by one that answers 5 to every probe: the judge's
    # inputs are random, so 5 is wrong (and greet's and counter's probes get 5 too).
    "forges_replies": (0, 0, 0, 1),
    # From the worker there is no pytest item, judge frame or report to reach.
    "reads_the_judge": (0, 1, 3, 1),
    # Forked, not started afresh: the worker and the kernel search the memory they
    # inherited for the canary in the grader's environment, and try to attach to the
    # fork server they came from. Nothing is there: add answers 0, the last cell raises.
    "reads_inherited_memory": (0, 1, 3, 0),
}
KEYS = ("00_fixture:add", "00_fixture:greet", "00_fixture:counter",
        "00_fixture:runs_top_to_bottom")

SHIPPED_CONFTEST = '''
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.outcome = "passed"
    return report
'''
SHIPPED_TEST = "def test_add_small():\n    pass\n"
SHIPPED_INI = "[pytest]\naddopts = -p no:course.pytest_plugin\n"


def _class_folder(root: Path) -> Path:
    """One folder per student, as a teacher downloads them."""
    klass = root / "class"
    for path in sorted(HOSTILE.glob("*.py")):
        folder = klass / path.stem
        folder.mkdir(parents=True)
        shutil.copy(path, folder / "00_fixture.py")
    ships = klass / "ships_conftest"
    (ships / "tests").mkdir(parents=True)
    shutil.copy(HOSTILE / "always_equal.py", ships / "00_fixture.py")
    (ships / "conftest.py").write_text(SHIPPED_CONFTEST)
    (ships / "tests" / "conftest.py").write_text(SHIPPED_CONFTEST)
    (ships / "tests" / "test_00_fixture.py").write_text(SHIPPED_TEST)
    (ships / "test_00_fixture.py").write_text(SHIPPED_TEST)
    (ships / "pytest.ini").write_text(SHIPPED_INI)
    (klass / "tags_number").mkdir()
    (klass / "tags_number" / "00_fixture.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5,
        "metadata": {}, "cells": [{"cell_type": "code", "source": "x = 1",
                                   "metadata": {"tags": 5}}]}))
    with zipfile.ZipFile(klass / "zip_of_copies.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(20):  # 100 MB uncompressed, 100 KB as a zip: one is read
            archive.writestr(f"00_fixture ({number}).py", "# %%\n" + "#" * (5 * 2**20 - 10))
    # safe_name() gives "partly_correct" for this one too: it must not overwrite that report.
    with zipfile.ZipFile(klass / "partly_correct.zip", "w") as archive:
        archive.writestr("00_fixture.py", SOLUTION.read_text())
    with zipfile.ZipFile(klass / "zip_traversal.zip", "w") as archive:
        archive.writestr("../../escaped/00_fixture.py", "# %%\nx = 1\n")
        archive.writestr("/abs/00_fixture.py", "# %%\nx = 1\n")
        archive.writestr("homework/00_fixture.py", SOLUTION.read_text())
    return klass


CANARY_VARIABLES = ("COURSE_ZYGOTE_CANARY", "GRADER_API_KEY")
SPY_SHM_KEY = 0x5EC2E7  # the System V shared memory key reads_classmates uses


def _leftovers() -> set[str]:
    found = set()
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(folder):
            found |= {f"{folder}/{n}" for n in os.listdir(folder) if n.startswith("course-spy-")}
    if os.path.isfile("/proc/sysvipc/shm"):
        with open("/proc/sysvipc/shm") as table:
            keys = {line.split()[0] for line in table.readlines()[1:] if line.split()}
        found |= {"shared memory"} if str(SPY_SHM_KEY) in keys else set()
    return found


@pytest.fixture(scope="module")
def graded() -> Any:
    # Readable by every user, as a teacher's download folder often is: only the sandbox's
    # own file system keeps one student from another here.
    root = Path(tempfile.mkdtemp(prefix="hostile-class-")).resolve()
    os.chmod(root, 0o755)
    before = _leftovers()
    # A grader's secrets, as a class's grading machine has them (reads_inherited_memory
    # looks for the value): one named like the course's settings, one like an API key.
    canary = f"zygote-canary-{secrets.token_hex(8)}"
    saved = {name: os.environ.get(name) for name in CANARY_VARIABLES}
    os.environ.update(dict.fromkeys(CANARY_VARIABLES, canary))
    try:
        out = root / "out"
        options = Options(limits=LIMITS, cache_dir=root / "cache")
        status = grade_all(_class_folder(root), out, Course.at(FIXTURE), options, jobs=3)
        summary = json.loads((out / "summary.json").read_text())
        yield {"status": status, "out": out, "root": root, "leftovers": _leftovers() - before,
               "students": {s["student"]: s for s in summary}}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def test_the_batch_worked(graded: dict[str, Any]) -> None:
    assert graded["status"] == 0
    assert set(graded["students"]) == set(EXPECTED)
    assert (graded["out"] / "summary.csv").read_text().startswith("student,score,max_score")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_submission_earns_exactly_what_it_deserves(name: str, graded: dict[str, Any]) -> None:
    student = graded["students"][name]
    expected = EXPECTED[name]
    earned = tuple(student["exercises"].get(key) if want is not None else None
                   for key, want in zip(KEYS, expected, strict=True))
    assert earned == expected, f"{name}: {student}"
    assert student["score"] - sum(x for x in earned if x is not None) in (0, 1)
    assert student["max_score"] == 8


def _report(graded: dict[str, Any], name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (graded["out"] / "students" / name / "report.json").read_text())
    return data


def _tests_of(report: dict[str, Any], exercise: str) -> list[dict[str, Any]]:
    ex = next(e for c in report["chapters"] for e in c["exercises"] if e["id"] == exercise)
    tests: list[dict[str, Any]] = ex["tests"]
    return tests


@pytest.mark.parametrize(("name", "status", "words"), [
    ("os_exit", "crashed", "os._exit"),
    ("infinite_loop", "timeout", "infinite loop"),
    ("sleep_forever", "timeout", "did not finish"),
    # In the worker, pytest's skip, a patched pytest or builtins and KeyboardInterrupt are
    # only exceptions or wrong answers: the judge's pytest never sees them.
    ("pytest_skip", "failed", "nothing to see here"),
    ("monkeypatch_pytest", "failed", "got 0 (int)"),
    # A patched isinstance breaks the worker's own code, which then hangs: its own loss.
    ("monkeypatch_builtins", "timeout", "did not finish"),
    ("keyboard_interrupt", "failed", "KeyboardInterrupt"),
    ("always_equal", "failed", "Anything where plain data was expected"),
])
def test_the_feedback_says_what_happened(name: str, status: str, words: str,
                                         graded: dict[str, Any]) -> None:
    tests = _tests_of(_report(graded, name), "add")
    assert tests[0]["status"] == status, tests[0]
    assert words in tests[0]["message"], tests[0]["message"]


def test_unsafe_zip_paths_are_reported_and_never_extracted(graded: dict[str, Any]) -> None:
    report = _report(graded, "zip_traversal")
    problems = " ".join(report["problems"])
    assert "../../escaped/00_fixture.py: an unsafe path" in problems
    assert "/abs/00_fixture.py: an unsafe path" in problems
    assert not (graded["root"] / "escaped").exists()
    assert not any(graded["root"].parent.glob("escaped"))


def test_shipped_test_files_are_named_as_not_graded(graded: dict[str, Any]) -> None:
    problems = " ".join(_report(graded, "ships_conftest")["problems"])
    assert "test_00_fixture.py: not an exercise notebook of this course" in problems


def test_huge_output_is_capped_and_the_grader_survives(graded: dict[str, Any]) -> None:
    text = (graded["out"] / "students" / "print_flood" / "report.txt").read_text()
    assert len(text) < 100_000
    assert re.search(r"add\s+3/3", text), text


def test_nothing_is_left_in_shared_temporary_folders(graded: dict[str, Any]) -> None:
    assert graded["leftovers"] == set()


def test_the_untouched_fixture_files_are_intact() -> None:
    # edits_tests rewrote what it could reach; the course's own files must be unchanged.
    assert "@exercise(\"add\"" in (FIXTURE / "tests" / "test_00_fixture.py").read_text()
