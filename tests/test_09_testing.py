"""Graded tests for chapter 9's exercise: the learner writes the tests, for ``prompt_kit``.

The learner's notebook defines pytest tests (``def test_...(prompt_kit): ...``) for
``course/lessons/prompt_kit.py``. Here those tests are run, once, by pytest in a
process of its own, against several versions of the module:

- ``correct``: the module the learner was given; every test must pass on it;
- ``equivalent``: the same behaviour written differently (``tests/mutants/09_testing/
  equivalent.py``); every test must pass on it too, so a test that pins the code rather
  than the behaviour earns nothing;
- one mutant per deliberately broken version (``tests/mutants/09_testing/mutants.py``).

A mutant is *caught* when at least one of the learner's tests fails on it. Each caught
mutant is worth a point, but only while the whole suite passes on both good versions
and catches something (so a suite that always fails, or asserts nothing, earns
nothing). A test that still raises ``NotImplementedError`` on the correct module counts
as not written yet and is left out, so the untouched stubs earn zero.

Every version is a fresh module named like the original, built for each test, with the
learner's references to the original (``prompt_kit`` imported at the top of the
notebook, or names imported from it) swapped for the version under test.

Judged: the mutants stay with the judge (the grader never copies ``tests/mutants/`` to
the worker). One probe receives every version's source, shuffled, with no name, no map
and no file that says which is which, runs the learner's suite on each in the worker
and returns what happened to each test as data; only the judge knows which position
held which version, and all the counting below happens here.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import json
import os
import secrets
import signal
import sys
import tempfile
import textwrap
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import course.lessons.prompt_kit
from course.notebook import DEMO_TAG, cell_definitions, read_cells
from course.probing import probe
from course.pytest_plugin import exercise

MUTANT_DIR = Path(__file__).resolve().parent / "mutants" / "09_testing"
REAL_FILE = Path(course.lessons.prompt_kit.__file__).resolve()
GOOD_VERSIONS = ("correct", "equivalent")
RUN_TIMEOUT = 60.0


@functools.cache
def mutants() -> types.ModuleType:
    """The broken versions: the judge's alone (the worker's copy of tests/ has no mutants/)."""
    spec = importlib.util.spec_from_file_location("prompt_kit_mutants", MUTANT_DIR / "mutants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The forked pytest's side: a conftest that builds each version and reports every result.
CONFTEST = textwrap.dedent('''
    import json
    import random
    import ssl
    import sys
    import types
    from pathlib import Path

    import pytest

    import course.lessons
    import course.lessons.prompt_kit as ORIGINAL

    CONFIG = json.loads((Path(__file__).parent / "suite.json").read_text(encoding="utf-8"))
    SOURCES = CONFIG.pop("sources")  # position -> source; which version is which stays with the judge
    MODULE_NAME = ORIGINAL.__name__
    SWAPPABLE = {
        id(value): name for name, value in vars(ORIGINAL).items()
        if callable(value) and getattr(value, "__module__", None) == MODULE_NAME
    }
    RESULTS = []


    BUILT = {}


    def build(opaque):
        """Each version is built once, as a module named and placed like the original."""
        if opaque not in BUILT:
            module = types.ModuleType(MODULE_NAME, ORIGINAL.__doc__)
            module.__file__ = ORIGINAL.__file__
            sys.modules[MODULE_NAME] = module
            try:
                exec(compile(SOURCES[opaque], ORIGINAL.__file__, "exec"), module.__dict__)
            finally:
                sys.modules[MODULE_NAME] = ORIGINAL
            BUILT[opaque] = module
        return BUILT[opaque]


    # Every httpx client loads the CA bundle into a new SSL context (slow, and useless
    # here: nothing leaves the machine). One shared context per set of arguments.
    _new_context = ssl.create_default_context
    _contexts = {}


    def _shared_context(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:
            return _new_context(*args, **kwargs)
        if key not in _contexts:
            _contexts[key] = _new_context(*args, **kwargs)
        return _contexts[key]


    ssl.create_default_context = _shared_context


    @pytest.fixture(params=sorted(SOURCES), autouse=True)
    def _module_under_test(request, monkeypatch):
        module = build(request.param)
        monkeypatch.setitem(sys.modules, MODULE_NAME, module)
        monkeypatch.setattr(course.lessons, "prompt_kit", module)
        learner = request.module
        for name, value in list(vars(learner).items()):
            if value is ORIGINAL:
                monkeypatch.setattr(learner, name, module)
            elif id(value) in SWAPPABLE and getattr(ORIGINAL, SWAPPABLE[id(value)], None) is value:
                monkeypatch.setattr(learner, name, getattr(module, SWAPPABLE[id(value)]))
        return module


    @pytest.fixture
    def prompt_kit(_module_under_test):
        return _module_under_test


    def pytest_collection_modifyitems(items):
        random.shuffle(items)


    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(item, call):
        report = yield
        if call.when == "call" or (call.when == "setup" and not report.passed):
            callspec = getattr(item, "callspec", None)
            opaque = callspec.params.get("_module_under_test") if callspec else None
            excinfo = call.excinfo
            RESULTS.append({
                "test": getattr(item, "originalname", item.name),
                "nodeid": item.nodeid,
                "version": opaque,
                "outcome": report.outcome,
                "xfail": hasattr(report, "wasxfail"),
                "error": excinfo.typename if excinfo else None,
                "message": excinfo.exconly()[:400] if excinfo else "",
            })
        return report


    def pytest_sessionfinish(session):
        Path(CONFIG["report"]).write_text(json.dumps(RESULTS), encoding="utf-8")
''')

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


@dataclass
class SuiteRun:
    """What the learner's tests did on every version of the module."""

    results: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""

    def on(self, version: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r["version"] == version]

    @property
    def written(self) -> set[str]:
        """Tests that do something on the correct module (no NotImplementedError)."""
        names = {r["test"] for r in self.on("correct")}
        stubs = {r["test"] for r in self.on("correct") if r["error"] == "NotImplementedError"}
        return names - stubs

    def failures(self, version: str) -> list[dict[str, Any]]:
        """Written tests that did not pass on a version (an xfail counts as not passing)."""
        return [
            r for r in self.on(version)
            if r["test"] in self.written and (r["outcome"] == "failed" or r["xfail"])
        ]

    def catches(self, version: str) -> bool:
        return any(
            r["test"] in self.written and r["outcome"] == "failed" and r["error"] != "NotImplementedError"
            for r in self.on(version)
        )

    def caught(self) -> list[str]:
        return [name for name in mutants().MUTANTS if self.catches(name)]


