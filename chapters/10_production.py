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
# # 10. From notebook to production
#
# The prompt that works in a notebook cell is the start of a service, not the service.
# Between the two sit a few unglamorous steps: code that can be imported and tested,
# a history that can be reviewed, an environment that can be rebuilt exactly, secrets
# that stay out of git and out of images, and one command that starts everything the
# service talks to.
#
# This chapter takes those steps on a real example: **this course's own repository**.
# It is itself a notebook project that had to become dependable: notebooks that CI
# imports and tests, pinned requirements, pre-commit hooks, a Makefile. You will read
# its files, run its tools, and see where it made a choice you might make differently.
#
# This chapter covers:
#
# - the notebook-to-module pipeline: small cells, functions over globals, `nbstripout`,
#   Jupytext pairing and diffs you can review;
# - virtual environments, locked dependencies (pip-tools, Poetry, uv), secrets and
#   twelve-factor configuration;
# - Docker (layer caching, multi-stage builds, a non-root user), docker compose with the
#   app, Redis and a mock API server, and a Makefile with `dev`, `test` and `lint`.
#
# Then you will write a service's development environment in
# [the exercises](../exercises/10_production), graded by static checks that need no
# Docker daemon.

# %%
import subprocess
import sys
import tempfile
from pathlib import Path

from course.layout import ROOT

scratch = Path(tempfile.mkdtemp(prefix="chapter10-"))  # everything this lesson writes

# %% [markdown]
# ## 1. From notebook to module
#
# A notebook is a great place to find out what works and a poor place to keep it. Its
# state lives in the kernel, not in the file: cells run out of order, a variable
# defined in a deleted cell lives on until the restart, and nothing can `import` it.
# Production code has to be importable (by tests, by the web server, by a worker) and
# must behave the same whichever order you read it in.
#
# Three habits make the move cheap, long before you move anything:
#
# - **Small cells**, each doing one thing: one definition, or one demonstration.
# - **Functions over globals.** A cell that reads `client`, `model` and `question`
#   from the kernel works only after the right cells ran. A function that takes them as
#   parameters works anywhere, and can be tested.
# - **No work at import time.** Defining things is cheap; calling the API, loading a
#   dataset or starting a server belongs in a function someone calls.
#
# ```python
# # Hidden inputs: works only if `client`, `model` and `docs` exist in the kernel.
# summary = client.complete(model, "Summarise:\n" + "\n".join(docs[:5]))
#
# # Explicit inputs: importable, testable with a fake client.
# def summarise(client: LLMClient, model: str, docs: list[str], limit: int = 5) -> str:
#     return client.complete(model, "Summarise:\n" + "\n".join(docs[:limit]))
# ```
#
# This course relies on exactly those habits. Its tests and grader import your exercise
# notebooks with `course.notebook.load_notebook`, which keeps only the **top-level
# definitions** of each cell (imports, `def`, `class`, plain assignments) and drops
# everything else. Here is a small notebook, written with Jupytext's Python API:

# %%
import jupytext
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("Prompt helpers for the answer service.", id="intro"),
    new_code_cell('MODEL = "mock-gpt"\nCALLS: list[str] = []', id="config"),
    new_code_cell(
        "def build_prompt(question: str) -> list[dict[str, str]]:\n"
        "    CALLS.append(question)\n"
        '    return [{"role": "user", "content": question}]',
        id="builder",
    ),
    new_code_cell('EXAMPLE = build_prompt("assignment at top level")', id="example"),
    new_code_cell('print(build_prompt("a demo call"))', id="demo"),
]
helpers = new_notebook(cells=cells)
helpers.metadata["jupytext"] = {"notebook_metadata_filter": "-all"}  # no YAML header
helpers_py = scratch / "prompt_helpers.py"
jupytext.write(helpers, helpers_py, fmt="py:percent")

# %% tags=["nbval-check-output"]
print(helpers_py.read_text())

# %% [markdown]
# Load it the way the tests do. The `print` cell is a demonstration and never runs. The
# assignment `EXAMPLE = build_prompt(...)` is a definition, so it **does** run, on every
# import: that is why a top-level assignment must never call an API.

# %% tags=["nbval-check-output"]
from course.notebook import load_notebook

module = load_notebook(helpers_py)
print(sorted(name for name in vars(module) if not name.startswith("_")))
print("calls made while importing:", module.CALLS)
print(module.build_prompt("What is Redis?"))

