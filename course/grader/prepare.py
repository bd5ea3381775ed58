"""Check a submitted notebook and prepare the copy nbval executes.

Parsing is all the grader does with student code in its own process: reading JSON or
Jupytext text and compiling cells to an AST to report syntax errors early. Nothing runs.

For nbval, the submission's own control over execution is taken away: ``# NBVAL_*``
comments and ``nbval-*``/``raises-exception`` tags are removed, so a student cannot mark
a failing cell as skipped or as expected to fail. A cell that the course's own exercise
notebook tags ``raises-exception`` gets its tag back when its code is unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course.grader import stubs
from course.grader.stubs import Original
from course.notebook import NotebookError, cell_definitions, read_cells
from course.percent import ANY_MARKER, PercentError, read_percent

# Linear: `[ \t]*`, not `\s*`, which also matched newlines and made the search quadratic
# in a cell's blank lines (a 64k-line cell took minutes).
NBVAL_COMMENT = re.compile(r"^[ \t]*#[ \t]*NBVAL_\w+", re.MULTILINE)
CONTROL_TAGS = ("raises-exception",)
# Far above any real exercise notebook (about 30 cells, 600 lines; the exercises are
# about 20 KB), far below what would make grading it slow: every cell and line is
# compiled, run and copied again in the sandbox.
MAX_CELLS = 500
MAX_LINES = 50_000
MAX_PY_BYTES = 1024 * 1024
MAX_TAGS = 50
CELL_TYPES = ("code", "markdown", "raw")


class BadNotebook(Exception):
    """The file is not a notebook the grader can read; the message says why."""


@dataclass(frozen=True)
class Cell:
    cell_type: str
    source: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notebook:
    """What the grader keeps of a submitted notebook: each cell's type, source and tags."""

    cells: tuple[Cell, ...]


def read(name: str, data: bytes) -> Notebook:
    """Parse a submitted notebook, or raise :class:`BadNotebook` with a clear reason.

    Every step is linear in the size of ``data`` (capped by discovery at 5 MB) and the
    number of cells and lines is capped before any library parses it.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadNotebook(f"{name}: not UTF-8 text, so not a notebook") from None
    if name.endswith(".ipynb"):
        return _from_ipynb(name, text)
    if len(data) > MAX_PY_BYTES:
        raise BadNotebook(f"{name}: {len(data) // 1024} KB, more than the "
                          f"{MAX_PY_BYTES // 1024} KB a .py notebook may have; remove pasted "
                          "data or large literals, then save again")
    lines = text.count("\n")
    if lines > MAX_LINES:
        raise BadNotebook(f"{name}: {lines} lines, more than the {MAX_LINES} a notebook may "
                          "have; remove pasted data, then save again")
    try:
        parsed = read_percent(text)
    except PercentError as exc:
        raise BadNotebook(f"{name}: {exc}") from None
    if not ANY_MARKER.search(text):
        raise BadNotebook(
            f"{name}: a .py file without '# %%' cell markers, so not a Jupytext percent "
            "notebook; submit the exercise notebook you were given"
        )
    _check_cell_count(name, len(parsed))
    return Notebook(tuple(Cell(c.cell_type, c.source, c.tags) for c in parsed))


def _check_cell_count(name: str, count: int) -> None:
    if count > MAX_CELLS:
        raise BadNotebook(f"{name}: {count} cells, more than the {MAX_CELLS} a notebook may "
                          "have; merge cells or remove the ones you added for scratch work")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:300] if text else "") or type(exc).__name__


def _from_ipynb(name: str, text: str) -> Notebook:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadNotebook(
            f"{name}: not a valid .ipynb notebook (its JSON is broken: {_short(exc)}); "
            "open it in Jupyter and save it again, or submit the .py version"
        ) from None
    if not isinstance(data, dict):
        raise BadNotebook(f"{name}: not a valid .ipynb notebook (the file holds a "
                          f"{_kind(data)}, not a notebook object)")
    cells = data.get("cells")
    if not isinstance(cells, list):
        got = "no" if cells is None else f"a {_kind(cells)} as its"
        raise BadNotebook(f"{name}: not a valid .ipynb notebook ({got} 'cells' list; "
                          "a notebook saved by Jupyter 4 or later has one)")
    _check_cell_count(name, len(cells))
    return Notebook(tuple(_checked_cell(name, number, cell)
                          for number, cell in enumerate(cells, start=1)))


def _kind(value: object) -> str:
    names = {dict: "object", list: "list", str: "text", bool: "true/false", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _checked_cell(name: str, number: int, cell: Any) -> Cell:
    """One cell, every field type-checked; what is wrong is named with the cell's number."""
    where = f"{name}: cell {number}"
    if not isinstance(cell, dict):
        raise BadNotebook(f"{where} is a {_kind(cell)}, not a cell object")
    cell_type = cell.get("cell_type")
    if cell_type not in CELL_TYPES:
        raise BadNotebook(f"{where}: 'cell_type' must be code, markdown or raw, "
                          f"not {_kind(cell_type)} {str(cell_type)[:40]!r}")
    source = cell.get("source", "")
    if isinstance(source, list):
        if not all(isinstance(part, str) for part in source):
            bad = next(p for p in source if not isinstance(p, str))
            raise BadNotebook(f"{where}: 'source' must be text or a list of text lines; "
                              f"it holds a {_kind(bad)}")
        source = "".join(source)
    elif not isinstance(source, str):
        raise BadNotebook(f"{where}: 'source' must be text or a list of text lines, "
                          f"not a {_kind(source)}")
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        raise BadNotebook(f"{where}: 'metadata' must be an object, not a {_kind(metadata)}")
    tags = metadata.get("tags", [])
    if not isinstance(tags, list):
        raise BadNotebook(f"{where}: the 'tags' in its metadata must be a list of text, "
                          f"not a {_kind(tags)}")
    if not all(isinstance(t, str) for t in tags):
        raise BadNotebook(f"{where}: the 'tags' in its metadata must be a list of text; "
                          "it holds something else")
    if len(tags) > MAX_TAGS:
        raise BadNotebook(f"{where}: more than {MAX_TAGS} tags")
    return Cell(str(cell_type), source, tuple(tags))


