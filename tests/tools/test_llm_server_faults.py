"""Every fault of the local LLM API server, over real HTTP on 127.0.0.1, checked from the
client's side (what a lesson sees) and from the server's request log (what it did)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from course.llm_server import LLMServer

# One TLS context for every client (all URLs are http://127.0.0.1): building one per
# client is the slowest part of creating an httpx client.
TLS = ssl.create_default_context()
KEY = "sk-faults"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def client(server: LLMServer) -> Iterator[httpx.Client]:
    server.reset()
    with httpx.Client(verify=TLS, base_url=server.base_url, timeout=5) as http:
        yield http


def openai(scenario: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {KEY}", **extra}
    if scenario is not None:
        headers["X-Mock-Scenario"] = scenario
    return headers


def anthropic(scenario: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", **extra}
    if scenario is not None:
        headers["X-Mock-Scenario"] = scenario
    return headers


CHAT: dict[str, Any] = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}
STREAM: dict[str, Any] = {**CHAT, "stream": True}
MESSAGE: dict[str, Any] = {
    "model": "mock-claude",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hello"}],
}


def read_lines(response: httpx.Response, into: list[str]) -> None:
    """Collect the SSE data lines as they arrive, so a failure mid-stream keeps the rest."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            into.append(line.removeprefix("data: "))


# --- delays ---------------------------------------------------------------------------------


def test_latency_delays_the_answer(client: httpx.Client, server: LLMServer) -> None:
    response = client.post("/v1/chat/completions", headers=openai("latency:150ms"), json=CHAT)
    assert response.status_code == 200
    [record] = server.log
    assert record.fault == "latency:150ms"
    assert record.scenario == "latency:150ms"
    assert record.elapsed >= 0.15


def test_jitter_delays_vary_within_the_range(client: httpx.Client, server: LLMServer) -> None:
    for _ in range(4):
        client.post("/v1/chat/completions", headers=openai("jitter:20-80ms"), json=CHAT)
    elapsed = [record.elapsed for record in server.log]
    assert all(value >= 0.02 for value in elapsed)
    assert len({round(value, 4) for value in elapsed}) > 1


# --- rate limits ----------------------------------------------------------------------------


def test_rate_limited_is_429_with_retry_after(client: httpx.Client) -> None:
    scenario = "rate_limited:retry_after=1.5"
    response = client.post("/v1/chat/completions", headers=openai(scenario), json=CHAT)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"  # whole seconds, rounded up
    assert response.headers["retry-after-ms"] == "1500"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "requests"
    anthropic_response = client.post("/v1/messages", headers=anthropic(scenario), json=MESSAGE)
    assert anthropic_response.status_code == 429
    assert anthropic_response.json()["error"]["type"] == "rate_limit_error"


def test_rpm_admits_n_per_window_per_key(client: httpx.Client, server: LLMServer) -> None:
    statuses = []
    for _ in range(3):
        response = client.post(
            "/v1/chat/completions", headers=openai("rpm:2", **{"X-Mock-Key": "a"}), json=CHAT
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    other_key = client.post("/v1/chat/completions", headers=openai("rpm:2", **{"X-Mock-Key": "b"}), json=CHAT)
    assert other_key.status_code == 200
    assert other_key.headers["x-ratelimit-remaining-requests"] == "1"
    assert [record.fault for record in server.log] == [None, None, "rpm:2", None]


def test_rps_window_slides(client: httpx.Client, server: LLMServer) -> None:
    headers = openai("rps:1", **{"X-Mock-Key": "slide"})
    first = client.post("/v1/chat/completions", headers=headers, json=CHAT)
    refused = client.post("/v1/chat/completions", headers=headers, json=CHAT)
    assert (first.status_code, refused.status_code) == (200, 429)
    threading.Event().wait(int(refused.headers["retry-after-ms"]) / 1000 + 0.05)
    again = client.post("/v1/chat/completions", headers=headers, json=CHAT)
    assert again.status_code == 200
    first_record, _, again_record = server.log
    assert again_record.monotonic - first_record.monotonic >= 1.0


def test_concurrency_limit_refuses_the_excess(server: LLMServer) -> None:
    server.reset()
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        response = httpx.post(
            verify=TLS,
            url=f"{server.base_url}/v1/chat/completions",
            headers=openai("latency:300ms,concurrency:2"),
            json=CHAT,
        )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200, 429, 429]
    assert sorted(record.in_flight for record in server.log) == [1, 2, 3, 4]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(500, "server_error"), (503, "server_error")])