# %% [markdown]
# The same split works for your own projects. As a notebook's definitions settle, move
# them into a package (this repository keeps its tools in `course/`), have the notebook
# `import` them, and keep the notebook for what it is good at: showing and exploring.

# %% [markdown]
# ## 2. Notebooks as text: Jupytext
#
# An `.ipynb` file is JSON: each cell's source as a list of strings, plus outputs,
# execution counts and metadata. Change one number, re-run the notebook, and git sees
# changes all over the file. Jupytext stores the same notebook as a plain `.py` file in
# the **percent format**: a `# %%` line starts a code cell, `# %% [markdown]` a markdown
# cell, and there are no outputs at all.
#
# Here is the same one-line change (a temperature from 0.7 to 0.2) in both formats, after
# re-running the notebook:

# %%
import difflib

import nbformat
from nbformat.v4 import new_output


def experiment(temperature: float, run: int) -> nbformat.NotebookNode:
    """A two-cell notebook as it looks after being run for the ``run``-th time."""
    code = f"TEMPERATURE = {temperature}\nscore = evaluate(TEMPERATURE)\nscore"
    result = new_output(
        "execute_result",
        data={"text/plain": f"{0.9 - temperature / 10:.3f}"},
        execution_count=run,
    )
    nb = new_notebook(
        cells=[
            new_markdown_cell("Evaluate one temperature.", id="about"),
            new_code_cell(code, id="run", execution_count=run, outputs=[result]),
        ]
    )
    nb.metadata["jupytext"] = {"notebook_metadata_filter": "-all"}
    return nb


def diff(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(
            old.splitlines(), new.splitlines(), lineterm=""
        )
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]


# %% tags=["nbval-check-output"]
before, after = experiment(0.7, run=4), experiment(0.2, run=5)
json_diff = diff(nbformat.writes(before), nbformat.writes(after))
text_diff = diff(
    jupytext.writes(before, fmt="py:percent"), jupytext.writes(after, fmt="py:percent")
)
print(f".ipynb: {len(json_diff)} changed lines")
print("\n".join(json_diff))
print(f"\npercent .py: {len(text_diff)} changed lines")
print("\n".join(text_diff))

# %% [markdown]
# In the JSON, the real change hides among execution counts and a new output; in a real
# notebook with plots, among kilobytes of base64. In the `.py`, the diff is the change.
# The text format also means `ruff`, `mypy` and `grep` work on notebooks unchanged.
#
# **Pairing.** You do not have to give up `.ipynb`: Jupytext can *pair* the two, so
# Jupyter saves both and either can be edited.
#
# ```bash
# jupytext --set-formats ipynb,py:percent analysis.ipynb   # pair: adds analysis.py
# jupytext --sync analysis.ipynb                          # bring the pair back in step
# ```
#
# Here is that round trip for real, in a scratch folder: pair a notebook, edit the `.py`
# as you would in an editor or a pull request, then sync the pair. The cell calls the
# function behind the `jupytext` command with the same arguments, which spares starting
# a second Python for each command.

# %%
from jupytext.cli import jupytext as jupytext_command  # what `jupytext ARGS` runs

nbformat.write(experiment(0.7, run=1), scratch / "analysis.ipynb")
paired = scratch / "analysis.py"
jupytext_command(["--quiet", "--set-formats", "ipynb,py:percent",
                  str(scratch / "analysis.ipynb")])
print("created analysis.py:", paired.exists())
paired.write_text(paired.read_text().replace("TEMPERATURE = 0.7", "TEMPERATURE = 0.2"))
jupytext_command(["--quiet", "--sync", str(paired)])
synced = nbformat.read(scratch / "analysis.ipynb", as_version=4)
print("the .ipynb now runs:", synced.cells[1].source.splitlines()[0])
last_output = synced.cells[1].outputs[0]["data"]["text/plain"]
print("and keeps the last run's output until you re-run it:", last_output)

# %% [markdown]
# Commit the `.py`; commit the `.ipynb` only if readers need the outputs, and then
# stripped (next section). This course goes further: **only** the percent `.py` files
# are in git. The book renders them directly, and the test run converts them to
# `.ipynb` in a git-ignored folder (`_build/nbval/`) for nbval. The header every chapter
# starts with is what makes a `.py` open as a notebook:

