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
# BEGIN SOLUTION
@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("hello", 1),
        ("Hello, world!", 4),
        ("don't panic", 4),
        ("  spaced   out ", 2),
    ],
)
def test_count_tokens(prompt_kit: ModuleType, text: str, tokens: int) -> None:
    assert prompt_kit.count_tokens(text) == tokens


@pytest.fixture
def chat(prompt_kit: ModuleType) -> list[Any]:
    """A system message and four turns costing 7, 7, 6, 5 and 8 tokens: 33 in all."""
    m = prompt_kit.Message
    return [
        m("system", "Be brief."),
        m("user", "one two three"),
        m("assistant", "four five"),
        m("user", "six"),
        m("assistant", "seven eight nine ten"),
    ]


def test_fit_history_costs_add_up(prompt_kit: ModuleType, chat: list[Any]) -> None:
    assert [prompt_kit.message_tokens(m) for m in chat] == [7, 7, 6, 5, 8]


def test_fit_history_keeps_a_history_that_fits_exactly(
    prompt_kit: ModuleType, chat: list[Any]
) -> None:
    assert prompt_kit.fit_history(chat, 33) == chat
    assert prompt_kit.fit_history(chat, 1000) == chat


@pytest.mark.parametrize(
    ("budget", "kept"),
    [
        (32, [0, 2, 3, 4]),
        (26, [0, 2, 3, 4]),
        (25, [0, 3, 4]),
        (20, [0, 3, 4]),
        (15, [0, 4]),
        (7, [0]),
    ],
)
def test_fit_history_drops_oldest_first_and_keeps_system(
    prompt_kit: ModuleType, chat: list[Any], budget: int, kept: list[int]
) -> None:
    assert prompt_kit.fit_history(chat, budget) == [chat[i] for i in kept]


def test_fit_history_stops_at_the_first_message_that_does_not_fit(
    prompt_kit: ModuleType,
) -> None:
    m = prompt_kit.Message
    long = m("assistant", " ".join(["word"] * 20))
    history = [m("system", "Be brief."), m("user", "a"), long, m("user", "b")]
    assert prompt_kit.fit_history(history, 20) == [history[0], history[3]]


def test_fit_history_without_system_message(prompt_kit: ModuleType) -> None:
    m = prompt_kit.Message
    history = [m("user", "one"), m("assistant", "two"), m("user", "three")]
    assert prompt_kit.fit_history(history, 10) == history[1:]
    assert prompt_kit.fit_history([], 0) == []


def test_fit_history_rejects_a_system_message_over_budget(
    prompt_kit: ModuleType, chat: list[Any]
) -> None:
    with pytest.raises(prompt_kit.BudgetError):
        prompt_kit.fit_history(chat, 6)


# STUB: def test_fit_history(prompt_kit: ModuleType) -> None:
# STUB:     raise NotImplementedError("Write your tests")
# END SOLUTION


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
# BEGIN SOLUTION
def test_build_messages_snapshot_with_documents(prompt_kit: ModuleType) -> None:
    m = prompt_kit.Message
    messages = prompt_kit.build_messages(
        "Which bucket holds 0.3 s?",
        system="Answer from the sources.",
        history=[m("user", "Hi"), m("assistant", "Hello!")],
        documents=["Buckets are upper bounds.", "Bucket counts are cumulative."],
        budget=200,
    )
    assert messages == [
        {"role": "system", "content": "Answer from the sources."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": "Answer using only these sources, and cite them by number.\n\n"
            "[1] Buckets are upper bounds.\n[2] Bucket counts are cumulative.\n\n"
            "Question: Which bucket holds 0.3 s?",
        },
    ]


def test_build_messages_without_documents_sends_the_question_alone(
    prompt_kit: ModuleType,
) -> None:
    messages = prompt_kit.build_messages("Why?", system="Be brief.", budget=50)
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?"},
    ]