_RUNS: dict[int, SuiteRun] = {}


def run_suite(notebook: Any) -> SuiteRun:
    """Run the learner's tests against every version (once per judge session)."""
    key = id(getattr(notebook, "worker", notebook))
    if key not in _RUNS:
        original = REAL_FILE.read_text(encoding="utf-8")
        versions = {
            "correct": original,
            "equivalent": (MUTANT_DIR / "equivalent.py").read_text(encoding="utf-8"),
            **{name: mutants().mutate(original, name) for name in mutants().MUTANTS},
        }
        order = secrets.SystemRandom().sample(sorted(versions), len(versions))
        got = probe_run_suite(notebook, [versions[name] for name in order], RUN_TIMEOUT)
        _RUNS[key] = _suite_run(got, order)
    return _RUNS[key]


def _suite_run(got: Any, order: list[str]) -> SuiteRun:
    """Check the worker's report and put the version names back in."""
    if type(got) is str:
        return SuiteRun(problem=got)
    results = []
    for record in got:
        position = record.get("version") if type(record) is dict else None
        if type(position) is not str or not position.isdigit() or int(position) >= len(order):
            return SuiteRun(problem="the run of your tests reported a version that does not exist")
        results.append({**record, "version": order[int(position)]})
    return SuiteRun(results=results)


