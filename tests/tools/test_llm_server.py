"""The local LLM API server over real HTTP on 127.0.0.1: endpoints, shapes, auth, validation,
determinism, scripted replies and the request log. Faults: test_llm_server_faults.py."""

from __future__ import annotations

import base64
import json
import math
import ssl
import struct
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import httpx
import pytest

from course.llm_server import LLMServer, count_tokens

# One TLS context for every client (all URLs are http://127.0.0.1): building one per
# client is the slowest part of creating an httpx client.
TLS = ssl.create_default_context()
KEY = "sk-test-key"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY, replies={"#person": '{"name": "Ada", "born": 1815}'}) as running:
        yield running


@pytest.fixture
def client(server: LLMServer) -> Iterator[httpx.Client]:
    server.reset()
    with httpx.Client(verify=TLS, base_url=server.base_url, timeout=5) as http:
        yield http


def openai_headers(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", **extra}


def anthropic_headers(**extra: str) -> dict[str, str]:
    return {"x-api-key": KEY, "anthropic-version": "2023-06-01", **extra}


def chat(content: str = "What is a timeout?", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": content}], **extra}


def message(content: str = "What is a timeout?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "mock-claude",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


def sse_data(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Named events as (name, payload), the way an Anthropic client reads them."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


# --- OpenAI-style chat completions ---------------------------------------------------------


def test_chat_completion_has_openai_shape_and_usage(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", headers=openai_headers(), json=chat())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "mock-gpt"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    text = choice["message"]["content"]
    assert len(text.split()) > 5
    usage = body["usage"]
    assert usage["completion_tokens"] == count_tokens(text)
    assert usage["prompt_tokens"] > count_tokens("What is a timeout?")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_same_request_same_answer_other_prompt_other_answer(client: httpx.Client) -> None:
    first = client.post("/v1/chat/completions", headers=openai_headers(), json=chat("a")).json()
    again = client.post("/v1/chat/completions", headers=openai_headers(), json=chat("a")).json()
    other = client.post("/v1/chat/completions", headers=openai_headers(), json=chat("b")).json()
    assert first["choices"] == again["choices"]
    assert first["usage"] == again["usage"]
    assert first["id"] == again["id"]
    assert first["choices"][0]["message"] != other["choices"][0]["message"]


def test_answer_does_not_depend_on_server_instance(client: httpx.Client) -> None:
    here = client.post("/v1/chat/completions", headers=openai_headers(), json=chat("x")).json()
    with LLMServer() as fresh:
        there = httpx.post(
            verify=TLS,
            url=f"{fresh.base_url}/v1/chat/completions",
            headers={"Authorization": "Bearer any"},
            json=chat("x"),
        ).json()
    assert here["choices"] == there["choices"]


def test_chat_stream_is_sse_with_done_and_usage(client: httpx.Client) -> None:
    plain = client.post("/v1/chat/completions", headers=openai_headers(), json=chat()).json()
    body = chat(stream=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/chat/completions", headers=openai_headers(), json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        data = sse_data(r.read().decode())
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain["usage"]


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", headers=openai_headers(), json=chat(max_tokens=3)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 3
    assert count_tokens(body["choices"][0]["message"]["content"]) == body["usage"]["completion_tokens"]


def test_json_mode_answers_a_json_object(client: httpx.Client) -> None:
    body = chat(response_format={"type": "json_object"})
    content = client.post("/v1/chat/completions", headers=openai_headers(), json=body).json()
    assert isinstance(json.loads(content["choices"][0]["message"]["content"])["answer"], str)


# --- Anthropic-style messages ---------------------------------------------------------------


def test_message_has_anthropic_shape(client: httpx.Client) -> None:
    response = client.post("/v1/messages", headers=anthropic_headers(), json=message())
    assert response.status_code == 200
    assert response.headers["request-id"] == response.headers["x-request-id"]
    body = response.json()
    assert body["type"] == "message"
    assert body["id"].startswith("msg_")
    assert body["role"] == "assistant"
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    [block] = body["content"]
    assert block["type"] == "text"
    assert body["usage"]["output_tokens"] == count_tokens(block["text"])
    assert body["usage"]["input_tokens"] > 0


def test_message_stream_uses_named_events_in_order(client: httpx.Client) -> None:
    plain = client.post("/v1/messages", headers=anthropic_headers(), json=message()).json()
    with client.stream("POST", "/v1/messages", headers=anthropic_headers(), json=message(stream=True)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(payload["type"] == name for name, payload in events)
    deltas = [p["delta"]["text"] for name, p in events if name == "content_block_delta"]
    assert "".join(deltas) == plain["content"][0]["text"]
    assert events[0][1]["message"]["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    assert events[-2][1]["usage"]["output_tokens"] == plain["usage"]["output_tokens"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_stop_sequence_is_reported(client: httpx.Client) -> None:
    text = client.post("/v1/messages", headers=anthropic_headers(), json=message()).json()
    word = text["content"][0]["text"].split()[2]
    body = client.post(
        "/v1/messages", headers=anthropic_headers(), json=message(stop_sequences=[word])
    ).json()
    assert body["stop_reason"] == "stop_sequence"
    assert body["stop_sequence"] == word
    assert word not in body["content"][0]["text"]


def test_system_prompt_changes_the_answer(client: httpx.Client) -> None:
    plain = client.post("/v1/messages", headers=anthropic_headers(), json=message()).json()
    with_system = client.post(
        "/v1/messages", headers=anthropic_headers(), json=message(system="Be brief.")
    ).json()
    assert with_system["usage"]["input_tokens"] > plain["usage"]["input_tokens"]
    assert with_system["id"] != plain["id"]


# --- embeddings, models, health -------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors(client: httpx.Client) -> None:
    body = {"model": "mock-embed", "input": ["cat", "dog", "cat"]}
    data = client.post("/v1/embeddings", headers=openai_headers(), json=body).json()
    assert data["object"] == "list"
    vectors = [item["embedding"] for item in data["data"]]
    assert [item["index"] for item in data["data"]] == [0, 1, 2]
    assert all(len(vector) == 64 for vector in vectors)
    assert all(math.isclose(math.hypot(*vector), 1.0) for vector in vectors)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embeddings_dimensions_and_base64(client: httpx.Client) -> None:
    floats = client.post(
        "/v1/embeddings",
        headers=openai_headers(),
        json={"model": "mock-embed", "input": "cat", "dimensions": 8},
    ).json()["data"][0]["embedding"]
    packed = client.post(
        "/v1/embeddings",
        headers=openai_headers(),
        json={"model": "mock-embed", "input": "cat", "dimensions": 8, "encoding_format": "base64"},
    ).json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(packed))
    assert len(floats) == 8
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(floats, decoded, strict=True))


def test_model_list_in_both_styles(client: httpx.Client) -> None:
    openai = client.get("/v1/models", headers=openai_headers()).json()
    anthropic = client.get("/v1/models", headers=anthropic_headers()).json()
    assert openai["object"] == "list"
    assert {"mock-gpt", "mock-embed"} <= {model["id"] for model in openai["data"]}
    assert {model["type"] for model in anthropic["data"]} == {"model"}
    assert anthropic["has_more"] is False
    one = client.get("/v1/models/mock-claude", headers=anthropic_headers())
    assert one.json()["id"] == "mock-claude"
    missing = client.get("/v1/models/gpt-nope", headers=openai_headers())
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_health_needs_no_key(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- auth and validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), ({"Authorization": "Bearer wrong"}, "invalid_api_key")],
)
def test_openai_key_missing_or_wrong_is_401(
    client: httpx.Client, headers: dict[str, str], code: str | None
) -> None:
    response = client.post("/v1/chat/completions", headers=headers, json=chat())
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert "wrong" not in error["message"]  # the key is masked, never echoed


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": KEY}, 400, "invalid_request_error"),
    ],
)
def test_anthropic_key_and_version_headers(
    client: httpx.Client, headers: dict[str, str], status: int, kind: str
) -> None:
    response = client.post("/v1/messages", headers=headers, json=message())
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["request_id"] == response.headers["request-id"]


def test_any_non_empty_key_works_without_a_required_key() -> None:
    with LLMServer() as open_server:
        url = f"{open_server.base_url}/v1/chat/completions"
        ok = httpx.post(verify=TLS, url=url, headers={"Authorization": "Bearer whatever"}, json=chat())
        empty = httpx.post(verify=TLS, url=url, headers={"Authorization": "Bearer"}, json=chat())
    assert ok.status_code == 200
    assert empty.status_code == 401


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "mock-gpt"}, "messages", "missing_required_parameter"),
        ({"model": "mock-gpt", "messages": "hi"}, "messages", "invalid_value"),
        ({**chat(), "temperature": 5}, "temperature", "invalid_value"),
    ],
)
def test_malformed_openai_request_is_400_naming_the_parameter(
    client: httpx.Client, body: dict[str, Any], param: str, code: str | None
) -> None:
    response = client.post("/v1/chat/completions", headers=openai_headers(), json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code


def test_unknown_parameters_are_accepted_and_logged(client: httpx.Client, server: LLMServer) -> None:
    body = chat(strem=True, prompt_cache_key="k1", safety_identifier="u1")
    response = client.post("/v1/chat/completions", headers=openai_headers(), json=body)
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"  # not streamed: "strem" is a typo
    assert server.log[-1].unknown_params == ("prompt_cache_key", "safety_identifier", "strem")
    known = client.post("/v1/messages", headers=anthropic_headers(), json=message(top_k=3))
    assert known.status_code == 200
    assert server.log[-1].unknown_params == ()


def test_malformed_anthropic_request_is_400(client: httpx.Client) -> None:
    body = message()
    del body["max_tokens"]
    response = client.post("/v1/messages", headers=anthropic_headers(), json=body)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def test_body_that_is_not_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        headers={**openai_headers(), "content-type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_unknown_model_and_url_are_404(client: httpx.Client) -> None:
    model = client.post("/v1/chat/completions", headers=openai_headers(), json={**chat(), "model": "gpt-99"})
    url = client.post("/v1/completions", headers=openai_headers(), json=chat())
    assert model.status_code == 404
    assert "gpt-99" in model.json()["error"]["message"]
    assert url.status_code == 404
    assert url.json()["error"]["message"] == "Invalid URL (POST /v1/completions)"


@pytest.mark.parametrize(
    ("requested", "path"),
    [
        ("gpt-4o-mini", "/v1/chat/completions"),
        ("gpt-4o-2024-08-06", "/v1/chat/completions"),
        ("gpt-4.1", "/v1/chat/completions"),
        ("claude-sonnet-4-5", "/v1/messages"),
        ("claude-haiku-4-5-20251001", "/v1/messages"),
    ],
)
def test_real_model_names_are_answered_and_echoed(client: httpx.Client, requested: str, path: str) -> None:
    openai_style = path == "/v1/chat/completions"
    body = {**(chat() if openai_style else message()), "model": requested}
    head = openai_headers() if openai_style else anthropic_headers()
    response = client.post(path, headers=head, json=body)
    assert response.status_code == 200
    assert response.json()["model"] == requested


def test_real_name_answers_like_its_mock_model(client: httpx.Client) -> None:
    real = client.post("/v1/chat/completions", headers=openai_headers(), json={**chat(), "model": "gpt-4o"})
    mock = client.post("/v1/chat/completions", headers=openai_headers(), json=chat())
    assert real.json()["choices"] == mock.json()["choices"]
    small = {"model": "text-embedding-3-small", "input": "cat"}
    embedded = client.post("/v1/embeddings", headers=openai_headers(), json=small).json()
    direct = client.post(
        "/v1/embeddings", headers=openai_headers(), json={**small, "model": "mock-embed"}
    ).json()
    assert embedded["model"] == "text-embedding-3-small"
    assert embedded["data"] == direct["data"]


def test_unknown_model_404_lists_the_names_that_exist(client: httpx.Client) -> None:
    openai = client.post("/v1/chat/completions", headers=openai_headers(), json={**chat(), "model": "gpt-99"})
    anthropic = client.post("/v1/messages", headers=anthropic_headers(), json={**message(), "model": "c-9"})
    embed_as_chat = client.post(
        "/v1/chat/completions", headers=openai_headers(), json={**chat(), "model": "mock-embed"}
    )
    assert openai.status_code == anthropic.status_code == embed_as_chat.status_code == 404
    listed = openai.json()["error"]["message"]
    assert "gpt-99" in listed
    assert "mock-gpt" in listed and "gpt-4o-mini" in listed and "claude-sonnet-4-5" in listed
    assert "text-embedding-3-small" not in listed  # a chat request lists chat models
    assert "claude-haiku-4-5" in anthropic.json()["error"]["message"]


def test_rate_limit_headers_on_every_response(client: httpx.Client) -> None:
    openai = client.post("/v1/chat/completions", headers=openai_headers(), json=chat())
    again = client.post("/v1/chat/completions", headers=openai_headers(), json=chat())
    missing = client.post("/v1/chat/completions", headers=openai_headers(), json={**chat(), "model": "x"})
    anthropic = client.post("/v1/messages", headers=anthropic_headers(), json=message())
    listed = client.get("/v1/models", headers=openai_headers())
    for response in (openai, missing, listed):
        for name in ("limit-requests", "remaining-requests", "reset-requests", "limit-tokens"):
            assert f"x-ratelimit-{name}" in response.headers
    used = int(openai.headers["x-ratelimit-remaining-requests"])
    assert int(again.headers["x-ratelimit-remaining-requests"]) == used - 1
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for what in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{kind}-{what}" in anthropic.headers


def test_usage_has_the_detail_fields(client: httpx.Client) -> None:
    usage = client.post("/v1/chat/completions", headers=openai_headers(), json=chat()).json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    claude = client.post("/v1/messages", headers=anthropic_headers(), json=message()).json()["usage"]
    assert claude["cache_read_input_tokens"] == claude["cache_creation_input_tokens"] == 0


def test_anthropic_routes_take_the_key_as_bearer_too(client: httpx.Client) -> None:
    bearer = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    ok = client.post("/v1/messages", headers=bearer, json=message())
    wrong = client.post(
        "/v1/messages", headers={**bearer, "Authorization": "Bearer nope"}, json=message()
    )
    listed = client.get("/v1/models", headers=bearer)
    assert ok.status_code == 200
    assert ok.json()["type"] == "message"
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    assert listed.json()["has_more"] is False  # answered in Anthropic's shape


# --- scripted replies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("plain", '{"ok": true}'),
        ("fence", '```json\n{"ok": true}\n```'),
        ("prose_fence", 'Sure! Here is the JSON you asked for:\n\n```json\n{"ok": true}\n```'),
    ],
)
def test_reply_header_scripts_the_answer(client: httpx.Client, style: str, expected: str) -> None:
    headers = openai_headers(**{"X-Mock-Reply": '{"ok": true}', "X-Mock-Reply-Style": style})
    body = client.post("/v1/chat/completions", headers=headers, json=chat()).json()
    assert body["choices"][0]["message"]["content"].startswith(expected)


