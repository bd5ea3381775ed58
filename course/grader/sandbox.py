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
import hashlib
import json
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from course.grader import jail, quota, runner, zygote
from course.grader.channel import RecordReader, new_nonce
from course.grader.jail import SETUP_FAILED
from course.grader.layout import Course, read_only
from course.layout import ROOT, Layout

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
    processes: int = 64  # processes and threads of the sandbox user, and of the whole run
    total_memory_mb: int = 1024  # the whole run's memory, its tmpfs included (a cgroup)
    cpus: float = 1.0  # CPU cores the whole run may keep busy (a cgroup)
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
    pid: bool = False
    problem: str | None = None  # set when no sandbox at all could start here
    packages: tuple[str, ...] = (jail.PACKAGE,)  # the `course` folders a run imports from

    def describe(self, limits: Limits) -> list[str]:
        if self.problem:
            return [f"the sandbox could not be set up on this machine: {self.problem}"]
        notes = [
            f"limits: {limits.exercise_timeout:g} s per exercise, {limits.total_timeout:g} s "
            f"per submission, {limits.memory_mb} MB memory per process, {limits.processes} "
            "processes",
            "student code ran as a throwaway unprivileged user" if self.drop_uid
            else "student code ran as the grading user (not root, so no user switch)",
        ]
        if not limits.isolate_network:
            notes.append("network: not isolated (turned off by the grader's options)")
        elif self.network:
            notes.append("network: loopback only")
        else:
            notes.append("network: NOT isolated (no network namespaces allowed here)")
        if self.mounts:
            notes.append(f"files: a private file system showing only Python, the grader's "
                         f"code and this run's files; private /tmp, /var/tmp and /dev/shm, "
                         f"{limits.work_mb} MB in all")
        else:
            notes.append("files: NO private mounts here; student code could read every file "
                         "on this machine that its user may read (other submissions too, "
                         "if their folders allow it)")
        if self.pid:
            notes.append("processes: a private process list; nothing else running is visible")
        notes.append(quota.note(limits.total_memory_mb, limits.processes, limits.cpus))
        return notes


def isolation() -> Isolation:
    """What this machine allows, probed once per machine and Python (a few short Python
    starts, a third of a second a learner would wait for at every check)."""
    return _probed()


@cache
def _probed() -> Isolation:
    found = _remembered_probe()
    problem = found.get("problem")
    return Isolation(bool(found.get("uid")), bool(found.get("net")), bool(found.get("mount")),
                     bool(found.get("userns")), bool(found.get("pid")),
                     str(problem) if problem else None,
                     tuple(found.get("packages") or (jail.PACKAGE,)))


def _probe_record() -> Path:
    """Where the probe's answer is kept: named by everything that could change it (this
    Python, user and grader code, the machine's boot and its container's first process)."""
    facts: list[object] = [sys.executable, os.geteuid(), jail.PACKAGE,
                           Path(jail.__file__).stat().st_mtime_ns]
    with contextlib.suppress(OSError):
        facts.append(Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8"))
        # Field 22 of /proc/1/stat, the start time of PID 1: a restarted container differs.
        facts.append(Path("/proc/1/stat").read_text(encoding="utf-8").rpartition(")")[2].split()[19])
    key = hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:20]
    return Layout(ROOT).build / "grader-cache" / f"isolation-{key}.json"


def _remembered_probe() -> dict[str, Any]:
    record = _probe_record()
    with contextlib.suppress(OSError, ValueError):
        found = json.loads(record.read_text(encoding="utf-8"))
        if isinstance(found, dict):
            return found
    found = jail.probe()
    if not found.get("problem"):  # a failure is probed again next time
        with contextlib.suppress(OSError):
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(found), encoding="utf-8")
    return found


