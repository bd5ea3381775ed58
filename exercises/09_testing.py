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

# %% [markdown] tags=["remove-cell"]
# > This file is generated from solutions/ by `python -m course generate`; edit the solution instead.

# %% [markdown]
# # Exercises 9: write the tests
#
# This time the code is written and the tests are yours. The module
# `course/lessons/prompt_kit.py` holds the deterministic parts of a chat call (count
# tokens, fit a conversation into a budget, build the messages, parse the model's JSON
# answer), a repair-once loop around an async client, and a small HTTP client for an
# OpenAI-style endpoint. Its docstrings are the specification.
#
# The grader runs your tests with pytest against the module as given **and** against
# several broken versions of it that you never see: each one is a small, plausible bug,
# the kind that slips through review. Your score:
#
# | exercise | what earns the points | points |
# |---|---|---|
# | `tests_pass_on_correct` | all tests pass on the module as given, and catch something | 2 |
# | `catches_budget_bugs` | broken versions of `count_tokens`/`fit_history` your tests catch | 4 |
# | `catches_prompt_bugs` | broken versions of `build_messages`/`render_question` | 2 |
# | `catches_parser_bugs` | broken versions of `parse_answer` | 2 |
# | `catches_repair_bugs` | broken versions of `ask` | 2 |
# | `catches_http_bugs` | broken versions of `HTTPChatClient` | 2 |
#
# A broken version is *caught* when at least one of your tests fails on it. Catches
# count only while **all** your tests pass on the correct module (and on a rewrite of it
# that behaves exactly the same, see below): a test that fails everywhere catches
# nothing. A test that still raises `NotImplementedError` is treated as not written yet.
# Everything you need is in [the lesson](../chapters/09_testing).

# %% [markdown]
# ## How your tests are run
#
# - Write ordinary pytest tests at the top level of this notebook: functions whose names
#   start with `test_`, plain `assert`s, `pytest.raises`, `@pytest.mark.parametrize`,
#   your own `@pytest.fixture`s, `async def` tests (asyncio mode is on), `AsyncMock`,
#   `httpx.MockTransport` and `respx`. Built-in fixtures such as `tmp_path` and
#   `monkeypatch` work too.
# - Every test takes the fixture **`prompt_kit`**: the module under test. The grader
#   hands each test every version in turn, so **reach everything through it**:
#   `prompt_kit.fit_history(...)`, `prompt_kit.Message(...)`, `prompt_kit.ParseError`.
# - Test what the docstrings promise, not how the code does it: the grader also runs
#   your tests on a rewrite of the module that behaves exactly the same, and they must
#   pass there as well.
# - Keep tests independent and deterministic: no network, no sleeps, no order between
#   tests.
#
# You can call a test by hand to try it (`test_count_tokens(prompt_kit)`, or `await` it if
# it is async), and the `check(...)` cells run the whole suite exactly as the grader does.

# %%
import json
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import AsyncMock

import httpx
import pytest
import respx

from course.lessons import prompt_kit

# %% [markdown]
# Read the module first. Here it is (or open `course/lessons/prompt_kit.py`):

# %% tags=["demo"]
print(Path(prompt_kit.__file__).read_text(encoding="utf-8"))

# %% [markdown]
# ## Exercise `catches_budget_bugs` (4 points)
#
# Test `count_tokens` and `fit_history`. What does `fit_history` promise about the system
# message, about a history that fits exactly, about the order it returns, and about what
# happens once one message does not fit? Work out the token costs by hand for a small
# history (each message costs `count_tokens(content) + MESSAGE_OVERHEAD`) and write the
# expected lists out in full.

# %%
def test_fit_history(prompt_kit: ModuleType) -> None:
    raise NotImplementedError("Write your tests")


# %%
from course.check import check

check("catches_budget_bugs")


# %% [markdown]
# ## Exercise `catches_prompt_bugs` (2 points)
#
# Test `build_messages` (and through it `render_question`). Two kinds of test work well
# here: a *snapshot* of the exact messages for one realistic input, written out in full
# in the test, and a *property* that holds for many budgets: what the function returns
# never costs more than the budget, and always ends with the question.

# %%
def test_build_messages(prompt_kit: ModuleType) -> None:
    raise NotImplementedError("Write your tests")


# %%
from course.check import check

check("catches_prompt_bugs")


# %% [markdown]
# ## Exercise `catches_parser_bugs` (2 points)
#
# Test `parse_answer` on replies a real model sends: bare JSON, JSON in a Markdown code
# fence, JSON with a sentence before and after it. Then test what it must refuse. A
# table of cases (`parametrize`) keeps each case one line long.

# %%
def test_parse_answer(prompt_kit: ModuleType) -> None:
    raise NotImplementedError("Write your tests")


# %%
from course.check import check

check("catches_parser_bugs")


# %% [markdown]
# ## Exercise `catches_repair_bugs` (2 points)
#
# `ask` takes any object with an `async def complete(messages)`. An `AsyncMock` is one:
# give its `complete` a `side_effect` list (one reply per call) or an exception, then
# check what it was awaited with (`complete.await_args_list`) and how often
# (`complete.await_count`).

# %%
async def test_ask(prompt_kit: ModuleType) -> None:
    raise NotImplementedError("Write your tests")


# %%
from course.check import check

check("catches_repair_bugs")


# %% [markdown]
# ## Exercise `catches_http_bugs` (2 points)
#
# Test `HTTPChatClient` without a network: give it an `httpx.AsyncClient` whose
# transport is an `httpx.MockTransport` (a function from request to response), or route
# the calls with `respx`. Check what it sends (method, path, JSON body) and what it
# makes of each kind of answer: a success, a 429 with and without `Retry-After`, a 500.

# %%
async def test_http_client(prompt_kit: ModuleType) -> None:
    raise NotImplementedError("Write tests")


# %%
from course.check import check

check("catches_http_bugs")

# %% [markdown]
# ## Exercise `tests_pass_on_correct` (2 points)
#
# Before the last check, a quick look without pytest: this cell calls, by hand, every
# test of yours that takes nothing but `prompt_kit` (fixtures and `parametrize` need
# pytest, so those are left to the check), and says how each one did on the module as
# given.

# %% tags=["demo"]
import inspect


async def run_by_hand() -> None:
    for name, func in list(globals().items()):
        if not name.startswith("test_") or list(inspect.signature(func).parameters) != [
            "prompt_kit"
        ]:
            continue
        try:
            result = func(prompt_kit)
            if inspect.isawaitable(result):
                await result
        except NotImplementedError:
            print(f"not written yet  {name}")
        except Exception as exc:
            print(f"FAILED           {name}: {type(exc).__name__}: {exc}")
        else:
            print(f"passed           {name}")


await run_by_hand()  # type: ignore[top-level-await]

# %% [markdown]
#
# The last check runs your whole suite once more and reports the rule every point above
# depends on: all tests pass on the module as given, and on a rewrite that behaves the
# same. If a check above said a test fails on the correct module, its message names the
# test and the assertion; fix the test, not the module.

# %%
from course.check import check

check("tests_pass_on_correct")

# %% [markdown]
# ## What next
#
# - Run each `check("...")` cell above: it runs that exercise's tests and says what
#   passes and what a failing test expected.
# - From a terminal, `course check 09_testing` grades the whole chapter the way the
#   grader will (see [Checking and grading your work](../grading)).
# - Then go on to the next chapter:
#   [Chapter 10. From notebook to production](../chapters/10_production).
