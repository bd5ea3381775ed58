"""Forged grades: the attacks that beat a grader whose verdict lives in the student's process.

Before the judge/worker split, about ten lines added to an untouched stub earned full
marks in every chapter: call the course plugin's own signed result channel with
"passed", replace ``runtest`` on every collected pytest item, or register a pytest plugin
that rewrites every report. With the judge/worker split none of those exist in the process the
submission's code runs in. This test adds all of them, and more (the caller's frames,
the garbage collector, forged replies on the reply channel, signal handlers, threads
left running, ctypes), to the untouched stub of every chapter, runs the chapter's
tests on it, and requires every graded test to fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from course.grader import runner
from course.grader.layout import Course
from course.layout import ROOT

RUN_TIMEOUT = 240

ATTACK = '''

# %%
import ctypes as _ctypes
import gc as _gc
import json as _json
import os as _os
import signal as _signal
import sys as _sys
import threading as _threading


def _forge() -> list:
    tried = []
    # 1. The old signed result channel of the course's pytest plugin.
    plugin = _sys.modules.get("course.pytest_plugin")
    channel = getattr(plugin, "_channel", None)
    if channel is not None:
        for item in _gc.get_objects():
            if hasattr(item, "nodeid") and hasattr(item, "runtest"):
                channel.emit({"t": "result", "id": item.nodeid, "outcome": "passed", "message": ""})
        tried.append("channel")
    # 2. Every pytest item this process can reach passes without running.
    for item in _gc.get_objects():
        if hasattr(item, "runtest") and hasattr(item, "nodeid"):
            item.runtest = lambda: None
            tried.append("runtest")
    # 3. A plugin that rewrites every report to "passed", on any live pytest config.
    class _AllPass:
        def pytest_runtest_makereport(self, item, call):
            call.excinfo = None

        def pytest_report_teststatus(self, report):
            report.outcome = "passed"

    for obj in _gc.get_objects():
        manager = getattr(obj, "pluginmanager", None)
        if manager is not None and hasattr(manager, "register"):
            try:
                manager.register(_AllPass(), "all-pass")
                tried.append("plugin")
            except Exception:
                pass
    # 4. The caller's frames: rewrite any expected value found there.
    frame = _sys._getframe()
    while frame is not None:
        for name in ("expected", "want"):
            if name in frame.f_locals:
                tried.append("frames")
        frame = frame.f_back
    # 5. Forged replies for the next many calls, on the worker's reply channel.
    if "--reply-fd" in _sys.argv:
        fd = int(_sys.argv[_sys.argv.index("--reply-fd") + 1])
        for call in range(1, 300):
            for value in (True, 0, "", [], {}):
                try:
                    _os.write(fd, (_json.dumps({"call": call, "value": value}) + "\\n").encode())
                except OSError:
                    break
        tried.append("replies")
    # 6. Signals ignored, a thread that keeps writing, the exit path replaced.
    for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGALRM):
        _signal.signal(sig, _signal.SIG_IGN)
    _threading.Thread(target=lambda: [_os.write(1, b"5 passed\\n") for _ in range(100)],
                      daemon=True).start()
    _os._exit = lambda code: None
    # 7. ctypes: flip the interpreter's own True/False singletons' reference counts is fatal;
    # reading them is not. A submission can reach its own memory, not the judge's.
    tried.append(f"ctypes:{_ctypes.sizeof(_ctypes.c_void_p)}")
    return tried


_FORGED = _forge()
'''


CHAPTERS = sorted(slug for slug in Course.at().chapters
                  if (ROOT / "exercises" / f"{slug}.py").is_file())


def _attack(slug: str, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    stub = (ROOT / "exercises" / f"{slug}.py").read_text(encoding="utf-8")
    submission = folder / f"{slug}.py"
    submission.write_text(stub + ATTACK, encoding="utf-8")
    report = folder / "report.json"
    tests = [str(p) for p in Course.at().chapters[slug]]
    try:
        done = subprocess.run(
            runner.command(sys.executable, ROOT / "pyproject.toml", ROOT, *tests, "-q",
                           "--target", str(submission), "--course-report", str(report),
                           "--course-exercise-timeout", "20"),
            cwd=ROOT, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT,
        )
        output = (done.stdout + done.stderr)[-3000:]
    except subprocess.TimeoutExpired:
        output = f"the tests did not finish within {RUN_TIMEOUT} s"
    results = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
    return {"results": results, "output": output}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("forgery")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {slug: pool.submit(_attack, slug, root / slug) for slug in CHAPTERS}
        return {slug: future.result() for slug, future in futures.items()}


def test_every_chapter_is_attacked() -> None:
    assert len(CHAPTERS) >= 11, CHAPTERS


@pytest.mark.parametrize("slug", CHAPTERS)
def test_forging_earns_nothing(slug: str, attacked: dict[str, dict[str, Any]]) -> None:
    run = attacked[slug]
    assert run["results"], f"{slug}: the tests did not run:\n{run['output']}"
    passing = [r["nodeid"] for r in run["results"] if r["outcome"] == "passed"]
    assert not passing, f"{slug}: a forging stub earned points in:\n" + "\n".join(passing)
