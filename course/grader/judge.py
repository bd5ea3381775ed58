"""The judge's side of a worker: start it, send it probes, read its replies as untrusted data.

The judge is the pytest process that runs the course's tests. It never imports a
submission: each probe runs in a worker process (:mod:`course.grader.worker`), sandboxed
when the grader started the judge, a plain child process when a maintainer runs the
tests. A worker that dies, hangs past the exercise's time or sends garbage is stopped;
the test that was waiting fails with a message that says which, and the next probe gets
a fresh worker. How to start a worker (:class:`Launch`) is decided by whoever started the
judge, so the judge itself holds no sandbox policy.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from course.grader import quota, zygote
from course.grader.protocol import (
    MAX_LINE,
    READY,
    Data,
    Ending,
    ProtocolError,
    Request,
    decode_reply,
    encode,
)

REPLY_FD = "{reply_fd}"  # in a Launch command: replaced by the reply pipe's descriptor
STDERR_KEPT = 4096


class ProbeError(Exception):
    """The submission's code raised while a probe ran it; the test that asked fails with it."""

    def __init__(self, type_name: str, message: str, where: str) -> None:
        self.type_name, self.message, self.where = type_name, message, where
        text = f"{type_name}: {message}" if message else type_name
        super().__init__(f"{text} (raised at {where})" if where else text)


class WorkerStopped(Exception):
    """The worker stopped answering: it crashed, ran out of time or sent garbage."""

    def __init__(self, ending: Ending, message: str) -> None:
        self.ending = ending
        super().__init__(message)


@dataclass(frozen=True)
class Launch:
    """How to start one worker: a command (with ``{reply_fd}`` in it), folder, environment."""

    command: list[str]
    cwd: str
    env: dict[str, str]
    uid: int | None = None  # the sandbox's throwaway uid, whose processes are killed at the end
    startup_timeout: float = 30.0
    notebook: str = ""  # the submission as the judge may read it (never import it)
    quota: dict[str, Any] | None = None  # the run's cgroup, whose counters say what it hit

    @classmethod
    def local(cls, notebook: Path, tests_root: Path, preload: list[str]) -> Launch:
        """A worker without a sandbox, for running the tests on the course's own notebooks."""
        return cls(worker_command(sys.executable, notebook, tests_root, preload),
                   str(tests_root), dict(os.environ), notebook=str(notebook))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Launch:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(list(raw["command"]), str(raw["cwd"]), dict(raw["env"]), raw.get("uid"),
                   float(raw.get("startup_timeout", 30.0)), str(raw.get("notebook", "")),
                   raw.get("quota"))


def worker_command(python: str, notebook: Path, tests_root: Path,
                   preload: list[str]) -> list[str]:
    """``preload``: the test files (relative to ``tests_root``) whose probes it will run."""
    return [python, "-I", "-m", "course.grader.worker", "--notebook", str(notebook),
            "--tests", str(tests_root), "--reply-fd", REPLY_FD,
            *(f"--preload={module}" for module in preload)]


