"""Write ``exercises/`` from ``solutions/``: each answer replaced by a stub.

``solutions/`` is the single source of every exercise. An answer is marked in it like so::

    def count_tokens(text: str) -> int:
        # BEGIN SOLUTION
        return len(text.split())
        # END SOLUTION

and becomes, in ``exercises/``::

    def count_tokens(text: str) -> int:
        raise NotImplementedError("Write count_tokens(): see the instructions above.")

Lines inside the region that start with ``# STUB:`` replace the ``raise`` when a stub
needs a different shape (a class attribute, a starting value); spaces after ``# STUB: ``
indent a stub line further. A whole cell tagged
``solution`` (say, a markdown cell that discusses the answer) is left out of the exercise.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from course.grader import stubs
from course.layout import HERE, ROOT, SOLUTIONS, Layout

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = "# STUB:"
WIDTH = 88  # the book's code column; see the ruff check in `course test`
_CELL_MARKER = re.compile(r"^# %%")
_SOLUTION_CELL = re.compile(r"^# %%.*tags=\[[^\]]*\"solution\"")
_DEFINITION = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+(\w+)")
GENERATED_NOTE = (
    "# This file is generated from solutions/ by `python -m course generate`; edit the "
    "solution instead.\n"
)


class GenerateError(Exception):
    """A solution notebook's markers do not pair up; the message names file and line."""


@dataclass(frozen=True)
class StaleFile:
    path: Path
    reason: str


def make_exercise(
    solution_text: str,
    source_name: str = "solution",
    next_chapter: tuple[str, str] | None = None,
) -> str:
    """Return the exercise version of one solution notebook's text, ending with what to do
    next (``next_chapter``: the following chapter's slug and title, if there is one)."""
    out: list[str] = []
    region_start: int | None = None
    region_indent = ""
    stub_lines: list[str] = []
    enclosing: list[tuple[int, str]] = []  # (indent, name) of the defs above this line
    skipping_cell = False

    for number, line in enumerate(solution_text.splitlines(), start=1):
        stripped = line.strip()
        if _CELL_MARKER.match(line):
            if region_start is not None:
                raise GenerateError(f"{source_name}:{region_start}: {BEGIN} has no {END} in its cell")
            skipping_cell = bool(_SOLUTION_CELL.match(line))
            enclosing.clear()
        if skipping_cell:
            continue
        if stripped == BEGIN:
            if region_start is not None:
                raise GenerateError(f"{source_name}:{number}: nested {BEGIN}")
            region_start, region_indent, stub_lines = number, line[: len(line) - len(line.lstrip())], []
            continue
        if stripped == END:
            if region_start is None:
                raise GenerateError(f"{source_name}:{number}: {END} without {BEGIN}")
            out.extend(stub_lines or _raise_lines(region_indent, enclosing))
            region_start = None
            continue
        if region_start is not None:
            if stripped.startswith(STUB):
                # One space after the marker is the separator; more is the stub's own
                # indentation, so a stub can span lines (a def and its body).
                stub = stripped[len(STUB):]
                stub_lines.append(region_indent + stub.removeprefix(" ").rstrip())
            continue
        match = _DEFINITION.match(line)
        if match:
            indent = len(match.group(1))
            enclosing[:] = [(i, n) for i, n in enclosing if i < indent] + [(indent, match.group(3))]
        out.append(line)

    if region_start is not None:
        raise GenerateError(f"{source_name}:{region_start}: {BEGIN} has no {END}")
    text = "\n".join(out) + "\n"
    return _insert_note(text) + what_next(Path(source_name).stem, next_chapter)


def _raise_lines(indent: str, enclosing: list[tuple[int, str]]) -> list[str]:
    """The stub's ``raise``, on one line if it fits the book's 88 columns."""
    line = indent + _raise_line(enclosing)
    if len(line) <= WIDTH:
        return [line]
    message = line.strip().removeprefix("raise NotImplementedError(").removesuffix(")")
    return [f"{indent}raise NotImplementedError(", f"{indent}    {message}", f"{indent})"]


