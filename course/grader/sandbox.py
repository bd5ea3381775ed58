"""Run one command on student code in a locked-down child process and listen to it.

The child starts in a session of its own (so the whole process group can be killed),
goes through :mod:`course.grader.jail` (network, mounts, limits, throwaway uid) and
``exec``s pytest. The grader reads two pipes at once: the signed results channel, and the
child's merged stdout/stderr, of which only the first few KB are kept, so hundreds of MB
of printing neither hangs the grader nor fills its memory. A watcher decides, as records
arrive, whether an exercise has used up its time; then, or at the deadline, the child, its
group and every process of its uid are killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from course.grader.channel import RecordReader, new_nonce
from course.grader.jail import SETUP_FAILED, closed_ancestors, interpreter_paths
from course.grader.layout import Course, read_only

SANDBOX_ENV = "COURSE_GRADER_SANDBOX"  # set inside every run; check() is a no-op there
UID_BASE, UID_SPAN = 1_900_000_000, 100_000_000
EXIT_GRACE = 0.5  # after pytest exits, how long to wait for pipes held open by its children


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Times are wall-clock seconds; sizes are MB unless named otherwise."""

    exercise_timeout: float = 10.0  # all tests of one exercise
    notebook_timeout: float = 60.0  # executing the whole notebook (nbval)
    total_timeout: float = 300.0  # everything for one submission
    startup_timeout: float = 30.0  # pytest start and collection, before any student code
    memory_mb: int = 2048  # address space per process
    processes: int = 64  # processes and threads of the sandbox user
    file_mb: int = 64  # largest file a run may write
    work_mb: int = 128  # its whole working folder, where a tmpfs is possible
    open_files: int = 256
    output_kb: int = 64  # stdout/stderr kept for diagnosis
    isolate_network: bool = True


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the sandbox do, found once by a probe."""

    drop_uid: bool
    network: bool
    mounts: bool
    userns: bool

    def describe(self, limits: Limits) -> list[str]:
        notes = [
            f"limits: {limits.exercise_timeout:g} s per exercise, {limits.total_timeout:g} s "
            f"per submission, {limits.memory_mb} MB memory, {limits.processes} processes",
            "student code ran as a throwaway unprivileged user" if self.drop_uid
            else "student code ran as the grading user (not root, so no user switch)",
        ]
        if not limits.isolate_network:
            notes.append("network: not isolated (turned off by the grader's options)")
        elif self.network:
            notes.append("network: loopback only")
        else:
            notes.append("network: NOT isolated (no network namespaces allowed here)")
        notes.append("answers hidden by a private mount" if self.mounts
                     else "no private mounts here: the course folder was visible to student code")
        return notes


@cache
def isolation() -> Isolation:
    done = subprocess.run(
        [sys.executable, "-I", "-m", "course.grader.jail", "--probe"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    try:
        found: dict[str, bool] = json.loads(done.stdout)
    except ValueError:
        found = {}
    root = os.geteuid() == 0
    if root:
        return Isolation(found.get("uid", False), found.get("net", False),
                         found.get("mount", False), False)
    userns = found.get("userns_net", False) and found.get("userns_mount", False)
    return Isolation(False, userns, userns, userns)


class Watcher(Protocol):
    def feed(self, record: dict[str, Any], now: float) -> None: ...
    def expired(self, now: float) -> str | None: ...


@dataclass
class RunResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    killed_for: str | None = None  # why the grader stopped it, if it did
    output: str = ""
    output_bytes: int = 0
    setup_failed: bool = False
    seconds: float = 0.0

    @property
    def done(self) -> dict[str, Any] | None:
        return next((r for r in self.records if r.get("t") == "done"), None)

    def how_it_ended(self) -> str:
        if self.killed_for:
            return self.killed_for.replace("timeout:", "out of time in exercise ")
        if self.done is not None and self.done.get("status") == "tampered":
            return "the run was stopped: the code changed pytest or Python's builtins"
        if self.done is not None and self.done.get("exitstatus") == 2:
            return "the run was interrupted (KeyboardInterrupt or pytest.exit())"
        code = self.exit_code
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
            hint = {"SIGKILL": " (often the memory or process limit)",
                    "SIGXCPU": " (the CPU time limit)"}.get(str(name), "")
            return f"the test process was killed by {name}{hint}"
        return f"the test process exited with status {code} before it finished"


class Scratch:
    """A fresh folder per run: copies of the course's tests, the notebook, a work folder.

    As root the folder belongs to root and the run's group (mode 0750), so other students'
    runs cannot look in; tests and notebook are read-only to the run; only ``work/``
    belongs to its uid (and, with mounts, is a size-capped tmpfs).
    """

    def __init__(self, base: Path, uid: int | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        self.uid = uid
        self.submission = self.path / "submission"
        self.tests = self.path / "tests"
        self.work = self.path / "work"
        self.ini = self.path / "pytest.ini"
        self.submission.mkdir()
        self.work.mkdir()

    def seal(self) -> None:
        read_only(self.submission)
        if self.tests.exists():
            read_only(self.tests)
        os.chmod(self.ini, 0o444)
        if self.uid is not None:
            os.chown(self.work, self.uid, self.uid)
            os.chmod(self.work, 0o700)
            os.chown(self.path, 0, self.uid)
            os.chmod(self.path, 0o750)

    def remove(self) -> None:
        for folder, dirs, _ in os.walk(self.path):
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(folder, name), 0o700)
        shutil.rmtree(self.path, ignore_errors=True)


def new_uid() -> int | None:
    return UID_BASE + secrets.randbelow(UID_SPAN) if isolation().drop_uid else None


def environment(scratch: Scratch) -> dict[str, str]:
    """A small, fixed environment: nothing of the grader's own leaks in."""
    bin_dir = str(Path(sys.executable).parent)
    work = str(scratch.work)
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": work, "TMPDIR": work, "USER": "student", "LOGNAME": "student",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2",
        "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        SANDBOX_ENV: "1",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("COURSE_LLM")})
    return env