def test_openai_server_errors(client: httpx.Client, status: int, kind: str) -> None:
    response = client.post("/v1/chat/completions", headers=openai(f"error:{status}"), json=CHAT)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("status", "kind"), [(500, "api_error"), (529, "overloaded_error"), (400, "invalid_request_error")]
)
def test_anthropic_errors(client: httpx.Client, status: int, kind: str) -> None:
    response = client.post("/v1/messages", headers=anthropic(f"error:{status}"), json=MESSAGE)
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind


def test_502_comes_from_the_proxy_as_html(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", headers=openai("error:502"), json=CHAT)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_fail_first_then_succeed_counts_per_key(client: httpx.Client, server: LLMServer) -> None:
    def call(key: str) -> int:
        headers = openai("fail_first:2:503", **{"X-Mock-Key": key})
        return client.post("/v1/chat/completions", headers=headers, json=CHAT).status_code

    assert [call("one") for _ in range(3)] == [503, 503, 200]
    assert [call("two") for _ in range(3)] == [503, 503, 200]
    assert call("one") == 200
    assert [record.fault for record in server.log][:3] == ["error:503", "error:503", None]
    assert {record.key for record in server.log} == {"one", "two"}
    server.reset()
    assert call("one") == 503


def test_fail_first_with_another_fault(client: httpx.Client) -> None:
    headers = openai("fail_first:1:rate_limited:retry_after=0", **{"X-Mock-Key": "rl"})
    first = client.post("/v1/chat/completions", headers=headers, json=CHAT)
    second = client.post("/v1/chat/completions", headers=headers, json=CHAT)
    assert (first.status_code, second.status_code) == (429, 200)
    assert first.headers["retry-after"] == "0"


# --- stalls and broken streams --------------------------------------------------------------


def test_stall_sends_nothing_until_the_client_times_out(client: httpx.Client, server: LLMServer) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", headers=openai("stall"), json=CHAT, timeout=0.3)
    [record] = server.log
    assert record.status is None
    assert record.fault == "stall"


def test_stall_is_bounded_by_the_server(client: httpx.Client, server: LLMServer) -> None:
    response = client.post("/v1/chat/completions", headers=openai("stall:for=100ms"), json=CHAT)
    assert response.status_code == 504
    assert "Gateway Time-out" in response.text


def test_stall_mid_stream(client: httpx.Client) -> None:
    lines: list[str] = []
    with (
        pytest.raises(httpx.ReadTimeout),
        client.stream(
            "POST", "/v1/chat/completions", headers=openai("stall:after=2"), json=STREAM, timeout=0.3
        ) as response,
    ):
        assert response.status_code == 200
        read_lines(response, lines)
    assert len(lines) == 2


@pytest.mark.parametrize("after", [0, 3])
def test_drop_stream_closes_the_connection_mid_way(
    client: httpx.Client, server: LLMServer, after: int
) -> None:
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST", "/v1/chat/completions", headers=openai(f"drop_stream:after={after}"), json=STREAM
        ) as response,
    ):
        read_lines(response, lines)
    assert len(lines) == after
    assert "[DONE]" not in lines
    [record] = server.log
    assert (record.status, record.fault, record.streamed) == (200, f"drop_stream:after={after}", True)


def test_drop_anthropic_stream_has_no_message_stop(client: httpx.Client) -> None:
    body = {**MESSAGE, "stream": True}
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/v1/messages", headers=anthropic("drop_stream:after=4"), json=body) as r,
    ):
        read_lines(r, lines)
    assert [json.loads(line)["type"] for line in lines] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ]


