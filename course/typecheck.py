"""Run ``mypy --strict`` on an exercise notebook and point each error at a notebook cell.

mypy reads ``.py`` files only. A percent-format notebook is one already; an ``.ipynb`` is
converted with Jupytext to a temporary percent ``.py`` first. Either way each error comes
back with the cell it is in, so a learner can find it in Jupyter::

    line 57 (cell 14, line 3): error: Incompatible return value type ...  [return-value]

From a shell::

    python -m course.typecheck exercises/02_type_hints.py
    python -m course.typecheck my_work/02_type_hints.ipynb
    python -m course.typecheck --no-any-in=from_openai,from_anthropic exercises/02_type_hints.py

The lesson uses :func:`typecheck_source` to show what mypy says about a snippet.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mypy import api

from course.layout import ROOT

_CELL_MARKER = re.compile(r"^# %%")
# "path/to/file.py:12: error: message  [code]" (also "note"); column numbers are off.
_MYPY_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<severity>error|note): (?P<message>.*)$")
# top-level `await` is right in a notebook (Jupyter runs an event loop); mypy flags it.
_DISABLED_CODES = ("top-level-await",)
_CONFIG = """\
[mypy]
strict = True
python_version = 3.11
mypy_path = {root}

[mypy-course.*]
follow_imports = silent

[mypy-nbformat.*,jupytext.*,nbval.*]
ignore_missing_imports = True
"""


class TypecheckError(Exception):
    """mypy could not run at all (bad file, crash): not the same as finding type errors."""


@dataclass(frozen=True)
class TypeIssue:
    """One line of mypy's report, placed in the file and (when known) in a notebook cell."""

    line: int
    cell: int | None
    cell_line: int | None
    severity: str  # "error" or "note"
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}"
        if self.cell is not None:
            where += f" (cell {self.cell}, line {self.cell_line})"
        return f"{where}: {self.severity}: {self.message}"


def cell_starts(percent_text: str) -> list[int]:
    """File line numbers (1-based) of the ``# %%`` markers of a percent-format notebook."""
    return [i for i, line in enumerate(percent_text.splitlines(), start=1) if _CELL_MARKER.match(line)]


def locate(line: int, starts: Sequence[int]) -> tuple[int | None, int | None]:
    """Cell number (1-based, counting every cell) and line within that cell of a file line."""
    cell = None
    for number, start in enumerate(starts, start=1):
        if start < line:
            cell = number
        else:
            break
    if cell is None:
        return None, None  # the header, before the first cell
    return cell, line - starts[cell - 1]


def _run_mypy(source_file: Path, workdir: Path, extra: Sequence[str] = ()) -> list[tuple[int, str, str]]:
    """mypy --strict on one file: (line, severity, message) for each issue in that file."""
    config = workdir / "mypy.ini"
    config.write_text(_CONFIG.format(root=ROOT), encoding="utf-8")
    cache = Path(tempfile.gettempdir()) / "course-mypy-cache"
    args = [
        "--config-file", str(config),
        "--cache-dir", str(cache),
        "--no-error-summary",
        "--no-color-output",
        "--show-absolute-path",
        *(f"--disable-error-code={code}" for code in _DISABLED_CODES),
        *extra,
        str(source_file),
    ]
    stdout, stderr, status = api.run(args)
    if status not in (0, 1):
        raise TypecheckError(f"mypy could not check {source_file.name}: {(stderr or stdout).strip()}")
    wanted = str(source_file.resolve())
    issues = []
    for raw in stdout.splitlines():
        match = _MYPY_LINE.match(raw)
        if match and str(Path(match["file"]).resolve()) == wanted:
            issues.append((int(match["line"]), match["severity"], match["message"]))
    if status == 1 and not any(severity == "error" for _, severity, _ in issues):
        # mypy failed on something it reports without a line of this file: say so.
        issues.append((0, "error", stdout.strip() or stderr.strip()))
    return issues


