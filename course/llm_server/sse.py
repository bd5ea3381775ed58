"""Server-sent events as the providers frame them.

OpenAI sends unnamed events (``data: {...}``) and ends with ``data: [DONE]``; Anthropic names
each event (``event: content_block_delta`` then ``data: {...}``). Either way an event ends with
a blank line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def dumps(payload: Any) -> str:
    """Compact JSON, as the providers send it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Event:
    data: str
    name: str | None = None

    def encode(self) -> bytes:
        head = f"event: {self.name}\n" if self.name else ""
        return f"{head}data: {self.data}\n\n".encode()

    def malformed(self) -> bytes:
        """The same event with its JSON cut in half: what a buggy proxy or a bad
        reassembly produces. The framing stays valid, so only the JSON parse fails."""
        return Event(self.data[: max(1, len(self.data) // 2)], self.name).encode()


def event(payload: Any, name: str | None = None) -> Event:
    return Event(dumps(payload), name)


DONE = Event("[DONE]")
