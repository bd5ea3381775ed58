"""Maintainer commands: build the book, run every check, look at the book in a browser.

``make book`` and ``make test`` call these, and so does ``.ci/run``, so a contributor, a
teacher and CI all run the same thing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from course.layout import HERE, NBVAL_RUN, ROOT, TESTS

# xdist workers: one more than the cores, because much of the suite waits (on sandboxes
# starting, on clocks); measured on 2 cores, 3 workers save 8 s of the parallel pass.
PARALLEL = max(3, min((os.cpu_count() or 2) + 1, 5))


def run(step: str, command: Sequence[str]) -> bool:
    """Run one check, print its name, time and verdict; return whether it passed."""
    print(f"\n==> {step}: {' '.join(command)}", flush=True)
    start = time.perf_counter()
    ok = subprocess.run(list(command), cwd=ROOT).returncode == 0
    print(f"<== {step}: {'ok' if ok else 'FAILED'} in {time.perf_counter() - start:.1f}s", flush=True)
    return ok


def tool(name: str) -> str:
    """A console script installed next to this interpreter (the course's virtualenv)."""
    return str(Path(sys.executable).with_name(name))


def mirror_notebooks() -> Path:
    """Convert every chapter and solution to .ipynb under _build/nbval, for nbval."""
    mirror = HERE.nbval
    if mirror.exists():
        shutil.rmtree(mirror)
    import jupytext

    for source in HERE.notebooks(*NBVAL_RUN):
        target = mirror / source.parent.name / f"{source.stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        jupytext.write(jupytext.read(source, fmt="py:percent"), target, fmt="ipynb")
    return mirror


def committed_notebooks_with_outputs() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    bad = []
    for name in listed:
        verify = subprocess.run([tool("nbstripout"), "--verify", name], cwd=ROOT, check=False)
        if verify.returncode != 0:
            bad.append(name)
    return bad


def check_no_outputs() -> bool:
    print("\n==> notebooks carry no outputs", flush=True)
    bad = committed_notebooks_with_outputs()
    for name in bad:
        print(f"{name}: has outputs; run `nbstripout {name}`", file=sys.stderr)
    print(f"<== notebooks carry no outputs: {'FAILED' if bad else 'ok'}", flush=True)
    return not bad


def _skip_learner_work() -> list[str]:
    """Ruff options that leave out exercises a learner has edited: their work in progress
    is not the course's code, and must not fail the course's checks."""
    from course.authoring.generate import learner_edits

    edited = [str(p.relative_to(ROOT)) for p in learner_edits(ROOT)]
    return ["--extend-exclude", ",".join(edited)] if edited else []


def test(args: argparse.Namespace) -> int:
    python = sys.executable
    mirror = str(mirror_notebooks().relative_to(ROOT))
    pytest = [python, "-m", "pytest", TESTS, mirror,
              "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", *args.pytest_args]
    # Every check runs even when an earlier one fails, so one run shows every problem.
    results = {
        "exercises/ up to date": run(
            "exercises/ up to date", [python, "-m", "course", "generate", "--check"]
        ),
        "appendix up to date": run(
            "appendix up to date", [python, "-m", "course", "appendix", "--check"]
        ),
        "ruff": run("ruff", [tool("ruff"), "check", ".", *_skip_learner_work()]),
        # The book's text column fits 88 columns of code. Checked on the .ipynb mirror,
        # where ruff sees code cells only: markdown lines of the .py sources are comments
        # to ruff, and prose and tables may run longer.
        "notebook code within 88 columns": run(
            "notebook code within 88 columns",
            [tool("ruff"), "check", "--select", "E501", "--line-length", "88",
             mirror],
        ),
        "mypy --strict": run("mypy --strict", [tool("mypy"), "--strict", "course", "solutions"]),
        "no outputs": check_no_outputs(),
        "pytest": run(
            "pytest, on every core (exercise tests, tool tests, nbval on every notebook)",
            [*pytest, "-m", "not serial", "-n", str(PARALLEL), "--dist", "loadfile"],
        ),
        # A few of these files at once share the cores well (they mostly wait on timers);
        # next to the CPU-bound grading tests they would not.
        "pytest, serial": run(
            "pytest, the timing-sensitive tests apart from the rest, a file per worker",
            [*pytest, "-m", "serial", "-n", str(PARALLEL), "--dist", "loadfile"],
        ),
    }
    failed = [name for name, ok in results.items() if not ok]
    print("\n" + ("all checks passed" if not failed else f"failed: {', '.join(failed)}"))
    return 1 if failed else 0


def book(args: argparse.Namespace) -> int:
    command = [tool("jupyter-book"), "build", str(ROOT), "--warningiserror", "--keep-going"]
    if args.force:
        shutil.rmtree(HERE.jupyter_cache, ignore_errors=True)
        command.append("--all")
    from course.authoring.prebuild import execute_into_cache

    execute_into_cache(ROOT)
    if not run("build the book", command):
        return 1
    print(f"\nThe book is at {HERE.html / 'index.html'}")
    return 0


def browser_check(args: argparse.Namespace) -> int:
    from course.authoring.browser import check_book

    problems = check_book(HERE.html)
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    print("the book looks right in Chromium" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def register(sub: Any) -> None:
    parser = sub.add_parser("test", help="run every check: the same command as CI")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    parser.set_defaults(handler=test)
    parser = sub.add_parser("book", help="build the book into _build/html")
    parser.add_argument("--force", action="store_true", help="re-execute every notebook")
    parser.set_defaults(handler=book)
    parser = sub.add_parser("browser-check", help="open the built book in headless Chromium")
    parser.set_defaults(handler=browser_check)
