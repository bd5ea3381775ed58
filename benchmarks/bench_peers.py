"""Time the course's grader against otter-grader and nbgrader on chapter 1, side by side.

Run with ``make bench-peers`` (or ``python benchmarks/bench_peers.py [--runs N] [--batch N]
[--quick]``). It works offline: the peers install from pip's mirror into their own virtual
environments under ``_build/bench-peers/`` (created once, then reused), pinned to
otter-grader 7.0.0 and nbgrader 0.9.6.

Every grader grades the same notebook: ``solutions/01_classes.py`` (full marks) and the
untouched ``exercises/01_classes.py`` (the stub, 0 marks). The peers run the course's 26
graded tests for the chapter, rebuilt in ``benchmarks/peers/chapter1_checks.py`` and
wrapped into each peer's own format by ``benchmarks/peers/build.py``. Before a figure
counts, the benchmark checks every grade: a solution below full marks or a stub above 0
stops it, since a peer that skipped tests would only look fast.

What is timed, in paired runs that alternate course, otter, nbgrader, course, ... so that
the machine's drift hits all three alike:

1. one submission, solution and stub, wall time: ``course grade``, ``otter run``,
   ``nbgrader autograde --student``;
2. a batch (default 20, half solutions, half stubs), wall and CPU time: ``course
   grade-all --jobs 2``; ``otter run`` two at a time (``otter grade`` needs Docker, which
   a teacher without it replaces by this); ``nbgrader autograde`` on the whole class, one
   student at a time, as nbgrader does.

CPU is the user + system time of every process the grader started and waited for (the
notebook kernels included), from ``getrusage(RUSAGE_CHILDREN)`` before and after.

What differs between the three (see ``peers/chapter1_checks.py``): the course runs each
submission in a sandbox (its own user, no network, private file system) and its tests
draw random inputs and call the notebook through probes in a worker process; the peers
run the same assertions with fixed inputs inside their notebook kernel, without a
sandbox. The course's grade also includes its runs-top-to-bottom criterion.

The Markdown table goes to stdout and to ``_build/bench-peers/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from peers import build

ROOT = build.ROOT
CACHE = ROOT / "_build" / "bench-peers"
PYTHON = sys.executable
KINDS = {"solution": build.SOLUTION, "stub": build.STUB}
GRADERS = ("course", "otter", "nbgrader")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float  # user + system seconds of the children


def timed(action: Callable[[], None]) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    action()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a grader; its exit status is not the verdict (the grades are checked after)."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return done.stdout[-3000:] + done.stderr[-3000:]


def expect(grader: str, student: str, kind: str, score: float, max_score: float, log: str) -> None:
    """Fail loudly unless a solution got full marks and a stub got 0."""
    wanted = max_score if kind == "solution" else 0
    if max_score <= 0 or score != wanted:
        raise SystemExit(f"{grader} gave {student} ({kind}) {score}/{max_score}, expected "
                         f"{wanted}: the comparison would be void. Its output ended with:\n{log}")


def batch_kinds(size: int) -> dict[str, str]:
    return {f"student{i:03d}": "solution" if i % 2 == 0 else "stub" for i in range(size)}


class Grader(Protocol):
    name: str

    def single(self, kind: str) -> Sample: ...

    def batch(self) -> Sample: ...


class Course:
    name = "course"

    def __init__(self, batch: int) -> None:
        self.folder = CACHE / "course"
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        # The course grades an untouched stub without running anything ("not started"),
        # which the peers cannot: its stub gets one added cell, so it is graded in full
        # like the work of a learner who started, as the peers grade theirs.
        started = self.folder / f"{build.SLUG}.py"
        started.write_text(build.STUB.read_text(encoding="utf-8") + "\n# %%\n# started\n",
                           encoding="utf-8")
        self.files = {"solution": build.SOLUTION, "stub": started}
        self.students = batch_kinds(batch)
        for student, kind in self.students.items():
            (self.folder / "class" / student).mkdir(parents=True)
            shutil.copy(self.files[kind], self.folder / "class" / student / f"{build.SLUG}.py")

    def single(self, kind: str) -> Sample:
        report = self.folder / f"{kind}.json"
        report.unlink(missing_ok=True)
        log = ""

        def grade() -> None:
            nonlocal log
            log = run([PYTHON, "-m", "course", "grade", str(self.files[kind]), "--json", "-o",
                       str(report)], ROOT)

        sample = timed(grade)
        data = json.loads(report.read_text()) if report.is_file() else {}
        expect(self.name, kind, kind, data.get("score", -1), data.get("max_score", 0), log)
        return sample

    def batch(self) -> Sample:
        out = self.folder / "out"
        shutil.rmtree(out, ignore_errors=True)
        log = ""

        def grade() -> None:
            nonlocal log
            log = run([PYTHON, "-m", "course", "grade-all", str(self.folder / "class"),
                       "--jobs", "2", "--out", str(out)], ROOT)

        sample = timed(grade)
        summary = out / "summary.json"
        rows = {r["student"]: r for r in json.loads(summary.read_text())} if summary.is_file() else {}
        for student, kind in self.students.items():
            row = rows.get(student, {})
            expect(self.name, student, kind, row.get("score", -1), row.get("max_score", 0), log)
        return sample


class Otter:
    name = "otter"

    def __init__(self, batch: int) -> None:
        self.venv = build.ensure_venv(CACHE, "otter")
        self.folder = build.build_otter(CACHE, self.venv)
        self.env = build.peer_env(CACHE, self.venv)
        self.students = batch_kinds(batch)
        (self.folder / "class").mkdir()
        for student, kind in self.students.items():
            shutil.copy(self.folder / f"{kind}.ipynb", self.folder / "class" / f"{student}.ipynb")

    def grade(self, notebook: Path, out: Path, student: str, kind: str) -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        log = run([str(self.venv / "bin" / "otter"), "run", "-a", "autograder.zip", "-o", str(out),
                   "--no-logo", str(notebook)], self.folder, self.env)
        results = out / "results.json"
        tests = json.loads(results.read_text())["tests"] if results.is_file() else []
        scored = [t for t in tests if "score" in t]
        expect(self.name, student, kind, sum(t["score"] for t in scored),
               sum(t["max_score"] for t in scored), log)

    def single(self, kind: str) -> Sample:
        return timed(lambda: self.grade(self.folder / f"{kind}.ipynb", self.folder / "out" / kind,
                                        kind, kind))

    def batch(self) -> Sample:
        def grade_class() -> None:
            with ThreadPoolExecutor(max_workers=2) as pool:
                jobs = [pool.submit(self.grade, self.folder / "class" / f"{student}.ipynb",
                                    self.folder / "out" / student, student, kind)
                        for student, kind in self.students.items()]
                for job in jobs:
                    job.result()

        return timed(grade_class)


SCORES = """\
import json, sys
from nbgrader.api import Gradebook
with Gradebook("sqlite:///gradebook.db") as gradebook:
    print(json.dumps({s: [gradebook.find_submission("ch1", s).score,
                          gradebook.find_submission("ch1", s).max_score] for s in sys.argv[1:]}))