def forget_isolation() -> None:
    """After a sandbox failed to start: the machine changed, so probe it afresh."""
    _probe_record().unlink(missing_ok=True)
    _probed.cache_clear()


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
    rejected: list[str] = field(default_factory=list)  # why channel records were dropped
    quota_note: str = ""  # which total limit of the run's cgroup it hit, if any

    def _rejected_note(self) -> str:
        if not self.rejected:
            return ""
        return f"; the grader dropped malformed result records ({'; '.join(self.rejected[:3])})"

    @property
    def done(self) -> dict[str, Any] | None:
        return next((r for r in self.records if r.get("t") == "done"), None)

    def how_it_ended(self) -> str:
        quota_note = f": {self.quota_note}" if self.quota_note else ""
        return self._how_it_ended() + quota_note + self._rejected_note()

    def _how_it_ended(self) -> str:
        if self.killed_for:
            return self.killed_for.replace("timeout:", "out of time in exercise ")
        if self.done is not None and self.done.get("status") == "tampered":
            return "the run was stopped: the code changed pytest or Python's builtins"
        if self.done is not None and self.done.get("exitstatus") == 2:
            return "the run was interrupted (KeyboardInterrupt or pytest.exit())"
        code = self.exit_code
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
            if self.quota_note:
                return f"the test process was killed by {name}"
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
        # Resolved: the sandbox binds this exact path into its own file system.
        self.path = Path(tempfile.mkdtemp(prefix="run-", dir=base)).resolve()
        self.uid = uid
        self.submission = self.path / "submission"
        self.tests = self.path / "tests"
        self.work = self.path / "work"
        self.ini = self.path / "pytest.ini"
        self.stage = self.path / "stage"  # where the sandbox builds its root (a mount point)
        self.quota: quota.RunCgroup | None = None  # the run's cgroup, once made
        self.submission.mkdir()
        self.work.mkdir()
        self.stage.mkdir()

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

    def cgroup(self, limits: Limits) -> quota.RunCgroup | None:
        """The run's cgroup (its total quota), made on first use where the machine allows."""
        place = quota.find().place
        if self.quota is None and place is not None:
            group = quota.RunCgroup(place, limits.total_memory_mb, limits.processes, limits.cpus)
            try:
                group.create()
            except OSError:
                # Allowed at start-up, refused now (the grader's own cgroup went away?):
                # this run goes without, under its per-process limits.
                group.remove()
                return None
            self.quota = group
        return self.quota

    def remove(self) -> None:
        if self.quota is not None:
            self.quota.remove()  # kills whatever of the run is left, wherever it hid
        for folder, dirs, _ in os.walk(self.path):
            for name in dirs:
                path = os.path.join(folder, name)
                # Never through a link: without private mounts, `work/x -> /etc` is the
                # student's, and chmod as root would follow it.
                if not os.path.islink(path):
                    with contextlib.suppress(OSError):
                        os.chmod(path, 0o700)
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
    env.update({k: v for k, v in os.environ.items()
                if k.startswith("COURSE_LLM") or k == zygote.OFF_ENV})
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
        rlimits["nproc"] = limits.processes  # counted per uid: exact for a fresh uid
    else:
        # Under the grading user's own uid the count includes all of that user's processes
        # (this grader, other runs): a loose cap, but a fork bomb stays bounded.
        rlimits["nproc"] = _processes_of(os.getuid()) + limits.processes
    config: dict[str, Any] = {"rlimits": rlimits, "cwd": str(scratch.work)}
    group = scratch.cgroup(limits)
    if group is not None:
        config["cgroup"] = group.join_files()
    if iso.userns:
        config["userns"] = True
    if iso.network and limits.isolate_network:
        config["net"] = True
    if iso.mounts:
        config.update(root=str(scratch.stage), pid=iso.pid, work=str(scratch.work),
                      work_mb=limits.work_mb, copy_in=copy_in, hide=course.hidden_paths(),
                      binds=[*jail.SYSTEM_PATHS, *jail.interpreter_paths(), *iso.packages,
                             str(scratch.path)])
    elif copy_in:
        for source in copy_in:
            shutil.copy(source, scratch.work)
            if scratch.uid is not None:
                os.chown(scratch.work / Path(source).name, scratch.uid, scratch.uid)
    if scratch.uid is not None:
        config.update(uid=scratch.uid, gid=scratch.uid)
    # Checked as the run's user, in its own file system: if it cannot reach these, the
    # sandbox says why, instead of a run that fails in a way that looks like the student's.
    config["need"] = [sys.executable, *iso.packages]
    return config


def run(course: Course, scratch: Scratch, pytest_args: list[str], limits: Limits,
        deadline: float, watcher: Watcher, copy_in: list[str] | None = None) -> RunResult:
    """Run ``pytest_args`` in the sandbox until it ends, the watcher objects, or the deadline."""
    problem = isolation().problem
    if problem:
        return RunResult(exit_code=SETUP_FAILED, setup_failed=True,
                         output=f"sandbox setup failed: {problem}")
    read_fd, write_fd = os.pipe()
    nonce_read, nonce_write = os.pipe()
    nonce = new_nonce()
    os.write(nonce_write, nonce.encode())  # far below a pipe's buffer: never blocks
    os.close(nonce_write)
    budget = max(deadline - time.monotonic(), 0.1)
    config = jail_config(course, scratch, limits, budget, copy_in or [])
    command = jail.command(config, runner.command(
        sys.executable, scratch.ini, scratch.path, "-q", "--no-header",
        f"--course-channel={write_fd}:{nonce_read}", *pytest_args))
    start = time.monotonic()
    try:
        proc = zygote.popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(write_fd, nonce_read), cwd=str(scratch.path), env=environment(scratch),
        )
    finally:
        os.close(write_fd)
        os.close(nonce_read)
    result = RunResult()
    reader = RecordReader(nonce)
    result.rejected = reader.problems
    try:
        assert proc.stdout is not None
        _listen(proc, proc.stdout.fileno(), read_fd, reader, watcher, deadline,
                limits.output_kb * 1024, result)
    finally:
        kill_tree(proc, scratch.uid)
        if scratch.quota is not None:
            info = scratch.quota.describe()
            result.quota_note = quota.explain(info, {}, quota.counters(info))
            scratch.quota.kill()
        if scratch.uid is not None and not config.get("root"):
            remove_leftovers(scratch.uid)
        os.close(read_fd)
        if proc.stdout is not None:
            proc.stdout.close()
    result.exit_code = proc.returncode
    result.setup_failed = proc.returncode == SETUP_FAILED and not result.records
    result.seconds = time.monotonic() - start
    return result


def _listen(proc: zygote.Process, out_fd: int, channel_fd: int, reader: RecordReader,
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


def kill_tree(proc: zygote.Process, uid: int | None) -> None:
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
        killer = zygote.popen([sys.executable, "-I", "-m", "course.grader.jail", "--kill-uid",
                               str(uid)], cwd="/", env=zygote.clean_env(),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            killer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            killer.kill()


SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")


def remove_leftovers(uid: int) -> None:
    """Without private mounts, delete what a throwaway uid left in the shared temp folders.

    The uid is this run's alone and its processes are dead, so everything it owns there
    is its leftovers: files another run could read, or that fill the disk or RAM.
    """
    for top in SHARED_TEMP:
        # Only the top level: below it the uid can only write into folders it made.
        with contextlib.suppress(OSError), os.scandir(top) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    if info.st_uid != uid:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)


def _processes_of(uid: int) -> int:
    """How many processes (threads count too, for RLIMIT_NPROC) ``uid`` runs now."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(os.path.join(entry.path, "task")))
    return count


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
