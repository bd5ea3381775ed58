"""prompt_kit: the deterministic parts of one chat call, and a thin async client for it.

Count tokens, fit a conversation into a token budget, build the messages, parse the
model's JSON answer, repair a bad reply once, and call an OpenAI-style endpoint over
HTTP. Chapter 9's exercise asks you to write its tests: every docstring below is the
specification your tests hold the code to.
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
"""Tokens each message costs on top of its text (role and separators)."""

_TOKEN = re.compile(r"\w+|[^\w\s]")


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
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class RateLimited(ProviderError):
    """HTTP 429: wait ``retry_after`` seconds before trying again."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(429, f"rate limited, retry after {retry_after:g} s")
        self.retry_after = retry_after


def count_tokens(text: str) -> int:
    """Estimate the tokens in ``text``: each word (a run of letters, digits and
    underscores) counts one, and so does every other character that is not a space."""
    return len(_TOKEN.findall(text))


def message_tokens(message: Message) -> int:
    """The tokens one message costs: its content plus ``MESSAGE_OVERHEAD``."""
    return count_tokens(message.content) + MESSAGE_OVERHEAD


def fit_history(history: Sequence[Message], budget: int) -> list[Message]:
    """The part of ``history`` to send, oldest first, costing at most ``budget`` tokens.

    A system message at the start of ``history`` is always kept, and its tokens count
    against the budget; if it alone costs more than ``budget``, raise ``BudgetError``.
    The other messages are kept from the newest backwards while they fit: the first one
    that does not fit is dropped with everything older than it (never skip a message to
    keep an older one). A history that fits whole is returned whole.
    """
    system = list(history[:1]) if history and history[0].role == "system" else []
    used = sum(message_tokens(m) for m in system)
    if used > budget:
        raise BudgetError(f"the system message alone costs {used} tokens; the budget is {budget}")
    kept: list[Message] = []
    for message in reversed(history[len(system):]):
        cost = message_tokens(message)
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return system + kept


def render_question(question: str, documents: Sequence[str] = ()) -> str:
    """The final user message. Without documents it is the question itself. With them:

        Answer using only these sources, and cite them by number.

        [1] first document
        [2] second document

        Question: the question
    """
    if not documents:
        return question
    sources = "\n".join(f"[{number}] {doc}" for number, doc in enumerate(documents, start=1))
    return f"Answer using only these sources, and cite them by number.\n\n{sources}\n\nQuestion: {question}"


def build_messages(
    question: str,
    *,
    system: str,
    history: Sequence[Message] = (),
    documents: Sequence[str] = (),
    budget: int,
) -> list[dict[str, str]]:
    """OpenAI-style messages: the system prompt, as much recent history as fits, then
    the user message from ``render_question``.

    ``budget`` covers all of it, the final user message included: the history gets what
    is left after the system prompt and the user message. ``BudgetError`` if those two
    alone do not fit. System messages inside ``history`` are ignored (``system`` wins).
    """
    user = Message("user", render_question(question, documents))
    conversation = [Message("system", system), *(m for m in history if m.role != "system")]
    kept = fit_history(conversation, budget - message_tokens(user))
    return [{"role": m.role, "content": m.content} for m in [*kept, user]]


def parse_answer(reply: str) -> Answer:
    """The answer object in a model's reply.

    The reply may be the JSON object alone, or have prose or a Markdown code fence
    around it: the text from the first ``{`` to the last ``}`` is parsed. The object
    needs ``answer``, a string that is not blank (returned stripped), and
    ``confidence``, a number from 0 to 1 inclusive (``true``/``false`` are not numbers);
    ``sources``, a list of integers, is optional. Anything else raises ``ParseError``.
    """
    start, end = reply.find("{"), reply.rfind("}")
    if start == -1 or end < start:
        raise ParseError("the reply holds no JSON object")
    try:
        data = json.loads(reply[start : end + 1])
    except ValueError as exc:
        raise ParseError(f"the reply's JSON is invalid: {exc}") from exc
    if not isinstance(data, dict):
        raise ParseError("the reply's JSON is not an object")
    answer, confidence, sources = data.get("answer"), data.get("confidence"), data.get("sources", [])
    if not isinstance(answer, str) or not answer.strip():
        raise ParseError("'answer' must be a non-empty string")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ParseError("'confidence' must be a number")
    if not 0 <= confidence <= 1:
        raise ParseError(f"'confidence' must be between 0 and 1, got {confidence}")
    if not isinstance(sources, list) or not all(type(s) is int for s in sources):
        raise ParseError("'sources' must be a list of integers")
    return Answer(answer.strip(), float(confidence), tuple(sources))


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
    """Build the messages, call ``client.complete`` once, and parse the reply.

    If the reply does not parse, ask exactly once more, sending the same messages plus
    the bad reply (as an ``assistant`` message) and a ``user`` message ``REPAIR`` filled
    in with the ``ParseError``'s text. A second bad reply raises its ``ParseError``.
    Errors from the client propagate unchanged and are never retried here.
    """
    messages = build_messages(question, system=system, history=history, documents=documents, budget=budget)
    reply = await client.complete(messages)
    try:
        return parse_answer(reply)
    except ParseError as exc:
        repair = [
            *messages,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": REPAIR.format(error=exc)},
        ]
    return parse_answer(await client.complete(repair))


class HTTPChatClient:
    """A ``ChatClient`` for an OpenAI-style ``/v1/chat/completions`` endpoint.

    It uses an ``httpx.AsyncClient`` that you create (with ``base_url`` set) and close.
    """

    def __init__(self, http: httpx.AsyncClient, model: str, *, temperature: float = 0.0) -> None:
        self.http = http
        self.model = model
        self.temperature = temperature

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """POST ``{"model", "messages", "temperature"}`` as JSON to
        ``/v1/chat/completions`` and return ``choices[0].message.content``.

        HTTP 429 raises ``RateLimited`` whose ``retry_after`` is the ``Retry-After``
        header in seconds (1.0 when it is missing or not a number). Any other status of
        400 or more raises ``ProviderError`` with that status. A success whose body has
        no text content raises ``ProviderError`` too.
        """
        body = {"model": self.model, "messages": messages, "temperature": self.temperature}
        response = await self.http.post("/v1/chat/completions", json=body)
        if response.status_code == 429:
            raise RateLimited(_seconds(response.headers.get("retry-after")))
        if response.status_code >= 400:
            raise ProviderError(response.status_code, response.text[:200])
        try:
            content: Any = response.json()["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError) as exc:
            raise ProviderError(response.status_code, f"no content in the response: {exc!r}") from exc
        if not isinstance(content, str):
            raise ProviderError(response.status_code, "the content is not text")
        return content


def _seconds(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else 1.0
    except ValueError:
        return 1.0
