"""Grade a submission: find its notebooks, run the course's tests and nbval on each, judge.

Per notebook, two runs start side by side: the chapter's tests in a judge
(:mod:`course.grader.judging`), which sends probes to a sandboxed worker and never
imports the submission, and nbval over the notebook itself in the sandbox (the "runs top
to bottom" criterion, reported over a signed channel). A worker that crashes or runs out
of an exercise's time costs only the test that was waiting; the judge starts a new one
for the next test."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.grader import discover, judging, manifest, prepare, sandbox
from course.grader.layout import Course
from course.grader.manifest import GradedTest, Manifest
from course.grader.results import (
    RUNS_ID,
    RUNS_POINTS,
    UNTOUCHED_NOTE,
    ChapterResult,
    ExerciseResult,
    Report,
    TestVerdict,
)
from course.grader.sandbox import Limits, RunResult, Scratch


class GraderError(Exception):
    """Grading itself failed (not the student): the sandbox or the course is broken."""


@dataclass(frozen=True)
class Options:
    limits: Limits = field(default_factory=Limits)
    chapters: tuple[str, ...] = ()  # chapters expected: one not submitted scores 0
    exercises: tuple[str, ...] = ()  # grade only these exercise ids (check())
    run_notebook: bool = True  # the nbval criterion
    workers: int = 2  # sandboxes at once for one chapter (its tests, its notebook run)
    # Chapters graded at once: most of a chapter's time is spent waiting (sandboxes
    # starting, tests that wait on clocks), so two overlap well. A batch grades one at a
    # time and uses its cores for other students instead.
    chapters_at_once: int = 2
    scratch_base: Path | None = None
    cache_dir: Path | None = None


class NotebookWatch:
    def __init__(self, limits: Limits, started: float) -> None:
        self.limits, self.started = limits, started

    def feed(self, record: dict[str, Any], now: float) -> None:
        pass

    def expired(self, now: float) -> str | None:
        if now - self.started > self.limits.notebook_timeout:
            return f"the notebook did not finish within {self.limits.notebook_timeout:g} s"
        return None


def grade(submission: Path, course: Course | None = None, options: Options | None = None) -> Report:
    """Grade one submission. Raises SubmissionError for unreadable input, GraderError for ours."""
    course = course or Course.at()
    options = options or Options()
    start = time.monotonic()
    tests = manifest.load(course, options.cache_dir)
    chapters = sorted(course.chapters)
    report = Report(submission=submission.name)
    found = discover.find(submission, chapters)
    report.problems.extend(found.problems)
    for slug in options.chapters:
        if slug not in course.chapters:
            report.problems.append(
                f"{slug}: no such chapter in this course (chapters: {', '.join(chapters) or 'none'})"
            )
    wanted = sorted(set(found.notebooks) | {s for s in options.chapters if s in course.chapters})
    if options.exercises:
        wanted = [s for s in wanted if any(e in tests.exercises(s) for e in options.exercises)]
    report.sandbox = sandbox.isolation().describe(options.limits)
    deadline = start + options.limits.total_timeout
    base = Path(tempfile.mkdtemp(prefix="course-grade-", dir=options.scratch_base))
    os.chmod(base, 0o711)

    def chapter(slug: str) -> ChapterResult:
        candidate = found.notebooks.get(slug)
        if candidate is None:
            return _not_submitted(slug, tests, options)
        return grade_notebook(slug, candidate, course, tests, options, base, deadline)

    try:
        with ThreadPoolExecutor(max_workers=max(1, options.chapters_at_once)) as pool:
            report.chapters.extend(pool.map(chapter, wanted))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


def _selected(slug: str, tests: Manifest, options: Options) -> dict[str, list[GradedTest]]:
    grouped = tests.exercises(slug)
    if options.exercises:
        grouped = {k: v for k, v in grouped.items() if k in options.exercises}
    return grouped


def _exercise_shells(slug: str, grouped: dict[str, list[GradedTest]]) -> list[ExerciseResult]:
    return [
        ExerciseResult(ex, slug, sum(t.points for t in group),
                       hint=" ".join(dict.fromkeys(t.hint for t in group if t.hint)))
        for ex, group in grouped.items()
    ]


def _runs_criterion(slug: str, earned: int, note: str) -> ExerciseResult:
    return ExerciseResult(RUNS_ID, slug, RUNS_POINTS, note=note, earned_override=earned,
                          hint="Restart the kernel and run all cells: every cell must run.")


def _not_submitted(slug: str, tests: Manifest, options: Options) -> ChapterResult:
    result = ChapterResult(slug, None, problems=[f"{slug}: no notebook submitted for this chapter"])
    grouped = _selected(slug, tests, options)
    for ex in _exercise_shells(slug, grouped):
        ex.tests = [TestVerdict(t.nodeid, t.name, t.exercise, t.points, "missing",
                                "not submitted", t.doc) for t in grouped[ex.id]]
        result.exercises.append(ex)
    if options.run_notebook and not options.exercises:
        result.exercises.append(_runs_criterion(slug, 0, "not submitted"))
    return result


def grade_notebook(slug: str, candidate: discover.Candidate, course: Course, tests: Manifest,
                   options: Options, base: Path, deadline: float) -> ChapterResult:
    result = ChapterResult(slug, candidate.name)
    grouped = _selected(slug, tests, options)
    exercises = _exercise_shells(slug, grouped)
    result.exercises = exercises
    suffix = ".ipynb" if candidate.name.endswith(".ipynb") else ".py"
    run_notebook = options.run_notebook and not options.exercises
    try:
        nb = prepare.read(candidate.name, candidate.data)
    except prepare.BadNotebook as exc:
        result.problems.append(str(exc))
        for ex in exercises:
            ex.tests = [TestVerdict(t.nodeid, t.name, t.exercise, t.points, "error", str(exc), t.doc)
                        for t in grouped[ex.id]]
        if run_notebook:
            exercises.append(_runs_criterion(slug, 0, str(exc)))
        return result
    if not candidate.exact:
        result.problems.append(f"graded {candidate.name} as {slug}{suffix}")
    if prepare.is_untouched(nb, course.reference_notebook(slug)):
        # Its code is the stub's, so every test would fail on `raise NotImplementedError`:
        # say so without starting a judge, a worker and a kernel to watch it happen.
        for ex in exercises:
            ex.tests = [TestVerdict(t.nodeid, t.name, t.exercise, t.points, "failed",
                                    f"not written yet ({UNTOUCHED_NOTE})", t.doc)
                        for t in grouped[ex.id]]
        if run_notebook:
            exercises.append(_runs_criterion(slug, 0, f"{UNTOUCHED_NOTE}: no work to run"))
        return result
    with ThreadPoolExecutor(max_workers=max(options.workers, 2)) as pool:
        nbval = pool.submit(_run_notebook, slug, nb, course, options, base, deadline) \
            if run_notebook else None
        verdicts = _judge_tests(slug, candidate.data, suffix, grouped, course, options, base,
                                deadline, result.problems)
        for ex in exercises:
            ex.tests = [verdicts[t.nodeid] for t in grouped[ex.id]]
        if nbval is not None:
            exercises.append(nbval.result())
    return result


def _scratch(base: Path, course: Course, slug: str | None,
             judge: bool = True) -> tuple[Scratch, list[str]]:
    scratch = Scratch(base, sandbox.new_uid())
    files = course.copy_tests([slug], scratch.tests, judge=judge) if slug else []
    scratch.ini.write_text(course.ini_text(), encoding="utf-8")
    return scratch, files


def _verdict(test: GradedTest, record: dict[str, Any]) -> TestVerdict:
    outcome = str(record.get("outcome"))
    known = ("passed", "failed", "error", "skipped", "timeout", "crashed")
    status = outcome if outcome in known else "failed"
    message = str(record.get("message", ""))[:4000]
    return TestVerdict(test.nodeid, test.name, test.exercise, test.points, status, message, test.doc)


def _judge_tests(slug: str, data: bytes, suffix: str, grouped: dict[str, list[GradedTest]],
                 course: Course, options: Options, base: Path, deadline: float,
                 problems: list[str]) -> dict[str, TestVerdict]:
    """Run the chapter's tests in a judge that sends probes to a sandboxed worker.

    One judge runs every exercise: a worker that crashes or runs out of time costs only
    the test that was waiting, so nothing needs running again.
    """
    all_tests = {t.nodeid: t for group in grouped.values() for t in group}
    worker_scratch, _ = _scratch(base, course, slug, judge=False)
    judge_scratch, files = _scratch(base, course, slug)
    try:
        notebook = worker_scratch.submission / f"{slug}{suffix}"
        notebook.write_bytes(data)
        worker_scratch.seal()
        os.chmod(judge_scratch.path, 0o700)
        judged = judging.run(judging.JudgeRun(
            course=course, worker_scratch=worker_scratch, judge_folder=judge_scratch.path,
            notebook=notebook, test_files=files, exercises=list(options.exercises),
            limits=options.limits, deadline=deadline,
        ))
    except judging.SetupFailed as exc:
        sandbox.forget_isolation()
        raise GraderError(str(exc)) from None
    finally:
        worker_scratch.remove()
        judge_scratch.remove()
    if judged.problem:
        problems.append(judged.problem)
    verdicts = {}
    for nodeid, test in all_tests.items():
        record = judged.results.get(nodeid)
        if record is not None:
            verdicts[nodeid] = _verdict(test, record)
        elif judged.timed_out:
            verdicts[nodeid] = _lost(test, "not_run", "")
        else:
            verdicts[nodeid] = _lost(test, "missing", "the test did not run to the end")
    return verdicts


def _lost(test: GradedTest, status: str, message: str) -> TestVerdict:
    return TestVerdict(test.nodeid, test.name, test.exercise, test.points, status, message, test.doc)


def _run_notebook(slug: str, nb: Any, course: Course, options: Options, base: Path,
                  deadline: float) -> ExerciseResult:
    reference = course.reference_notebook(slug)
    scratch, _ = _scratch(base, course, None)
    try:
        source = scratch.submission / f"{slug}.ipynb"
        prepare.write_ipynb(prepare.for_nbval(nb, reference), source)
        scratch.seal()
        limits = options.limits
        args = ["-p", "nbval.plugin", "--nbval-lax", "--nbval-current-env",
                # A cell that needs longer than an exercise's tests is stuck; ending it early
                # lets nbval report which cell, instead of the whole notebook timing out.
                f"--nbval-cell-timeout={max(int(limits.exercise_timeout), 1)}",
                str(scratch.work / source.name)]
        watch = NotebookWatch(limits, time.monotonic())
        run = sandbox.run(course, scratch, args, limits,
                          min(deadline, time.monotonic() + limits.notebook_timeout + 5), watch,
                          copy_in=[str(source)])
    finally:
        scratch.remove()
    if run.setup_failed:
        sandbox.forget_isolation()
        raise GraderError(f"the sandbox could not start: {run.output.strip()[-2000:]}")
    return _judge_notebook(slug, run)


def _judge_notebook(slug: str, run: RunResult) -> ExerciseResult:
    collected = next((r.get("ids") for r in run.records if r.get("t") == "collected"), None)
    results = {str(r.get("id")): r for r in run.records if r.get("t") == "result"}
    if not isinstance(collected, list) or not collected:
        return _runs_criterion(slug, 0, f"the notebook could not be run ({run.how_it_ended()})")
    for cell in collected:
        record = results.get(str(cell))
        if record is None:
            return _runs_criterion(slug, 0, f"execution stopped at {_cell_name(cell)}: "
                                            f"{run.how_it_ended()}")
        if record.get("outcome") != "passed":
            message = str(record.get("message", ""))[-1500:]
            quota_note = f" ({run.quota_note})" if run.quota_note else ""
            return _runs_criterion(slug, 0, f"{_cell_name(cell)} failed: {message}{quota_note}")
    if run.done is None:
        return _runs_criterion(slug, 0, f"the run was cut short ({run.how_it_ended()})")
    return _runs_criterion(slug, RUNS_POINTS, "every cell ran")


def _cell_name(nodeid: object) -> str:
    return str(nodeid).rsplit("::", 1)[-1].lower()
