"""prompt_kit rewritten: the same behaviour as ``course/lessons/prompt_kit.py``, other code.

Learners' tests must pass on this version as well as on the original: a test that fails
here depends on how the module is written, not on what it does. Error messages are the
same as the original's, so tests may match them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

Role = Literal["system", "user", "assistant"]
MESSAGE_OVERHEAD = 4
_WORD_OR_MARK = re.compile(r"[^\W]+|[^\w\s]")


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Answer:
    answer: str
    confidence: float
    sources: tuple[int, ...] = ()


class BudgetError(ValueError):
    """What must be sent does not fit in the token budget."""


class ParseError(ValueError):
    """The model's reply holds no valid answer object."""


class ProviderError(Exception):
    """The API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__("HTTP %d: %s" % (status, message))  # noqa: UP031


class RateLimited(ProviderError):
    """HTTP 429: wait ``retry_after`` seconds before trying again."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(429, "rate limited, retry after %s s" % format(retry_after, "g"))  # noqa: UP031


def count_tokens(text: str) -> int:
    return sum(1 for _ in _WORD_OR_MARK.finditer(text))


def message_tokens(message: Message) -> int:
    return MESSAGE_OVERHEAD + count_tokens(message.content)


def fit_history(history: Sequence[Message], budget: int) -> list[Message]:
    start = 1 if len(history) > 0 and history[0].role == "system" else 0
    head = [history[i] for i in range(start)]
    remaining = budget - sum(map(message_tokens, head))
    if remaining < 0:
        raise BudgetError(
            f"the system message alone costs {budget - remaining} tokens; the budget is {budget}"
        )
    cut = len(history)
    while cut > start and message_tokens(history[cut - 1]) <= remaining:
        remaining -= message_tokens(history[cut - 1])
        cut -= 1
    return head + [history[i] for i in range(cut, len(history))]


def render_question(question: str, documents: Sequence[str] = ()) -> str:
    if not documents:
        return question
    lines = ["Answer using only these sources, and cite them by number.", ""]
    lines += ["[%d] %s" % (i + 1, doc) for i, doc in enumerate(documents)]  # noqa: UP031
    lines += ["", "Question: " + question]
    return "\n".join(lines)


def build_messages(
    question: str,
    *,
    system: str,
    history: Sequence[Message] = (),
    documents: Sequence[str] = (),
    budget: int,
) -> list[dict[str, str]]:
    final = {"role": "user", "content": render_question(question, documents)}
    rest = [m for m in history if m.role != "system"]
    room = budget - count_tokens(final["content"]) - MESSAGE_OVERHEAD
    kept = fit_history([Message("system", system), *rest], room)
    messages = [dict(role=m.role, content=m.content) for m in kept]
    messages.append(final)
    return messages


def parse_answer(reply: str) -> Answer:
    if "{" not in reply or "}" not in reply[reply.index("{"):]:
        raise ParseError("the reply holds no JSON object")
    body = reply[reply.index("{") : len(reply) - reply[::-1].index("}")]
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ParseError(f"the reply's JSON is invalid: {exc}") from exc
    if type(data) is not dict:
        raise ParseError("the reply's JSON is not an object")
    answer = data.get("answer")
    if not (isinstance(answer, str) and answer.strip() != ""):
        raise ParseError("'answer' must be a non-empty string")
    confidence = data.get("confidence")
    if type(confidence) not in (int, float) and not (
        isinstance(confidence, int | float) and not isinstance(confidence, bool)
    ):
        raise ParseError("'confidence' must be a number")
    if not (confidence >= 0 and confidence <= 1):
        raise ParseError(f"'confidence' must be between 0 and 1, got {confidence}")
    sources = data.get("sources", [])
    if type(sources) is not list or any(type(s) is not int for s in sources):
        raise ParseError("'sources' must be a list of integers")
    return Answer(answer=answer.strip(), confidence=float(confidence), sources=tuple(sources))


class ChatClient(Protocol):
    async def complete(self, messages: list[dict[str, str]]) -> str: ...


REPAIR = "Your last reply was not a valid answer object ({error}). Reply with only the JSON object."


async def ask(
    client: ChatClient,
    question: str,
    *,
    system: str,
    history: Sequence[Message] = (),
    documents: Sequence[str] = (),
    budget: int = 3000,
) -> Answer:
    messages = build_messages(question, system=system, history=history, documents=documents, budget=budget)
    for attempt in (1, 2):
        reply = await client.complete(messages)
        try:
            return parse_answer(reply)
        except ParseError as exc:
            if attempt == 2:
                raise
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": REPAIR.format(error=exc)},
            ]
    raise AssertionError("unreachable")


class HTTPChatClient:
    def __init__(self, http: httpx.AsyncClient, model: str, *, temperature: float = 0.0) -> None:
        self.http, self.model, self.temperature = http, model, temperature

    async def complete(self, messages: list[dict[str, str]]) -> str:
        response = await self.http.post(
            "/v1/chat/completions",
            json={"model": self.model, "messages": messages, "temperature": self.temperature},
        )
        status = response.status_code
        if status == 429:
            raise RateLimited(_retry_after(response.headers))
        if status > 399:
            raise ProviderError(status, response.text[:200])
        try:
            payload: Any = response.json()
            content = payload["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(status, f"no content in the response: {exc!r}") from exc
        if type(content) is not str:
            raise ProviderError(status, "the content is not text")
        return content


def _retry_after(headers: httpx.Headers) -> float:
    raw = headers.get("Retry-After")
    if raw is None:
        return 1.0
    try:
        seconds = float(raw)
    except ValueError:
        return 1.0
    return seconds if seconds > 0 else 0.0
