"""Chapter 10 exercises: a development environment, graded by static checks.

The notebook holds three strings, ``DOCKERFILE``, ``COMPOSE`` and ``MAKEFILE``. Each
graded test runs one check group of ``course.lessons.devenv_checks`` on them; no Docker
daemon and no network are involved. A failure lists every problem the group found, each with
its line and its fix.

Judged (see CONTRIBUTING.md): the checks parse the learner's text, so they run in the
worker, inside ``probe_checks``, and come back as plain records; the judge only reads
those records. The answers here are texts the learner writes, not functions of an
input, so there is nothing to draw at random.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from course.lessons.devenv_checks import CheckResult
from course.probing import kind, probe, shown
from course.pytest_plugin import exercise

Data = Any

CHECKERS = {"DOCKERFILE": "check_dockerfile", "COMPOSE": "check_compose",
            "MAKEFILE": "check_makefile"}


@probe
def probe_text(nb: Any, name: str) -> Data:
    """The notebook's string ``name``: only the text crosses, never a verdict."""
    value = getattr(nb, name, None)
    # Exactly str: a subclass could answer every `in`, `==` or startswith() with yes.
    if type(value) is not str:
        return {"problem": f"the notebook should define {name} as a plain string; found "
                           f"{shown(value)} ({kind(value)})"}
    return {"problem": None, "text": value}


# Runs in a fresh interpreter that has never run the learner's code, so the learner cannot
# patch the checker; it only parses the text (nothing in it is executed).
CHECK_IN_CLEAN_PROCESS = (
    "import dataclasses, json, sys\n"
    "from course.lessons import devenv_checks\n"
    "results = getattr(devenv_checks, sys.argv[1])(sys.stdin.read())\n"
    "print(json.dumps([dataclasses.asdict(r) for r in results]))\n"
)


def checked(name: str, text: str) -> list[CheckResult]:
    proc = subprocess.run([sys.executable, "-I", "-c", CHECK_IN_CLEAN_PROCESS, CHECKERS[name]],
                          input=text, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        pytest.fail(f"the checker could not read {name}: {proc.stderr.strip()[-500:]}",
                    pytrace=False)
    return [CheckResult(**record) for record in json.loads(proc.stdout)]


def _assert_group(notebook: Any, name: str, group: str) -> None:
    got = probe_text(notebook, name)
    if got["problem"] is not None:
        pytest.fail(got["problem"], pytrace=False)
    mine = [r for r in checked(name, got["text"]) if r.check == group]
    assert mine, f"the checker returned nothing for {group}"
    problems = [r for r in mine if r.ok is not True]
    if problems:
        pytest.fail(
            f"{len(problems)} problem(s):\n" + "\n".join(str(p) for p in problems), pytrace=False
        )


@exercise("dockerfile_multistage", points=2,
          hint="Two FROM lines: `FROM ... AS builder`, then a final stage with `COPY --from=builder`.")
def test_dockerfile_is_multistage(notebook: Any) -> None:
    _assert_group(notebook, "DOCKERFILE", "dockerfile_multistage")


@exercise("dockerfile_nonroot", points=2,
          hint="Look at the last USER instruction of the final stage (after the last FROM).")
def test_dockerfile_runs_as_non_root(notebook: Any) -> None:
    _assert_group(notebook, "DOCKERFILE", "dockerfile_nonroot")


@exercise("dockerfile_layer_order", points=2,
          hint="What does the first COPY before `pip install` copy? Only requirements.txt should be there.")
def test_dockerfile_installs_before_copying_code(notebook: Any) -> None:
    _assert_group(notebook, "DOCKERFILE", "dockerfile_layer_order")


@exercise("dockerfile_no_secrets", points=2,
          hint="Look at ENV and ARG lines whose names or values look like keys, and at copied .env files.")
def test_dockerfile_bakes_in_no_secret(notebook: Any) -> None:
    _assert_group(notebook, "DOCKERFILE", "dockerfile_no_secrets")


@exercise("compose_services", points=3,
          hint="Three services; the app's depends_on and environment URLs use the other services' names.")
def test_compose_has_app_redis_and_mock_api(notebook: Any) -> None:
    _assert_group(notebook, "COMPOSE", "compose_services")


@exercise("compose_hot_reload", points=2,
          hint="The app needs a `volumes:` entry from a host path, and a `command:` that reloads.")
def test_compose_mounts_code_and_reloads(notebook: Any) -> None:
    _assert_group(notebook, "COMPOSE", "compose_hot_reload")


@exercise("makefile_targets", points=2,
          hint="Rules start at column 0 with `name:`; recipe lines start with a tab; list them in .PHONY.")
def test_makefile_has_dev_test_lint(notebook: Any) -> None:
    _assert_group(notebook, "MAKEFILE", "makefile_targets")