def _raise_line(enclosing: list[tuple[int, str]]) -> str:
    if enclosing:
        name = ".".join(n for _, n in enclosing)
        target = f"Write {name}()" if not enclosing[-1][1][0].isupper() else f"Complete {name}"
    else:
        target = "Write this part"
    return f'raise NotImplementedError("{target}: see the instructions above.")'


def _insert_note(text: str) -> str:
    """Put the 'generated' note after the Jupytext YAML header, where Jupyter shows it
    (and the book does not)."""
    if text.startswith("# ---\n"):
        end = text.find("\n# ---\n", 5)
        if end != -1:
            cut = end + len("\n# ---\n")
            # remove-cell: a note for whoever edits the file, kept out of the book's page.
            note = GENERATED_NOTE.replace("# ", "# > ", 1)
            return text[:cut] + '\n# %% [markdown] tags=["remove-cell"]\n' + note + text[cut:]
    return GENERATED_NOTE + text


def what_next(slug: str, next_chapter: tuple[str, str] | None) -> str:
    """The cell that ends every exercise notebook: how to check it, then where to go."""
    onward = (
        f"# - Then go on to the next chapter:\n#   [{next_chapter[1]}](../chapters/{next_chapter[0]})."
        if next_chapter
        else "# - That was the last chapter: `course progress` shows what you have passed, and\n"
        "#   the [appendix](../appendix/cheat_sheet) gathers the course on one page."
    )
    return (
        "\n# %% [markdown]\n"
        "# ## What next\n"
        "#\n"
        "# - Run each `check(\"...\")` cell above: it runs that exercise's tests and says what\n"
        "#   passes and what a failing test expected.\n"
        f"# - From a terminal, `course check {slug}` grades the whole chapter the way the\n"
        "#   grader will (see [Checking and grading your work](../grading)).\n"
        f"{onward}\n"
    )


def _chapter_heading(root: Path, slug: str) -> str:
    """``Chapter 5. Pydantic and the trust boundary`` from the chapter's first heading."""
    path = Layout(root).chapters / f"{slug}.py"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# # "):
                return "Chapter " + line.removeprefix("# # ").strip()
    return f"chapter {slug}"


def expected_exercises(root: Path = ROOT) -> dict[Path, str]:
    """Every exercise file that ``solutions/`` implies, with its expected text."""
    if not Layout(root).solutions.is_dir():
        raise GenerateError(
            f"{root} has no solutions/ (a student edition?): there is nothing to generate "
            "from, and exercises/ is the learner's to edit"
        )
    expected = {}
    chapters = sorted(path.stem for path in Layout(root).chapters.glob("*.py"))
    for solution in Layout(root).notebooks(SOLUTIONS):
        name = str(solution.relative_to(root))
        # The next chapter of the book (not of solutions/): its link ends this exercise.
        following = next((slug for slug in chapters if slug > solution.stem), None)
        onward = (following, _chapter_heading(root, following)) if following else None
        expected[Layout(root).exercises / solution.name] = make_exercise(
            solution.read_text(encoding="utf-8"), name, onward
        )
    return expected


class EditedExercises(GenerateError):
    """Regenerating would overwrite a learner's work; ``force`` was not given."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = ", ".join(str(p.relative_to(p.parent.parent)) for p in paths)
        super().__init__(
            f"not overwriting {names}: edited since `course generate` wrote "
            f"{'it' if len(paths) == 1 else 'them'} (your work?). To replace "
            f"{'it' if len(paths) == 1 else 'them'} with the fresh exercise anyway, run "
            "`python -m course generate --force`: the edited files are kept in backups/."
        )


def _edited(path: Path, recorded: dict[str, stubs.Original], expected: str | None) -> bool:
    """A file that is neither what generate would write now nor what it wrote last time."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if expected is not None and text == expected:
        return False
    return stubs.text_hash(text) != getattr(recorded.get(path.name), "sha256", None)