"""


class Nbgrader:
    name = "nbgrader"

    def __init__(self, batch: int) -> None:
        self.venv = build.ensure_venv(CACHE, "nbgrader")
        self.env = build.peer_env(CACHE, self.venv)
        self.single_folder = build.build_nbgrader(CACHE, self.venv, "single",
                                                  {kind: kind for kind in KINDS})
        self.students = batch_kinds(batch)
        self.batch_folder = build.build_nbgrader(CACHE, self.venv, "batch", self.students)

    def autograde(self, folder: Path, students: dict[str, str], *options: str) -> Sample:
        for student in students:
            shutil.rmtree(folder / "autograded" / student, ignore_errors=True)
        log = ""

        def grade() -> None:
            nonlocal log
            log = run([str(self.venv / "bin" / "nbgrader"), "autograde", build.ASSIGNMENT,
                       *options], folder, self.env)

        sample = timed(grade)
        done = subprocess.run([str(self.venv / "bin" / "python"), "-c", SCORES, *students],
                              cwd=folder, env=self.env, capture_output=True, text=True, check=False)
        scores = json.loads(done.stdout) if done.returncode == 0 else {}
        for student, kind in students.items():
            score, max_score = scores.get(student, [-1, 0])
            expect(self.name, student, kind, score, max_score, log + done.stderr[-2000:])
        return sample

    def single(self, kind: str) -> Sample:
        return self.autograde(self.single_folder, {kind: kind}, "--student", kind)

    def batch(self) -> Sample:
        return self.autograde(self.batch_folder, self.students)


# --------------------------------------------------------------------------------- report


def seconds(values: list[float]) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.2f} s"
    return f"{middle:.2f} s ({min(values):.2f}-{max(values):.2f})"


def table(samples: dict[tuple[str, str], list[Sample]], batch: int) -> list[str]:
    rows: list[tuple[str, str, Callable[[Sample], float], int]] = [
        ("one submission, solution, wall", "solution", lambda s: s.wall, 1),
        ("one submission, stub, wall", "stub", lambda s: s.wall, 1),
        ("one submission, solution, CPU", "solution", lambda s: s.cpu, 1),
        (f"batch of {batch}, wall", "batch", lambda s: s.wall, 1),
        (f"batch of {batch}, CPU per student", "batch", lambda s: s.cpu, batch),
    ]
    lines = ["| what | course | otter | nbgrader | ratio otter, nbgrader (÷ course) |",
             "|---|---|---|---|---|"]
    for label, task, value, per in rows:
        figures = {g: [value(s) / per for s in samples[(g, task)]] for g in GRADERS}
        course = statistics.median(figures["course"])
        ratios = ", ".join(f"{statistics.median(figures[g]) / course:.2f}x" for g in ("otter", "nbgrader"))
        lines.append(f"| {label} | " + " | ".join(seconds(figures[g]) for g in GRADERS)
                     + f" | {ratios} |")
    return lines


def version(venv: Path, package: str) -> str:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "show", package],
                          capture_output=True, text=True, check=False)
    return next((line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                 if line.startswith("Version:")), "?")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="paired runs of each measurement")
    parser.add_argument("--batch", type=int, default=20, help="submissions in the batch")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 run, a batch of 4")
    args = parser.parse_args()
    runs, batch = (1, 4) if args.quick else (args.runs, args.batch)
    if runs < 1 or batch < 2:
        parser.error("--runs must be at least 1 and --batch at least 2")
    load_before = load()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip() or "?"
    print(f"setting up the peers in {CACHE} ...", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    graders: dict[str, Grader] = {"course": Course(batch), "otter": Otter(batch), "nbgrader": Nbgrader(batch)}
    for grader in graders.values():  # warm caches; also proves each grades correctly
        grader.single("solution")

    samples: dict[tuple[str, str], list[Sample]] = {}
    for number in range(1, runs + 1):
        for task in ("solution", "stub", "batch"):
            for name, grader in graders.items():
                sample = grader.batch() if task == "batch" else grader.single(task)
                samples.setdefault((name, task), []).append(sample)
                print(f"run {number}/{runs} {task:8} {name:8} wall {sample.wall:6.2f} s  "
                      f"cpu {sample.cpu:6.2f} s", flush=True)

    otter_venv, nbgrader_venv = CACHE / "otter-venv", CACHE / "nbgrader-venv"
    header = [
        "# Grading chapter 1: the course against otter-grader and nbgrader "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; load average (1/5/15 min) {load_before} before, "
        f"{load()} after",
        f"- course at {commit}; otter-grader {version(otter_venv, 'otter-grader')}; "
        f"nbgrader {version(nbgrader_venv, 'nbgrader')}",
        f"- {runs} paired run(s), alternating course, otter, nbgrader; median (min-max); "
        f"batch of {batch}, half solutions, half stubs (the course's with one cell added, "
        "so it is graded in full)",
        "- one submission: `course grade`, `otter run`, `nbgrader autograde --student`; batch: "
        "`course grade-all --jobs 2`, `otter run` two at a time, `nbgrader autograde` (one at a time)",
        "- every grade checked: solutions full marks, stubs 0, on all three",
        "- ratio: the peer's median over the course's; above 1, the course takes less",
        "",
    ]
    report = "\n".join(header + table(samples, batch)) + "\n"
    (CACHE / "results.md").write_text(report, encoding="utf-8")
    print("\n" + report + f"\n(written to {CACHE / 'results.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
