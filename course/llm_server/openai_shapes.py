"""OpenAI-style bodies: chat completions (plain and streamed), embeddings, the model list."""

from __future__ import annotations

import base64
import struct
from typing import Any

from course.llm_server.answers import count_tokens, digest, embedding, pieces, short_id
from course.llm_server.models import ChatCompletionRequest, EmbeddingsRequest
from course.llm_server.reply import Answer, Context, Output, answer, prompt_tokens
from course.llm_server.sse import DONE, Event, event

FINGERPRINT = "fp_course_mock"
MODEL_CREATED = 1_735_689_600  # 2025-01-01: fixed, so the model list is deterministic

_FINISH = {"stop": "stop", "length": "length", "stop_sequence": "stop"}


def chat(request: ChatCompletionRequest, ctx: Context) -> Output:
    messages = [message.model_dump(exclude_none=True) for message in request.messages]
    prompt = "\n".join(message.text for message in request.messages)
    json_mode = request.response_format is not None and request.response_format.type != "text"
    limit = request.max_completion_tokens or request.max_tokens
    seeds = [
        digest("chat", request.model, messages, request.seed, ctx.config.seed, index)
        for index in range(request.n)
    ]
    answers = [
        answer(ctx, prompt, seed, max_tokens=limit, stops=request.stops, json_mode=json_mode)
        for seed in seeds
    ]
    ident = "chatcmpl-" + short_id(seeds[0])
    usage = _usage(prompt_tokens([m.text for m in request.messages]), answers)
    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return Output(
            events=_chunks(request, ctx, ident, answers, usage, include_usage),
            error_event=event(
                {
                    "error": {
                        "message": "The server is overloaded or not ready yet.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            ),
        )
    body = {
        "id": ident,
        "object": "chat.completion",
        "created": ctx.created,
        "model": request.model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": item.text, "refusal": None},
                "logprobs": None,
                "finish_reason": _FINISH[item.finish],
            }
            for index, item in enumerate(answers)
        ],
        "usage": usage,
        "system_fingerprint": FINGERPRINT,
    }
    return Output(body=body)


def _usage(prompt: int, answers: list[Answer]) -> dict[str, int]:
    completion = sum(item.tokens for item in answers)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunks(
    request: ChatCompletionRequest,
    ctx: Context,
    ident: str,
    answers: list[Answer],
    usage: dict[str, int],
    include_usage: bool,
) -> list[Event]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> Event:
        payload: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": request.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = None
        payload.update(extra)
        return event(payload)

    def choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [
        chunk([choice(i, {"role": "assistant", "content": "", "refusal": None})]) for i in range(len(answers))
    ]
    for index, item in enumerate(answers):
        events += [chunk([choice(index, {"content": piece})]) for piece in pieces(item.text)]
    events += [chunk([choice(i, {}, _FINISH[item.finish])]) for i, item in enumerate(answers)]
    if include_usage:
        events.append(chunk([], usage=usage))
    events.append(DONE)
    return events


def embeddings(request: EmbeddingsRequest, ctx: Context) -> Output:
    dimensions = request.dimensions or ctx.config.embedding_dim
    texts = request.texts
    data = []
    for index, text in enumerate(texts):
        vector = embedding(request.model, text, dimensions, ctx.config.seed)
        encoded: list[float] | str = vector
        if request.encoding_format == "base64":
            # The providers send little-endian float32 bytes, base64-encoded.
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(text) for text in texts)
    return Output(
        body={
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "course"}


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(model) for model in models]}
