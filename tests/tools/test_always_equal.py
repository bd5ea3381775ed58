"""An always-equal submission must earn nothing in any chapter.

For every chapter with ``exercises/<slug>.py`` and graded tests, this builds a submission
from the untouched stub in which every ``raise NotImplementedError(...)`` inside a function
becomes ``return <liar>``: ``pass`` in ``__init__`` (which must return None), and ``yield
<liar>`` in generators and ``@contextmanager`` functions. A liar claims to equal anything,
is truthy, contains everything, has every attribute, absorbs arithmetic (so ``sum()`` of
liars is a liar), can be called, awaited and used as a context manager that swallows
exceptions, and is an instance of ``str``, ``int``, ``list``... when the stub's return
annotation asks for one. Chapter 10 has no function to stub (the answers are strings):
there the string constants its tests read from the notebook (``DOCKERFILE``...) are
rebound to liar strings holding the same text.

Each chapter is graded once, in its own pytest subprocess (``--target <file>`` and the
plugin's ``--course-report``), and must pass no graded test: a test that compares what
the learner's code returned with ``==`` hands these points out. Compare with
``course.testing.same()`` instead.

Chapter 9 is covered as it stands: there the learner writes tests, so its liars are test
functions returning a liar, which pytest fails, and which could catch no broken version.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from course.grader import runner
from course.grader.layout import Course
from course.grader.stubs import pristine_text
from course.layout import ROOT
from course.notebook import load_notebook
from course.testing import same

CHAPTERS = sorted(
    slug for slug in Course.at().chapters if (ROOT / "exercises" / f"{slug}.py").is_file()
)
RUN_TIMEOUT = 240  # a chapter's tests take seconds; a liar that hangs one is caught here

LIAR_CELL = '''

# %%
class _Lies:
    """Claims to be equal to, and to contain, anything."""

    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __hash__(self): return 0
    def __bool__(self): return True
    def __contains__(self, item): return True
    def __getattr__(self, name):
        if name.startswith("__"):  # keep Python's own protocols (copy, pickle, inspect) sane
            raise AttributeError(name)
        return self
    def __getitem__(self, key): return self
    def __call__(self, *args, **kwargs): return self
    def __iter__(self): return iter(())
    def __aiter__(self): return self
    async def __anext__(self): raise StopAsyncIteration
    def __await__(self):
        return self
        yield
    def __enter__(self): return self
    def __exit__(self, *exc_info): return True
    async def __aenter__(self): return self
    async def __aexit__(self, *exc_info): return True
    def __add__(self, other): return self
    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __or__ = __ror__ = __add__
    def __repr__(self): return f"{type(self).__name__}()"


class AlwaysEqual(_Lies): pass
class AlwaysEqualStr(_Lies, str): pass
class AlwaysEqualInt(_Lies, int): pass
class AlwaysEqualFloat(_Lies, float): pass
class AlwaysEqualList(_Lies, list): pass
class AlwaysEqualDict(_Lies, dict): pass
class AlwaysEqualTuple(_Lies, tuple): pass
class AlwaysEqualSet(_Lies, frozenset): pass
'''
LIARS = {"str": "AlwaysEqualStr", "int": "AlwaysEqualInt", "float": "AlwaysEqualFloat",
         "list": "AlwaysEqualList", "dict": "AlwaysEqualDict", "tuple": "AlwaysEqualTuple",
         "set": "AlwaysEqualSet", "frozenset": "AlwaysEqualSet"}
NAME_READ = re.compile(r"""notebook\.([A-Z][A-Z0-9_]+)\b|["']([A-Z][A-Z0-9_]+)["']""")


def _liar_for(returns: ast.expr | None) -> str:
    """The liar class that fits a return annotation: ``-> str | None`` gets a str."""
    if isinstance(returns, ast.Constant) and isinstance(returns.value, str):
        returns = ast.parse(returns.value, mode="eval").body
    if isinstance(returns, ast.BinOp):
        for side in (returns.left, returns.right):
            if (name := _liar_for(side)) != "AlwaysEqual":
                return name
    if isinstance(returns, ast.Subscript):
        returns = returns.value
    if isinstance(returns, ast.Name):
        return LIARS.get(returns.id, "AlwaysEqual")
    return "AlwaysEqual"


def _is_stub(node: ast.AST) -> bool:
    if not isinstance(node, ast.Raise) or node.exc is None:
        return False
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _item_type(returns: ast.expr | None) -> ast.expr | None:
    """``Iterator[str]`` or ``AsyncGenerator[str, None]`` -> ``str``."""
    if isinstance(returns, ast.Constant) and isinstance(returns.value, str):
        returns = ast.parse(returns.value, mode="eval").body
    if not isinstance(returns, ast.Subscript):
        return None
    item = returns.slice
    return item.elts[0] if isinstance(item, ast.Tuple) and item.elts else item


def _yields(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A generator (a stub that keeps a `yield`), or a @contextmanager that must become one."""
    names = {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in function.decorator_list}
    if names & {"contextmanager", "asynccontextmanager"}:
        return True
    todo: list[ast.AST] = list(function.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return False


def _stub_replacements(tree: ast.AST) -> list[tuple[ast.Raise, str]]:
    found: list[tuple[ast.Raise, str]] = []

    def visit(node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node
        elif isinstance(node, ast.ClassDef | ast.Lambda):
            function = None
        if _is_stub(node) and function is not None:
            assert isinstance(node, ast.Raise)
            code = f"return {_liar_for(function.returns)}()"
            if function.name == "__init__":
                code = "pass"
            elif _yields(function):
                code = f"yield {_liar_for(_item_type(function.returns))}(); return"
            found.append((node, code))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


# Chapters are graded from threads, and CPython 3.11 can fail two AST compiles run at
# once with "AST constructor recursion depth mismatch" (gh-106905).
_PARSING = threading.Lock()


def liar_submission(exercise: str, test_source: str) -> tuple[str, int]:
    """The exercise with every stub lying; also how many places now lie."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    with _PARSING:
        tree = compile(exercise, "exercise", "exec", flags=flags)
    lines = [line.encode() for line in exercise.splitlines(keepends=True)]
    replacements = _stub_replacements(tree)
    for node, code in sorted(replacements, key=lambda r: (r[0].lineno, r[0].col_offset), reverse=True):
        assert node.end_lineno is not None and node.end_col_offset is not None
        first, last = node.lineno - 1, node.end_lineno - 1
        lines[first:last + 1] = [
            lines[first][: node.col_offset] + code.encode() + lines[last][node.end_col_offset:]
        ]
    read = {a or b for a, b in NAME_READ.findall(test_source)}
    constants = sorted({
        target.id for node in tree.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name) and target.id in read
    })
    rebind = "".join(f"{name} = AlwaysEqualStr({name})\n" for name in constants)
    text = b"".join(lines).decode() + LIAR_CELL + ("\n\n# %%\n" + rebind if rebind else "")
    return text, len(replacements) + len(constants)


def _test_files(slug: str) -> list[Path]:
    return Course.at().chapters[slug]


def _grade(slug: str, folder: Path) -> dict[str, Any]:
    """Write the liar submission for ``slug`` and run the chapter's tests on it."""
    folder.mkdir(parents=True, exist_ok=True)
    tests = _test_files(slug)
    source = "\n".join(path.read_text(encoding="utf-8") for path in tests)
    stub = pristine_text(ROOT, slug)  # as generated: exercises/ may hold someone's work
    assert stub is not None, f"no untouched exercise notebook for {slug}"
    text, lies = liar_submission(stub, source)
    submission = folder / f"{slug}.py"
    submission.write_text(text, encoding="utf-8")
    report = folder / "report.json"
    try:
        done = subprocess.run(
            runner.command(sys.executable, ROOT / "pyproject.toml", ROOT, *map(str, tests), "-q",
                           "--target", str(submission), "--course-report", str(report)),
            cwd=ROOT, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT,
        )
        output = (done.stdout + done.stderr)[-3000:]
    except subprocess.TimeoutExpired:
        output = f"the tests did not finish within {RUN_TIMEOUT} s: one of them hangs on a liar"
    results = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
    return {"submission": submission, "lies": lies, "results": results, "output": output}


@pytest.fixture(scope="module")
def graded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[dict[str, Any]]]:
    """Grade every chapter this session selected, a few at a time, each in its own pytest."""
    wanted = sorted({item.callspec.params["slug"] for item in request.session.items
                     if getattr(item, "originalname", "") == "test_always_equal_earns_nothing"
                     and hasattr(item, "callspec")})
    root = tmp_path_factory.mktemp("always_equal")
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    request.addfinalizer(lambda: pool.shutdown(cancel_futures=True))
    return {slug: pool.submit(_grade, slug, root / slug) for slug in wanted}


