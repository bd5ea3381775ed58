"""Build otter-grader and nbgrader equivalents of chapter 1 for ``bench_peers.py``.

Each peer gets its own virtual environment (pinned, reused while its stamp file says the
same pins), and the chapter in its own format:

- otter-grader: the course's notebook converted to .ipynb, with otter's ``grader =
  otter.Notebook()`` cell and ``grader.check(...)`` cells where the course has ``check()``;
  the tests as one exception-based test file per exercise, zipped by ``otter generate``.
- nbgrader: a course directory; the source notebook has the exercise cells marked as
  nbgrader solution cells, then a locked helper cell and one autograder-test cell per
  test; ``nbgrader generate_assignment`` records it in the gradebook. Submissions carry
  the same cells and metadata, with the course's solution or stub code in them.

Both take their tests from ``chapter1_checks.py`` (see its docstring for what differs from
the course's own tests).
"""

from __future__ import annotations

import ast
import copy
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).with_name("chapter1_checks.py")
SLUG = "01_classes"
SOLUTION = ROOT / "solutions" / f"{SLUG}.py"
STUB = ROOT / "exercises" / f"{SLUG}.py"
ASSIGNMENT = "ch1"  # nbgrader's assignment name

# The pins the benchmark reports. ipykernel runs each peer's notebooks in its own venv.
PINS = {
    "otter": ["otter-grader==7.0.0", "ipykernel==7.4.0"],
    "nbgrader": ["nbgrader==0.9.6", "ipykernel==7.4.0"],
}


# nbformat has no type hints: these are its calls used here, typed.
def code_cell(source: str) -> Any:
    return nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]


def markdown_cell(source: str) -> Any:
    return nbformat.v4.new_markdown_cell(source)  # type: ignore[no-untyped-call]


def write_notebook(notebook: Any, path: Path) -> None:
    nbformat.write(notebook, path)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Test:
    name: str
    exercise: str
    points: int
    source: str  # the function, without its @graded line


def read_checks(path: Path = CHECKS) -> tuple[str, list[Test]]:
    """The helpers' source (everything but the docstring, @graded and the tests) and the tests."""
    text = path.read_text(encoding="utf-8")
    module = ast.parse(text)
    imports: list[str] = []
    helpers: list[str] = []
    tests: list[Test] = []
    for node in module.body:
        segment = ast.get_source_segment(text, node)
        assert segment is not None
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            (decorator,) = node.decorator_list
            assert isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "graded"
            exercise, points = (ast.literal_eval(arg) for arg in decorator.args)
            tests.append(Test(node.name, exercise, points, segment))
        elif isinstance(node, ast.FunctionDef) and node.name == "graded":
            continue
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(segment)
        else:
            helpers.append(segment)
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join(helpers) + "\n", tests


# ------------------------------------------------------------------------- environments


def peer_env(cache: Path, venv: Path) -> dict[str, str]:
    """The peer's venv first on PATH, as when activated (nbgrader runs ``alembic`` by name);
    its Jupyter kept away from the user's kernels and config (~/.jupyter)."""
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "VIRTUAL_ENV": str(venv),
            "JUPYTER_CONFIG_DIR": str(cache / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(cache / "jupyter-data"), "PYTHONNOUSERSITE": "1"}


def run(command: list[str], cache: Path, venv: Path, cwd: Path | None = None) -> None:
    """Run a set-up step quietly; on failure, stop with its output."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=peer_env(cache, venv),
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} ... failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")


def ensure_venv(cache: Path, peer: str) -> Path:
    """The peer's venv with its pins installed; reused when its stamp records the same pins."""
    venv = cache / f"{peer}-venv"
    stamp = venv / ".bench-pins"
    wanted = "\n".join(PINS[peer])
    if stamp.is_file() and stamp.read_text() == wanted:
        return venv
    print(f"creating {venv} ({', '.join(PINS[peer])}); pip uses the local mirror", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PINS[peer]], cache, venv)
    stamp.write_text(wanted)
    return venv


# ----------------------------------------------------------------------------- notebooks


def course_notebook(path: Path) -> Any:
    notebook: Any = jupytext.read(path)
    notebook.cells = [c for c in notebook.cells if c.source.strip()
                      and "remove-cell" not in c.metadata.get("tags", [])]
    return notebook


def is_check_cell(cell: Any) -> bool:
    lines = [line for line in cell.source.splitlines() if line.strip()]
    return cell.cell_type == "code" and bool(lines) and all(
        line.startswith(("from course.check import check", "check(")) for line in lines)