@pytest.mark.parametrize("budget", [20, 25, 30, 40, 60, 500])
def test_build_messages_stays_within_budget(
    prompt_kit: ModuleType, budget: int
) -> None:
    m = prompt_kit.Message
    history = [
        m("user", f"question number {n}") if n % 2 else m("assistant", f"answer {n}")
        for n in range(12)
    ]
    messages = prompt_kit.build_messages(
        "And now?", system="Be brief.", history=history, budget=budget
    )
    cost = sum(prompt_kit.message_tokens(m(d["role"], d["content"])) for d in messages)
    assert cost <= budget
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[-1] == {"role": "user", "content": "And now?"}


def test_build_messages_ignores_system_messages_in_history(
    prompt_kit: ModuleType,
) -> None:
    m = prompt_kit.Message
    history = [m("system", "Old rules."), m("user", "Hi")]
    messages = prompt_kit.build_messages(
        "Go", system="New rules.", history=history, budget=100
    )
    assert [d["content"] for d in messages] == ["New rules.", "Hi", "Go"]


def test_build_messages_rejects_what_cannot_fit(prompt_kit: ModuleType) -> None:
    with pytest.raises(prompt_kit.BudgetError):
        prompt_kit.build_messages(
            "A rather long question indeed", system="Be brief.", budget=12
        )


# STUB: def test_build_messages(prompt_kit: ModuleType) -> None:
# STUB:     raise NotImplementedError("Write your tests")
# END SOLUTION


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
# BEGIN SOLUTION
GOOD_REPLIES = [
    '{"answer": "Paris", "confidence": 0.9}',
    '```json\n{"answer": "Paris", "confidence": 0.9}\n```',
    'Sure! Here you go: {"answer": " Paris ", "confidence": 0.9} Hope that helps.',
]


@pytest.mark.parametrize("reply", GOOD_REPLIES)
def test_parse_answer_finds_the_object(prompt_kit: ModuleType, reply: str) -> None:
    assert prompt_kit.parse_answer(reply) == prompt_kit.Answer("Paris", 0.9, ())


@pytest.mark.parametrize("confidence", [0, 1, 0.5])
def test_parse_answer_accepts_the_whole_range(
    prompt_kit: ModuleType, confidence: float
) -> None:
    reply = json.dumps({"answer": "yes", "confidence": confidence, "sources": [2, 1]})
    answer = prompt_kit.parse_answer(reply)
    assert answer == prompt_kit.Answer("yes", float(confidence), (2, 1))
    assert isinstance(answer.confidence, float)


@pytest.mark.parametrize(
    "reply",
    [
        "I don't know.",
        '{"answer": "Paris"',
        '["Paris", 0.9]',
        '{"answer": "   ", "confidence": 0.5}',
        '{"confidence": 0.5}',
        '{"answer": "Paris", "confidence": 1.5}',
        '{"answer": "Paris", "confidence": 85}',
        '{"answer": "Paris", "confidence": -0.1}',
        '{"answer": "Paris", "confidence": true}',
        '{"answer": "Paris", "confidence": "high"}',
        '{"answer": "Paris", "confidence": 0.5, "sources": ["1"]}',
    ],
)
def test_parse_answer_refuses_bad_replies(prompt_kit: ModuleType, reply: str) -> None:
    with pytest.raises(prompt_kit.ParseError):
        prompt_kit.parse_answer(reply)


# STUB: def test_parse_answer(prompt_kit: ModuleType) -> None:
# STUB:     raise NotImplementedError("Write your tests")
# END SOLUTION


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
# BEGIN SOLUTION
def mock_client(*replies: Any) -> AsyncMock:
    client = AsyncMock()
    client.complete.side_effect = list(replies)
    return client


async def test_ask_returns_a_good_answer_at_once(prompt_kit: ModuleType) -> None:
    client = mock_client('{"answer": "4", "confidence": 1}')
    answer = await prompt_kit.ask(client, "2 + 2?", system="Be brief.")
    assert answer == prompt_kit.Answer("4", 1.0, ())
    client.complete.assert_awaited_once_with(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2 + 2?"},
        ]
    )