def notebook_definitions(path: Path) -> str:
    """The notebook's top-level definitions as one plain module, as the loader sees them.

    Written to a ``test_*.py`` file, pytest collects the learner's tests and fixtures from
    it and rewrites their asserts, so a failing test says what it compared.
    """
    body: list[ast.stmt] = []
    for cell in read_cells(path):
        if DEMO_TAG not in cell.tags:
            body.extend(cell_definitions(cell, path.name).body)
    return ast.unparse(ast.Module(body=body, type_ignores=[])) + "\n"


def pytest_in_a_fork(folder: Path, args: list[str], timeout: float) -> tuple[int | None, str]:
    """``pytest ARGS`` in ``folder``, run by a fork of this process: the worker has imported
    pytest and its plugins already, where a new Python would spend seconds importing them
    again. Returns the exit status (None if it ran out of time) and what it printed."""
    output = folder / "output.txt"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setpgid(0, 0)
            os.chdir(folder)
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
            log = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            code = int(pytest.main(args))
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
        elif time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        else:
            time.sleep(0.01)
    return status, output.read_text(encoding="utf-8", errors="replace") if output.exists() else ""


@probe
def probe_run_suite(nb: Any, sources: list[str], timeout: float) -> Any:
    """In the worker: run the learner's tests once per source; report each test's outcome."""
    folder = Path(tempfile.mkdtemp(prefix="suite-"))
    report = folder / "report.json"
    config = {"report": str(report), "sources": {str(i): src for i, src in enumerate(sources)}}
    (folder / "suite.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (folder / "test_notebook.py").write_text(notebook_definitions(Path(nb.__file__)),
                                             encoding="utf-8")
    (folder / "pytest.ini").write_text(INI, encoding="utf-8")
    # Only the plugins a learner's tests may use: the others make pytest slow to start.
    args = ["-q", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin", "-p", "respx.plugin",
            "-c", "pytest.ini", "--rootdir", ".", "test_notebook.py"]
    code, output = pytest_in_a_fork(folder, args, timeout)
    if code is None:
        return f"your tests did not finish within {timeout:g} s"
    tail = "\n".join(output.strip().splitlines()[-15:])
    if not report.is_file():
        return f"pytest could not run your tests:\n{tail}"
    results: list[dict[str, Any]] = json.loads(report.read_text(encoding="utf-8"))
    if not results and code not in (0, 5):
        return f"pytest could not run your tests:\n{tail}"
    return results


@pytest.fixture
def suite(notebook: Any) -> SuiteRun:
    return run_suite(notebook)


def describe(failures: list[dict[str, Any]]) -> str:
    lines = []
    for r in failures[:6]:
        reason = "marked xfail" if r["xfail"] else (r["message"].splitlines() or [r["outcome"]])[0]
        lines.append(f"  {r['test']}: {reason}")
    return "\n".join(lines)


def require_sound_suite(suite: SuiteRun) -> None:
    """The precondition of every point: tests written, all green on the good versions."""
    if suite.problem:
        pytest.fail(suite.problem, pytrace=False)
    if not suite.written:
        pytest.fail(
            "no test of yours ran against prompt_kit: write test functions whose names start "
            "with test_ and that take the prompt_kit fixture (a test that still raises "
            "NotImplementedError does not count)", pytrace=False,
        )
    for version in GOOD_VERSIONS:
        failing = suite.failures(version)
        which = "the correct prompt_kit" if version == "correct" else (
            "a rewritten prompt_kit that behaves exactly like the original"
        )
        if failing:
            pytest.fail(f"these tests fail on {which}, so no broken version counts:\n{describe(failing)}",
                        pytrace=False)


# --- the whole suite -----------------------------------------------------------------