def otter_notebook(path: Path) -> Any:
    """The course's notebook as an otter student would hand it in."""
    notebook = course_notebook(path)
    cells = [code_cell(f'import otter\n\ngrader = otter.Notebook("{SLUG}.ipynb")')]
    for cell in notebook.cells:
        if is_check_cell(cell):
            lines = [f"grader.{line}" for line in cell.source.splitlines() if line.startswith("check(")]
            cell = code_cell("\n".join(lines))
        cells.append(cell)
    notebook.cells = cells
    return notebook


def nbgrader_meta(grade_id: str, *, solution: bool = False, grade: bool = False,
                  locked: bool = False, points: int | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"grade": grade, "grade_id": grade_id, "locked": locked,
                               "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def nbgrader_notebook(path: Path, helpers: str, tests: list[Test]) -> Any:
    """The course's notebook in nbgrader's form: which code cells are answers comes from
    the solution file (its ``# BEGIN SOLUTION`` cells), the code in them from ``path``."""
    marked = [c for c in course_notebook(SOLUTION).cells
              if c.cell_type == "code" and not is_check_cell(c)]
    notebook = course_notebook(path)
    cells = [c for c in notebook.cells if not is_check_cell(c)]
    code = [c for c in cells if c.cell_type == "code"]
    if len(code) != len(marked):
        raise SystemExit(f"{path} and {SOLUTION} do not have the same code cells")
    for number, (cell, solution) in enumerate(zip(code, marked, strict=True)):
        if "# BEGIN SOLUTION" in solution.source:
            cell.metadata["nbgrader"] = nbgrader_meta(f"answer-{number}", solution=True)
    cells.append(markdown_cell("## Autograder tests"))
    helper_cell = code_cell(helpers)
    helper_cell.metadata["nbgrader"] = nbgrader_meta("test-helpers", locked=True)
    cells.append(helper_cell)
    for test in tests:
        cell = code_cell(f"{test.source}\n\n\n{test.name}(globals())")
        cell.metadata["nbgrader"] = nbgrader_meta(test.name, grade=True, locked=True,
                                                  points=test.points)
        cells.append(cell)
    notebook.cells = cells
    return notebook


# ------------------------------------------------------------------------ otter artefacts


def otter_test_file(exercise: str, helpers: str, tests: list[Test]) -> str:
    """One exception-based otter test file: the form ``otter assign`` writes."""
    cases = [f"@test_case(points={t.points}, hidden=False)\n{t.source}"
             for t in tests if t.exercise == exercise]
    return (f"from otter.test_files import test_case\n\nOK_FORMAT = False\n\n"
            f'name = "{exercise}"\npoints = None\n\n{helpers}\n\n' + "\n\n\n".join(cases) + "\n")


def build_otter(cache: Path, venv: Path) -> Path:
    """The otter folder: tests/, autograder.zip, solution.ipynb and stub.ipynb."""
    helpers, tests = read_checks()
    folder = cache / "otter"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "tests").mkdir(parents=True)
    for exercise in dict.fromkeys(t.exercise for t in tests):
        (folder / "tests" / f"{exercise}.py").write_text(otter_test_file(exercise, helpers, tests))
    (folder / "requirements.txt").write_text("")
    run([str(venv / "bin" / "otter"), "generate", "-t", "tests", "-o", "autograder.zip",
         "--no-config", "--no-environment"], cache, venv, cwd=folder)
    for name, source in (("solution", SOLUTION), ("stub", STUB)):
        write_notebook(otter_notebook(source), folder / f"{name}.ipynb")
    return folder


# --------------------------------------------------------------------- nbgrader artefacts

NBGRADER_CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "bench"
"""


def build_nbgrader(cache: Path, venv: Path, name: str, students: dict[str, str]) -> Path:
    """An nbgrader course folder with the assignment generated and ``students`` submitted
    (student id -> "solution" or "stub")."""
    helpers, tests = read_checks()
    folder = cache / "nbgrader" / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "source" / ASSIGNMENT).mkdir(parents=True)
    (folder / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    source = nbgrader_notebook(SOLUTION, helpers, tests)
    write_notebook(source, folder / "source" / ASSIGNMENT / f"{SLUG}.ipynb")
    run([str(venv / "bin" / "nbgrader"), "generate_assignment", ASSIGNMENT], cache, venv,
        cwd=folder)
    submissions = {kind: nbgrader_notebook(path, helpers, tests)
                   for kind, path in (("solution", SOLUTION), ("stub", STUB))}
    for student, kind in students.items():
        target = folder / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        write_notebook(copy.deepcopy(submissions[kind]), target / f"{SLUG}.ipynb")
    return folder
