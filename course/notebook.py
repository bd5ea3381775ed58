"""Load an exercise notebook as a Python module made of its top-level definitions.

A notebook mixes two kinds of code: definitions a test can import (imports, functions,
classes, plain assignments) and demonstrations meant for a reader (prints, top-level
``await``, cells that start servers). Tests and the grader only want the first kind, so
this loader keeps definitions and drops everything else. Each kept statement is compiled
with its line number in the original file, so a traceback points at the notebook line a
learner can fix.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from course.percent import PercentError, read_percent

# Cells with this tag are demonstrations only: never imported, even if they define things.
DEMO_TAG = "demo"

_KEPT_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)
_MAGIC = re.compile(r"^\s*[%!]")


class NotebookError(Exception):
    """A notebook could not be read or loaded; the message says where and why."""


@dataclass(frozen=True)
class CodeCell:
    """One code cell: its 1-based position among all cells and where it starts in the file."""

    number: int
    source: str
    tags: tuple[str, ...]
    first_line: int | None  # 1-based line of the cell's first source line in a .py file

    def where(self, line_in_cell: int) -> str:
        place = f"cell {self.number}, line {line_in_cell}"
        if self.first_line is not None:
            place += f" (line {self.first_line + line_in_cell - 1} of the file)"
        return place


def read_cells(path: Path) -> list[CodeCell]:
    """Return the code cells of a percent-format ``.py`` or an ``.ipynb`` notebook."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: cannot read the file ({exc})") from exc
    if path.suffix == ".py":
        try:
            cells = read_percent(text)
        except PercentError as exc:
            raise NotebookError(f"{path}: {exc}") from None
        # Numbered among all cells, as the learner sees them in Jupyter.
        return [CodeCell(number, cell.source, cell.tags, cell.first_line)
                for number, cell in enumerate(cells, start=1) if cell.cell_type == "code"]
    if path.suffix != ".ipynb":
        raise NotebookError(f"{path}: expected a .py (Jupytext percent) or .ipynb notebook")
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NotebookError(f"{path}: not a valid .ipynb notebook ({_first_line(exc)})") from exc
    raw = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(raw, list):
        raise NotebookError(f"{path}: not a valid .ipynb notebook (no list of cells)")
    code = []
    for number, cell in enumerate(raw, start=1):
        cell_type, source, tags = _checked_cell(path, number, cell)
        if cell_type == "code":
            code.append(CodeCell(number, source, tags, None))
    return code


def _checked_cell(path: Path, number: int, cell: object) -> tuple[str, str, tuple[str, ...]]:
    """A cell's type, source and tags, each checked: a notebook file can hold anything."""
    where = f"{path}: cell {number}"
    if not isinstance(cell, dict):
        raise NotebookError(f"{where} is not a cell object")
    cell_type, source = cell.get("cell_type"), cell.get("source", "")
    if not isinstance(cell_type, str):
        raise NotebookError(f"{where}: its 'cell_type' is not text")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise NotebookError(f"{where}: its 'source' is not text")
    metadata = cell.get("metadata", {})
    tags = metadata.get("tags", []) if isinstance(metadata, dict) else None
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise NotebookError(f"{where}: its metadata 'tags' are not a list of text")
    return cell_type, source, tuple(tags)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def cell_definitions(cell: CodeCell, filename: str) -> ast.Module:
    """Parse one cell and keep only its top-level definitions, numbered as in the file."""
    # Jupyter magics and shell escapes are not Python; blank them so line numbers hold.
    source = "\n".join("" if _MAGIC.match(line) else line for line in cell.source.splitlines())
    try:
        tree = _parse_allowing_await(source, filename)
    except SyntaxError as exc:
        line = exc.lineno or 1
        lines = source.splitlines()
        # Not exc.text: for a .py notebook Python reads that from the file at the
        # cell-relative line number, which is the wrong line.
        code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        shown = f"\n    {code}" if code else ""
        raise NotebookError(
            f"{filename}: syntax error in {cell.where(line)}: {exc.msg}{shown}"
        ) from None
    body = [node for node in tree.body if _is_definition(node)]
    module = ast.Module(body=body, type_ignores=[])
    if cell.first_line is not None:
        ast.increment_lineno(module, cell.first_line - 1)
    return module


def _parse_allowing_await(source: str, filename: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(source, filename, "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def _is_definition(node: ast.stmt) -> bool:
    if not isinstance(node, _KEPT_NODES):
        return False
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        # `answer = await client.get(...)` is a demo, not a definition.
        return not any(isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)) for n in ast.walk(node))
    return True


def load_notebook(path: str | Path, module_name: str | None = None) -> types.ModuleType:
    """Import the top-level definitions of a notebook as a fresh module.

    The module is registered in ``sys.modules`` under ``module_name`` (by default
    ``nb_`` plus the file stem) so that dataclasses, pickling and ``typing.get_type_hints``
    resolve names in it. Raises :class:`NotebookError` with the cell and line on failure.
    """
    return compile_notebook(path).load(module_name)


@dataclass(frozen=True)
class CompiledNotebook:
    """A notebook's definitions, parsed and compiled once, ready to run into fresh modules."""

    path: Path
    cells: tuple[tuple[CodeCell, str, types.CodeType], ...]  # (cell, filename, code)

    def load(self, module_name: str | None = None) -> types.ModuleType:
        name = module_name or "nb_" + re.sub(r"\W", "_", self.path.stem)
        module = types.ModuleType(name, f"Definitions from the notebook {self.path.name}")
        module.__file__ = str(self.path)
        sys.modules[name] = module
        try:
            for cell, filename, code in self.cells:
                try:
                    exec(code, module.__dict__)
                except Exception as exc:
                    raise NotebookError(
                        f"{self.path.name}: {type(exc).__name__} while loading cell {cell.number}"
                        f"{_failing_line(exc, filename, cell)}: {exc}"
                    ) from exc
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module


def compile_notebook(path: str | Path) -> CompiledNotebook:
    """Parse and compile a notebook's definitions. Raises :class:`NotebookError`."""
    path = Path(path).resolve()
    if not path.is_file():
        raise NotebookError(f"{path}: no such notebook")
    compiled = []
    for cell in read_cells(path):
        if DEMO_TAG in cell.tags:
            continue
        filename = str(path) if cell.first_line is not None else f"{path}#cell{cell.number}"
        tree = cell_definitions(cell, filename)
        compiled.append((cell, filename, compile(tree, filename, "exec", dont_inherit=True)))
    return CompiledNotebook(path, tuple(compiled))


def _failing_line(exc: BaseException, filename: str, cell: CodeCell) -> str:
    """Where in the notebook ``exc`` was raised: the deepest traceback frame in it."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return ""
    return f", line {line} of the file" if cell.first_line is not None else f", line {line}"
