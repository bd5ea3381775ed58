"""Time the grader: one chapter, against bare pytest on the same tests, and a class batch.

Run with ``make bench`` (or ``python benchmarks/bench_grader.py [--batch N] [--chapter SLUG]``).

1. ``course grade`` on one chapter's solution notebook (the manifest cache warm, as it is
   for every submission after the first), median of several runs.
2. Bare pytest on the same machine running the same tests: the chapter's exercise tests
   plus nbval on the same notebook converted to .ipynb, in one process, with no sandbox.
   ``check()`` cells are made no-ops there exactly as inside the grader, so both run the
   same work. Goal: within 1.5x of this (issue 15).
3. ``course grade-all`` on N submissions (half solutions, half started exercises: the
   stub with one cell added) with ``--jobs 1`` and ``--jobs 2``, wall and CPU per student.
   Goal: the batch scales with cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The same import blocker the grader's own processes use (course/grader/runner.py).
BARE = ("import sys; sys.modules.setdefault('rfc3987_syntax', None); import pytest; "
        "sys.exit(pytest.main(sys.argv[1:]))")


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{command[:4]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def median_of(runs: int, command: list[str], env: dict[str, str] | None = None) -> float:
    timed(command, env)  # warm caches (manifest, page cache)
    return statistics.median(timed(command, env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="01_classes")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    slug = args.chapter
    solution = ROOT / "solutions" / f"{slug}.py"
    exercise = ROOT / "exercises" / f"{slug}.py"
    if not solution.is_file():
        raise SystemExit(f"no {solution}: pick a chapter with --chapter")
    print(f"grader benchmark, chapter {slug}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    grade = median_of(args.runs, [PYTHON, "-m", "course", "grade", str(solution)])
    with tempfile.TemporaryDirectory() as tmp:
        import jupytext

        ipynb = Path(tmp) / f"{slug}.ipynb"
        jupytext.write(jupytext.read(solution), ipynb, fmt="ipynb")
        env = {**os.environ, "COURSE_GRADER_SANDBOX": "1"}
        tests = [str(ROOT / "tests" / f"test_{slug}.py"), "-q", "-p", "no:cacheprovider",
                 "--target", str(solution)]
        bare_all = median_of(args.runs, [PYTHON, "-c", BARE, *tests, str(ipynb), "--nbval-lax",
                                         "--nbval-current-env"], env)
        bare_tests = median_of(args.runs, [PYTHON, "-c", BARE, *tests], env)
    print(f"  course grade, one chapter (tests + runs top to bottom): {grade:6.2f} s")
    print(f"  bare pytest, same tests + nbval, no sandbox:           {bare_all:6.2f} s")
    print(f"  bare pytest, exercise tests only:                      {bare_tests:6.2f} s")
    print(f"  ratio grader / bare pytest (same tests):               {grade / bare_all:6.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        klass = Path(tmp) / "class"
        # The other half is the stub with one cell added: an untouched stub is "not
        # started" without running anything, which would flatter the figure.
        started = exercise.read_text(encoding="utf-8") + "\n# %%\n# started\n"
        for i in range(args.batch):
            folder = klass / f"student{i:03d}"
            folder.mkdir(parents=True)
            if i % 2 == 0:
                shutil.copy(solution, folder / f"{slug}.py")
            else:
                (folder / f"{slug}.py").write_text(started, encoding="utf-8")
        seconds = {}
        for jobs in (1, 2):
            out = Path(tmp) / f"out{jobs}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds[jobs] = timed([PYTHON, "-m", "course", "grade-all", str(klass),
                                   "--jobs", str(jobs), "--out", str(out)])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            print(f"  grade-all, {args.batch} submissions, --jobs {jobs}:"
                  f"{' ' * (22 - len(str(args.batch)))}{seconds[jobs]:6.1f} s "
                  f"({seconds[jobs] / args.batch:.2f} s each, CPU {cpu / args.batch:.2f} s each)")
    print(f"  speed-up from 1 to 2 jobs:                             {seconds[1] / seconds[2]:6.2f}x")


if __name__ == "__main__":
    main()
