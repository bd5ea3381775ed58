"""Start a judge for one chapter of one submission, and read its verdicts.

Two processes, two trust levels:

- the **judge**: pytest over the course's own test files, started by the grader in a
  folder only the grader can read. It never imports the submission, so its report (a
  JSON file it writes) is trusted. When the machine allows it, it runs in a network
  namespace of its own with only loopback, so the local LLM API server a test starts
  there is reachable from the worker and nothing else is.
- the **worker**: the submission's code, in the sandbox (:mod:`course.grader.jail`:
  throwaway uid, limits, hidden answers), inside the judge's network namespace. The
  judge starts it (again after a crash or a timeout) from the :class:`~course.grader.judge.Launch`
  written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.grader import jail, runner, sandbox, zygote
from course.grader.jail import SETUP_FAILED
from course.grader.judge import Launch, worker_command
from course.grader.layout import Course
from course.grader.sandbox import Limits, Scratch

REPORT = "report.json"
LAUNCH = "worker.json"


class SetupFailed(Exception):
    """The sandbox could not be set up: the grader's problem, not the submission's."""


@dataclass(frozen=True)
class JudgeRun:
    course: Course
    worker_scratch: Scratch  # sealed, with the notebook in submission/ and tests/ for probes
    judge_folder: Path  # holds tests/ and pytest.ini; only the grader may read it
    notebook: Path
    test_files: list[str]
    exercises: list[str]
    limits: Limits
    deadline: float


@dataclass
class Judged:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # nodeid -> outcome, message
    timed_out: bool = False
    problem: str = ""


def _namespace() -> dict[str, Any]:
    """The judge's own jail: a private network namespace when the machine has one."""
    iso = sandbox.isolation()
    if not iso.network:
        return {}
    return {"userns": True, "net": True} if iso.userns else {"net": True}


def _judge_environment(folder: Path) -> dict[str, str]:
    """The judge's environment: the grader's and the LLM server's settings, little else.

    The grader's variables (an API key, a token) have no business in a run next to
    student code, and the judge's memory is the student's to read: its workers are
    forked from it (:func:`course.grader.zygote.fork_here`), and a variable the judge
    was started with stays in the C library's heap after the worker clears its own.
    So the judge gets only what a worker gets anyway (``COURSE_LLM*``, see
    :func:`course.grader.sandbox.environment`) and the grader's own switches."""
    env = {name: value for name, value in os.environ.items()
           if name.startswith(("COURSE_GRADER_", "COURSE_LLM"))
           or name in ("PATH", "LANG", "LC_ALL", "TZ")}
    return {**env, "HOME": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}


def worker_launch(run: JudgeRun, judge_jail: dict[str, Any]) -> Launch:
    scratch = run.worker_scratch
    budget = max(run.deadline - time.monotonic(), 0.1)
    config = sandbox.jail_config(run.course, scratch, run.limits, budget, [])
    if judge_jail.get("net"):
        config.pop("net", None)  # the worker shares the judge's namespace: loopback only
    if judge_jail.get("userns"):
        config.pop("userns", None)  # already inside the judge's user namespace
    command = jail.command(config, worker_command(sys.executable, run.notebook, scratch.path,
                                                  run.test_files))
    return Launch(command, str(scratch.path), sandbox.environment(scratch), scratch.uid,
                  startup_timeout=run.limits.startup_timeout, notebook=str(run.notebook),
                  quota=scratch.quota.describe() if scratch.quota else None)


def run(job: JudgeRun) -> Judged:
    folder = job.judge_folder
    judge_jail = _namespace()
    worker_launch(job, judge_jail).save(folder / LAUNCH)
    command = runner.command(
        sys.executable, folder / "pytest.ini", folder, "-q", "--no-header",
        f"--course-report={folder / REPORT}", f"--course-worker={folder / LAUNCH}",
        f"--course-exercise-timeout={job.limits.exercise_timeout}",
        *(f"--exercise={e}" for e in job.exercises), *(str(folder / f) for f in job.test_files),
    )
    if judge_jail:
        command = jail.command(judge_jail, command)
    judged = Judged()
    left = job.deadline - time.monotonic()
    proc = zygote.popen(command, cwd=str(folder), env=_judge_environment(folder),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        output, _ = proc.communicate(timeout=max(left, 0.1))
    except subprocess.TimeoutExpired:
        judged.timed_out = True
        judged.problem = "grading ran out of time for this submission"
        output = b""
    finally:
        uid = job.worker_scratch.uid
        sandbox.kill_tree(proc, uid)
        if uid is not None and not sandbox.isolation().mounts:
            sandbox.remove_leftovers(uid)
    report = folder / REPORT
    if not report.is_file():
        if proc.returncode == SETUP_FAILED:
            raise SetupFailed(output.decode("utf-8", "replace").strip()[-2000:])
        if not judged.timed_out:
            judged.problem = ("the grader's judge stopped before it wrote its report: "
                              + output.decode("utf-8", "replace").strip()[-1500:])
        return judged
    for record in json.loads(report.read_text(encoding="utf-8")):
        judged.results[str(record["nodeid"])] = {
            "outcome": record["outcome"], "message": record.get("message", "")}
    return judged
