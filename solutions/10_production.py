# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 10: a development environment
#
# You are joining a small team that runs an LLM-backed answer service. It works on the
# author's laptop. Your job is the development environment that makes it work on every
# laptop, in CI and in production the same way: a **Dockerfile**, a **compose file**
# and a **Makefile**.
#
# The project looks like this:
#
# ```text
# answer-service/
# ├── app/              # the FastAPI service: app/main.py defines `app`
# ├── mock_llm/         # a fake LLM API with its own Dockerfile (the course's server)
# ├── tests/
# ├── requirements.txt  # pinned, complete
# ├── .env              # your real keys: never committed, never copied into an image
# └── .dockerignore     # lists .env, .venv, .git
# ```
#
# The service reads its configuration from environment variables: `REDIS_URL` (it
# caches answers in Redis) and `LLM_BASE_URL` (where the LLM API lives; in development,
# the mock).
#
# | exercise | what the checks look for | points |
# |---|---|---|
# | `dockerfile_multistage` | a builder stage and a final stage that copies from it | 2 |
# | `dockerfile_nonroot` | the final stage runs as a non-root user | 2 |
# | `dockerfile_layer_order` | dependencies installed before the code is copied | 2 |
# | `dockerfile_no_secrets` | no key in `ENV`/`ARG`/`RUN`, no `.env` copied | 2 |
# | `compose_services` | app, Redis and a mock API, wired by service name | 3 |
# | `compose_hot_reload` | the code is mounted and the server reloads | 2 |
# | `makefile_targets` | `dev`, `test` and `lint` targets | 2 |
#
# You write the three files as strings in this notebook: `DOCKERFILE`, `COMPOSE` and
# `MAKEFILE`. Nothing is built or started: the checks in
# `course.lessons.devenv_checks` parse the files and look at their structure, so they
# run anywhere, without Docker and without a network. When you have Docker, the same
# files work for real: write them out with `write_environment()` below and run
# `make dev`.
#
# Everything you need is in [the lesson](../chapters/10_production). Edit the strings,
# save the notebook, and run the `check(...)` cells: they run the same tests the grader
# runs, on the saved file. A failure names a line **of the string** (line 1 is the line
# after the opening `"""\`) and says how to fix it.

# %% [markdown]
# ## Helpers
#
# `write_environment()` writes the three files into a folder; the last demo cell uses it
# to run the checker on them, the same way you would run it on a real project.

# %%
import tempfile
from pathlib import Path

from course.lessons.devenv_checks import check_folder, failures, report


def write_environment(
    folder: Path, dockerfile: str, compose: str, makefile: str
) -> Path:
    """Write the three files into ``folder`` (made if missing); return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    (folder / "compose.yaml").write_text(compose, encoding="utf-8")
    (folder / "Makefile").write_text(makefile, encoding="utf-8")
    return folder


# %% [markdown]
# ## Part 1: the Dockerfile
#
# The cell below holds a Dockerfile that builds and runs, and gets every point wrong.
# Rewrite it so that:
#
# 1. **`dockerfile_multistage`**: a builder stage (`FROM ... AS builder`) installs the
#    dependencies into a virtualenv, and the final stage starts from a slim image and
#    copies only that virtualenv from the builder (`COPY --from=builder ...`).
# 2. **`dockerfile_nonroot`**: the final stage creates a user and ends with a `USER`
#    that is not root. Root-only steps (`useradd`, `apt-get`) go before the `USER`.
# 3. **`dockerfile_layer_order`**: copy `requirements.txt` on its own and install from
#    it *before* copying the code, so a code change does not reinstall every package.
# 4. **`dockerfile_no_secrets`**: no key in `ENV`, `ARG`, `LABEL` or `RUN`, and no
#    `.env` copied. The app gets its key from the environment when it runs.
#
# Keep the image's `CMD` a production command (no `--reload`): development overrides it
# in the compose file. Put the virtualenv outside the code folder (say `/opt/venv`): in
# Part 2 the code folder is replaced by a mount, and a virtualenv inside it would vanish.

# %%
# Starting point: a Dockerfile that works, and fails every check.
DOCKERFILE = """\
FROM python:3.12
WORKDIR /srv
COPY . .
RUN pip install -r requirements.txt
ENV OPENAI_API_KEY=sk-not-a-real-key-1234
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
"""

# BEGIN SOLUTION
# STUB: # Edit DOCKERFILE above until every check passes.
DOCKERFILE = """\
# syntax=docker/dockerfile:1

# Stage 1, builder: install the pinned dependencies into a virtualenv.
FROM python:3.12-slim AS builder
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
# The lock file alone first: this layer and the install below stay cached
# until requirements.txt changes, however often the code changes.
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip \\
    pip install -r requirements.txt