def test_there_are_chapters_to_attack() -> None:
    assert CHAPTERS, "no chapter has both exercises/<slug>.py and graded tests"


def test_the_liars_lie_and_same_sees_through_them() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(LIAR_CELL, "liars", "exec"), namespace)
    text = namespace["AlwaysEqualStr"]()
    assert isinstance(text, str) and text == "anything" and "x" in text
    assert (text != "y") is False
    assert namespace["AlwaysEqual"]().any.attribute() == 42
    assert not same(text, "anything") and not same(namespace["AlwaysEqualDict"](), {"a": 1})
    with namespace["AlwaysEqual"]():
        raise AssertionError("swallowed by __exit__")


def test_stubs_become_liars() -> None:
    exercise = (
        "class A:\n"
        "    def __init__(self) -> None:\n"
        "        raise NotImplementedError('x')\n"
        "    async def f(self) -> str | None:\n"
        "        raise NotImplementedError('x')\n"
        "def g() -> list[int]: raise NotImplementedError\n"
        "@contextmanager\n"
        "def scope() -> Iterator[str]:\n"
        "    raise NotImplementedError\n"
        "DOCKERFILE = 'FROM python'\n"
    )
    text, lies = liar_submission(exercise, 'x = _text(notebook, "DOCKERFILE")')
    assert lies == 5
    assert "    yield AlwaysEqualStr(); return\n" in text
    assert "        pass\n" in text and "        return AlwaysEqualStr()\n" in text
    assert "def g() -> list[int]: return AlwaysEqualList()\n" in text
    assert text.endswith("DOCKERFILE = AlwaysEqualStr(DOCKERFILE)\n")


