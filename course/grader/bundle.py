"""``course bundle gradescope``: a Gradescope autograder zip that runs this grader.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once when it
builds the image, then ``run_autograder`` per submission with the student's files in
``/autograder/submission``; it reads ``/autograder/results/results.json``.

The zip holds the course package, the chapters' tests, the untouched exercise notebooks
(the grader compares against them) and the pinned requirements; never ``solutions/``.
``run_autograder`` runs as root, as Gradescope starts it, because the grader needs root
to build the sandbox; every line of student code runs as a throwaway unprivileged uid
without network. ``AUTOGRADER_ROOT`` and ``COURSE_PYTHON`` let a test run it elsewhere;
``setup.sh`` works from wherever the zip is unpacked (``tests/tools/test_gradescope.py``
runs both, offline, on a fresh virtual environment).
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from course.grader.layout import Course
from course.grader.stubs import RECORD_NAME, Original, describe, pristine_text, render
from course.layout import ROOT

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
#
# The course needs Python 3.11 or newer. Gradescope's default base image (Ubuntu 22.04)
# ships Python 3.10, so this picks the newest python3.11+ on the PATH and, when there is
# none, installs Ubuntu's python3.11 package; choosing the Ubuntu 24.04 base image
# (Python 3.12) in the assignment's settings skips that step. COURSE_BASE_PYTHON names
# the interpreter to use instead, COURSE_VENV_ARGS adds arguments to `python -m venv`, and
# pip's own PIP_* variables (PIP_NO_INDEX, PIP_FIND_LINKS) point it at a wheelhouse for
# an offline build.
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -d "$SOURCE/course" ] || SOURCE=/autograder/source
cd "$SOURCE"

find_python() {
  for candidate in ${COURSE_BASE_PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \\
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if ! PYTHON="$(find_python)"; then
  echo "no Python 3.11+ on this image (Gradescope's default ships 3.10): installing python3.11"
  apt-get update -qq
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  PYTHON="$(find_python)"
fi
command -v unshare >/dev/null 2>&1 || apt-get install -y -qq util-linux >/dev/null
echo "building the grader's environment with $("$PYTHON" --version)"
"$PYTHON" -m venv ${COURSE_VENV_ARGS:-} .venv
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
# Collect the course's tests once now, so each submission starts from the cache.
.venv/bin/python -c "from course.grader import manifest, layout; manifest.load(layout.Course.at())"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission. It always leaves a results.json behind.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
[ -d "$SOURCE/course" ] || SOURCE="$ROOT/source"
PYTHON="${{COURSE_PYTHON:-$SOURCE/.venv/bin/python}}"
mkdir -p "$ROOT/results"
cd "$SOURCE"
"$PYTHON" -m course grade "$ROOT/submission" --course-root "$SOURCE" \\
    --format gradescope --output "$ROOT/results/results.json"{chapters} 2>"$ROOT/results/grader-stderr.txt"
status=$?
if [ "$status" -ne 0 ] || [ ! -s "$ROOT/results/results.json" ]; then
  reason="$(tail -c 1500 "$ROOT/results/grader-stderr.txt" \\
    | "$PYTHON" -c 'import json, sys; print(json.dumps(sys.stdin.read()))')"
  printf '{{"score": 0, "output": %s, "visibility": "visible", "tests": []}}\\n' "$reason" \\
    > "$ROOT/results/results.json"
fi
cat "$ROOT/results/grader-stderr.txt" >&2
exit 0
"""

SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache", "tools", "mutants"}


def _add_tree(archive: zipfile.ZipFile, folder: Path, arcname: str) -> None:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not (set(relative.parts) & SKIP) and path.suffix != ".pyc":
            archive.write(path, f"{arcname}/{relative.as_posix()}")


def _add_text(archive: zipfile.ZipFile, name: str, text: str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, text)


def write_gradescope_bundle(root: Path, output: Path, chapters: tuple[str, ...] = (),
                            tests: Path | None = None) -> Path:
    """``tests`` replaces the course's tests folder (public plus grader-only tests)."""
    course = Course.at(root, tests)
    unknown = [c for c in chapters if c not in course.chapters]
    if unknown:
        raise SystemExit(f"no such chapter: {', '.join(unknown)}")
    wanted = list(chapters) or sorted(course.chapters)
    flags = "".join(f" --chapter {c}" for c in chapters)
    output.parent.mkdir(parents=True, exist_ok=True)
    originals: dict[str, Original] = {}
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        _add_text(archive, "setup.sh", SETUP_SH, executable=True)
        _add_text(archive, "run_autograder", RUN_AUTOGRADER.format(chapters=flags), executable=True)
        # The grader and its pinned environment come from this installation; the tests
        # and exercise notebooks from the course being bundled.
        for name in ("requirements.txt", "pyproject.toml"):
            if (ROOT / name).is_file():
                archive.write(ROOT / name, name)
        _add_tree(archive, ROOT / "course", "course")
        for entry in course.support_entries():
            if entry.is_dir():
                _add_tree(archive, entry, f"tests/{entry.name}")
            else:
                archive.write(entry, f"tests/{entry.name}")
        for slug in wanted:
            for path in course.chapters[slug]:
                archive.write(path, f"tests/{path.relative_to(course.tests).as_posix()}")
            # The untouched notebook as generated, never a maintainer's edited copy.
            text = pristine_text(root, slug)
            if text is not None:
                _add_text(archive, f"exercises/{slug}.py", text)
                originals[f"{slug}.py"] = describe(f"{slug}.py", text)
        # The fingerprints the grader tells an untouched submission by (course/grader/stubs.py).
        _add_text(archive, f"exercises/{RECORD_NAME}", render(originals))
    os.chmod(output, 0o644)
    return output
