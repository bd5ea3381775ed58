"""Where the course keeps things: every folder of a copy of the course, and the one rule
for which file is a chapter's notebook.

Every tool asks here instead of spelling ``root / "exercises"`` itself, so a folder is
renamed in one place and a tool's tests can point a :class:`Layout` at a small fixture
course. The folders of one copy of the course (this checkout, a student edition, a
fixture)::

    chapters/    lesson notebooks (Jupytext percent .py), in reading order
    solutions/   exercise notebooks with the answers (not in a student edition)
    exercises/   the same with the answers removed, made by `course generate`, and the
                 record of what it wrote (.generated.json)
    tests/       the graded tests (tests/tools/: the tools' own tests)
    appendix/    pages gathered from the chapters by `course appendix`
    _build/      everything built: the book, nbval's copies, the grader's caches
    backups/     edited exercises that `course generate --force` replaced
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from course.notebook import NotebookError

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the folder that holds chapters/, solutions/, exercises/ and tests/."""

NOTEBOOK_SUFFIXES = (".py", ".ipynb")
"""The notebook files the course reads: Jupytext percent scripts and Jupyter notebooks."""

SLUG = re.compile(r"^\d+_\w+$")
"""A chapter's name: ``01_classes``. Its notebooks are ``<slug>.py``/``.ipynb`` in each
notebook folder, its tests ``tests/test_<slug>.py`` or ``tests/<slug>/``."""

CHAPTERS, SOLUTIONS, EXERCISES, TESTS, APPENDIX = "chapters", "solutions", "exercises", "tests", "appendix"
BUILD, BACKUPS = "_build", "backups"

BOOK_PAGES = (CHAPTERS, EXERCISES, SOLUTIONS, APPENDIX)
"""Folders whose notebooks are pages of the book (each page offers its .ipynb)."""
BOOK_EXECUTED = (CHAPTERS, APPENDIX)
"""The pages the book runs to show their outputs; exercises/ is shown as the learner gets it."""
NBVAL_RUN = (CHAPTERS, SOLUTIONS, APPENDIX)
"""The notebooks `course test` runs top to bottom (nbval): each must run without error."""

TARGET_ENV = "COURSE_TARGET"
NAMED_TARGETS = (SOLUTIONS, EXERCISES)


@dataclass(frozen=True)
class Layout:
    """The folders of one copy of the course, rooted at ``root``."""

    root: Path = ROOT

    @property
    def chapters(self) -> Path:
        return self.root / CHAPTERS

    @property
    def solutions(self) -> Path:
        return self.root / SOLUTIONS

    @property
    def exercises(self) -> Path:
        return self.root / EXERCISES

    @property
    def tests(self) -> Path:
        return self.root / TESTS

    @property
    def appendix(self) -> Path:
        return self.root / APPENDIX

    @property
    def build(self) -> Path:
        return self.root / BUILD

    @property
    def html(self) -> Path:
        """The built book."""
        return self.build / "html"

    @property
    def jupyter_cache(self) -> Path:
        """The book's executed outputs, as myst-nb caches them."""
        return self.build / ".jupyter_cache"

    @property
    def nbval(self) -> Path:
        """The ``.ipynb`` copies of the notebooks nbval runs (it reads no percent ``.py``)."""
        return self.build / "nbval"

    @property
    def backups(self) -> Path:
        return self.root / BACKUPS

    @property
    def config(self) -> Path:
        """The book's ``_config.yml``."""
        return self.root / "_config.yml"

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    def notebooks(self, *folders: str) -> list[Path]:
        """The course's own notebooks (percent ``.py``) in ``folders``, sorted by path."""
        return sorted(p for folder in folders for p in (self.root / folder).glob("*.py"))


HERE = Layout()
"""This checkout: the course the running ``course`` package belongs to."""


def notebook(slug: str, where: Path) -> Path:
    """Chapter ``slug``'s notebook in ``where``: a folder, or a single notebook file.

    The rule, the same everywhere (the grader's choice within a submission too): with
    both ``<slug>.py`` and ``<slug>.ipynb``, the one saved last wins, and ``.py`` on a
    tie. A learner who opened ``exercises/01_classes.py`` as generated, then worked in an
    ``01_classes.ipynb`` (downloaded from the book, or made by Jupyter), has their work
    in the newer file; a fixed "``.py`` first" order would grade and run the untouched
    stub and report their work as not started. A Jupytext pair saves both files
    together, so either holds the same cells.

    Raises :class:`~course.notebook.NotebookError` with what was looked for and where.
    """
    if where.is_file():
        if where.stem == slug and where.suffix in NOTEBOOK_SUFFIXES:
            return where
        raise NotebookError(f"the submission {where.name} is not the notebook {slug}.py/.ipynb")
    found = [where / f"{slug}{suffix}" for suffix in NOTEBOOK_SUFFIXES]
    found = [path for path in found if path.is_file()]
    if not found:
        raise NotebookError(f"no notebook {slug}.py or {slug}.ipynb in {where}")
    # max() keeps the first of equals: NOTEBOOK_SUFFIXES' order breaks a tie.
    return max(found, key=lambda path: path.stat().st_mtime)


def target(name: str | None = None) -> Path:
    """What ``--target`` names: ``solutions`` (the default; every graded test must pass),
    ``exercises`` (the untouched stubs: every graded test must fail) or the path of a
    submission (a folder of notebooks, or one notebook)."""
    name = name or os.environ.get(TARGET_ENV) or SOLUTIONS
    path = HERE.root / name if name in NAMED_TARGETS else Path(name).expanduser()
    if not path.exists():
        raise NotebookError(f"test target {name!r}: {path} does not exist")
    return path.resolve()