def syntax_problems(path: Path) -> list[str]:
    """Syntax errors in the notebook's code cells, each naming the cell and line."""
    problems = []
    try:
        cells = read_cells(path)
    except NotebookError as exc:
        return [str(exc)]
    for cell in cells:
        try:
            cell_definitions(cell, path.name)
        except NotebookError as exc:
            problems.append(str(exc).replace(str(path), path.name))
    return problems


def _normal(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def code_cells(nb: Notebook) -> list[str]:
    return [_normal(c.source) for c in nb.cells if c.cell_type == "code"]


def plain_source(source: str) -> str:
    """A cell's code without ``# NBVAL_*`` comments, normalised: what a tag is matched on."""
    return _normal(NBVAL_COMMENT.sub("", source))


def is_untouched(nb: Notebook, reference: Original | None) -> bool:
    """Whether the submission's code cells are those of the generated exercise notebook.

    ``reference`` is the fingerprint ``course generate`` recorded, never the file in
    ``exercises/``, which a learner edits in place.
    """
    if reference is None:
        return False
    return stubs.code_hash(code_cells(nb)) == reference.code


def for_nbval(nb: Notebook, reference: Original | None) -> Notebook:
    """A copy whose cells carry only the execution rules the course set."""
    must_raise = reference.raises if reference is not None else frozenset()
    clean = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = NBVAL_COMMENT.sub("#", cell.source)
        tags = [t for t in cell.tags if not t.startswith("nbval") and t not in CONTROL_TAGS]
        if stubs.cell_hash(plain_source(cell.source)) in must_raise:
            tags.append("raises-exception")
        clean.append(Cell("code", source, tuple(tags)))
    return Notebook(tuple(clean))


def write_ipynb(nb: Notebook, path: Path) -> None:
    """Write a minimal nbformat 4.5 notebook: code cells with their tags, no outputs."""
    cells: list[dict[str, Any]] = [
        {"cell_type": "code", "id": f"cell-{number}", "metadata": {"tags": list(cell.tags)},
         "execution_count": None, "outputs": [], "source": cell.source}
        for number, cell in enumerate(nb.cells, start=1) if cell.cell_type == "code"
    ]
    data = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
