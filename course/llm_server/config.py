"""How one server instance behaves: its key, default scenario, scripted replies, models."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from course.llm_server.scenarios import parse_scenario

ReplySource = str | Callable[[str], str]
"""A scripted reply: fixed text, or a function of the whole prompt text."""

CHAT_MODELS = ("mock-gpt", "mock-gpt-mini", "mock-claude", "mock-claude-haiku")
EMBEDDING_MODELS = ("mock-embed",)


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
        return self.chat_models + self.embedding_models