def test_drop_plain_response_cuts_the_body(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", headers=openai("drop_stream:after=2"), json=CHAT)


def test_malformed_json_body(client: httpx.Client, server: LLMServer) -> None:
    response = client.post("/v1/chat/completions", headers=openai("malformed_json"), json=CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert response.text.startswith('{"id":"chatcmpl-')
    assert server.log[0].fault == "malformed_json"


def test_malformed_chunk_breaks_one_event(client: httpx.Client) -> None:
    lines: list[str] = []
    with client.stream(
        "POST", "/v1/chat/completions", headers=openai("malformed_chunk:at=2"), json=STREAM
    ) as response:
        read_lines(response, lines)
    assert lines[-1] == "[DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[1])
    for line in [lines[0], *lines[2:-1]]:
        assert json.loads(line)["object"] == "chat.completion.chunk"


def test_trickle_spaces_out_the_events(client: httpx.Client, server: LLMServer) -> None:
    lines: list[str] = []
    with client.stream(
        "POST", "/v1/chat/completions", headers=openai("trickle:10ms"), json={**STREAM, "max_tokens": 8}
    ) as response:
        read_lines(response, lines)
    assert lines[-1] == "[DONE]"
    [record] = server.log
    assert record.fault == "trickle:10ms"
    assert record.elapsed >= 0.01 * (len(lines) - 1)


def test_stream_error_event_openai(client: httpx.Client) -> None:
    lines: list[str] = []
    with client.stream(
        "POST", "/v1/chat/completions", headers=openai("stream_error:after=2"), json=STREAM
    ) as response:
        read_lines(response, lines)
    assert len(lines) == 3
    assert json.loads(lines[-1])["error"]["type"] == "server_error"


def test_stream_error_event_anthropic(client: httpx.Client) -> None:
    body = {**MESSAGE, "stream": True}
    with client.stream(
        "POST", "/v1/messages", headers=anthropic("stream_error:after=3"), json=body
    ) as response:
        text = response.read().decode()
    last = text.strip().split("\n\n")[-1].splitlines()
    assert last[0] == "event: error"
    assert json.loads(last[1].removeprefix("data: "))["error"]["type"] == "overloaded_error"
    assert "message_stop" not in text


# --- choosing a scenario --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "named"),
    [("explode", "explode"), ("latency:fast", "latency:fast"), ("error:200", "error:200")],
)
def test_bad_scenario_is_400_naming_it(client: httpx.Client, scenario: str, named: str) -> None:
    response = client.post("/v1/chat/completions", headers=openai(scenario), json=CHAT)
    assert response.status_code == 400
    assert named in response.json()["error"]["message"]
    anthropic_response = client.post("/v1/messages", headers=anthropic(scenario), json=MESSAGE)
    assert anthropic_response.status_code == 400
    assert named in anthropic_response.json()["error"]["message"]


def test_server_default_scenario_and_ok_override() -> None:
    with LLMServer(scenario="error:503") as failing:
        url = f"{failing.base_url}/v1/chat/completions"
        default = httpx.post(verify=TLS, url=url, headers=openai(), json=CHAT)
        overridden = httpx.post(verify=TLS, url=url, headers=openai("ok"), json=CHAT)
        assert [record.scenario for record in failing.log] == ["error:503", "ok"]
    assert (default.status_code, overridden.status_code) == (503, 200)


def test_scenario_in_the_base_url(client: httpx.Client, server: LLMServer) -> None:
    base = server.url("fail_first:1:500", key="url-key")
    first = httpx.post(verify=TLS, url=f"{base}/v1/chat/completions", headers=openai(), json=CHAT)
    second = httpx.post(verify=TLS, url=f"{base}/v1/chat/completions", headers=openai(), json=CHAT)
    assert (first.status_code, second.status_code) == (500, 200)
    assert [(r.path, r.scenario, r.key) for r in server.log] == [
        ("/v1/chat/completions", "fail_first:1:500", "url-key")
    ] * 2


def test_steps_combine(client: httpx.Client, server: LLMServer) -> None:
    headers = openai("latency:50ms,fail_first:1:503", **{"X-Mock-Key": "combo"})
    statuses = [client.post("/v1/chat/completions", headers=headers, json=CHAT).status_code]
    statuses.append(client.post("/v1/chat/completions", headers=headers, json=CHAT).status_code)
    assert statuses == [503, 200]
    assert [record.fault for record in server.log] == ["latency:50ms,error:503", "latency:50ms"]
    assert all(record.elapsed >= 0.05 for record in server.log)