@dataclass
class WorkerProcess:
    launch: Launch
    proc: zygote.Process | None = None
    reply_fd: int = -1
    pending: bytearray = field(default_factory=bytearray)
    calls: int = 0
    stderr_tail: bytearray = field(default_factory=bytearray)
    starts: int = 0
    quota_seen: dict[str, int] = field(default_factory=dict)

    def quota_note(self) -> str:
        """Which total limit the run hit since the last look ("" if none): read from its
        cgroup by the judge, so the student's code cannot make it up or hide it."""
        now = quota.counters(self.launch.quota)
        said = quota.explain(self.launch.quota, self.quota_seen, now)
        self.quota_seen = now
        return f" ({said})" if said else ""

    def call(self, module: str, probe: str, args: list[Data], timeout: float) -> Data:
        """Run one probe; return its value. Raises ProbeError or WorkerStopped."""
        self.ensure_started()
        assert self.proc is not None and self.proc.stdin is not None
        self.calls += 1
        if self.launch.quota:  # what the run hit before this call is not this call's doing
            self.quota_seen = quota.counters(self.launch.quota)
        request: Request = {"call": self.calls, "module": module, "probe": probe, "args": args}
        try:
            self.proc.stdin.write(encode(request))
            self.proc.stdin.flush()
        except OSError:
            pass  # it has died; reading its reply says how
        reply = self._read_reply(self.calls, time.monotonic() + timeout, timeout)
        if "error" in reply:
            info = reply["error"]
            raise ProbeError(info["type"], info["message"] + self.quota_note(), info["where"])
        return reply.get("value")

    def ensure_started(self) -> None:
        if self.proc is None:
            self._start()

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        command = [str(write_fd) if part == REPLY_FD else part for part in self.launch.command]
        try:
            self.proc = zygote.popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), cwd=self.launch.cwd, env=self.launch.env,
                # A sandboxed judge forked a server for its workers; a maintainer's pytest
                # starts its one worker per chapter as before.
                start_server=False,
            )
        except OSError as exc:
            os.close(read_fd)
            raise WorkerStopped(Ending.CRASHED, f"the grader could not start a worker: {exc}") \
                from None
        finally:
            os.close(write_fd)
        self.reply_fd, self.pending, self.calls = read_fd, bytearray(), 0
        self.stderr_tail = bytearray()
        self.starts += 1
        threading.Thread(target=self._keep_stderr, args=(self.proc,), daemon=True).start()
        timeout = self.launch.startup_timeout
        try:
            ready = self._read_reply(0, time.monotonic() + timeout, timeout)
        except WorkerStopped as exc:
            raise WorkerStopped(exc.ending, f"the grader's worker did not start: {exc}") from None
        if ready.get("value") != READY:
            self.stop()
            raise WorkerStopped(Ending.GARBLED, "the grader's worker did not start properly")

    def _keep_stderr(self, proc: zygote.Process) -> None:
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: os.read(fd, 4096), b""):
                self.stderr_tail = (self.stderr_tail + chunk)[-STDERR_KEPT:]

    def _read_reply(self, call: int, deadline: float, timeout: float) -> dict[str, Any]:
        while b"\n" not in self.pending:
            if len(self.pending) > MAX_LINE:
                self.stop()
                raise WorkerStopped(Ending.GARBLED, "the worker sent a reply that is too long")
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise WorkerStopped(Ending.TIMEOUT, f"did not finish within {timeout:.3g} s: look "
                                    "for an infinite loop, a blocking call or a long sleep"
                                    + self.quota_note())
            with selectors.DefaultSelector() as selector:
                selector.register(self.reply_fd, selectors.EVENT_READ)
                if not selector.select(min(left, 1.0)):
                    continue
            chunk = os.read(self.reply_fd, 1 << 16)
            if not chunk:
                how = self._ended()
                self.stop()
                raise WorkerStopped(Ending.CRASHED, how)
            self.pending += chunk
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending = bytearray(rest)
        try:
            return dict(decode_reply(line, call))
        except ProtocolError as exc:
            self.stop()
            raise WorkerStopped(Ending.GARBLED, f"the worker sent {exc}") from None

    def _ended(self) -> str:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the worker closed its reply channel (did the code close file descriptors?)"
        said = self.quota_note()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
            hint = " (often the memory or process limit)" if name == "SIGKILL" else ""
            hint = said or hint
            return f"the code's process was killed by {name}{hint}"
        detail = bytes(self.stderr_tail).decode("utf-8", "replace").strip().splitlines()[-3:]
        tail = ("; it printed: " + " | ".join(detail)) if detail and code == 97 else ""
        return (f"the code's process ended with exit status {code}: did it call sys.exit() or "
                f"os._exit(), or use too much memory?{tail}{said}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if self.reply_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.reply_fd)
            self.reply_fd = -1
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if self.launch.uid is not None:
            from course.grader.sandbox import kill_uid

            kill_uid(self.launch.uid)
        for stream in (proc.stdin, proc.stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()


def relative_module(path: str, root: Path) -> str:
    """A test file's path as the worker finds it: relative to the folder that holds tests/."""
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


@dataclass
class RemoteNotebook:
    """What a judged test gets as ``notebook``: a way to run probes, and nothing else."""

    worker: WorkerProcess
    root: Path  # the judge's folder that holds tests/, mirrored in the worker's
    budget: Callable[[], float]  # seconds left for this test's exercise
    spend: Callable[[float], None]  # charge probe time to that exercise

    def run_probe(self, function: Any, args: list[Data]) -> Data:
        module = relative_module(function.__code__.co_filename, self.root)
        left = float(self.budget())
        if left <= 0:
            raise WorkerStopped(Ending.TIMEOUT, "this exercise has used up its time")
        self.worker.ensure_started()  # start-up has its own limit: not the exercise's time
        started = time.monotonic()
        try:
            return self.worker.call(module, function.__name__, args, left)
        finally:
            self.spend(time.monotonic() - started)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"a judged test reaches the notebook only through probes (it asked for {name!r}): "
            "move that code into a @probe function"
        )
