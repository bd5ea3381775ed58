"""``course release OUT``: the student edition of the course, with no solution anywhere.

A teacher hands a class this folder (or, with ``--git``, a repository of one commit): the
lessons, the untouched exercise notebooks with their fingerprint record, the public
tests, the ``course`` package (grader, checker, LLM server), the book's sources and a
Makefile with the learner's commands. Left out:

- ``solutions/`` and every other maintainer file (tools' tests, benchmarks, CI);
- grader-only tests: ``tests/hidden/`` (or ``--hidden DIR``), ``tests/mutants/`` (the
  broken versions chapter 9's tests are graded against would tell a learner what to
  test) and any test file that reads them. ``--grader-out DIR`` writes these to a
  folder that stays with the teacher, for ``course grade --hidden DIR``.

Before it finishes, the release is searched for the text of every answer region in
``solutions/`` that the public lessons and tests do not already show; a hit stops the
release with the file and region named.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.authoring.generate import BEGIN, END, expected_exercises
from course.grader import stubs
from course.layout import APPENDIX, CHAPTERS, ROOT, SOLUTIONS, TESTS, Layout

# Copied as they are: the book's sources and what a learner's machine needs.
TOP_FILES = ("intro.md", "grading.md", "_config.yml", "_toc.yml", "requirements.txt",
             "requirements.in", "pyproject.toml", ".gitignore")
TOP_FOLDERS = (CHAPTERS, APPENDIX, "course", ".devcontainer")
GRADER_ONLY_DIRS = ("hidden", "mutants")  # under tests/: never in a student's hands
_GRADER_ONLY_REFERENCE = re.compile(r"""["'/](hidden|mutants)["'/]""")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".*_cache")
MIN_ANSWER_CHARS = 12  # shorter regions ("pass", "return 0") also occur in honest code

MAKEFILE = """\
# The learner's commands. Each creates .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: lab check progress test book serve

$(STAMP): requirements.txt pyproject.toml
\ttest -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
\t$(BIN)/python -m pip install --quiet --upgrade pip
\t$(BIN)/python -m pip install --quiet -r requirements.txt
\t$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
\ttouch $(STAMP)

lab: $(STAMP)
\t$(BIN)/python -m course lab

check: $(STAMP)
\t$(BIN)/python -m course check $(CHAPTER)

progress: $(STAMP)
\t$(BIN)/python -m course progress

# The grader's verdict on every exercise in exercises/: never changes your files.
test: check

book: $(STAMP)
\t$(BIN)/python -m course book

serve: $(STAMP)
\t$(BIN)/course serve
"""

README = """\
# {title}: student edition

The lessons are in `chapters/`, your exercises in `exercises/`: open them with
`make lab` (JupyterLab, every `.py` notebook opens as a notebook). You need Python 3.11+,
`git` and `make` on Linux or macOS; on Windows, use WSL or open the folder in the dev
container (`.devcontainer/`, also what GitHub Codespaces uses).

| command | what it does |
|---|---|
| `make lab` | open the course in JupyterLab |
| `make check` | the grader's verdict on every exercise, with what to fix |
| `make check CHAPTER=01_classes` | the same, for one chapter |
| `make progress` | every exercise with its status |
| `make book` | build the book into `_build/html` |

None of these commands changes a file in `exercises/`. Inside a notebook,
`check("exercise_id")` grades the saved notebook. `grading.md` explains what earns points.
{missing}"""


class ReleaseError(Exception):
    """The release cannot be written (the message says why); nothing was left half-done."""


@dataclass
class Release:
    out: Path
    files: list[str] = field(default_factory=list)
    grader_only: list[str] = field(default_factory=list)  # tests paths kept out


def answer_regions(root: Path = ROOT) -> list[tuple[str, str]]:
    """``(where, text)`` of every answer region in ``solutions/``, text normalised."""
    regions = []
    for solution in Layout(root).notebooks(SOLUTIONS):
        lines: list[str] | None = None
        start = 0
        for number, line in enumerate(solution.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() == BEGIN:
                lines, start = [], number
            elif line.strip() == END and lines is not None:
                text = normalise("\n".join(x for x in lines if not x.strip().startswith("# STUB:")))
                if len(text) >= MIN_ANSWER_CHARS:
                    regions.append((f"solutions/{solution.name}:{start}", text))
                lines = None
            elif lines is not None:
                lines.append(line)
    return regions


def secret_regions(root: Path = ROOT) -> list[tuple[str, str]]:
    """The answer regions whose text the course's public files do not already show.

    A lesson may teach the very line an exercise asks for (``@abstractmethod``, a
    backoff formula): that is teaching, not a leak. Every other region must appear
    nowhere in a release.
    """
    public = [normalise(p.read_text(encoding="utf-8")) for p in _public_sources(root)]
    return [(where, text) for where, text in answer_regions(root)
            if not any(text in source for source in public)]


def _public_sources(root: Path) -> list[Path]:
    found = [root / name for name in TOP_FILES if (root / name).is_file()]
    for folder in (*TOP_FOLDERS, TESTS):
        found += [p for p in sorted((root / folder).rglob("*"))
                  if p.is_file() and p.suffix in (".py", ".md", ".yml", ".toml", ".txt")
                  and "__pycache__" not in p.parts]
    return found


def normalise(text: str) -> str:
    """Whitespace-insensitive, so re-indenting or re-wrapping an answer does not hide it."""
    return " ".join(text.split())


def leaked_answers(out: Path, regions: list[tuple[str, str]]) -> list[str]:
    """Each answer region found in a file of ``out``, as ``file: region``."""
    found = []
    for path in sorted(out.rglob("*")):
        if not path.is_file() or ".git" in path.relative_to(out).parts:
            continue
        try:
            text = normalise(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(out)}: {where}" for where, answer in regions if answer in text]
    return found


def _needs_grader_only(path: Path) -> bool:
    return bool(_GRADER_ONLY_REFERENCE.search(path.read_text(encoding="utf-8")))


def _split_tests(tests: Path) -> tuple[list[Path], list[Path]]:
    """(public, grader_only) entries of the tests folder; ``tools/`` is in neither."""
    public, hidden = [], []
    for entry in sorted(tests.iterdir()):
        if entry.name in ("tools", "__pycache__") or entry.name.startswith("."):
            continue
        grader_dir = entry.is_dir() and entry.name in GRADER_ONLY_DIRS
        if grader_dir or (entry.is_file() and entry.suffix == ".py" and _needs_grader_only(entry)):
            hidden.append(entry)
        else:
            public.append(entry)
    return public, hidden


def _copy(entry: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if entry.is_dir():
        shutil.copytree(entry, target, ignore=_IGNORE)
    else:
        shutil.copy2(entry, target)


def _copy_hidden(entry: Path, target: Path) -> None:
    """A grader-only entry: ``tests/hidden/*`` lands at the top of the grader's folder."""
    if entry.name == "hidden" and entry.is_dir():
        for inner in sorted(entry.iterdir()):
            _copy(inner, target / inner.name)
    else:
        _copy(entry, target / entry.name)


def write_release(out: Path, root: Path = ROOT, *, hidden: Path | None = None,
                  grader_out: Path | None = None, git: bool = False) -> Release:
    """Write the student edition to ``out`` (which must not exist or be empty)."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} is not empty; give a new folder (nothing was written)")
    if not Layout(root).solutions.is_dir():
        raise ReleaseError(f"{root} has no solutions/: a release is made from the course's source")
    inside = root.resolve() in out.parents or out == root.resolve()
    if inside and out.parent != Layout(root.resolve()).build:
        raise ReleaseError("write the release outside the course (or under _build/)")
    release = Release(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in TOP_FILES:
        if (root / name).is_file():
            _copy(root / name, out / name)
    for name in TOP_FOLDERS:
        if (root / name).is_dir():
            _copy(root / name, out / name)
    # The exercises as generated: never the maintainer's working copy.
    originals = {}
    for path, text in expected_exercises(root).items():
        Layout(out).exercises.mkdir(exist_ok=True)
        (Layout(out).exercises / path.name).write_text(text, encoding="utf-8")
        originals[path.name] = stubs.describe(path.name, text)
    stubs.write(out, originals)
    public, grader_only = _split_tests(Layout(root).tests)
    for entry in public:
        _copy(entry, Layout(out).tests / entry.name)
    if hidden is not None:
        grader_only.append(hidden)
    release.grader_only = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
                           for p in grader_only]
    if grader_out is not None:
        for entry in grader_only:
            _copy_hidden(entry, grader_out)
    title = _title(root)
    missing = ""
    left_out = sorted({p.stem.removeprefix("test_") for p in grader_only if p.name.startswith("test_")})
    if left_out:
        missing = (f"\nYour teacher grades {', '.join(left_out)} with tests kept out of this "
                   "edition, so `make check` cannot score it here.\n")
    (out / "README.md").write_text(README.format(title=title, missing=missing), encoding="utf-8")
    (out / "Makefile").write_text(MAKEFILE, encoding="utf-8")
    leaks = leaked_answers(out, secret_regions(root))
    if leaks:
        shutil.rmtree(out)
        raise ReleaseError("answer text found in the release (removed it):\n  " + "\n  ".join(leaks))
    release.files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    if git:
        _commit(out, title)
    return release


def _title(root: Path) -> str:
    config = Layout(root).config
    if config.is_file():
        for line in config.read_text(encoding="utf-8").splitlines():
            if line.startswith("title:"):
                return line.partition(":")[2].strip().strip("\"'")
    return "The course"


def _commit(out: Path, title: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "course release", "GIT_AUTHOR_EMAIL": "release@localhost",
           "GIT_COMMITTER_NAME": "course release", "GIT_COMMITTER_EMAIL": "release@localhost"}
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", f"{title}: student edition"]):
        done = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ReleaseError(f"{' '.join(command)} failed in {out}: {done.stderr.strip()}")


def register(sub: Any) -> None:
    p = sub.add_parser("release", help="write the student edition: no solutions")
    p.add_argument("out", type=Path, help="a new folder for the student edition")
    p.add_argument("--git", action="store_true", help="make it a git repository with one commit")
    p.add_argument("--hidden", type=Path, default=None,
                   help="a folder of extra grader-only tests (tests/hidden/ is always kept out)")
    p.add_argument("--grader-out", type=Path, default=None,
                   help="write the grader-only tests here, for `course grade --hidden DIR`")
    p.set_defaults(handler=release_command)


def release_command(args: argparse.Namespace) -> int:
    try:
        release = write_release(args.out, hidden=args.hidden, grader_out=args.grader_out,
                                git=args.git)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the student edition to {release.out} ({len(release.files)} files"
          f"{', one git commit' if args.git else ''}); no solutions, no grader-only tests")
    if release.grader_only:
        where = f"written to {args.grader_out}" if args.grader_out else "not written anywhere"
        print(f"grader-only tests kept out ({where}): {', '.join(release.grader_only)}")
    return 0
