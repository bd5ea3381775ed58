"""``check("exercise_id")``: the grader's verdict on one exercise, from inside a notebook.

It finds the exercise notebook in the current folder (Jupyter runs a notebook in its
own folder), runs that exercise's tests against the saved file in a subprocess and prints
the feedback. Save the notebook before checking: the file on disk is what gets graded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from course import ROOT
from course.targets import NOTEBOOK_SUFFIXES


def exercise_chapter(exercise_id: str) -> str:
    """The chapter slug whose tests grade ``exercise_id``."""
    needle = f'"{exercise_id}"'
    for test_file in sorted((ROOT / "tests").glob("test_*.py")):
        if needle in test_file.read_text(encoding="utf-8"):
            return test_file.stem.removeprefix("test_")
    raise LookupError(f"no exercise called {exercise_id!r}")


def check(exercise_id: str, folder: str | Path = ".") -> bool:
    slug = exercise_chapter(exercise_id)
    here = Path(folder).resolve()
    notebook = next((here / f"{slug}{s}" for s in NOTEBOOK_SUFFIXES if (here / f"{slug}{s}").is_file()), None)
    if notebook is None:
        print(f"No {slug}.py or {slug}.ipynb in {here}: run this from the exercise notebook.")
        return False
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / f"test_{slug}.py"), "-q",
         "--no-header", "-p", "no:cacheprovider", f"--target={notebook}", f"--exercise={exercise_id}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    print(result.stdout[-4000:])
    return result.returncode == 0