async def test_ask_repairs_a_bad_reply_once(prompt_kit: ModuleType) -> None:
    client = mock_client("It is four.", '{"answer": "4", "confidence": 0.8}')
    answer = await prompt_kit.ask(client, "2 + 2?", system="Be brief.")
    assert answer == prompt_kit.Answer("4", 0.8, ())
    assert client.complete.await_count == 2
    first = client.complete.await_args_list[0].args[0]
    second = client.complete.await_args_list[1].args[0]
    assert second[: len(first)] == first
    assert second[len(first)] == {"role": "assistant", "content": "It is four."}
    assert len(second) == len(first) + 2
    assert second[-1]["role"] == "user"
    assert second[-1]["content"].startswith(
        "Your last reply was not a valid answer object"
    )


async def test_ask_gives_up_after_a_second_bad_reply(prompt_kit: ModuleType) -> None:
    client = mock_client("four", "still four")
    with pytest.raises(prompt_kit.ParseError):
        await prompt_kit.ask(client, "2 + 2?", system="Be brief.")
    assert client.complete.await_count == 2


async def test_ask_does_not_retry_client_errors(prompt_kit: ModuleType) -> None:
    client = mock_client(prompt_kit.RateLimited(3.0))
    with pytest.raises(prompt_kit.RateLimited):
        await prompt_kit.ask(client, "2 + 2?", system="Be brief.")
    assert client.complete.await_count == 1


# STUB: async def test_ask(prompt_kit: ModuleType) -> None:
# STUB:     raise NotImplementedError("Write your tests")
# END SOLUTION


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
# BEGIN SOLUTION
BASE_URL = "http://llm.test"
MESSAGES = [{"role": "user", "content": "Hi"}]


def completion(content: str) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]
    }


async def test_http_client_sends_an_openai_request(prompt_kit: ModuleType) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion("Hello!"))

    async with httpx.AsyncClient(
        base_url=BASE_URL, transport=httpx.MockTransport(handler)
    ) as http:
        text = await prompt_kit.HTTPChatClient(
            http, "tiny-1", temperature=0.2
        ).complete(MESSAGES)
    assert text == "Hello!"
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/v1/chat/completions")
    assert json.loads(request.content) == {
        "model": "tiny-1",
        "messages": MESSAGES,
        "temperature": 0.2,
    }


@pytest.mark.parametrize(
    ("header", "seconds"), [("7", 7.0), ("0.5", 0.5), (None, 1.0), ("soon", 1.0)]
)
async def test_http_client_reads_retry_after(
    prompt_kit: ModuleType, header: str | None, seconds: float
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    with respx.mock(base_url=BASE_URL) as router:
        router.post("/v1/chat/completions").respond(
            429, headers=headers, json={"error": "slow down"}
        )
        async with httpx.AsyncClient(base_url=BASE_URL) as http:
            with pytest.raises(prompt_kit.RateLimited) as caught:
                await prompt_kit.HTTPChatClient(http, "tiny-1").complete(MESSAGES)
    assert caught.value.retry_after == seconds
    assert caught.value.status == 429


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "boom"),
        (400, '{"error": "context too long"}'),
        (200, '{"choices": []}'),
        (200, "not json"),
    ],
)
async def test_http_client_turns_failures_into_provider_errors(
    prompt_kit: ModuleType, status: int, body: str
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text=body))
    async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as http:
        with pytest.raises(prompt_kit.ProviderError) as caught:
            await prompt_kit.HTTPChatClient(http, "tiny-1").complete(MESSAGES)
    assert not isinstance(caught.value, prompt_kit.RateLimited)
    assert caught.value.status == status


# STUB: async def test_http_client(prompt_kit: ModuleType) -> None:
# STUB:     raise NotImplementedError("Write tests")
# END SOLUTION


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
