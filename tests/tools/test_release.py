"""``course release``: a student edition with no solution, whose grader still works.

One release is written per run; the tests then look through it for answers, run the
learner's check command inside it (the untouched stubs score 0), and grade the
reference solutions with the grader-only tests added (full marks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course.authoring.release import answer_regions, secret_regions, write_release
from course.layout import ROOT

TIMEOUT = 900
# Generous limits: the machine running the suite may be busy; the verdict must not depend on it.
LIMITS = ("--timeout", "60", "--notebook-timeout", "180", "--total-timeout", "800")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("release")
    out, grader = base / "student-edition", base / "grader-only"
    done = subprocess.run(
        [sys.executable, "-m", "course", "release", str(out), "--git", "--grader-out", str(grader)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return out, grader


def _course(release: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m course`` as a learner runs it in the release (its own course package)."""
    env = {**os.environ, "PYTHONPATH": str(release)}
    return subprocess.run([sys.executable, "-m", "course", *args], cwd=release, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_the_release_holds_no_solution(release: tuple[Path, Path]) -> None:
    out, grader = release
    files = [p for p in out.rglob("*") if p.is_file() and ".git" not in p.relative_to(out).parts]
    names = {p.relative_to(out).as_posix() for p in files}
    assert not (out / "solutions").exists()
    assert not any(n.startswith(("tests/mutants", "tests/hidden", "tests/tools")) for n in names)
    assert "tests/test_09_testing.py" not in names  # it reads the mutants: grader-only
    assert (grader / "test_09_testing.py").is_file() and (grader / "mutants").is_dir()
    assert {"exercises/01_classes.py", "exercises/.generated.json", "tests/test_01_classes.py",
            "course/grader/engine.py", "chapters/01_classes.py", "_toc.yml", "Makefile"} <= names

    regions = secret_regions(ROOT)
    assert len(regions) > 0.8 * len(answer_regions(ROOT)), "most answers are not in the lessons"
    text = {n: " ".join(p.read_text(encoding="utf-8", errors="replace").split())
            for n, p in zip(names, files, strict=False)}
    found = [(n, where) for n, t in text.items() for where, answer in regions if answer in t]
    assert found == []


def test_the_release_is_one_clean_git_commit(release: tuple[Path, Path]) -> None:
    out, _ = release
    log = subprocess.run(["git", "log", "--oneline"], cwd=out, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=out, capture_output=True,
                            text=True, check=True).stdout
    assert len(log) == 1 and status == ""


def test_a_release_refuses_to_overwrite_a_folder(tmp_path: Path) -> None:
    (tmp_path / "work.txt").write_text("mine")
    with pytest.raises(Exception, match="not empty"):
        write_release(tmp_path)
    assert (tmp_path / "work.txt").read_text() == "mine"


def test_the_learners_check_works_in_the_release_and_stubs_score_zero(
    release: tuple[Path, Path],
) -> None:
    out, _ = release
    done = _course(out, "check", *LIMITS)  # what the release's `make test` / `make check` run
    assert done.returncode == 0, done.stderr
    assert "Total: 0/" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("Next: ")
    # No solutions/ to generate from: generate refuses and leaves exercises/ alone.
    before = (out / "exercises" / "01_classes.py").read_text(encoding="utf-8")
    refused = _course(out, "generate")
    assert refused.returncode == 1 and "no solutions/" in refused.stderr
    assert (out / "exercises" / "01_classes.py").read_text(encoding="utf-8") == before


def test_the_solutions_score_full_marks_with_the_grader_only_tests(
    release: tuple[Path, Path], tmp_path: Path
) -> None:
    out, grader = release
    submission = tmp_path / "submission"
    shutil.copytree(ROOT / "solutions", submission)
    done = _course(out, "grade", str(submission), "--hidden", str(grader), "--json", *LIMITS)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    chapters = {c["slug"] for c in report["chapters"]}
    assert "09_testing" in chapters and len(chapters) == len(list((ROOT / "solutions").glob("*.py")))
    assert report["score"] == report["max_score"] > 0, [
        (c["slug"], c["earned"], c["points"]) for c in report["chapters"]]