def test_scripted_reply_streams_too(client: httpx.Client) -> None:
    headers = anthropic_headers(**{"X-Mock-Reply": '{"ok": true}'})
    with client.stream("POST", "/v1/messages", headers=headers, json=message(stream=True)) as r:
        events = sse_events(r.read().decode())
    text = "".join(p["delta"]["text"] for name, p in events if name == "content_block_delta")
    assert json.loads(text) == {"ok": True}


def test_server_replies_are_keyed_by_a_marker_in_the_prompt(client: httpx.Client) -> None:
    marked = client.post(
        "/v1/messages", headers=anthropic_headers(), json=message("Describe #person as JSON")
    ).json()
    unmarked = client.post(
        "/v1/messages", headers=anthropic_headers(), json=message("Describe a person")
    ).json()
    assert json.loads(marked["content"][0]["text"]) == {"name": "Ada", "born": 1815}
    assert "Ada" not in unmarked["content"][0]["text"]


def test_unknown_reply_style_is_400(client: httpx.Client) -> None:
    headers = openai_headers(**{"X-Mock-Reply": "x", "X-Mock-Reply-Style": "yaml"})
    response = client.post("/v1/chat/completions", headers=headers, json=chat())
    assert response.status_code == 400
    assert "yaml" in response.json()["error"]["message"]


