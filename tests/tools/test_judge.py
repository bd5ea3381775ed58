"""The judge/worker split: probes run in a worker process, only checked data comes back.

These drive :class:`course.grader.judge.WorkerProcess` directly on a small notebook and a
small probe module written per test, without the sandbox (the grader's own tests cover
the sandboxed path). Each case is something a submission can do to its worker: answer,
raise, return a live object, hang, exit, write garbage to the reply channel.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from course.grader.judge import Launch, ProbeError, WorkerProcess, WorkerStopped
from course.grader.protocol import ProtocolError, check_data, decode_reply
from course.llm_server import LLMServer

NOTEBOOK = '''
# %%
import os, sys, time


def add(a, b):
    return a + b


class Weird(str):
    pass


def weird():
    return Weird("x")


def explode():
    raise ValueError("bad input: ''")


def leave():
    os._exit(3)


def hang():
    while True:
        time.sleep(0.01)


def garble():
    # The reply descriptor is on the worker's command line, where any code can read it.
    fd = int(sys.argv[sys.argv.index("--reply-fd") + 1])
    os.write(fd, b'{"call": 1, "value": 5}garbage\\n')
    time.sleep(5)


async def slow_add(a, b):
    import asyncio
    await asyncio.sleep(0.01)
    return a + b


def ask(base_url, text):
    import httpx
    reply = httpx.post(f"{base_url}/v1/chat/completions", json={
        "model": "mock-small", "messages": [{"role": "user", "content": text}]})
    return reply.status_code
'''

PROBES = '''
from course.probing import probe


@probe
def probe_add(nb, a, b):
    return nb.add(a, b)


@probe
async def probe_slow_add(nb, a, b):
    return await nb.slow_add(a, b)


@probe
def probe_call(nb, name, *args):
    return getattr(nb, name)(*args)


@probe
def probe_module(nb):
    return nb
'''


@pytest.fixture
def worker(tmp_path: Path) -> WorkerProcess:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_probes.py").write_text(textwrap.dedent(PROBES))
    notebook = tmp_path / "00_demo.py"
    notebook.write_text(NOTEBOOK)
    launch = Launch.local(notebook, tmp_path, ["tests/test_probes.py"])
    process = WorkerProcess(launch)
    yield process
    process.stop()


def call(worker: WorkerProcess, probe: str, *args: object, timeout: float = 20) -> object:
    return worker.call("tests/test_probes.py", probe, list(args), timeout)  # type: ignore[arg-type]


def test_a_probe_returns_data(worker: WorkerProcess) -> None:
    assert call(worker, "probe_add", 2, 40) == 42
    assert call(worker, "probe_slow_add", 1, 2) == 3
    assert worker.starts == 1, "one worker serves every probe while it stays healthy"


def test_an_exception_comes_back_as_a_probe_error(worker: WorkerProcess) -> None:
    with pytest.raises(ProbeError) as info:
        call(worker, "probe_call", "explode")
    assert info.value.type_name == "ValueError"
    assert "bad input: ''" in str(info.value)
    assert "00_demo.py" in info.value.where


def test_objects_never_cross_only_exact_builtin_data(worker: WorkerProcess) -> None:
    with pytest.raises(ProbeError, match="where plain data was expected"):
        call(worker, "probe_module")
    with pytest.raises(ProbeError, match="Weird"):
        call(worker, "probe_call", "weird")  # a str subclass is not a str


def test_an_exit_costs_one_call_and_the_next_gets_a_fresh_worker(worker: WorkerProcess) -> None:
    with pytest.raises(WorkerStopped, match="exit status 3") as info:
        call(worker, "probe_call", "leave")
    assert info.value.ending == "crashed"
    assert call(worker, "probe_add", 1, 1) == 2
    assert worker.starts == 2


def test_a_hang_is_stopped_at_the_deadline(worker: WorkerProcess) -> None:
    with pytest.raises(WorkerStopped, match="did not finish") as info:
        call(worker, "probe_call", "hang", timeout=1)
    assert info.value.ending == "timeout"
    assert call(worker, "probe_add", 2, 2) == 4


def test_garbage_on_the_reply_channel_stops_the_worker(worker: WorkerProcess) -> None:
    with pytest.raises(WorkerStopped) as info:
        call(worker, "probe_call", "garble")
    assert info.value.ending == "garbled"
    assert call(worker, "probe_add", 3, 3) == 6


def test_a_server_the_judge_runs_sees_the_workers_requests(worker: WorkerProcess) -> None:
    with LLMServer() as server:
        status = call(worker, "probe_call", "ask", server.base_url, "hello from the worker")
        assert isinstance(status, int)
        (record,) = server.log
    assert record.path == "/v1/chat/completions"


@pytest.mark.parametrize("line", [
    b'{"call": 1, "value": 1, "extra": 2}',
    b'{"call": 2, "value": 1}',
    b'{"call": 1}',
    b'{"call": 1, "value": 1, "error": {"type": "", "message": "", "where": ""}}',
    b'{"call": 1, "error": {"type": 1, "message": "", "where": ""}}',
    b'[' * 100_000,
    b'{"call": true, "value": 1}',
    b'not json',
])
def test_malformed_replies_are_refused(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(line, 1)


def test_deep_values_are_refused_without_recursion() -> None:
    deep: object = 1
    for _ in range(50):
        deep = [deep]
    with pytest.raises(ProtocolError, match="deeper"):
        check_data(deep)
    assert decode_reply(json.dumps({"call": 1, "value": {"a": [1, 2.5, None]}}).encode(), 1)