@pytest.mark.parametrize("slug", CHAPTERS)
def test_always_equal_earns_nothing(slug: str, graded: dict[str, Future[dict[str, Any]]]) -> None:
    run = graded[slug].result()  # _grade() has its own timeout
    assert run["lies"], f"{slug}: no stub or constant to replace; the attack would prove nothing"
    # A submission that does not even load would earn nothing for the wrong reason.
    module = load_notebook(run["submission"], module_name=f"always_equal_{slug}")
    assert hasattr(module, "AlwaysEqual"), f"{slug}: the liar submission did not load"
    results = run["results"]
    assert results, f"{slug}: the tests did not run:\n{run['output']}"
    earned: dict[str, int] = {}
    for result in results:
        if result["outcome"] == "passed":
            earned[result["exercise"]] = earned.get(result["exercise"], 0) + result["points"]
    unreplaced = [r["nodeid"] for r in results if "not written yet" in r["message"]]
    assert not unreplaced, f"{slug}: stubs the liar missed still raise NotImplementedError: {unreplaced}"
    passing = [r["nodeid"] for r in results if r["outcome"] == "passed"]
    assert not passing, (
        f"{slug}: an always-equal submission earned {earned}; these tests passed (compare "
        f"with course.testing.same(), not ==):\n" + "\n".join(passing)
    )