def backup(paths: list[Path], root: Path) -> Path:
    """Copy ``paths`` to ``backups/<time>/`` (same relative layout); return that folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = Layout(root).backups / stamp
    for path in paths:
        target = folder / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return folder


def write_exercises(root: Path = ROOT, *, force: bool = False) -> list[Path]:
    """Regenerate ``exercises/`` and its fingerprint record; return what changed.

    An exercise a learner edited is never overwritten silently: without ``force`` this
    raises :class:`EditedExercises` before writing anything; with it, the edited files
    are first copied to ``backups/``. A file in ``exercises/`` that generate never wrote
    (a learner's own notebook) is left alone.
    """
    expected = expected_exercises(root)
    recorded = stubs.load(root)
    orphans = [p for p in sorted(Layout(root).exercises.glob("*.py")) if p not in expected]
    edited = [p for p, text in expected.items() if _edited(p, recorded, text)]
    edited += [p for p in orphans if p.name in recorded and _edited(p, recorded, None)]
    if edited and not force:
        raise EditedExercises(edited)
    if edited:
        backup(edited, root)
    changed = []
    for path in orphans:
        if path.name in recorded:  # generated once, for a chapter that is gone
            path.unlink()
            changed.append(path)
    for path, text in expected.items():
        path.parent.mkdir(exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    fingerprints = {p.name: stubs.describe(p.name, text) for p, text in expected.items()}
    if stubs.write(root, fingerprints):
        changed.append(stubs.record_path(root))
    return changed


def stale_exercises(root: Path = ROOT) -> list[StaleFile]:
    """What ``course generate`` has to fix: exercises that ``solutions/`` no longer implies.

    The check compares the recorded fingerprints with ``solutions/``, not the files: a
    learner's edits to ``exercises/`` are their work, not staleness (see
    :func:`learner_edits`).
    """
    expected = expected_exercises(root)
    recorded = stubs.load(root)
    stale = []
    for path, text in expected.items():
        was = recorded.get(path.name)
        if was is None:
            stale.append(StaleFile(path, "missing" if not path.exists() else "no fingerprint recorded"))
        elif was.sha256 != stubs.text_hash(text):
            reason = "out of date"
            if _edited(path, recorded, text):
                reason += " and edited since generated (`generate --force` keeps a backup)"
            stale.append(StaleFile(path, reason))
        elif not path.exists():
            stale.append(StaleFile(path, "missing"))
    for path in sorted(Layout(root).exercises.glob("*.py")):
        if path not in expected and path.name in recorded:
            stale.append(StaleFile(path, "not made from any solution"))
    for name in sorted(set(recorded) - {p.name for p in expected}):
        if not (Layout(root).exercises / name).exists():
            stale.append(StaleFile(Layout(root).exercises / name, "recorded but not made from any solution"))
    return stale


def learner_edits(root: Path = ROOT) -> list[Path]:
    """Exercise files that differ from what ``course generate`` wrote: someone's work."""
    recorded = stubs.load(root)
    return [
        p for p in sorted(Layout(root).exercises.glob("*.py"))
        if p.name in recorded and not stubs.is_pristine(p, recorded[p.name])
    ]


def register(sub: Any) -> None:
    parser = sub.add_parser("generate", help="write exercises/ from solutions/")
    parser.add_argument("--check", action="store_true",
                        help="fail if solutions/ changed and exercises/ was not regenerated")
    parser.add_argument("--force", action="store_true",
                        help="overwrite edited exercises too, after copying them to backups/")
    parser.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    try:
        if args.check:
            stale = stale_exercises()
            for item in stale:
                print(f"{item.path}: {item.reason}", file=sys.stderr)
            if stale:
                print("solutions/ changed and exercises/ was not regenerated: run "
                      "`python -m course generate`, then commit exercises/", file=sys.stderr)
                return 1
            edits = learner_edits()
            if edits:
                print(f"exercises/ is up to date with solutions/; {len(edits)} exercise(s) "
                      "edited since generated (learner work, left alone): "
                      + ", ".join(p.name for p in edits))
            else:
                print("exercises/ is up to date")
            return 0
        edits = learner_edits() if args.force else []
        for path in write_exercises(force=args.force):
            print(f"updated {path}")
        if edits:
            print(f"kept a copy of each edited exercise ({', '.join(p.name for p in edits)}) "
                  f"in {HERE.backups}/")
    except EditedExercises as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
