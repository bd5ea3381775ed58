"""One module per API the server speaks; ``PROVIDERS`` is every one of them."""

from __future__ import annotations

from collections.abc import Mapping

from course.llm_server.providers.anthropic import ANTHROPIC
from course.llm_server.providers.base import Endpoint, Provider
from course.llm_server.providers.openai import OPENAI

PROVIDERS: tuple[Provider, ...] = (OPENAI, ANTHROPIC)


def provider_for(headers: Mapping[str, str]) -> Provider:
    """Shared paths (/v1/models, unknown URLs) answer in the style the client speaks."""
    if "x-api-key" in headers or "anthropic-version" in headers:
        return ANTHROPIC
    return OPENAI


__all__ = ["ANTHROPIC", "OPENAI", "PROVIDERS", "Endpoint", "Provider", "provider_for"]