# %%
print(
    "".join((ROOT / "chapters" / "10_production.py").read_text().splitlines(True)[:11])
)

# %% [markdown]
# ## 3. Stripping outputs: nbstripout
#
# Outputs in git are worse than noise. They bloat the history forever, they conflict on
# every merge, and they **leak**: the printed API response with a customer's data, the
# `os.environ` someone displayed while debugging. `nbstripout` removes outputs and
# execution counts. Here is its Python API on a notebook whose output shows a key:

# %% tags=["nbval-check-output"]
from nbstripout import strip_output

leaky = experiment(0.2, run=9)
leaky.cells[1].outputs = [
    new_output("stream", name="stdout", text="OPENAI_API_KEY=sk-live-...\n")
]
nbformat.write(leaky, scratch / "leaky.ipynb")

clean = strip_output(leaky, keep_output=False, keep_count=False, keep_id=False)
nbformat.write(clean, scratch / "clean.ipynb")
print(
    "outputs:",
    len(clean.cells[1].outputs),
    "| execution count:",
    clean.cells[1].execution_count,
)

# %% [markdown]
# The command-line tool has a `--verify` mode that changes nothing and fails when a
# notebook would be stripped. It is what CI runs:

# %% tags=["nbval-check-output"]
nbstripout_cli = str(Path(sys.executable).with_name("nbstripout"))
verdict = subprocess.run([nbstripout_cli, "--verify", "leaky.ipynb", "clean.ipynb"],
                         cwd=scratch, capture_output=True, text=True)
print(verdict.stdout.strip(), "| exit status:", verdict.returncode)

# %% [markdown]
# Use it two ways, and rely on the second:
#
# - **Locally**, as a git filter (`nbstripout --install`) or a pre-commit hook, so a
#   stray `.ipynb` is stripped before it is committed.
# - **In CI**, `nbstripout --verify` fails the build on any committed notebook with
#   outputs. Hooks can be skipped (`git commit --no-verify`, a fresh clone without
#   `pre-commit install`); CI cannot. This course's `make test` runs exactly this check
#   (see `check_no_outputs` in `course/authoring/dev.py`).
#
# nbstripout cleans outputs, not code: a key typed into a cell is still a key in git.
# Section 6 is about keeping it out of the code.

# %% [markdown]
# ## 4. Virtual environments
#
# A virtual environment is a folder with its own `site-packages` and a `python` that
# uses it. Nothing more: no copy of the standard library, no magic. Making one without
# pip takes a fraction of a second:

# %%
demo_venv = scratch / "demo-venv"
subprocess.run(
    [sys.executable, "-m", "venv", "--without-pip", str(demo_venv)], check=True
)
print(sorted(p.name for p in demo_venv.iterdir()))
print((demo_venv / "pyvenv.cfg").read_text())

# %% [markdown]
# `pyvenv.cfg` is how Python knows it is in a venv: at start-up it finds that file next
# to (or above) its executable, and points `sys.prefix` at the venv while
# `sys.base_prefix` stays at the real installation:

