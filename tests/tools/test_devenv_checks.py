"""The static development-environment checker: right verdicts, and the right line named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from course.lessons.devenv_checks import (
    CHECK_GROUPS,
    CheckResult,
    check_compose,
    check_dockerfile,
    check_environment,
    check_folder,
    check_makefile,
    failures,
    parse_dockerfile,
    parse_makefile,
    secret_like_name,
)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


GOOD_DOCKERFILE = dedent("""
    # syntax=docker/dockerfile:1
    FROM python:3.12-slim AS builder
    RUN python -m venv /opt/venv
    ENV PATH="/opt/venv/bin:$PATH"
    COPY requirements.txt .
    RUN --mount=type=cache,target=/root/.cache/pip \\
        pip install -r requirements.txt

    FROM python:3.12-slim
    ENV PATH="/opt/venv/bin:$PATH" \\
        PYTHONUNBUFFERED=1
    RUN useradd --create-home --uid 10001 app
    COPY --from=builder /opt/venv /opt/venv
    WORKDIR /srv
    COPY app/ ./app/
    USER app
    CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0"]
""")

GOOD_COMPOSE = dedent("""
    services:
      app:
        build: .
        command: uvicorn app.main:app --host 0.0.0.0 --reload
        volumes:
          - ./app:/srv/app
        environment:
          REDIS_URL: redis://redis:6379/0
          LLM_BASE_URL: http://mock-llm:8001/v1
        depends_on: [redis, mock-llm]
      redis:
        image: redis:7-alpine
      mock-llm:
        build: ./mock_llm
