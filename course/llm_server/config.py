"""How one server instance behaves: its key, default scenario, scripted replies, models."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from course.llm_server.scenarios import parse_scenario

ModelKind = Literal["chat", "embedding"]

ReplySource = str | Callable[[str], str]
"""A scripted reply: fixed text, or a function of the whole prompt text."""

CHAT_MODELS = ("mock-gpt", "mock-gpt-mini", "mock-claude", "mock-claude-haiku")
EMBEDDING_MODELS = ("mock-embed",)

MODEL_ALIASES: Mapping[str, str] = {
    **dict.fromkeys(("gpt-4o", "gpt-4.1", "gpt-4-turbo", "gpt-4", "gpt-5", "gpt-5.1", "o3"), "mock-gpt"),
    **dict.fromkeys(
        ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5-mini", "gpt-5-nano", "o4-mini", "o3-mini"),
        "mock-gpt-mini",
    ),
    **dict.fromkeys(
        (
            "claude-sonnet-4-5",
            "claude-sonnet-4-0",
            "claude-sonnet-4",
            "claude-opus-4-5",
            "claude-opus-4-1",
            "claude-opus-4-0",
            "claude-3-7-sonnet-latest",
        ),
        "mock-claude",
    ),
    **dict.fromkeys(("claude-haiku-4-5", "claude-3-5-haiku-latest", "claude-3-haiku"), "mock-claude-haiku"),
    **dict.fromkeys(
        ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"), "mock-embed"
    ),
}
"""Real model names and the mock model that answers for each, so code copied from the
providers' documentation runs unchanged. A dated snapshot (``gpt-4o-2024-08-06``,
``claude-sonnet-4-5-20250929``) resolves like its base name. The response echoes the name
the request used."""

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")

REQUESTS_PER_MINUTE = 10_000
TOKENS_PER_MINUTE = 2_000_000
"""The budget the x-ratelimit-* headers report when no rpm/rps scenario is in force."""


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server. Every field has a default that suits a lesson."""

    api_key: str | None = None
    """When set, only this key is accepted; otherwise any non-empty key is."""
    scenario: str | None = None
    """The scenario applied when a request names none (see ``scenarios.SCENARIOS``)."""
    replies: Mapping[str, ReplySource] = field(default_factory=dict)
    """Scripted replies keyed by a marker: the first marker found in the prompt wins."""
    embedding_dim: int = 64
    """Length of an embedding vector when the request does not ask for ``dimensions``."""
    stall_timeout: float = 10.0
    """Upper bound of a stall, so a client without a timeout still gets its turn back."""
    chat_models: tuple[str, ...] = CHAT_MODELS
    embedding_models: tuple[str, ...] = EMBEDDING_MODELS
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(MODEL_ALIASES))
    """Other names a request may use for a model (a name whose target is not served is ignored)."""
    require_anthropic_version: bool = True
    """Anthropic's API rejects a request without the ``anthropic-version`` header."""
    seed: int = 0
    """Mixed into every answer and into jitter: another seed, other (still stable) answers."""

    def __post_init__(self) -> None:
        # Fail when the server is configured, not on its first request.
        if self.scenario is not None:
            parse_scenario(self.scenario)
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must be a non-empty string (or None to accept any key)")
        if not 1 <= self.embedding_dim <= 4096:
            raise ValueError("embedding_dim must be between 1 and 4096")
        if self.stall_timeout <= 0:
            raise ValueError("stall_timeout must be positive")

    @property
    def models(self) -> tuple[str, ...]:
        """Every name a request may use: the mock models, then the real names they answer."""
        return self.names()

    def _served(self, kind: ModelKind | None) -> tuple[str, ...]:
        if kind is None:
            return self.chat_models + self.embedding_models
        return self.chat_models if kind == "chat" else self.embedding_models

    def names(self, kind: ModelKind | None = None) -> tuple[str, ...]:
        served = self._served(kind)
        return served + tuple(name for name, target in self.aliases.items() if target in served)

    def resolve(self, name: str, kind: ModelKind | None = None) -> str | None:
        """The mock model that answers to ``name`` (of that kind), or None."""
        served = self._served(kind)
        for candidate in (name, _SNAPSHOT.sub("", name)):
            target = candidate if candidate in served else self.aliases.get(candidate)
            if target in served:
                return target
        return None
