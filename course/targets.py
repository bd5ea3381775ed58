"""Which copy of an exercise notebook the tests run against.

The same exercise tests serve three targets: ``solutions`` (every graded test must
pass), ``exercises`` (the untouched stubs: every graded test must fail) and a learner's
submission (a folder of notebooks, or one notebook file).
"""

from __future__ import annotations

import os
from pathlib import Path

from course import NOTEBOOK_SUFFIXES, ROOT
from course.notebook import NotebookError

TARGET_ENV = "COURSE_TARGET"
NAMED_TARGETS = ("solutions", "exercises")


def resolve_target(target: str | None = None) -> Path:
    """Turn ``solutions``, ``exercises`` or a path into a folder or file to load from."""
    target = target or os.environ.get(TARGET_ENV) or "solutions"
    path = ROOT / target if target in NAMED_TARGETS else Path(target).expanduser()
    if not path.exists():
        raise NotebookError(f"test target {target!r}: {path} does not exist")
    return path.resolve()


def find_notebook(slug: str, target: Path) -> Path:
    """The notebook for chapter ``slug`` in ``target`` (a folder, or a single notebook)."""
    if target.is_file():
        if target.stem == slug:
            return target
        raise NotebookError(f"the submission {target.name} is not the notebook {slug}.py/.ipynb")
    for suffix in NOTEBOOK_SUFFIXES:
        candidate = target / f"{slug}{suffix}"
        if candidate.is_file():
            return candidate
    raise NotebookError(f"no notebook {slug}.py or {slug}.ipynb in {target}")
