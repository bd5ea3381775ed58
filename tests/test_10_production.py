"""Chapter 10 exercises: a development environment, graded by static checks.

The notebook holds three strings, ``DOCKERFILE``, ``COMPOSE`` and ``MAKEFILE``. Each
graded test runs one check group of ``course.devenv_checks`` on them; no Docker daemon
and no network are involved. A failure lists every problem the group found, each with
its line and its fix.
"""

from __future__ import annotations

import types

import pytest

from course.devenv_checks import CheckResult, check_compose, check_dockerfile, check_makefile, failures
from course.pytest_plugin import exercise


def _text(notebook: types.ModuleType, name: str) -> str:
    value = getattr(notebook, name, None)
    # Exactly str: a subclass could answer every `in`, `==` or startswith() with yes (and
    # make the YAML parser loop forever).
    if type(value) is not str:
        pytest.fail(f"the notebook should define {name} as a plain string; found {value!r} "
                    f"({type(value).__name__})", pytrace=False)
    return value


def _assert_group(results: list[CheckResult], group: str) -> None:
    mine = [r for r in results if r.check == group]
    assert mine, f"the checker returned nothing for {group}"
    problems = failures(mine)
    if problems:
        pytest.fail(
            f"{len(problems)} problem(s):\n" + "\n".join(str(p) for p in problems), pytrace=False
        )


@exercise("dockerfile_multistage", points=2,
          hint="Two FROM lines: `FROM ... AS builder`, then a final stage with `COPY --from=builder`.")
def test_dockerfile_is_multistage(notebook: types.ModuleType) -> None:
    _assert_group(check_dockerfile(_text(notebook, "DOCKERFILE")), "dockerfile_multistage")


@exercise("dockerfile_nonroot", points=2,
          hint="Look at the last USER instruction of the final stage (after the last FROM).")
def test_dockerfile_runs_as_non_root(notebook: types.ModuleType) -> None:
    _assert_group(check_dockerfile(_text(notebook, "DOCKERFILE")), "dockerfile_nonroot")


@exercise("dockerfile_layer_order", points=2,
          hint="What does the first COPY before `pip install` copy? Only requirements.txt should be there.")
def test_dockerfile_installs_before_copying_code(notebook: types.ModuleType) -> None:
    _assert_group(check_dockerfile(_text(notebook, "DOCKERFILE")), "dockerfile_layer_order")


@exercise("dockerfile_no_secrets", points=2,
          hint="Look at ENV and ARG lines whose names or values look like keys, and at copied .env files.")
def test_dockerfile_bakes_in_no_secret(notebook: types.ModuleType) -> None:
    _assert_group(check_dockerfile(_text(notebook, "DOCKERFILE")), "dockerfile_no_secrets")


@exercise("compose_services", points=3,
          hint="Three services; the app's depends_on and environment URLs use the other services' names.")
def test_compose_has_app_redis_and_mock_api(notebook: types.ModuleType) -> None:
    _assert_group(check_compose(_text(notebook, "COMPOSE")), "compose_services")


@exercise("compose_hot_reload", points=2,
          hint="The app needs a `volumes:` entry from a host path, and a `command:` that reloads.")
def test_compose_mounts_code_and_reloads(notebook: types.ModuleType) -> None:
    _assert_group(check_compose(_text(notebook, "COMPOSE")), "compose_hot_reload")


@exercise("makefile_targets", points=2,
          hint="Rules start at column 0 with `name:`; recipe lines start with a tab; list them in .PHONY.")
def test_makefile_has_dev_test_lint(notebook: types.ModuleType) -> None:
    _assert_group(check_makefile(_text(notebook, "MAKEFILE")), "makefile_targets")
