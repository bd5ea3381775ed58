"""Grade a whole class on one machine: ``course grade-all DIR --jobs N``.

Every entry of DIR (a folder, a zip or a notebook) is one student. Students are graded
``--jobs`` at a time; each grading already runs in sandboxed subprocesses, so threads are
enough here and every core stays busy. One student's broken submission is written down
as that student's problem and the batch goes on. The output folder gets ``summary.csv``,
``summary.json`` and, per student, the report as text, JSON and JUnit XML.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from course.grader import zygote
from course.grader.cli import with_hints
from course.grader.discover import SubmissionError
from course.grader.engine import GraderError, Options, grade
from course.grader.layout import Course
from course.grader.report import render
from course.layout import NOTEBOOK_SUFFIXES


@dataclass
class StudentResult:
    student: str
    score: int = 0
    max_score: int = 0
    exercises: dict[str, int] = field(default_factory=dict)
    error: str = ""
    grader_failed: bool = False
    seconds: float = 0.0


def students(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir()
        if not p.name.startswith(".") and not p.is_symlink()
        and (p.is_dir() or p.suffix.lower() == ".zip" or p.suffix in NOTEBOOK_SUFFIXES)
    )


def safe_name(path: Path) -> str:
    stem = path.name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "student"


def unique_names(paths: list[Path]) -> dict[Path, str]:
    """A distinct output name per student: ``alice.zip`` and a folder ``alice`` (or ``a b``
    and ``a_b``) must never write into, and overwrite, the same report folder."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for path in paths:
        base = name = safe_name(path)
        number = 1
        while name.lower() in taken:
            number += 1
            name = f"{base}-{number}"
        taken.add(name.lower())
        names[path] = name
    return names


def grade_one(path: Path, out: Path, course: Course, options: Options,
              name: str | None = None) -> StudentResult:
    name = name or safe_name(path)
    result = StudentResult(name)
    start = time.monotonic()
    folder = out / "students" / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        report = with_hints(grade(path, course, options), course)
        for fmt, filename in (("table", "report.txt"), ("json", "report.json"),
                              ("junit", "report.xml"), ("gradescope", "results.json")):
            (folder / filename).write_text(render(report, fmt), encoding="utf-8")
        result.score, result.max_score = report.earned, report.points
        result.exercises = {f"{e.chapter}:{e.id}": e.earned for e in report.exercises()}
        if not report.chapters:
            result.error = "; ".join(report.problems)
    except SubmissionError as exc:
        result.error = str(exc)
    except GraderError as exc:
        result.error, result.grader_failed = f"grader failed: {exc}", True
    except Exception as exc:  # one student must never stop the batch
        result.error, result.grader_failed = f"grader crashed: {exc!r}", True
        (folder / "grader-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    if result.error:
        (folder / "problem.txt").write_text(result.error + "\n", encoding="utf-8")
    result.seconds = time.monotonic() - start
    return result


def exposed_warning(directory: Path) -> str:
    """Without private mounts, a class folder other users may read is open to every run."""
    from course.grader.sandbox import isolation

    if isolation().mounts or directory.stat().st_mode & 0o005 == 0:
        return ""
    return (f"warning: this machine allows no private mounts, so student code can read any "
            f"file other users may read; {directory} is readable by other users, so each "
            f"submission could read the others: `chmod o-rx {directory}` first")


def quota_warning(options: Options) -> str:
    """Said once per class, not per student: without cgroups, runs share the machine."""
    from course.grader import quota

    found = quota.find()
    if found.place is not None:
        return ""
    return (f"note: the total quota per run (memory {options.limits.total_memory_mb} MB, "
            f"{options.limits.processes} processes, {options.limits.cpus:g} CPU) is not "
            f"enforced on this machine ({found.problem}); each process is still limited, "
            "but a run may take memory or CPU time from another graded at the same time")


class Progress:
    """A one-line progress bar on a terminal; a line per student otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.start = time.monotonic()
        self.tty = stream.isatty()

    def step(self, result: StudentResult) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        tail = f"{elapsed:5.1f} s, about {eta:4.0f} s left"
        if self.tty:
            self.stream.write(f"\r{bar} {tail}  ")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            verdict = result.error[:60] if result.error else f"{result.score}/{result.max_score}"
            self.stream.write(f"{bar} {result.student}: {verdict} ({tail})\n")
        self.stream.flush()


def grade_all(directory: Path, out: Path, course: Course, options: Options, jobs: int = 0,
              stream: TextIO = sys.stderr) -> int:
    if not directory.is_dir():
        print(f"{directory} is not a folder of submissions", file=sys.stderr)
        return 2
    # Every student after the first finds its imports done.
    zygote.current(preload=zygote.FOR_TESTS + zygote.FOR_NOTEBOOKS)
    todo = students(directory)
    out.mkdir(parents=True, exist_ok=True)
    warning = exposed_warning(directory)
    if warning:
        print(warning, file=stream)
    warning = quota_warning(options)
    if warning:
        print(warning, file=stream)
    jobs = jobs or os.cpu_count() or 1
    options = dataclasses.replace(options, chapters_at_once=1)  # the jobs use the cores
    progress = Progress(len(todo), stream)
    results: list[StudentResult] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        names = unique_names(todo)
        futures = [pool.submit(grade_one, path, out, course, options, names[path])
                   for path in todo]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            progress.step(result)
    results.sort(key=lambda r: r.student)
    write_summary(results, out)
    failed = [r for r in results if r.grader_failed]
    print(f"graded {len(results)} submissions into {out} "
          f"(summary.csv, summary.json, students/)", file=stream)
    return 1 if failed else 0


def write_summary(results: list[StudentResult], out: Path) -> None:
    columns = sorted({key for r in results for key in r.exercises})
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "score", "max_score", *columns, "problem"])
        for r in results:
            writer.writerow([r.student, r.score, r.max_score,
                             *(r.exercises.get(c, "") for c in columns), r.error])
    data: list[dict[str, Any]] = [
        {"student": r.student, "score": r.score, "max_score": r.max_score,
         "exercises": r.exercises, "problem": r.error, "seconds": round(r.seconds, 2)}
        for r in results
    ]
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
