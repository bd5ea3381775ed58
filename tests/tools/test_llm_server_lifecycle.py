"""Starting and stopping the server (no leaked threads, sockets or ports), ``async with``,
``course serve``, and 200 concurrent requests over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from course.layout import ROOT
from course.llm_server import LLMServer, ServerConfig
from course.llm_server.runner import STOP_TIMEOUT

# One TLS context for every client (all URLs are http://127.0.0.1): building one per
# client is the slowest part of creating an httpx client.
TLS = ssl.create_default_context()
HEADERS = {"Authorization": "Bearer sk-life"}


def chat(content: str) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": content}]}


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def listening_ports() -> set[int]:
    return {
        conn.laddr.port
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    }


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The test must leave the threads and open file descriptors it found."""
    threads = set(threading.enumerate())
    fds = psutil.Process().num_fds()
    yield
    assert set(threading.enumerate()) == threads
    assert psutil.Process().num_fds() <= fds


def test_start_serve_stop_leaves_nothing_behind(no_leaks: None) -> None:
    with LLMServer() as server:
        port = server.port
        assert server.base_url == f"http://127.0.0.1:{port}"
        assert port_is_open(port)
        assert port in listening_ports()
        assert any(thread.name == f"llm-server-{port}" for thread in threading.enumerate())
        with httpx.Client(verify=TLS, base_url=server.base_url) as client:
            assert client.get("/health").status_code == 200
            response = client.post(
                "/v1/chat/completions",
                headers={**HEADERS, "X-Mock-Scenario": "trickle:20ms"},
                json={**chat("hi"), "stream": True, "max_tokens": 5},
            )
            assert response.status_code == 200
    assert not port_is_open(port)
    assert port not in listening_ports()
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_stop_does_not_wait_for_a_stalled_client(no_leaks: None) -> None:
    """A client stuck in a stall (no timeout of its own) must not hold the server open."""
    outcome: list[BaseException | int] = []
    server = LLMServer(config=ServerConfig(stall_timeout=30)).start()

    def stuck_client() -> None:
        try:
            response = httpx.post(
                verify=TLS,
                url=f"{server.base_url}/v1/chat/completions",
                headers={**HEADERS, "X-Mock-Scenario": "stall"},
                json=chat("hi"),
                timeout=None,
            )
            outcome.append(response.status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=stuck_client)
    client.start()
    server.wait_for_log(1)
    server.stop()
    client.join(10)
    assert not client.is_alive()
    assert outcome and outcome[0] != 200  # a 504 or a closed connection, never an answer


def test_two_servers_get_different_ports_and_logs() -> None:
    with LLMServer() as one, LLMServer() as two:
        assert one.port != two.port
        httpx.get(verify=TLS, url=f"{one.base_url}/health")
        assert len(one.log) == 1
        assert two.log == []


def test_server_can_be_restarted() -> None:
    server = LLMServer()
    with server:
        first = server.port
    with server:
        assert httpx.get(verify=TLS, url=f"{server.base_url}/health").status_code == 200
    assert not port_is_open(first)


def test_unknown_default_scenario_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="Unknown scenario 'nope'"):
        LLMServer(scenario="nope")


async def test_async_with_and_async_client(no_leaks: None) -> None:
    async with LLMServer(api_key="sk-async") as server:
        async with httpx.AsyncClient(verify=TLS, base_url=server.base_url) as client:
            response = await client.post(
                "/v1/chat/completions",
                headers={"Authorization": "Bearer sk-async"},
                json=chat("async"),
            )
        assert response.status_code == 200
        port = server.port
    assert not port_is_open(port)


async def test_200_concurrent_requests_are_served_correctly() -> None:
    prompts = [f"question {i % 20}" for i in range(200)]
    async with LLMServer() as server:
        async with httpx.AsyncClient(verify=TLS, base_url=server.base_url) as client:
            # The expected answers, one request at a time: determinism makes them the oracle.
            expected = {}
            for prompt in sorted(set(prompts)):
                response = await client.post("/v1/chat/completions", headers=HEADERS, json=chat(prompt))
                expected[prompt] = response.json()["choices"][0]["message"]["content"]
        server.clear_log()

        async def user(index: int, prompt: str) -> httpx.Response:
            # A client each, as 200 separate users would be (one shared pool of 200 connections
            # spends seconds in httpcore's bookkeeping, which is not what this test measures).
            headers = {**HEADERS, "X-Request-ID": f"c-{index}", "X-Mock-Scenario": "latency:200ms"}
            async with httpx.AsyncClient(base_url=server.base_url, verify=TLS, timeout=30) as client:
                return await client.post("/v1/chat/completions", headers=headers, json=chat(prompt))

        responses = await asyncio.gather(*(user(i, p) for i, p in enumerate(prompts)))
        log = server.log
    assert [r.status_code for r in responses] == [200] * 200
    assert [r.headers["x-request-id"] for r in responses] == [f"c-{i}" for i in range(200)]
    answers = [r.json()["choices"][0]["message"]["content"] for r in responses]
    assert answers == [expected[prompt] for prompt in prompts]
    assert sorted(record.request_id for record in log) == sorted(f"c-{i}" for i in range(200))
    # Served together, not one after another: many were in progress at once.
    assert max(record.in_flight for record in log) > 50


def test_course_serve_starts_prints_the_url_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "course", "serve", "--port", "0", "--api-key", "sk-cli"],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("LLM API server at http://127.0.0.1:")
        base_url = line.split()[4]
        ok = httpx.post(
            verify=TLS,
            url=f"{base_url}/v1/chat/completions",
            headers={"Authorization": "Bearer sk-cli"},
            json=chat("cli"),
        )
        refused = httpx.post(
            verify=TLS,
            url=f"{base_url}/v1/chat/completions",
            headers={"Authorization": "Bearer x"},
            json=chat("cli"),
        )
        assert (ok.status_code, refused.status_code) == (200, 401)
        # Started ignoring SIGINT (as a script's background job is) it must stop all the same.
        process.send_signal(signal.SIGINT)
        # A graceful stop may wait STOP_TIMEOUT for open connections, then stops by force:
        # allow both on a machine busy with the rest of the suite.
        out, _ = process.communicate(timeout=2 * STOP_TIMEOUT + 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "stopped" in out
    assert not port_is_open(int(base_url.rsplit(":", 1)[1]))