# Stage 2, runtime: Python, the virtualenv and the code; no pip cache, no build files.
FROM python:3.12-slim
ENV PATH="/opt/venv/bin:$PATH" \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv
# Owned by root: the app can read its code but not change it.
COPY app/ ./app/
USER app
EXPOSE 8000
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
"""
# END SOLUTION

# %% [markdown]
# Run the checker on your Dockerfile. Each failure names the line and the fix:

# %% tags=["demo"]
from course.lessons.devenv_checks import check_dockerfile

print(report(check_dockerfile(DOCKERFILE)))

# %%
from course.check import check

check("dockerfile_multistage")

# %%
check("dockerfile_nonroot")

# %%
check("dockerfile_layer_order")

# %%
check("dockerfile_no_secrets")

# %% [markdown]
# ## Part 2: the compose file
#
# `docker compose up` should start everything a developer needs, with no real API and no
# key:
#
# 1. **`compose_services`**: three services.
#    - `app`, built from your Dockerfile (`build: .`), with `depends_on` listing the other
#      two, and an `environment:` whose `REDIS_URL` and `LLM_BASE_URL` reach them **by
#      service name** (`redis://redis:6379/0`, not `localhost`: inside a container,
#      localhost is the container itself);
#    - `redis`, from the official `redis` image;
#    - a mock LLM API with `mock` in its name, built from `./mock_llm`, listening on
#      port 8001 (its API lives under `/v1`).
# 2. **`compose_hot_reload`**: bind-mount the code folder (`./app`) over the one in the
#    image, and override the app's command with one that reloads on change (uvicorn's
#    `--reload`). The image stays the production image; only development mounts and
#    reloads.
#
# Real keys, when you need them, come from your untracked `.env` (`env_file:`), never from
# the compose file: it is committed.

# %%
# Starting point: one service, wired to the wrong host, with no mount.
COMPOSE = """\
services:
  app:
    build: .
    ports:
      - "8000:8000"
    environment:
      REDIS_URL: redis://localhost:6379/0
"""

# BEGIN SOLUTION
# STUB: # Edit COMPOSE above until every check passes.
COMPOSE = """\
services:
  app:
    build: .
    # Development only: reload on change. The image's CMD is the production command.
    command: uvicorn app.main:app --host 0.0.0.0 --port 8000 --reload
    ports:
      - "8000:8000"
    volumes:
      - ./app:/srv/app
    environment:
      REDIS_URL: redis://redis:6379/0
      LLM_BASE_URL: http://mock-llm:8001/v1
    env_file:
      - path: .env
        required: false
    depends_on:
      - redis
      - mock-llm

  redis:
    image: redis:7-alpine
    ports:
      - "6379:6379"

  mock-llm:
    build: ./mock_llm
    ports:
      - "8001:8001"
"""
# END SOLUTION

# %% tags=["demo"]
from course.lessons.devenv_checks import check_compose

print(report(check_compose(COMPOSE)))

# %%
check("compose_services")

# %%
check("compose_hot_reload")

# %% [markdown]
# ## Part 3: the Makefile
#
# **`makefile_targets`**: one entry point for people and CI.
#
# - `dev` starts the compose environment (`docker compose up --build`);
# - `test` runs the tests (`pytest`), `lint` runs `ruff` and `mypy`, from the project's
#   virtualenv;
# - all three are listed in `.PHONY`, and every recipe line starts with a **tab**: in a
#   Python string, write it as `\t`.

# %%
# Starting point: a run target, and a test target someone commented out.
MAKEFILE = """\
run:
\tdocker compose up

# test:
#\tpytest
"""

# BEGIN SOLUTION
# STUB: # Edit MAKEFILE above until every check passes.
MAKEFILE = """\
PYTHON ?= .venv/bin/python

.PHONY: dev down test lint

dev:
\tdocker compose up --build

down:
\tdocker compose down

test:
\t$(PYTHON) -m pytest -q

lint:
\t$(PYTHON) -m ruff check .
\t$(PYTHON) -m mypy --strict app
"""
# END SOLUTION

# %% tags=["demo"]
from course.lessons.devenv_checks import check_makefile

print(report(check_makefile(MAKEFILE)))

# %%
check("makefile_targets")

# %% [markdown]
# ## All together
#
# Write the three files into a folder and check them the way you would check a real
# project. When you have Docker, copy them into a project laid out as above and run
# `make dev`.

# %% tags=["demo"]
with tempfile.TemporaryDirectory() as scratch:
    results = check_folder(
        write_environment(Path(scratch), DOCKERFILE, COMPOSE, MAKEFILE)
    )
problems = failures(results)
print(f"{len(problems)} problem(s)\n")
print(report(problems or results))