def jail_config(course: Course, scratch: Scratch, limits: Limits, cpu_seconds: float,
                copy_in: list[str]) -> dict[str, Any]:
    iso = isolation()
    rlimits = {
        "cpu": int(cpu_seconds) + 1,
        "as": limits.memory_mb * 1024 * 1024,
        "fsize": limits.file_mb * 1024 * 1024,
        "nofile": limits.open_files,
        "core": 0,
    }
    if scratch.uid is not None:
        rlimits["nproc"] = limits.processes  # counted per uid: only meaningful for a fresh uid
    config: dict[str, Any] = {"rlimits": rlimits, "cwd": str(scratch.work)}
    if iso.userns:
        config["userns"] = True
    if iso.network and limits.isolate_network:
        config["net"] = True
    if iso.mounts:
        config.update(hide=course.hidden_paths(), work=str(scratch.work), work_mb=limits.work_mb,
                      copy_in=copy_in, stage=str(scratch.path / "stage"),
                      expose=closed_ancestors(interpreter_paths()))
    elif copy_in:
        for source in copy_in:
            shutil.copy(source, scratch.work)
            if scratch.uid is not None:
                os.chown(scratch.work / Path(source).name, scratch.uid, scratch.uid)
    if scratch.uid is not None:
        config.update(uid=scratch.uid, gid=scratch.uid)
    return config