@exercise(
    "tests_pass_on_correct", points=2,
    hint="Every test must pass on the module as given, test what its docstrings promise "
    "(not how it is written), and assert something: a suite that catches no broken "
    "version proves nothing.",
)
def test_suite_passes_on_correct_module(suite: SuiteRun) -> None:
    require_sound_suite(suite)
    if not suite.caught():
        pytest.fail(
            "your tests pass on the correct module but catch none of the broken versions: "
            "do they assert anything about what the functions return?", pytrace=False,
        )


# --- one point per broken version caught ---------------------------------------------

def catches(mutant: str, suite: SuiteRun) -> None:
    require_sound_suite(suite)
    if not suite.catches(mutant):
        pytest.fail(
            f"a broken version of prompt_kit passed all your tests ({len(suite.caught())} of "
            f"{len(mutants().MUTANTS)} broken versions caught so far)", pytrace=False,
        )


@exercise("catches_budget_bugs", points=1,
          hint="fit_history: test a history whose cost is exactly the budget: it must come back whole.")
def test_catches_budget_boundary(suite: SuiteRun) -> None:
    catches("budget_boundary", suite)


@exercise("catches_budget_bugs", points=1,
          hint="fit_history: start a long history with a system message and give a small budget.")
def test_catches_system_dropped(suite: SuiteRun) -> None:
    catches("system_dropped", suite)


@exercise("catches_budget_bugs", points=1,
          hint="fit_history: compare the whole list it returns, in order, when it has to drop messages.")
def test_catches_history_order(suite: SuiteRun) -> None:
    catches("history_order", suite)


@exercise("catches_budget_bugs", points=1,
          hint="fit_history: put a long message between short ones; once one does not fit, "
          "nothing older may come back.")
def test_catches_skip_not_stop(suite: SuiteRun) -> None:
    catches("skip_not_stop", suite)


@exercise("catches_prompt_bugs", points=1,
          hint="build_messages: the budget covers the final user message too; add up the cost "
          "of what it returns (message_tokens) and compare with the budget.")
def test_catches_question_not_budgeted(suite: SuiteRun) -> None:
    catches("question_not_budgeted", suite)


@exercise("catches_prompt_bugs", points=1,
          hint="build_messages with documents: compare the final user message with the exact "
          "text the docstring shows (a snapshot).")
def test_catches_sources_from_zero(suite: SuiteRun) -> None:
    catches("sources_from_zero", suite)


@exercise("catches_parser_bugs", points=1,
          hint="parse_answer: models wrap JSON in prose and code fences; test replies like that.")
def test_catches_prose_around_json(suite: SuiteRun) -> None:
    catches("prose_around_json", suite)


@exercise("catches_parser_bugs", points=1,
          hint="parse_answer: which confidence values must be rejected? Try both sides of the range.")
def test_catches_confidence_range(suite: SuiteRun) -> None:
    catches("confidence_range", suite)


@exercise("catches_repair_bugs", points=1,
          hint="ask: give an AsyncMock client a bad reply and then a good one (side_effect=[...]).")
def test_catches_no_repair_retry(suite: SuiteRun) -> None:
    catches("no_repair_retry", suite)


@exercise("catches_repair_bugs", points=1,
          hint="ask: look at the messages of the second call (mock.await_args_list) and check "
          "what the docstring says they hold.")
def test_catches_repair_without_reply(suite: SuiteRun) -> None:
    catches("repair_without_reply", suite)


@exercise("catches_http_bugs", points=1,
          hint="HTTPChatClient: answer 429 with a Retry-After header from an httpx.MockTransport "
          "(or respx) and check the exception's retry_after.")
def test_catches_retry_after_ignored(suite: SuiteRun) -> None:
    catches("retry_after_ignored", suite)


@exercise("catches_http_bugs", points=1,
          hint="HTTPChatClient: inspect the request your mock transport received: path and JSON body.")
def test_catches_request_body(suite: SuiteRun) -> None:
    catches("request_body", suite)