# %% tags=["nbval-check-output"]
probe = (
    "import sys; print(sys.prefix != sys.base_prefix, sys.prefix.endswith('demo-venv'))"
)
print(
    subprocess.run(
        [str(demo_venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
)

# %% [markdown]
# Habits that save hours:
#
# - One venv per project, at `.venv` in the project folder (editors find it there), never
#   committed (this repository's `.gitignore` lists `.venv/`).
# - Run tools through it (`.venv/bin/python -m pytest`) rather than relying on
#   `activate`: scripts and Makefiles then need no activated shell.
# - Treat it as disposable: if it is odd, delete it and rebuild it from the lock file.
#
# This repository's `Makefile` builds its venv on first use, and rebuilds it when the
# lock file changes, with a stamp file as the target:

# %%
makefile_text = (ROOT / "Makefile").read_text()
print(makefile_text[makefile_text.index("$(STAMP):"):].split("\n\n")[0])

# %% [markdown]
# ## 5. Locking dependencies
#
# `pip install fastapi` today and next month install different code: FastAPI's
# dependencies float, and theirs too. A **lock file** records the exact version of
# every package, direct and indirect, so that your laptop, CI and the production image
# run the same code. The pattern has two files:
#
# - the **direct** dependencies, loosely constrained: what *you* chose;
# - the **lock**: every package in the environment, each pinned with `==`.
#
# This repository does it with `requirements.in` and `requirements.txt`:

# %%
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


direct = [Requirement(line) for line in requirement_lines(ROOT / "requirements.in")]
locked = [Requirement(line) for line in requirement_lines(ROOT / "requirements.txt")]
pins = {canonicalize_name(r.name): str(r.specifier) for r in locked}

assert all(spec.startswith("==") for spec in pins.values()), (
    "every line of the lock is pinned"
)
print(f"{len(direct)} direct dependencies; {len(pins)} pinned packages in the lock")
for requirement in direct[:4]:
    print(f"  {requirement!s:<16} -> {pins[canonicalize_name(requirement.name)]}")

# %% [markdown]
# `jupyter-book<2` is a real decision (version 2 is a different tool), so it is written
# in `requirements.in`; the exact `1.0.4.post1` is a fact about one moment, so it lives
# in the lock. Most of the lock is packages nobody chose directly:

# %%
chosen = {canonicalize_name(r.name) for r in direct}
indirect = sorted(name for name in pins if name not in chosen)
print(f"{len(indirect)} indirect, for example: {', '.join(indirect[:6])}")

# %% [markdown]
# The header of `requirements.txt` says how it is made: `pip install -r requirements.in`
# in a fresh venv, then `pip freeze`. That works, and it has three weaknesses a locking
# tool removes: `freeze` records whatever is in the venv (a package you installed by hand
# sneaks in), it does not say **why** a package is there, and it has no **hashes**, so
# nothing checks that the file downloaded next year is the file tested today. The three
# common tools (none is installed here; the commands are for your own projects):
#
# **pip-tools** keeps the two-file pattern and generates the lock:
#
# ```bash
# pip-compile --generate-hashes requirements.in   # writes requirements.txt
# pip-sync requirements.txt                       # make the venv match it exactly
# ```
#
# ```text
# fastapi==0.165.0 \
#     --hash=sha256:...
#     # via -r requirements.in
# starlette==1.10.0 \
#     --hash=sha256:...
#     # via fastapi
# ```
#
# **Poetry** puts direct dependencies in `pyproject.toml` and locks to `poetry.lock`; it
# also manages the venv, dependency groups and packaging:
#
# ```bash
# poetry add fastapi             # edits pyproject.toml, re-locks, installs
# poetry add --group dev pytest
# poetry install --sync          # the venv now matches poetry.lock
# ```
#
# **uv** (from the makers of ruff) does both jobs, much faster: `uv add` / `uv lock` /
# `uv sync` with `pyproject.toml` and `uv.lock`, and `uv pip compile requirements.in`
# as a drop-in for pip-compile.
#
# | | pip-tools | Poetry | uv |
# |---|---|---|---|
# | you edit | `requirements.in` | `pyproject.toml` | `pyproject.toml` (or `.in`) |
# | lock | `requirements.txt` | `poetry.lock` | `uv.lock` (or `.txt`) |
# | manages the venv | `pip-sync` only | yes | yes |
# | also | plain pip format anything reads | packaging, publishing | Python versions, speed |
#
# Whichever you use: commit the lock, install from the lock everywhere (CI, Docker),
# and update it on purpose, in its own commit, with the tests run.

# %% [markdown]
# ## 6. Configuration and secrets
#
# The [twelve-factor app](https://12factor.net/config) draws a clean line: **code** is
# the same in every deploy; **configuration** is what differs (the LLM endpoint, the
# Redis URL, the model name, the API key), and it comes from **environment variables**.
# One image then runs in development against the mock API and in production against the
# real one, with nothing rebuilt.
#
# `pydantic-settings` turns the environment into a validated, typed object, and a
# `SecretStr` keeps the key out of logs and reprs:

# %%
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The answer service's configuration: every field comes from ANSWER_* variables."""

    model_config = SettingsConfigDict(env_prefix="ANSWER_")

    llm_base_url: str = "http://localhost:8001/v1"
    redis_url: str = "redis://localhost:6379/0"
    model: str = "mock-gpt"
    llm_api_key: SecretStr


# %% [markdown]
# For local development the variables live in a `.env` file: one `NAME=value` per line,
# read at start-up.

# %% tags=["nbval-check-output"]
env_file = scratch / ".env"
env_file.write_text(
    "ANSWER_LLM_API_KEY=dev-key-for-the-mock\nANSWER_MODEL=mock-gpt-mini\n"
)

settings = Settings(_env_file=env_file)
print(settings)
print("the real value, when you ask for it:", settings.llm_api_key.get_secret_value())

# %% [markdown]
# A real environment variable beats the file, which is how a deployment overrides a
# default without touching it. And a missing key fails at start-up, with a clear message,
# rather than on the first request an hour later:

# %% tags=["nbval-check-output"]
import os
from unittest import mock

with mock.patch.dict(os.environ, {"ANSWER_MODEL": "mock-claude"}):
    print(Settings(_env_file=env_file).model)

try:
    Settings(_env_file=None)
except ValidationError as exc:
    print(exc.errors()[0]["loc"], exc.errors()[0]["msg"])

# %% [markdown]
# The rules for `.env`:
#
# - **Never commit it.** Put `.env` in `.gitignore` (check with `git check-ignore -v
#   .env`), and commit a `.env.example` with every name and no real values.
# - **Never copy it into an image**: list it in `.dockerignore` too (section 7).
# - If a key is committed anyway, **revoke it** at the provider. Deleting the commit is
#   not enough: clones, forks and CI logs already have it.
#
# In production, keys come from a **secret manager** (AWS Secrets Manager, Google Secret
# Manager, Azure Key Vault, HashiCorp Vault, or Kubernetes/Docker secrets). The platform
# either injects them as environment variables or mounts them as files, one secret per
# file, often under `/run/secrets`. `pydantic-settings` reads the second kind with
# `secrets_dir`, file name = variable name:

# %% tags=["nbval-check-output"]
secrets = scratch / "run-secrets"
secrets.mkdir()
(secrets / "answer_llm_api_key").write_text("key-from-the-secret-manager")

from_manager = Settings(_env_file=None, _secrets_dir=secrets)
print(from_manager.llm_api_key, "=", from_manager.llm_api_key.get_secret_value())

# %% [markdown]
# The application code is identical in all three cases. Only where the value comes from
# changes, which is the whole point.

# %% [markdown]
# ## 7. Docker: one environment everywhere
#
# A venv pins Python packages; a container image pins everything else too: the OS
# libraries, the Python build, the user, the start command. A `Dockerfile` lists the
# steps that build it. Three ideas make the difference between a Dockerfile that works
# and a good one.
#
# ### Layer caching
#
# Each instruction produces a **layer**, cached under a key made of the previous layer,
# the instruction, and (for `COPY`) the content of the copied files. When a key changes,
# that step and **every step after it** run again. The small model below computes those
# keys for a build context before and after you edit `app/main.py`, and shows what
# Docker would re-run:

# %%
import hashlib

from course.lessons.devenv_checks import parse_dockerfile


def copied(sources: list[str], files: dict[str, str]) -> str:
    """The content a COPY of ``sources`` takes from the build context ``files``."""
    chosen = [
        name
        for name in sorted(files)
        if any(
            src in (".", "./") or name == src or name.startswith(src.rstrip("/") + "/")
            for src in sources
        )
    ]
    return "".join(name + files[name] for name in chosen)


def rebuilt_steps(
    dockerfile: str, before: dict[str, str], after: dict[str, str]
) -> None:
    """Print each step of a one-stage Dockerfile: cached, or run again after the edit.
    """
    keys = {"before": "", "after": ""}
    for step in parse_dockerfile(dockerfile).stages[0].instructions:
        for label, files in (("before", before), ("after", after)):
            extra = (
                copied(step.value.split()[:-1], files) if step.keyword == "COPY" else ""
            )
            material = keys[label] + step.keyword + step.value + extra
            keys[label] = hashlib.sha256(material.encode()).hexdigest()
        verdict = "cached" if keys["before"] == keys["after"] else "RE-RUN"
        print(f"{verdict:>7}  {step.keyword} {step.value}")


# %% tags=["nbval-check-output"]
context = {
    "requirements.txt": "fastapi==0.165.0\n",
    "app/main.py": "TEMPERATURE = 0.7\n",
}
edited = {**context, "app/main.py": "TEMPERATURE = 0.2\n"}

copy_all_first = """\
FROM python:3.12-slim
WORKDIR /srv
COPY . .
RUN pip install -r requirements.txt
CMD ["uvicorn", "app.main:app"]
"""
rebuilt_steps(copy_all_first, context, edited)

# %% [markdown]
# A one-line edit re-runs `pip install`: minutes per build, every build. Copy the lock
# file on its own first, install, *then* copy the code. The install now depends only on
# `requirements.txt`, so it reruns only when the lock changes:

# %% tags=["nbval-check-output"]
lock_first = """\
FROM python:3.12-slim
WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app/ ./app/
CMD ["uvicorn", "app.main:app"]
"""
rebuilt_steps(lock_first, context, edited)

# %% [markdown]
# Order instructions from least to most often changed: base image, system packages,
# dependencies, code. And keep junk out of the build context with a `.dockerignore`, or
# `COPY . .` ships it (and a change to it busts the cache):
#
# ```text
# .git
# .venv
# .env
# __pycache__/
# *.ipynb
# ```
#
# ### Multi-stage builds
#
# Installing needs things running does not: pip and its cache, compilers for packages
# without wheels, build files. A **multi-stage** build installs in a `builder` stage and
# starts the final image fresh, copying in only the result. Everything else stays
# behind in the builder, and out of the image you ship and scan.
#
# ### A non-root user
#
# A container runs as root unless told otherwise. If an attacker gets code execution
# through your app (a prompt-injected tool call, a parser bug), root in the container can
# rewrite the app, read every mounted secret and has a head start on escaping. Create a
# user, switch to it with `USER` as the last step that needs root, and leave the code
# owned by root so the app can read it but not change it.
#
# Here are all three in one Dockerfile, for an evaluation worker that reads jobs from
# Redis and scores model answers:

# %%
worker_dockerfile = """\
# syntax=docker/dockerfile:1
FROM python:3.12-slim AS builder
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt

FROM python:3.12-slim
ENV PATH="/opt/venv/bin:$PATH" PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 worker
COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv
COPY evals/ ./evals/
USER worker
CMD ["python", "-m", "evals.worker"]
"""

# %% [markdown]
# You cannot run `docker build` in this book, but you can check a Dockerfile's structure
# without building it. `course.lessons.devenv_checks` parses it with `dockerfile-parse`
# (a maintained parser, not regular expressions) and checks the points of this section;
# the exercises are graded with it:

# %% tags=["nbval-check-output"]
from course.lessons.devenv_checks import check_dockerfile, report

print(report(check_dockerfile(worker_dockerfile)))

# %% [markdown]
# ### Secrets do not belong in images
#
# Everything in a Dockerfile ends up readable by whoever can pull the image: `ENV`
# values with `docker inspect`, `ARG` values and `RUN` command lines with `docker
# history`, copied files by unpacking a layer. Deleting the line in a later layer hides
# nothing. The checker names the line and the fix:

# %% tags=["nbval-check-output"]
leaky_dockerfile = worker_dockerfile.replace(
    "FROM python:3.12-slim\n",
    "FROM python:3.12-slim\nARG HF_TOKEN\nENV "
    "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuv\n",
)
print(report(check_dockerfile(leaky_dockerfile)))

# %% [markdown]
# The app reads its key from the environment at **run** time (section 6). A build step
# that truly needs a secret (a private package index) mounts it for that one step with
# `RUN --mount=type=secret,id=pypi_token ...`, and it never becomes part of a layer.

# %% [markdown]
# ## 8. docker compose: the whole system on one laptop
#
# An LLM service rarely runs alone: it caches in Redis, and it calls an LLM API that, in
# development, should be a **mock**: free, offline, deterministic, and able to simulate
# failures (the role the course's local LLM server, `course.llm_server`, plays in this
# book). A `compose.yaml` file declares those services and how they connect;
# `docker compose up` starts them all.
#
# The points that matter:
#
# - **Service names are host names.** Compose puts the services on one network where
#   `redis` resolves to the Redis container. Inside the app's container, `localhost` is
#   the app itself, so `redis://localhost:6379` fails.
# - **Configuration through the environment**, as in section 6: the compose file sets
#   `REDIS_URL` and `LLM_BASE_URL` for development; production sets other values on the
#   same image. Keys come from the untracked `.env` via `env_file:`, never written in the
#   compose file, which is committed.
# - **`depends_on`** starts Redis and the mock before the app (add a `healthcheck` and
#   `condition: service_healthy` to wait until they are ready, not just started).
# - **Hot reload.** In development, bind-mount the source over the code in the image
#   (`volumes: ["./app:/srv/app"]`) and override the command with one that reloads on
#   change (`uvicorn ... --reload`). You edit on the host; the server restarts in the
#   container in a second; no rebuild. Compose's `develop: watch` does the same by
#   syncing files instead of mounting them.
#
# Here is a first attempt at the worker's compose file, and what the checker says about
# it. Each message is one of the points above:

# %% tags=["nbval-check-output"]
from course.lessons.devenv_checks import check_compose

first_try = """\
services:
  worker:
    build: .
    environment:
      REDIS_URL: redis://localhost:6379/0
      LLM_BASE_URL: http://localhost:8001/v1
  redis:
    image: redis:7-alpine
"""
print(report(check_compose(first_try)))

# %% [markdown]
# The day-to-day commands:
#
# ```bash
# docker compose up --build        # build if needed, start everything, follow the logs
# docker compose run --rm app pytest   # a one-off command in a fresh app container
# docker compose logs -f app
# docker compose down              # stop and remove the containers (add -v for volumes)
# ```

# %% [markdown]
# ## 9. One entry point: the Makefile, and pre-commit
#
# Nobody should have to remember `docker compose up --build` or the exact mypy flags. A
# `Makefile` gives each routine task a name (`make dev`, `make test`, `make lint`), the
# same for every person and for CI. This repository's CI script, `.ci/run`, is little
# more than a list of make targets (`test`, `linkcheck`, `book-force`, `browser-check`),
# so "it passes on my machine" and "it passes in CI" mean the same thing.
#
# Makefiles have no Python parser worth the name, so the checker includes a small one. On
# this repository's Makefile:

# %%
from course.lessons.devenv_checks import check_makefile, parse_makefile

course_make = parse_makefile(makefile_text)
for rule in course_make.rules:
    if not rule.targets[0].startswith((".", "$")):
        phony = rule.targets[0] in course_make.phony
        print(f"line {rule.line:>2}: {' '.join(rule.targets):<14} phony={phony}")

# %% [markdown]
# It is the Makefile of a book, not of a service: `make test` runs every check (lint
# included: `python -m course test` runs ruff and mypy before pytest), and there is
# nothing to start, so no `dev`. The exercise's checker expects a service's trio and says
# so:

# %%
print(report(check_makefile(makefile_text)))

# %% [markdown]
# Two Makefile traps account for most first-day errors. Recipe lines must start with a
# **tab**; spaces give make's famous `missing separator`. And a target that is not a
# file must be declared `.PHONY`, or the day a folder called `test` exists, `make test`
# says "up to date" and does nothing:

# %% tags=["nbval-check-output"]
spaced = ("dev:\n    docker compose up --build\n"
          ".PHONY: dev test lint\ntest:\n\tpytest\nlint:\n\truff check .\n")
print(report(check_makefile(spaced)))

# %% [markdown]
# **pre-commit** runs checks on every `git commit`, before a mistake leaves your
# machine. This repository's hooks are the chapter in miniature:

# %%
import yaml

hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
for repo in hooks["repos"]:
    for hook in repo["hooks"]:
        print(f"{hook['id']:<22} {hook.get('name', '')}")

# %% [markdown]
# `nbstripout` guards against outputs, `jupytext --sync` keeps paired notebooks in step,
# `ruff` and `mypy --strict` check the code, and a local hook regenerates the exercises
# from the solutions. The config's first comment is the important design choice: CI does
# not rely on the hooks. A hook is a convenience for the person committing; `make test`
# is the guarantee.

# %%
import shutil

shutil.rmtree(scratch)  # the lesson's temporary files

# %% [markdown]
# ## Check your understanding
#
# **1. pip-tools vs Poetry.** Your team has a service with a `requirements.txt` that
# people edit by hand. When would you move it to pip-tools, and when to Poetry?
#
# ```{admonition} Answer
# :class: dropdown
# Both give you the same core: the direct dependencies you chose, plus a generated lock
# that pins everything. **pip-tools** is the smallest step: `requirements.in` holds what
# you chose, `pip-compile` writes a `requirements.txt` in the format pip, Docker and every
# CI already read (with `# via` notes and, with `--generate-hashes`, hashes), and
# `pip-sync` makes a venv match it. It does nothing else, which is its strength for an
# application that is deployed, not published. **Poetry** is a whole workflow:
# dependencies and groups in `pyproject.toml`, `poetry.lock`, venv management, building
# and publishing packages. Choose it when you publish a library or want one tool for
# all of that, and accept that every environment (including the Docker build) then needs
# Poetry. uv covers both styles (`uv pip compile` or `uv lock`/`uv sync`), much faster.
# ```
#
# **2.** A teammate's Dockerfile starts `COPY . .` and then `RUN pip install -r
# requirements.txt`. The image is correct. What is wrong, and what is the fix?
#
# ```{admonition} Answer
# :class: dropdown
# The install layer is cached under a key that includes every file `COPY . .` copied, so
# any code change invalidates it and every build reinstalls all packages. Copy
# `requirements.txt` alone, run the install, then copy the code: the install now reruns
# only when the lock changes. (`COPY . .` also copies `.env` and `.git` unless a
# `.dockerignore` excludes them.)
# ```
#
# **3.** Someone added `ENV OPENAI_API_KEY=sk-...` to the Dockerfile, pushed the image, and
# removed the line in the next commit. Is the key safe now?
#
# ```{admonition} Answer
# :class: dropdown
# No. The pushed image still contains it (`docker inspect` shows the environment), and
# so does the git history of the Dockerfile. Revoke the key at the provider and issue a
# new one; then pass it at run time (`env_file: .env` in development, a secret manager in
# production). Removing a line never un-publishes a secret.
# ```
#
# **4.** The course's loader imports a notebook's top-level definitions. In one cell you
# wrote `client = OpenAI()` and `answers = [client.complete(q) for q in QUESTIONS]`. What
# happens when the tests import the notebook, and how should it look instead?
#
# ```{admonition} Answer
# :class: dropdown
# Both lines are plain assignments, so both run at import: the tests (and the grader)
# create a client and call the API for every question, slowly, needing a key and the
# network. Move the work into a function, `def answer_all(client, questions): ...`, and
# call it from a demo cell. Import stays cheap, and a test can pass a fake client.
# ```
#
# **5.** In compose, the app's `REDIS_URL` is `redis://localhost:6379/0` and Redis runs as
# the `redis` service. The app cannot connect. Why?
#
# ```{admonition} Answer
# :class: dropdown
# Each service is its own container with its own network namespace: `localhost` in the
# app's container is the app itself, where nothing listens on 6379. Compose's network
# resolves service names, so the URL is `redis://redis:6379/0`. (It worked on the laptop
# without Docker because Redis really was on localhost there; that is exactly the kind of
# difference configuration through the environment absorbs.)
# ```
#
# **6.** Why keep nbstripout in CI when every notebook in the repository is a percent
# `.py` that cannot hold outputs anyway?
#
# ```{admonition} Answer
# :class: dropdown
# Because the guarantee is about what *could* be committed, not what is there today.
# Someone will save an `.ipynb` next to its `.py`, or add a notebook from elsewhere, and
# its outputs may hold data or keys. `nbstripout --verify` in CI catches it on the first
# push, whether or not that person installed the pre-commit hook.
# ```

# %% [markdown]
# ## Summary
#
# - Move code from notebook cells into functions, then into modules with tests; keep
#   notebooks as thin, readable drivers. Jupytext pairs a notebook with a `.py` file for
#   clean diffs, and nbstripout keeps outputs out of git.
# - One virtual environment per project and a lock file (pip-tools, Poetry or uv) make an
#   install repeatable. Configuration comes from the environment; secrets live in `.env`
#   files that are never committed, or in a secret manager.
# - A Docker image with the dependency layer before the code layer rebuilds fast; a
#   multi-stage build keeps compilers out of it; a non-root user limits the damage.
#   docker compose runs the app, Redis and a mock API together, and a Makefile gives
#   everyone the same `dev`, `test` and `lint` commands.

# %% [markdown]
# ## Next
#
# Write a service's development environment in [the exercises](../exercises/10_production):
# a multi-stage, non-root Dockerfile with a cached dependency layer and no secrets, a
# compose file with the app, Redis and a mock API server with hot reload, and a Makefile
# with `dev`, `test` and `lint`.
#
# Then [Chapter 11](11_capstone), the capstone, puts every chapter together in one small
# production-grade service.
