"""The Gradescope autograder, end to end: build the zip, run its ``setup.sh`` on a fresh
virtual environment, run ``run_autograder`` on a submission laid out as Gradescope lays
it out, and check ``results.json`` against Gradescope's documented format.

Offline: the fresh environment gets the course's pinned packages from this checkout's
virtualenv through a ``.pth`` line (standing in for a wheelhouse), pip runs with
``PIP_NO_INDEX``, and where the system allows it the setup runs in a network namespace
with no network at all. The layout is Gradescope's, under a temporary root instead of
``/autograder`` (``AUTOGRADER_ROOT``).

The schema below is written from Gradescope's "Autograder Specifications" page
(gradescope-autograders.readthedocs.io, "Output format"): top-level ``score``,
``execution_time``, ``output``, ``visibility``, ``stdout_visibility``, ``extra_data``,
``tests`` and ``leaderboard``; each test's ``score``, ``max_score``, ``status``,
``name``, ``number``, ``output``, ``tags`` and ``visibility``.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from course.layout import ROOT

FIXTURE = Path(__file__).parent / "fixtures" / "course"
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
TEST_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "max_score": {"type": "number"},
        "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"},
        "name_format": FORMAT,
        "number": {"type": "string"},
        "output": {"type": "string"},
        "output_format": FORMAT,
        "tags": {"type": "array", "items": {"type": "string"}},
        "visibility": VISIBILITY,
        "extra_data": {"type": "object"},
    },
    "additionalProperties": False,
}
RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": FORMAT,
        "test_output_format": FORMAT,
        "test_name_format": FORMAT,
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": TEST_SCHEMA},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {"type": ["number", "string"]},
                           "order": {"enum": ["asc", "desc"]}}}},
    },
    # Gradescope needs the score, either here or on every test.
    "anyOf": [{"required": ["score"]},
              {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}}],
    "additionalProperties": False,
}


def check_results(data: object) -> None:
    jsonschema.Draft202012Validator(RESULTS_SCHEMA).validate(data)


def test_the_schema_rejects_what_gradescope_would() -> None:
    check_results({"score": 1.0, "tests": [{"name": "a", "score": 1, "max_score": 1}]})
    for bad in ({"tests": [{"name": "a"}]}, {"score": "8"}, {"score": 1, "visibility": "public"},
                {"score": 1, "tests": [{"score": 1, "status": "ok"}]}, {"score": 1, "scor": 2}):
        with pytest.raises(jsonschema.ValidationError):
            check_results(bad)


@pytest.fixture(scope="module")
def autograder() -> Iterator[Path]:
    """A temporary /autograder: the bundle unpacked into source/, set up by its setup.sh."""
    # Readable by every user: the grader runs student code as a throwaway uid, which must
    # reach the fresh environment's interpreter (pytest's own tmp folders are private).
    root = Path(tempfile.mkdtemp(prefix="gradescope-"))
    os.chmod(root, 0o755)
    try:
        bundle = root / "autograder.zip"
        done = subprocess.run(
            [sys.executable, "-m", "course", "bundle", "gradescope", "--course-root", str(FIXTURE),
             "-o", str(bundle)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        source = root / "source"
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(source)
            for info in archive.infolist():  # zipfile does not restore permissions
                os.chmod(source / info.filename, (info.external_attr >> 16) & 0o777 or 0o644)
        _offline_environment(source / ".venv")
        env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "COURSE_BASE_PYTHON": _base_python(), "COURSE_VENV_ARGS": "--without-pip"}
        setup = subprocess.run([*_no_network(), "bash", str(source / "setup.sh")], cwd=source,
                               env=env, capture_output=True, text=True, timeout=600, check=False)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "Python 3.1" in setup.stdout
        subprocess.run(["chmod", "-R", "o+rX", str(root)], check=True)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _base_python() -> str:
    """The interpreter the course's virtualenv was made from (Python 3.11+)."""
    return str(Path(getattr(sys, "_base_executable", sys.executable)))


def _offline_environment(venv: Path) -> None:
    """A fresh venv whose pip finds the pinned packages already there (no download)."""
    # Without its own pip and setuptools: those come, pinned, from the "wheelhouse" too.
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A .pth line puts this checkout's site-packages on the path without processing its
    # own .pth files, so its editable install of the course is not seen: the bundle's is.
    (Path(purelib) / "course-offline-wheelhouse.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8")


def _no_network() -> list[str]:
    """``unshare -n`` when this process may make a network namespace: no network at all."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False) \
        if shutil.which("unshare") else None
    return ["unshare", "-n"] if probe is not None and probe.returncode == 0 else []


def _run(root: Path, submission: dict[str, str]) -> dict[str, object]:
    results = root / "results"
    shutil.rmtree(results, ignore_errors=True)
    shutil.rmtree(root / "submission", ignore_errors=True)
    (root / "submission").mkdir()
    for name, text in submission.items():
        (root / "submission" / name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "COURSE_PYTHON"}
    env["AUTOGRADER_ROOT"] = str(root)
    run = subprocess.run(["bash", str(root / "source" / "run_autograder")], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    data: dict[str, object] = json.loads((results / "results.json").read_text(encoding="utf-8"))
    check_results(data)
    return data


def test_the_bundle_grades_a_solution_and_a_stub(autograder: Path) -> None:
    solution = (FIXTURE / "solutions" / "00_fixture.py").read_text(encoding="utf-8")
    stub = (FIXTURE / "exercises" / "00_fixture.py").read_text(encoding="utf-8")
    solved = _run(autograder, {"00_fixture.py": solution})
    assert solved["score"] == 8, solved
    tests = solved["tests"]
    assert isinstance(tests, list) and all(t["status"] == "passed" for t in tests)
    untouched = _run(autograder, {"00_fixture.py": stub})
    assert untouched["score"] == 0
    assert "not started" in json.dumps(untouched["tests"])


def test_an_unreadable_submission_still_gets_a_results_file(autograder: Path) -> None:
    data = _run(autograder, {"notes.txt": "no notebook here"})
    assert data["score"] == 0 and "no exercise notebook" in str(data["output"])