""")

GOOD_MAKEFILE = (
    ".PHONY: dev test lint\n"
    "\n"
    "dev:\n\tdocker compose up --build\n"
    "test:\n\t.venv/bin/python -m pytest\n"
    "lint:\n\t.venv/bin/ruff check .\n\t.venv/bin/mypy --strict app\n"
)


def only(results: list[CheckResult], group: str) -> list[CheckResult]:
    return failures(results, group)


def failed_lines(results: list[CheckResult], group: str) -> list[int | None]:
    return [r.line for r in only(results, group)]


# ---------------------------------------------------------------------------- whole set


def test_a_good_environment_passes_every_group() -> None:
    results = check_environment(GOOD_DOCKERFILE, GOOD_COMPOSE, GOOD_MAKEFILE)
    assert not failures(results), "\n".join(map(str, failures(results)))
    assert [r.check for r in results] == list(CHECK_GROUPS)  # one ok record per group, in order


def test_every_failure_says_how_to_fix_it() -> None:
    results = check_environment("FROM python:3.12\nCOPY . .\nRUN pip install -r requirements.txt\n"
                                "ARG OPENAI_API_KEY\n",
                                "services:\n  app:\n    build: .\n", "run:\n\tpython app.py\n")
    assert {r.check for r in failures(results)} == set(CHECK_GROUPS)
    assert all(r.fix for r in failures(results))
    assert "fix:" in str(failures(results)[0])


def test_check_folder_reads_the_files_and_reports_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(GOOD_DOCKERFILE)
    (tmp_path / "compose.yaml").write_text(GOOD_COMPOSE)
    results = check_folder(tmp_path)
    assert {r.check for r in failures(results)} == {"makefile_targets"}
    assert "no GNUmakefile or makefile or Makefile" in failures(results)[0].message
    (tmp_path / "Makefile").write_text(GOOD_MAKEFILE)
    assert not failures(check_folder(tmp_path))


# ---------------------------------------------------------------------------- Dockerfile


def test_parser_keeps_stages_and_lines() -> None:
    parsed = parse_dockerfile(GOOD_DOCKERFILE)
    assert [(s.name, s.line) for s in parsed.stages] == [("builder", 2), (None, 9)]
    assert [i.line for i in parsed.stages[1].instructions if i.keyword == "USER"] == [16]


def test_one_stage_fails_at_its_from() -> None:
    results = check_dockerfile("FROM python:3.12\nUSER app\n")
    assert failed_lines(results, "dockerfile_multistage") == [1]


def test_final_stage_must_copy_from_an_earlier_one() -> None:
    text = "FROM python:3.12 AS builder\nRUN pip install x\nFROM python:3.12-slim\nUSER app\n"
    assert failed_lines(check_dockerfile(text), "dockerfile_multistage") == [3]
    numbered = text.replace("USER app", "COPY --from=0 /opt/venv /opt/venv\nUSER app")
    assert not only(check_dockerfile(numbered), "dockerfile_multistage")


def test_no_user_fails_at_the_final_from() -> None:
    assert failed_lines(check_dockerfile(GOOD_DOCKERFILE.replace("USER app\n", "")),
                        "dockerfile_nonroot") == [9]


def test_user_root_at_the_end_fails_at_that_line() -> None:
    text = GOOD_DOCKERFILE.replace('CMD ["uvicorn"', 'USER root\nCMD ["uvicorn"')
    assert failed_lines(check_dockerfile(text), "dockerfile_nonroot") == [17]


@pytest.mark.parametrize("user", ["root", "0", "0:0", "root:root"])
def test_root_by_any_name_is_root(user: str) -> None:
    text = GOOD_DOCKERFILE.replace("USER app", f"USER {user}")
    assert failed_lines(check_dockerfile(text), "dockerfile_nonroot") == [16]


def test_a_user_in_the_builder_does_not_carry_over() -> None:
    text = GOOD_DOCKERFILE.replace("USER app\n", "").replace(
        "COPY requirements.txt .", "USER nobody\nCOPY requirements.txt .")
    assert failed_lines(check_dockerfile(text), "dockerfile_nonroot") == [10]


def test_copy_everything_before_install_fails_at_the_copy() -> None:
    text = "FROM python:3.12\nWORKDIR /srv\nCOPY . .\nRUN pip install -r requirements.txt\n"
    problems = only(check_dockerfile(text), "dockerfile_layer_order")
    assert [p.line for p in problems] == [3]
    assert "line 4" in problems[0].message and "requirements.txt" in problems[0].fix


def test_copying_a_source_folder_before_install_fails_too() -> None:
    text = ("FROM python:3.12\nCOPY requirements.txt pyproject.toml ./\nCOPY src/ src/\n"
            "RUN python -m pip install -r requirements.txt\n")
    assert failed_lines(check_dockerfile(text), "dockerfile_layer_order") == [3]


def test_upgrading_pip_first_is_not_the_dependency_install() -> None:
    text = ("FROM python:3.12\nRUN pip install --upgrade pip\nCOPY . .\n"
            "RUN pip install -r requirements.txt\n")
    assert failed_lines(check_dockerfile(text), "dockerfile_layer_order") == [3]


def test_uv_two_step_sync_is_fine() -> None:
    text = dedent("""
        FROM python:3.12-slim AS builder
        COPY pyproject.toml uv.lock ./
        RUN uv sync --frozen --no-install-project
        COPY . .
        RUN uv sync --frozen
    """)
    assert not only(check_dockerfile(text), "dockerfile_layer_order")


def test_no_install_at_all_fails() -> None:
    problems = only(check_dockerfile("FROM python:3.12\nCOPY . .\n"), "dockerfile_layer_order")
    assert [p.line for p in problems] == [1] and "no dependency install" in problems[0].message


def test_heredoc_run_is_read_and_keeps_line_numbers() -> None:
    text = "FROM python:3.12\nCOPY . .\nRUN <<EOF\npip install -r requirements.txt\nEOF\nUSER root\n"
    results = check_dockerfile(text)
    assert failed_lines(results, "dockerfile_layer_order") == [2]
    assert failed_lines(results, "dockerfile_nonroot") == [6]


def test_lower_case_instructions_count() -> None:
    text = "from python:3.12\ncopy . .\nrun pip install -r requirements.txt\n"
    assert failed_lines(check_dockerfile(text), "dockerfile_layer_order") == [2]


@pytest.mark.parametrize(
    ("instruction", "line"),
    [
        ("ENV OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx", 2),  # key-like value
        ("ENV ANTHROPIC_API_KEY placeholder", 2),  # legacy ENV form, secret name
        ("ARG HF_TOKEN", 2),  # build args end up in the image history
        ("ARG MODEL_NAME=sk-ant-abcdefghijklmnopqrstu", 2),  # harmless name, key-like value
        ("ENV A=1 \\\n    DB_PASSWORD=hunter2", 3),  # the continuation line is named
        ("RUN curl -H 'Authorization: Bearer sk-abcdefghijklmnopqrstuv' x", 2),
        ("COPY .env .", 2),
        ("LABEL token=ghp_abcdefghijklmnopqrstuvwxyz0123456789", 2),
    ],
)
def test_secrets_are_found_on_their_line(instruction: str, line: int) -> None:
    text = f"FROM python:3.12\n{instruction}\n"
    assert failed_lines(check_dockerfile(text), "dockerfile_no_secrets") == [line]


@pytest.mark.parametrize(
    "instruction",
    ["ENV OPENAI_API_KEY_FILE=/run/secrets/openai", "ENV LLM_BASE_URL=http://mock-llm:8001",
     "ARG PYTHON_VERSION=3.12", "COPY .env.example .", "RUN --mount=type=secret,id=openai make"],
)
def test_harmless_lines_are_not_secrets(instruction: str) -> None:
    text = f"FROM python:3.12\n{instruction}\n"
    assert not only(check_dockerfile(text), "dockerfile_no_secrets")


def test_secret_names() -> None:
    assert secret_like_name("OPENAI_API_KEY") and secret_like_name("db-password")
    assert secret_like_name("OPENAI_APIKEY")
    assert not secret_like_name("OPENAI_API_KEY_FILE") and not secret_like_name("KEYBOARD_LAYOUT")


def test_not_a_dockerfile() -> None:
    results = check_dockerfile("# just a comment\n")
    assert len(failures(results)) == 4 and all(r.line is None for r in results)


# ------------------------------------------------------------------------- compose file


def test_missing_redis_fails_at_services() -> None:
    text = GOOD_COMPOSE.replace("  redis:\n    image: redis:7-alpine\n", "")
    problems = only(check_compose(text), "compose_services")
    assert problems[0].line == 1
    assert "no Redis service" in problems[0].message


def test_missing_mock_api_fails() -> None:
    text = GOOD_COMPOSE.replace("  mock-llm:\n    build: ./mock_llm\n", "")
    assert any("no mock API" in p.message for p in only(check_compose(text), "compose_services"))


def test_app_must_depend_on_and_point_at_the_services() -> None:
    text = GOOD_COMPOSE.replace("    depends_on: [redis, mock-llm]\n", "    depends_on: [redis]\n")
    text = text.replace("redis://redis:6379/0", "redis://localhost:6379/0")
    problems = only(check_compose(text), "compose_services")
    assert [(p.line, p.message.split(" ")[0]) for p in problems] == [
        (8, "`REDIS_URL=redis://localhost:6379/0`:"),  # the line with the wrong host
        (7, "no"),  # so no URL in `environment:` reaches the service "redis"
        (10, "the"),  # the app does not depend on mock-llm
    ]
    assert "points at 'redis'" in problems[1].message and "'mock-llm'" in problems[2].message


def test_list_forms_of_environment_and_depends_on() -> None:
    text = dedent("""
        services:
          app:
            build: .
            command: ["uvicorn", "app.main:app", "--reload"]
            volumes:
              - type: bind
                source: ./app
                target: /srv/app
            environment:
              - REDIS_URL=redis://cache:6379/0
              - LLM_BASE_URL=http://llm-mock:8001/v1
            depends_on:
              cache:
                condition: service_started
              llm-mock:
                condition: service_started
          cache:
            image: docker.io/library/redis:7
          llm-mock:
            image: example/mock-openai:1.0
    """)
    assert not failures(check_compose(text))


def test_named_volume_is_not_a_bind_mount() -> None:
    text = GOOD_COMPOSE.replace("- ./app:/srv/app", "- code:/srv/app")
    assert failed_lines(check_compose(text), "compose_hot_reload") == [5]


def test_no_volumes_and_no_reload() -> None:
    text = GOOD_COMPOSE.replace("    volumes:\n      - ./app:/srv/app\n", "").replace(" --reload", "")
    problems = only(check_compose(text), "compose_hot_reload")
    assert [p.line for p in problems] == [2, 4]
    assert "mounts no source" in problems[0].message and "does not reload" in problems[1].message


def test_develop_watch_counts_as_hot_reload() -> None:
    text = GOOD_COMPOSE.replace("    volumes:\n      - ./app:/srv/app\n", dedent("""
            develop:
              watch:
                - action: sync+restart
                  path: ./app
                  target: /srv/app
    """).replace("\n", "\n    ").rstrip(" ").replace("develop", "    develop", 1))
    assert not only(check_compose(text), "compose_hot_reload")


def test_merge_keys_are_followed() -> None:
    text = dedent("""
        x-dev: &dev
          volumes: ["./app:/srv/app"]
          command: uvicorn app.main:app --reload
        services:
          app:
            <<: *dev
            build: .
          redis:
            image: redis:7
    """)
    assert not only(check_compose(text), "compose_hot_reload")


def test_invalid_yaml_names_its_line() -> None:
    results = check_compose("services:\n  app:\n    build: .\n   bad: [\n")
    assert {r.check for r in failures(results)} == {"compose_services", "compose_hot_reload"}
    assert all(r.line is not None and "not valid YAML" in r.message for r in results)


def test_no_services_key() -> None:
    assert len(failures(check_compose("version: '3'\n"))) == 2


# ----------------------------------------------------------------------------- Makefile


def test_missing_targets() -> None:
    problems = only(check_makefile(".PHONY: test\ntest:\n\tpytest\n"), "makefile_targets")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (1, "no `dev` target"), (1, "no `lint` target")]


def test_a_target_only_in_a_comment_names_the_comment() -> None:
    text = GOOD_MAKEFILE.replace("lint:\n", "# lint:\n")
    problems = only(check_makefile(text), "makefile_targets")
    assert len(problems) == 1 and problems[0].line == 7 and "only in a comment" in problems[0].message


def test_space_indented_recipe_is_named() -> None:
    text = GOOD_MAKEFILE.replace("\t.venv/bin/python -m pytest", "    .venv/bin/python -m pytest")
    problems = only(check_makefile(text), "makefile_targets")
    assert (6, "this recipe line starts with spaces") in [(p.line, p.message.split(";")[0]) for p in problems]


def test_assignments_and_define_blocks_are_not_targets() -> None:
    text = ("dev := up\nlint ?= ruff\ndefine test\ntest:\n\tpytest\nendef\n"
            "x: PYTEST_ARGS = -x\n")
    parsed = parse_makefile(text)
    assert [r.targets for r in parsed.rules] == []
    assert len(only(check_makefile(text), "makefile_targets")) == 3


def test_targets_need_a_recipe_and_phony() -> None:
    text = ".PHONY: dev test\ndev:\n\tdocker compose up\ntest:\nlint:\n\truff check .\n"
    problems = {(p.line, p.message.split(" ")[0], p.message.split(" ")[2])
                for p in only(check_makefile(text), "makefile_targets")}
    assert problems == {(4, "`test`", "no"), (5, "`lint`", "not")}


def test_prerequisites_inline_recipes_and_continuations() -> None:
    text = dedent("""
        .PHONY: dev up test lint
        dev: up
        up:
        \tdocker compose \\
        \t  up --build
        test: ; pytest -q
        lint:: $(VENV)/bin/ruff
        \truff check .
    """).replace("        \t", "\t")
    parsed = parse_makefile(text)
    assert [r.line for r in parsed.rules] == [1, 2, 3, 6, 7]
    assert parsed.rules_for("up")[0].recipe[0][1].startswith("docker compose")
    assert not failures(check_makefile(text))


def test_dev_must_start_compose() -> None:
    text = GOOD_MAKEFILE.replace("docker compose up --build", "python -m app")
    problems = only(check_makefile(text), "makefile_targets")
    assert [p.line for p in problems] == [3] and "compose" in problems[0].message


def test_the_course_makefile_has_test_but_no_dev() -> None:
    from course.layout import ROOT

    parsed = parse_makefile((ROOT / "Makefile").read_text(encoding="utf-8"))
    assert parsed.rules_for("test") and "test" in parsed.phony
    assert not parsed.rules_for("dev")
