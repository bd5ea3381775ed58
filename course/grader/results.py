"""What the grader found, as plain data: one report per submission, per chapter, per exercise.

Every format (terminal table, JSON, Gradescope, JUnit) is written from these classes, so
a student, a teacher and a grading platform all see the same verdict and the same words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RUNS_ID = "runs_top_to_bottom"
RUNS_POINTS = 1  # the notebook executes from top to bottom: one point per notebook
UNTOUCHED_NOTE = "this is the untouched exercise notebook"  # how the engine words it

# Why a test earned nothing, in words a student can act on. The test's own message follows.
STATUS_TEXT = {
    "passed": "passed",
    "failed": "failed",
    "error": "could not run (the notebook did not load, or a fixture failed)",
    "skipped": "was skipped; a skipped test earns nothing",
    "missing": "sent no result, so it earns nothing",
    "timeout": "ran out of time",
    "crashed": "the test process ended during this test",
    "tampered": "changed pytest or Python's builtins while it ran, so its result is not trusted",
    "not_run": "did not run before the submission's grading time ran out",
}


@dataclass
class TestVerdict:
    nodeid: str
    name: str
    exercise: str
    points: int
    status: str
    message: str = ""
    doc: str = ""
    hint: str = ""  # this test's own hint (see attach_hints)

    @property
    def earned(self) -> int:
        return self.points if self.status == "passed" else 0

    @property
    def not_started(self) -> bool:
        return "not written yet" in self.message


@dataclass
class ExerciseResult:
    id: str
    chapter: str
    points: int
    hint: str = ""
    tests: list[TestVerdict] = field(default_factory=list)
    note: str = ""  # e.g. the nbval verdict, or "re-run on its own after a crash"
    earned_override: int | None = None  # the runs-top-to-bottom criterion has no tests

    @property
    def earned(self) -> int:
        if self.earned_override is not None:
            return self.earned_override
        return sum(t.earned for t in self.tests)

    @property
    def status(self) -> str:
        if self.earned == self.points and self.points > 0:
            return "passed"
        if self.earned > 0:
            return "partial"
        if self.tests and all(t.not_started for t in self.tests):
            return "not started"
        if self.id == RUNS_ID and self.note.startswith(UNTOUCHED_NOTE):
            return "not started"
        return "failed"

    def failures(self) -> list[TestVerdict]:
        return [t for t in self.tests if t.status != "passed"]


@dataclass
class ChapterResult:
    slug: str
    file: str | None  # the file graded, as named in the submission
    exercises: list[ExerciseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(e.points for e in self.exercises)

    @property
    def earned(self) -> int:
        return sum(e.earned for e in self.exercises)

    @property
    def not_started(self) -> bool:
        """The notebook is the untouched exercise (its fingerprint says so), or no exercise
        has been begun: a judged test reports a stub's failure as data, not as 'not written'."""
        if any(e.id == RUNS_ID and e.status == "not started" for e in self.exercises):
            return True
        return bool(self.exercises) and all(e.status == "not started" for e in self.exercises)


@dataclass
class Report:
    submission: str
    chapters: list[ChapterResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # about the submission as a whole
    sandbox: list[str] = field(default_factory=list)  # what isolation was in force
    seconds: float = 0.0

    @property
    def points(self) -> int:
        return sum(c.points for c in self.chapters)

    @property
    def earned(self) -> int:
        return sum(c.earned for c in self.chapters)

    def exercises(self) -> list[ExerciseResult]:
        return [e for c in self.chapters for e in c.exercises]

    def attach_hints(self, hints: dict[str, str]) -> Report:
        """Give each test its own hint (``nodeid -> hint``, from the manifest), so a
        failure shows the hint written for it rather than every hint of the exercise."""
        for ex in self.exercises():
            for test in ex.tests:
                test.hint = test.hint or hints.get(test.nodeid, "")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Everything, with the derived numbers spelled out (the ``--json`` format)."""
        chapters = []
        for chapter in self.chapters:
            exercises = []
            for ex in chapter.exercises:
                data = asdict(ex)
                data.pop("earned_override")
                data.update(earned=ex.earned, status=ex.status)
                for test, verdict in zip(data["tests"], ex.tests, strict=True):
                    test["earned"] = verdict.earned
                exercises.append(data)
            chapters.append({
                "slug": chapter.slug, "file": chapter.file, "points": chapter.points,
                "earned": chapter.earned, "problems": chapter.problems, "exercises": exercises,
            })
        return {
            "submission": self.submission, "score": self.earned, "max_score": self.points,
            "problems": self.problems, "sandbox": self.sandbox, "seconds": round(self.seconds, 3),
            "chapters": chapters,
        }