def typecheck_issues(notebook: str | Path, extra: Sequence[str] = ()) -> list[TypeIssue]:
    """Every mypy --strict error and note in a notebook, placed in its cells."""
    path = Path(notebook).resolve()
    if not path.is_file():
        raise TypecheckError(f"{path}: no such notebook")
    with tempfile.TemporaryDirectory(prefix="course-typecheck-") as tmp:
        workdir = Path(tmp)
        if path.suffix == ".ipynb":
            import jupytext

            text = jupytext.writes(jupytext.read(path), fmt="py:percent")
            source = workdir / f"{path.stem}.py"
            source.write_text(text, encoding="utf-8")
        elif path.suffix == ".py":
            text = path.read_text(encoding="utf-8")
            source = path
        else:
            raise TypecheckError(f"{path}: expected a .py (Jupytext percent) or .ipynb notebook")
        starts = cell_starts(text)
        found = _run_mypy(source, workdir, extra)
    issues = []
    for line, severity, message in found:
        cell, cell_line = locate(line, starts)
        issues.append(TypeIssue(line, cell, cell_line, severity, message))
    return issues


def typecheck_notebook(notebook: str | Path, no_any_in: Sequence[str] = ()) -> list[str]:
    """mypy --strict's errors (with their notes) for a notebook, one line each, in cells.

    An empty list means the notebook type-checks. For an ``.ipynb`` the ``line`` is in its
    Jupytext percent conversion; the cell number and line within the cell hold for both.

    ``no_any_in`` names top-level functions in which no expression may have type ``Any``.
    ``mypy --strict`` accepts code that reads an untyped value (a ``TypeAdapter[Any]``, a
    ``cast(Any, ...)``), and then has nothing left to check; mypy's ``--disallow-any-expr``
    finds each such expression. It is applied inside those functions only, since the rest
    of a notebook may use ``json.loads`` and the like. One mypy run does both.
    """
    issues = typecheck_issues(notebook, ["--disallow-any-expr"] if no_any_in else [])
    if no_any_in:
        spans = _function_spans(notebook, no_any_in)
        kept = []
        for issue in issues:
            if _ANY_EXPR.match(issue.message):
                inside = [n for n, (a, b) in spans.items() if a <= issue.line <= b]
                if not inside:
                    continue  # --disallow-any-expr outside the named functions: not asked for
                issue = TypeIssue(issue.line, issue.cell, issue.cell_line, issue.severity,
                                  f"{issue.message} (inside {inside[0]}(), where nothing may be Any)")
            kept.append(issue)
        issues = kept
    if not any(issue.severity == "error" for issue in issues):
        return []
    return [str(issue) for issue in issues]


_ANY_EXPR = re.compile(r'^Expression (has type "Any"|type contains "Any")')


def _function_spans(notebook: str | Path, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """First and last line of each named top-level function, in the percent text mypy reads."""
    import ast

    path = Path(notebook)
    if path.suffix == ".ipynb":
        import jupytext

        text = jupytext.writes(jupytext.read(path), fmt="py:percent")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    return {
        node.name: (node.lineno, node.end_lineno or node.lineno)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names
    }


def typecheck_source(code: str) -> list[str]:
    """mypy --strict on a snippet of code: ``line N: error: ...`` lines (empty if clean)."""
    with tempfile.TemporaryDirectory(prefix="course-typecheck-") as tmp:
        source = Path(tmp) / "snippet.py"
        source.write_text(code, encoding="utf-8")
        found = _run_mypy(source, Path(tmp))
    return [f"line {line}: {severity}: {message}" for line, severity, message in found]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    no_any: list[str] = []
    for arg in [a for a in args if a.startswith("--no-any-in=")]:
        no_any += [name for name in arg.partition("=")[2].split(",") if name]
    paths = [a for a in args if not a.startswith("--no-any-in=")]
    if not paths:
        print("usage: python -m course.typecheck [--no-any-in=FUNC,...] NOTEBOOK [NOTEBOOK ...]",
              file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        try:
            report = typecheck_notebook(path, no_any)
        except TypecheckError as exc:
            print(exc, file=sys.stderr)
            return 2
        for line in report:
            print(f"{path}: {line}")
        failed = failed or bool(report)
        if not report:
            print(f"{path}: mypy --strict finds no errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