def run(course: Course, scratch: Scratch, pytest_args: list[str], limits: Limits,
        deadline: float, watcher: Watcher, copy_in: list[str] | None = None) -> RunResult:
    """Run ``pytest_args`` in the sandbox until it ends, the watcher objects, or the deadline."""
    read_fd, write_fd = os.pipe()
    nonce_read, nonce_write = os.pipe()
    nonce = new_nonce()
    os.write(nonce_write, nonce.encode())  # far below a pipe's buffer: never blocks
    os.close(nonce_write)
    budget = max(deadline - time.monotonic(), 0.1)
    config = jail_config(course, scratch, limits, budget, copy_in or [])
    command = [
        sys.executable, "-I", "-m", "course.grader.jail", json.dumps(config), "--",
        sys.executable, "-I", "-m", "course.grader.runner", "-c", str(scratch.ini),
        "--rootdir", str(scratch.path),
        "-p", "no:cacheprovider", "-p", "course.pytest_plugin", "-q", "--no-header",
        f"--course-channel={write_fd}:{nonce_read}", *pytest_args,
    ]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(write_fd, nonce_read), start_new_session=True, cwd=scratch.path,
            env=environment(scratch),
        )
    finally:
        os.close(write_fd)
        os.close(nonce_read)
    result = RunResult()
    try:
        assert proc.stdout is not None
        _listen(proc, proc.stdout.fileno(), read_fd, RecordReader(nonce), watcher, deadline,
                limits.output_kb * 1024, result)
    finally:
        kill_tree(proc, scratch.uid)
        os.close(read_fd)
        if proc.stdout is not None:
            proc.stdout.close()
    result.exit_code = proc.returncode
    result.setup_failed = proc.returncode == SETUP_FAILED and not result.records
    result.seconds = time.monotonic() - start
    return result


def _listen(proc: subprocess.Popen[bytes], out_fd: int, channel_fd: int, reader: RecordReader,
            watcher: Watcher, deadline: float, keep: int, result: RunResult) -> None:
    selector = selectors.DefaultSelector()
    selector.register(out_fd, selectors.EVENT_READ, "out")
    selector.register(channel_fd, selectors.EVENT_READ, "channel")
    head = bytearray()
    exited_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            reason = watcher.expired(now)
            if reason is None and now >= deadline:
                reason = "deadline"
            if reason is not None:
                result.killed_for = reason
                return
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > EXIT_GRACE:
                    # Its children hold the pipes open (they are killed next); take what
                    # is already written, however late this thread got to it.
                    until = time.monotonic() + EXIT_GRACE
                    while time.monotonic() < until and _read_ready(
                            selector, 0.0, head, keep, reader, watcher, result):
                        pass
                    return
            _read_ready(selector, min(0.1, max(deadline - now, 0.0)), head, keep, reader,
                        watcher, result)
    finally:
        selector.close()
        result.output = head.decode("utf-8", "replace")


def _read_ready(selector: selectors.BaseSelector, timeout: float, head: bytearray, keep: int,
                reader: RecordReader, watcher: Watcher, result: RunResult) -> bool:
    """Read whatever the pipes hold now; return whether anything was read."""
    got = False
    for key, _ in selector.select(timeout=timeout):
        data = os.read(key.fd, 1 << 16)
        got = True
        if not data:
            selector.unregister(key.fd)
        elif key.data == "out":
            result.output_bytes += len(data)
            if len(head) < keep:
                head += data[: keep - len(head)]
        else:
            for record in reader.feed(data):
                result.records.append(record)
                watcher.feed(record, time.monotonic())
    return got and bool(selector.get_map())


def kill_tree(proc: subprocess.Popen[bytes], uid: int | None) -> None:
    """Kill ``proc``, its process group, its descendants and every process of ``uid``."""
    if uid is None:
        _kill_descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if uid is not None:
        kill_uid(uid)


def kill_uid(uid: int) -> None:
    """Kill every process left running as the throwaway ``uid``."""
    if _uid_has_processes(uid):
        # Children that called setsid() left the group; as their uid, kill(-1) finds them.
        subprocess.run([sys.executable, "-I", "-m", "course.grader.jail", "--kill-uid", str(uid)],
                       timeout=30, check=False, capture_output=True)


def _uid_has_processes(uid: int) -> bool:
    """Whether any process runs as ``uid`` (cheaper than starting the killer for nothing)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    return True
    return not os.path.isdir("/proc")


def _kill_descendants(pid: int) -> None:
    """Without a uid of its own, find the children that may have left the process group."""
    import psutil  # type: ignore[import-untyped]

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
