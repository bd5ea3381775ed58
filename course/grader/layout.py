"""Where a course keeps its chapters and tests, and the scratch folder a run gets.

The grader never hard-codes ``/work/main/tests``: a :class:`Course` names a course root
(``exercises/``, ``pyproject.toml``) and a tests folder, so the grader's own tests can
point it at a small fixture course, and a new chapter is found simply by its files.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from course.grader import stubs
from course.grader.stubs import Original
from course.layout import BUILD, HERE, ROOT, SLUG, SOLUTIONS, Layout

# Hidden from every sandboxed run: the answers, their history, and built copies of them.
HIDDEN = (SOLUTIONS, ".git", BUILD)
SKIP_IN_TESTS = {"tools", "__pycache__", ".pytest_cache"}
# Folders of tests/ that only the judge may hold: what a worker could read there would
# tell it what the tests are looking for (chapter 9's broken versions, by name).
JUDGE_ONLY = {"mutants", "hidden"}


@dataclass(frozen=True)
class Course:
    root: Path = ROOT
    tests: Path = HERE.tests

    @classmethod
    def at(cls, root: Path | None = None, tests: Path | None = None) -> Course:
        root = (root or ROOT).resolve()
        return cls(root, (tests or Layout(root).tests).resolve())

    @cached_property
    def chapters(self) -> dict[str, list[Path]]:
        """Chapter slug -> its test files: ``tests/test_<slug>.py`` or ``tests/<slug>/``."""
        found: dict[str, list[Path]] = {}
        if not self.tests.is_dir():
            return found
        for entry in sorted(self.tests.iterdir()):
            if entry.is_file() and entry.name.startswith("test_") and entry.suffix == ".py":
                slug = entry.stem.removeprefix("test_")
                if SLUG.match(slug):
                    found.setdefault(slug, []).append(entry)
            elif entry.is_dir() and SLUG.match(entry.name):
                files = sorted(entry.rglob("test_*.py"))
                if files:
                    found.setdefault(entry.name, []).extend(files)
        return found

    def reference_notebook(self, slug: str) -> Original | None:
        """The fingerprint of the untouched exercise notebook students start from.

        It comes from the record ``course generate`` writes, never from the file in
        ``exercises/``: a learner edits that file in place (see :mod:`course.grader.stubs`).
        """
        return stubs.original(self.root, slug)

    def hidden_paths(self) -> list[str]:
        return [str(self.root / name) for name in HIDDEN if (self.root / name).is_dir()]

    def support_entries(self) -> list[Path]:
        """Everything in the tests folder a chapter's tests may lean on (conftest, helpers)."""
        chapter_files = {p for files in self.chapters.values() for p in files}
        keep = []
        for entry in sorted(self.tests.iterdir()):
            if entry.name.startswith(".") or entry.name in SKIP_IN_TESTS or entry in chapter_files:
                continue
            if entry.is_dir() and (SLUG.match(entry.name) or entry.name.startswith("test")):
                continue
            if entry.is_file() and entry.name.startswith("test_"):
                continue
            keep.append(entry)
        return keep

    def ini_text(self) -> str:
        """A pytest.ini with the course's own settings, minus anything that picks tests.

        Written into every scratch folder and passed with ``-c``, so a ``pytest.ini``,
        ``pyproject.toml`` or ``setup.cfg`` in a submission is never read.
        """
        options: dict[str, object] = {}
        pyproject = Layout(self.root).pyproject
        if pyproject.is_file():
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            options = dict(data.get("tool", {}).get("pytest", {}).get("ini_options", {}))
        for key in ("addopts", "testpaths", "python_files", "python_classes", "python_functions",
                    "required_plugins", "pythonpath", "norecursedirs"):
            options.pop(key, None)
        lines = ["[pytest]", "python_files = test_*.py", "addopts = --strict-markers"]
        for key, value in options.items():
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines.extend(f"    {item}" for item in value)
            else:
                lines.append(f"{key} = {value}")
        return "\n".join(lines) + "\n"

    def copy_tests(self, slugs: list[str], destination: Path, *, judge: bool = True) -> list[str]:
        """Copy the support files and the named chapters' tests; return their relative paths.

        ``judge=False`` is the copy a worker gets: without the judge-only folders.
        """
        destination.mkdir(parents=True, exist_ok=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
        for entry in self.support_entries():
            if not judge and entry.name in JUDGE_ONLY:
                continue
            if entry.is_dir():
                shutil.copytree(entry, destination / entry.name, ignore=ignore)
            else:
                shutil.copy2(entry, destination / entry.name)
        wanted = []
        for slug in slugs:
            for path in self.chapters[slug]:
                relative = path.relative_to(self.tests)
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                wanted.append(f"tests/{relative.as_posix()}")
        return wanted


def read_only(tree: Path) -> None:
    """Make a copied tree unwritable (files 0444, folders 0555)."""
    for folder, dirs, files in os.walk(tree):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o555)
    os.chmod(tree, 0o555)
