"""Anthropic-style bodies: a message (plain and streamed as named events), the model list."""

from __future__ import annotations

from typing import Any

from course.llm_server.answers import digest, pieces, short_id
from course.llm_server.models import MessagesRequest
from course.llm_server.reply import Context, Output, answer, prompt_tokens
from course.llm_server.sse import Event, event

_STOP = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}
MODEL_CREATED_AT = "2025-01-01T00:00:00Z"


def message(request: MessagesRequest, ctx: Context) -> Output:
    messages = [item.model_dump(exclude_none=True) for item in request.messages]
    system = request.system_text
    prompt = "\n".join([system, *(item.text for item in request.messages)])
    seed = digest("chat", request.model, system, messages, ctx.config.seed)
    reply = answer(ctx, prompt, seed, max_tokens=request.max_tokens, stops=request.stop_sequences or [])
    ident = "msg_" + short_id(seed)
    texts = [item.text for item in request.messages]
    input_tokens = prompt_tokens([system, *texts] if system else texts)
    usage = {"input_tokens": input_tokens, "output_tokens": reply.tokens}
    stop_reason = _STOP[reply.finish]
    if not request.stream:
        return Output(
            body={
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": stop_reason,
                "stop_sequence": reply.stop_sequence,
                "usage": usage,
            }
        )
    start: dict[str, Any] = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events: list[Event] = [
        event({"type": "message_start", "message": start}, "message_start"),
        event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        event({"type": "ping"}, "ping"),
    ]
    events += [
        event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            "content_block_delta",
        )
        for piece in pieces(reply.text)
    ]
    events += [
        event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": {"output_tokens": reply.tokens},
            },
            "message_delta",
        ),
        event({"type": "message_stop"}, "message_stop"),
    ]
    error = event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    return Output(events=events, error_event=error)


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    data = [model_card(model) for model in models]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def model_card(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": model.replace("-", " ").title(),
        "created_at": MODEL_CREATED_AT,
    }
