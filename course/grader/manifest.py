"""The graded tests of each chapter, collected from the course's own files only.

The grader decides what a submission can earn before it runs any student code: it
collects the course's tests (in a scratch folder shaped like the sandbox's, so test ids
match) and keeps, for each test, its exercise, points and hint. A test id a sandboxed run
reports that is not in this list is ignored; a listed test that never reports earns
nothing. Collection costs a pytest start, so the result is cached by the content of every
file involved.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import course.pytest_plugin as plugin
from course.grader import runner
from course.grader.layout import Course
from course.layout import Layout


class ManifestError(Exception):
    """The course's own tests could not be collected: a problem with the course, not a student."""


@dataclass(frozen=True)
class GradedTest:
    nodeid: str
    chapter: str
    exercise: str
    points: int
    hint: str
    name: str
    doc: str


@dataclass(frozen=True)
class Manifest:
    tests: tuple[GradedTest, ...]

    def chapter(self, slug: str) -> list[GradedTest]:
        return [t for t in self.tests if t.chapter == slug]

    def exercises(self, slug: str) -> dict[str, list[GradedTest]]:
        grouped: dict[str, list[GradedTest]] = {}
        for test in self.chapter(slug):
            grouped.setdefault(test.exercise, []).append(test)
        return grouped

    def chapter_of_exercise(self, exercise_id: str) -> str | None:
        return next((t.chapter for t in self.tests if t.exercise == exercise_id), None)


_memory: dict[str, Manifest] = {}


def _fingerprint(course: Course) -> str:
    digest = hashlib.sha256()
    files = [Path(plugin.__file__), course.root / "pyproject.toml"]
    files += [p for entries in course.chapters.values() for p in entries]
    for entry in course.support_entries():
        files += sorted(entry.rglob("*")) if entry.is_dir() else [entry]
    for path in files:
        if path.is_file():
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def load(course: Course, cache_dir: Path | None = None) -> Manifest:
    key = _fingerprint(course)
    if key in _memory:
        return _memory[key]
    cache = (cache_dir or Layout(course.root).build / "grader-cache") / f"manifest-{key}.json"
    if cache.is_file():
        manifest = _parse(json.loads(cache.read_text(encoding="utf-8")))
    else:
        raw = collect(course)
        manifest = _parse(raw)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(raw), encoding="utf-8")
        except OSError:
            pass  # a read-only course folder only costs a collection next time
    _memory[key] = manifest
    return manifest


def _parse(raw: list[dict[str, object]]) -> Manifest:
    tests = tuple(
        GradedTest(str(t["nodeid"]), str(t["chapter"]), str(t["exercise"]), int(str(t["points"])),
                   str(t["hint"]), str(t["name"]), str(t.get("doc", "")))
        for t in raw if t.get("exercise") is not None
    )
    return Manifest(tests)


def collect(course: Course) -> list[dict[str, object]]:
    """Run ``pytest --collect-only`` over every chapter's tests; no student code is involved."""
    slugs = sorted(course.chapters)
    if not slugs:
        return []
    with tempfile.TemporaryDirectory(prefix="course-manifest-") as tmp:
        scratch = Path(tmp)
        files = course.copy_tests(slugs, scratch / "tests")
        (scratch / "pytest.ini").write_text(course.ini_text(), encoding="utf-8")
        out = scratch / "manifest.json"
        command = runner.command(sys.executable, scratch / "pytest.ini", scratch,
                                 "--collect-only", "-q", f"--course-manifest={out}", *files)
        done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=300,
                              check=False)
        if done.returncode != 0 or not out.is_file():
            raise ManifestError(
                "could not collect the course's own tests:\n" + (done.stdout + done.stderr)[-3000:]
            )
        raw: list[dict[str, object]] = json.loads(out.read_text(encoding="utf-8"))
        return raw
