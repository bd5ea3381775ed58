"""The pytest side of the course: the ``--target`` switch, exercise metadata, reports.

Exercise tests live in ``tests/test_<slug>.py``. Each graded test is marked with the
exercise it belongs to, its points and a hint, and reaches the chapter's notebook only
through probes (:mod:`course.probing`) called with the ``notebook`` fixture, which runs
them in a worker process (:mod:`course.grader.judge`)::

    @exercise("provider_registry", points=2, hint="Look at __init_subclass__.")
    def test_subclasses_register_themselves(notebook):
        assert probe_registry(notebook, key)["registered"]

The grader runs the tests as the judge, with ``--course-worker`` (how to start the
sandboxed worker) and ``--course-report`` (the verdicts), and collects them with
``--course-manifest``. nbval's run of a whole notebook in the sandbox reports over
``--course-channel`` (records signed with a nonce read before any student code loads;
see :mod:`course.grader.channel`)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from course import layout
from course.grader import channel, feedback, guard, judge, zygote
from course.grader.runner import skip_slow_imports
from course.layout import SLUG, TARGET_ENV
from course.notebook import NotebookError

F = TypeVar("F", bound=Callable[..., Any])
MARKER = "exercise"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_MESSAGE = 2000
MAX_CELL_OUTPUT = 10 * 2**20
DEV_EXERCISE_TIMEOUT = 300.0  # a guard against hangs; the grader passes its own, shorter
_exit_now = os._exit  # bound before student code can replace it


def exercise(exercise_id: str, *, points: int = 1, hint: str = "") -> Callable[[F], F]:
    """Mark a test as graded: it belongs to ``exercise_id`` and earns ``points``."""
    if points < 1:
        raise ValueError("a graded test is worth at least one point")
    marker: Callable[[F], F] = getattr(pytest.mark, MARKER)(exercise_id, points=points, hint=hint)
    return marker


@dataclass
class TestResult:
    nodeid: str
    exercise: str | None
    points: int
    hint: str
    outcome: str  # passed, failed, error or skipped
    message: str = ""


def graded_info(item: pytest.Item) -> tuple[str | None, int, str]:
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None, 0, ""
    return str(mark.args[0]), int(mark.kwargs.get("points", 1)), str(mark.kwargs.get("hint", ""))


def chapter_slug(module_name: str) -> str:
    """``tests/test_01_classes.py`` tests the chapter ``01_classes``."""
    return module_name.rsplit(".", 1)[-1].removeprefix("test_")


def chapter_of(path: Path) -> str:
    """The chapter a test file belongs to: ``tests/test_<slug>.py`` or ``tests/<slug>/*.py``."""
    if SLUG.match(path.parent.name):
        return path.parent.name
    return chapter_slug(path.stem)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course")
    group.addoption(
        "--target",
        default=None,
        help=f"solutions (default), exercises, or a path to a submission; also ${TARGET_ENV}",
    )
    group.addoption("--course-report", default=None, help="write per-test results as JSON here")
    group.addoption(
        "--exercise", action="append", default=[], help="run only the tests of this exercise id"
    )
    group.addoption(
        "--course-channel", default=None, metavar="OUT:NONCE",
        help="(grader) descriptors: one to write signed results to, one to read the nonce from",
    )
    group.addoption(
        "--course-manifest", default=None, help="(grader) write the graded tests as JSON here"
    )
    group.addoption(
        "--course-worker", default=None, metavar="LAUNCH.json",
        help="(grader) how to start the sandboxed worker that runs judged tests' probes",
    )
    group.addoption(
        "--course-exercise-timeout", type=float, default=DEV_EXERCISE_TIMEOUT,
        help="seconds of probe time each exercise's tests may use in all",
    )


_results_key = pytest.StashKey[list[TestResult]]()
_phases_key = pytest.StashKey[list[tuple[str, str, str]]]()  # (when, outcome, message)


@dataclass
class _Channel:
    emit: Callable[[dict[str, Any]], None]
    snapshot: guard.Snapshot | None = None
    exitstatus: int | None = None


_channel: _Channel | None = None

# Loaded with `-p` (pyproject's addopts, the judge's command line), this module is
# imported before pytest loads the installed plugins, nbval among them, whose imports
# would build rfc3987_syntax's grammar: two seconds in every pytest process of `make test`.
skip_slow_imports()


def pytest_configure(config: pytest.Config) -> None:
    global _channel
    config.addinivalue_line("markers", f"{MARKER}(id, points, hint): a graded exercise test")
    config.stash[_results_key] = []
    fds = config.getoption("--course-channel")
    if fds is not None:
        out_fd, nonce_fd = (int(fd) for fd in str(fds).split(":"))
        _channel = _Channel(channel.make_writer(out_fd, _read_nonce(nonce_fd)))
        _not_dumpable()
    if config.getoption("nbval_lax", default=False) or config.getoption("nbval", default=False):
        zygote.fork_kernels()
    launch_file = config.getoption("--course-worker")
    if launch_file:
        _start_worker_early(config, judge.Launch.read(Path(launch_file)))


_early_key = pytest.StashKey[tuple["judge.WorkerProcess", threading.Thread]]()


def _start_worker_early(config: pytest.Config, launch: judge.Launch) -> None:
    """Start the judge's worker while pytest collects the tests: the two start-ups take
    about as long as each other, and side by side a learner's check waits for one."""
    worker = judge.WorkerProcess(launch)

    def start() -> None:
        with contextlib.suppress(judge.WorkerStopped):  # the first probe tries again, and says why
            worker.ensure_started()

    thread = threading.Thread(target=start, name="worker start-up", daemon=True)
    thread.start()
    config.stash[_early_key] = (worker, thread)


def _early_worker(config: pytest.Config) -> judge.WorkerProcess:
    worker, thread = config.stash[_early_key]
    thread.join()
    return worker


def _read_nonce(fd: int) -> str:
    """Read the nonce from its own pipe and close it: no later code can read it there."""
    data = b""
    while len(data) < 1024:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data.decode("ascii", "replace").strip()


def _not_dumpable() -> None:
    """Keep other processes of the sandbox user (the nbval kernel) out of our memory."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(config.getoption("--exercise"))
    if not wanted:
        return
    keep = [item for item in items if graded_info(item)[0] in wanted]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    manifest = session.config.getoption("--course-manifest")
    if manifest:
        tests = []
        for item in session.items:
            exercise_id, points, hint = graded_info(item)
            tests.append({
                "nodeid": item.nodeid, "chapter": chapter_of(item.path), "exercise": exercise_id,
                "points": points, "hint": hint, "name": item.name,
                "doc": _first_doc_line(item),
            })
        Path(manifest).write_text(json.dumps(tests, indent=1), encoding="utf-8")
    if _channel is not None:
        _channel.emit({"t": "collected", "ids": [item.nodeid for item in session.items]})
        # Student code first runs in the `notebook` fixture, so this is still clean.
        _channel.snapshot = guard.take()


def _first_doc_line(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _channel is not None:
        _channel.emit({"t": "start", "id": nodeid})


@pytest.fixture
def notebook(request: pytest.FixtureRequest) -> judge.RemoteNotebook:
    """The exercise notebook of this test file's chapter: a handle whose only use is
    running probes on it in a worker process (:mod:`course.probing`)."""
    return _remote_notebook(request, chapter_of(Path(str(request.path))))


@pytest.fixture
def submission_file(request: pytest.FixtureRequest) -> Path:
    """The submitted notebook's file, for tools that read it without running it (mypy).

    Only in a separate process with a time limit: the bytes are the learner's.
    """
    slug = chapter_of(Path(str(request.path)))
    return Path(_remote_notebook(request, slug).worker.launch.notebook)


_workers_key = pytest.StashKey[dict[str, "judge.WorkerProcess"]]()
_spent_key = pytest.StashKey[dict[str, float]]()


def _remote_notebook(request: pytest.FixtureRequest, slug: str) -> judge.RemoteNotebook:
    config = request.config
    workers = config.stash.setdefault(_workers_key, {})
    if slug not in workers:
        launch_file = config.getoption("--course-worker")
        if launch_file:
            workers[slug] = _early_worker(config)
        else:
            try:
                found = layout.notebook(slug, layout.target(config.getoption("--target")))
            except NotebookError as exc:
                pytest.fail(str(exc), pytrace=False)
            module = judge.relative_module(str(request.path), config.rootpath)
            workers[slug] = judge.WorkerProcess(judge.Launch.local(found, config.rootpath, [module]))
    exercise_id = graded_info(request.node)[0] or request.node.nodeid
    spent = config.stash.setdefault(_spent_key, {})
    allowed = float(config.getoption("--course-exercise-timeout"))

    def spend(seconds: float) -> None:
        spent[exercise_id] = spent.get(exercise_id, 0.0) + seconds

    return judge.RemoteNotebook(workers[slug], config.rootpath,
                                lambda: allowed - spent.get(exercise_id, 0.0), spend)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Any:
    report: pytest.TestReport = yield
    exercise_id, points, hint = graded_info(item)
    message = _short_message(call.excinfo, item) if call.excinfo else ""
    if _channel is not None and report.when == "call" and report.passed:
        printed = _cell_output_size(item)
        if printed > MAX_CELL_OUTPUT:
            report.outcome = "failed"
            message = (f"the cell printed {printed / 2**20:.0f} MB; a notebook that floods "
                       f"its output (over {MAX_CELL_OUTPUT // 2**20} MB a cell) does not pass")
    outcome: str = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "skipped"  # an expected failure is not a pass
    elif call.excinfo is not None and report.failed:
        outcome = _judged_outcome(call.excinfo.value, outcome)
    item.stash.setdefault(_phases_key, []).append((report.when, outcome, message))
    failed_setup = report.when == "setup" and not report.passed
    if report.when == "call" or failed_setup:
        legacy = outcome if report.when == "call" else ("skipped" if report.skipped else "error")
        item.config.stash[_results_key].append(
            TestResult(item.nodeid, exercise_id, points, hint, legacy, message)
        )
    if _channel is not None and report.when in ("call", "teardown"):
        _report_to_grader(item, report.when)
    return report


def _judged_outcome(exc: BaseException, outcome: str) -> str:
    """A worker that stopped, or a notebook that would not load, says so in the outcome."""
    if isinstance(exc, judge.WorkerStopped):
        return "timeout" if exc.ending == "timeout" else "crashed"
    if isinstance(exc, judge.ProbeError) and exc.type_name == "NotebookError":
        return "error"
    return outcome


def _cell_output_size(item: pytest.Item) -> int:
    """How much an nbval cell printed (0 for ordinary tests)."""
    outputs = getattr(item, "test_outputs", None)
    if not isinstance(outputs, list):
        return 0
    size = 0
    for output in outputs:
        if isinstance(output, dict):
            size += sum(len(str(v)) for v in output.values())
    return size


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Look for tampering the moment the test body returns, before pytest builds a report
    with objects the student's code may have broken."""
    try:
        return (yield)
    finally:
        if _channel is not None:
            _stop_if_tampered(item)


def _stop_if_tampered(item: pytest.Item) -> None:
    assert _channel is not None
    tampered = guard.changed(_channel.snapshot) if _channel.snapshot is not None else []
    if tampered:
        shown = ", ".join(tampered[:5]) + (" ..." if tampered[5:] else "")
        _channel.emit({"t": "result", "id": item.nodeid, "outcome": "tampered", "message": shown})
        _channel.emit({"t": "done", "status": "tampered"})
        _exit_now(4)


def _report_to_grader(item: pytest.Item, when: str) -> None:
    """Check for tampering; after teardown, send the test's verdict to the grader."""
    assert _channel is not None
    _stop_if_tampered(item)
    if when != "teardown":
        return
    phases = item.stash.get(_phases_key, [])
    outcome, message = _verdict(phases)
    _channel.emit({"t": "result", "id": item.nodeid, "outcome": outcome, "message": message})


def _verdict(phases: list[tuple[str, str, str]]) -> tuple[str, str]:
    """Passed only when setup, call and teardown were each seen to pass."""
    seen = {when: (outcome, message) for when, outcome, message in phases}
    for when in ("setup", "call", "teardown"):
        outcome, message = seen.get(when, ("missing", ""))
        if outcome != "passed":
            if when == "setup" and outcome == "failed":
                outcome = "error"
            return outcome, message
    return "passed", ""


def _short_message(excinfo: pytest.ExceptionInfo[BaseException], item: pytest.Item) -> str:
    exc = excinfo.value
    if isinstance(exc, (judge.ProbeError, judge.WorkerStopped)):
        text = str(exc)
        return text if len(text) < MAX_MESSAGE else text[:MAX_MESSAGE] + " [...]"
    inner = getattr(exc, "inner_traceback", None)  # nbval: the cell's own traceback
    if isinstance(inner, str):
        source = str(getattr(getattr(item, "cell", None), "source", "")).strip().splitlines()
        lines = ANSI.sub("", inner).strip().splitlines()[-12:]
        shown = f"the cell starting `{source[0][:80]}` raised:\n" if source else ""
        return shown + "\n".join(lines)
    if isinstance(exc, NotImplementedError):
        text = f"not written yet: {exc}"
    else:
        text = excinfo.exconly(tryshort=True).strip()
    text = text if len(text) < MAX_MESSAGE else text[:MAX_MESSAGE] + " [...]"
    text = feedback.shorten(text)
    where = _notebook_line(excinfo, item)
    return f"{text}\n(raised at {where})" if where else text


def _notebook_line(excinfo: pytest.ExceptionInfo[BaseException], item: pytest.Item) -> str:
    """The deepest line of the student's notebook in the traceback, if any."""
    try:
        target = str(layout.target(item.config.getoption("--target")))
    except NotebookError:
        return ""
    found = ""
    tb: types.TracebackType | None = excinfo.tb
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(target):
            name = Path(filename.split("#", 1)[0]).name
            found = f"line {tb.tb_lineno} of {name}"
        tb = tb.tb_next
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workers = list(session.config.stash.get(_workers_key, {}).values())
    if _early_key in session.config.stash:
        workers.append(_early_worker(session.config))
    for worker in workers:
        worker.stop()
    path = session.config.getoption("--course-report")
    if path:
        results = [asdict(r) for r in session.config.stash[_results_key]]
        Path(path).write_text(json.dumps(results, indent=2), encoding="utf-8")
    if _channel is not None:
        _channel.exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """In the grader, end the process here: exit handlers registered by student code never run."""
    if _channel is not None:
        _channel.emit({"t": "done", "status": "ok", "exitstatus": _channel.exitstatus})
        sys.stdout.flush()
        _exit_now(0)