# --- the request log ------------------------------------------------------------------------


def test_log_records_each_request_with_echoed_request_id(client: httpx.Client, server: LLMServer) -> None:
    first = client.post(
        "/v1/chat/completions", headers=openai_headers(**{"X-Request-ID": "lesson-1"}), json=chat()
    )
    second = client.post("/v1/messages", headers=anthropic_headers(), json=message(stream=True))
    refused = client.post("/v1/chat/completions", json=chat())
    assert first.headers["x-request-id"] == "lesson-1"
    log = server.log
    assert [record.request_id for record in log] == [
        "lesson-1",
        second.headers["x-request-id"],
        refused.headers["x-request-id"],
    ]
    assert [record.status for record in log] == [200, 200, 401]
    assert [record.streamed for record in log] == [False, True, False]
    assert [record.api for record in log] == ["openai", "anthropic", "openai"]
    chat_path, messages_path = "/v1/chat/completions", "/v1/messages"
    assert [record.path for record in log] == [chat_path, messages_path, chat_path]
    assert all(record.timestamp.tzinfo is UTC for record in log)
    assert log[0].monotonic < log[1].monotonic < log[2].monotonic
    assert log[0].timestamp < log[1].timestamp
    assert {record.method for record in log} == {"POST"}
    assert log[0].model == "mock-gpt"
    assert log[0].scenario is None
    assert log[0].fault is None


def test_clear_log_empties_it(client: httpx.Client, server: LLMServer) -> None:
    client.get("/health")
    assert len(server.log) == 1
    server.clear_log()
    assert server.log == []
