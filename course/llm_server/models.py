"""Request bodies of the three endpoints, validated the way the providers validate them.

Top-level fields are strict and closed (an unknown or misspelt parameter is a 400, as with
the real APIs); the parameters the server does not act on are still declared, so a lesson
may send them. Nested message objects allow extra fields, as they evolve fastest upstream.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ContentPart(_Open):
    type: str
    text: str | None = None


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text or "" for part in content)


# --- OpenAI: POST /v1/chat/completions -------------------------------------------------


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        return _text(self.content)


class StreamOptions(_Open):
    include_usage: bool = False


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]


class ChatCompletionRequest(_Closed):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=8)
    stop: str | list[str] | None = None
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else self.stop


# --- Anthropic: POST /v1/messages -------------------------------------------------------


class Message(_Open):
    role: Literal["user", "assistant"]
    content: str | list[ContentPart]

    @property
    def text(self) -> str:
        return _text(self.content)


class MessagesRequest(_Closed):
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[ContentPart] | None = None
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None

    @property
    def system_text(self) -> str:
        return _text(self.system)


# --- OpenAI: POST /v1/embeddings --------------------------------------------------------


class EmbeddingsRequest(_Closed):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=4096)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(
        cls, value: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        if value == "" or value == [] or (isinstance(value, list) and "" in value):
            raise ValueError("input must be a non-empty string or array")
        return value

    @property
    def texts(self) -> list[str]:
        """Each input as text; token arrays become their numbers joined by spaces."""
        value = self.input
        if isinstance(value, str):
            return [value]
        texts: list[str] = []
        numbers: list[str] = []
        for item in value:
            if isinstance(item, int):
                numbers.append(str(item))  # one token array: a single input
            elif isinstance(item, str):
                texts.append(item)
            else:
                texts.append(" ".join(map(str, item)))
        return [" ".join(numbers)] if numbers else texts
