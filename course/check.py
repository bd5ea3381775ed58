"""``check("exercise_id")``: the grader's verdict on one exercise, from inside a notebook.

It finds the exercise notebook in the current folder (Jupyter runs a notebook in its
own folder), grades the saved file with the grader itself (the same sandbox, the same
tests, the same feedback, only this exercise's tests) and prints the verdict. Save the
notebook before checking: the file on disk is what gets graded.

Inside the grader's sandbox (when the grader executes a notebook from top to bottom)
``check`` only prints a note: the grader is already grading.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from course import layout
from course.grader.layout import Course
from course.grader.sandbox import SANDBOX_ENV
from course.notebook import NotebookError


def check(exercise_id: str, folder: str | Path = ".", *, course: Course | None = None,
          verbose: bool = False) -> None:
    """Grade ``exercise_id`` in the saved notebook here and print what to fix.

    ``verbose=True`` prints each failing test in full. ``course`` is for the grader's own
    tests, which point it at a fixture course.
    """
    if os.environ.get(SANDBOX_ENV):
        print(f"check({exercise_id!r}): skipped while the grader runs this notebook")
        return
    from course.grader import engine, manifest
    from course.grader.report import exercise_feedback

    course = course or Course.at()
    tests = manifest.load(course)
    slug = tests.chapter_of_exercise(exercise_id)
    if slug is None:
        known = sorted({t.exercise for t in tests.tests})
        print(f"There is no exercise called {exercise_id!r}. Exercises: {', '.join(known)}")
        return
    here = Path(folder).resolve()
    try:
        notebook = layout.notebook(slug, here)  # the newer of .py and .ipynb
    except NotebookError:
        print(f"No {slug}.ipynb or {slug}.py in {here}: run check() from the exercise notebook.")
        return
    if _untouched(notebook, course, slug):
        points = sum(t.points for t in tests.tests if t.exercise == exercise_id)
        print(f"{notebook.name} is the untouched exercise notebook (as saved).")
        print(f"{exercise_id}: 0/{points} (not started)")
        print("Next: replace its `raise NotImplementedError`, save, and run this cell again.")
        return
    options = engine.Options(exercises=(exercise_id,), run_notebook=False)
    try:
        report = engine.grade(notebook, course, options)
    except engine.GraderError as exc:  # the grader's own trouble, not the learner's work
        print(f"The check could not run: {exc}")
        return
    report.attach_hints({t.nodeid: t.hint for t in tests.tests})
    saved = time.time() - notebook.stat().st_mtime
    print(f"Checked {notebook.name} as last saved ({_ago(saved)}); save first to check new work.")
    for problem in report.problems + [p for c in report.chapters for p in c.problems]:
        print(f"! {problem}")
    for ex in report.exercises():
        print(exercise_feedback(ex, verbose))
        if ex.status == "passed":
            print("Well done: this exercise earns full marks.")
        elif ex.status == "not started":
            print("Next: replace its `raise NotImplementedError`, save, and run this cell again.")
        else:
            print("Next: fix the first failure above, save, and run this cell again"
                  + ("." if verbose else f"; check({exercise_id!r}, verbose=True) shows more."))


def _untouched(notebook: Path, course: Course, slug: str) -> bool:
    """Whether the saved notebook is still the exercise as generated (its recorded
    fingerprint): then nothing has been written, whatever the tests would say."""
    from course.grader import prepare

    try:
        nb = prepare.read(notebook.name, notebook.read_bytes())
    except (OSError, prepare.BadNotebook):
        return False
    return prepare.is_untouched(nb, course.reference_notebook(slug))


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(int(seconds), 0)} s ago"
    if seconds < 5400:
        return f"{int(seconds // 60)} min ago"
    return f"{seconds / 3600:.1f} h ago"
