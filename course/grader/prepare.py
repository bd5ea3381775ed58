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
from pathlib import Path
from typing import Any

import jupytext
import nbformat as _nbformat

from course import stubs
from course.notebook import NotebookError, cell_definitions, read_cells
from course.stubs import Original

nbformat: Any = _nbformat  # untyped library: one Any here instead of ignores at each call

NBVAL_COMMENT = re.compile(r"^\s*#\s*NBVAL_\w+", re.MULTILINE)
CELL_MARKER = re.compile(r"^# %%", re.MULTILINE)
CONTROL_TAGS = ("raises-exception",)


class BadNotebook(Exception):
    """The file is not a notebook the grader can read; the message says why."""


def read(name: str, data: bytes) -> Any:
    """Parse a submitted notebook, or raise :class:`BadNotebook` with a clear reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadNotebook(f"{name}: not UTF-8 text, so not a notebook") from None
    if name.endswith(".ipynb"):
        try:
            json.loads(text)
        except ValueError as exc:
            raise BadNotebook(
                f"{name}: not a valid .ipynb notebook (its JSON is broken: {exc}); "
                "open it in Jupyter and save it again, or submit the .py version"
            ) from None
        try:
            return nbformat.reads(text, as_version=4)
        except Exception as exc:  # nbformat raises several unrelated types
            raise BadNotebook(f"{name}: not a valid .ipynb notebook ({exc})") from None
    if not CELL_MARKER.search(text):
        raise BadNotebook(
            f"{name}: a .py file without '# %%' cell markers, so not a Jupytext percent "
            "notebook; submit the exercise notebook you were given"
        )
    try:
        return jupytext.reads(text, fmt="py:percent")
    except Exception as exc:
        raise BadNotebook(f"{name}: jupytext could not read it ({exc})") from None


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


def code_cells(nb: Any) -> list[str]:
    return [_normal(c.source) for c in nb.cells if c.cell_type == "code"]


def plain_source(source: str) -> str:
    """A cell's code without ``# NBVAL_*`` comments, normalised: what a tag is matched on."""
    return _normal(NBVAL_COMMENT.sub("", source))


def is_untouched(nb: Any, reference: Original | None) -> bool:
    """Whether the submission's code cells are those of the generated exercise notebook.

    ``reference`` is the fingerprint ``course generate`` recorded, never the file in
    ``exercises/``, which a learner edits in place.
    """
    if reference is None:
        return False
    return stubs.code_hash(code_cells(nb)) == reference.code


def for_nbval(nb: Any, reference: Original | None) -> Any:
    """A copy whose cells carry only the execution rules the course set."""
    must_raise = reference.raises if reference is not None else frozenset()
    clean = nbformat.v4.new_notebook(metadata={})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = NBVAL_COMMENT.sub("#", cell.source)
        tags = [t for t in cell.metadata.get("tags", [])
                if not t.startswith("nbval") and t not in CONTROL_TAGS]
        if stubs.cell_hash(plain_source(cell.source)) in must_raise:
            tags.append("raises-exception")
        clean.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    return clean


def write_ipynb(nb: Any, path: Path) -> None:
    path.write_text(nbformat.writes(nb), encoding="utf-8")
