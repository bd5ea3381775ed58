"""Which copy of an exercise notebook the tests run against.

The same exercise tests serve three targets: ``solutions`` (every graded test must
pass), ``exercises`` (the untouched stubs: every graded test must fail) and a learner's
submission (a folder of notebooks, or one notebook file).
"""

from __future__ import annotations

import os
import types
from pathlib import Path

from course import NOTEBOOK_SUFFIXES, ROOT
from course.notebook import NotebookError, load_notebook

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


def load_exercise(slug: str, target: str | Path | None = None) -> types.ModuleType:
    """Load chapter ``slug``'s exercise notebook from the target as a module."""
    folder = Path(target) if isinstance(target, Path) else resolve_target(target)
    return load_notebook(find_notebook(slug, folder), module_name=f"nb_{slug}")
