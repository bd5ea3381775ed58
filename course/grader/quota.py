"""A total memory, process and CPU quota per sandboxed run, with one cgroup per run.

Per-process limits (address space, processes of the run's uid) leave room for one
submission to take the machine from a classmate graded at the same time: 64 processes
of 1.9 GB each, or 64 busy loops. A cgroup caps the run as a whole: its memory (tmpfs
pages it writes included), the tasks it may hold at once, and the CPU time it gets per
period (one core by default).

The grader makes the cgroup under its own (so it never needs more rights than it was
given), and the jail joins it as its very first step, before it makes namespaces, drops
privileges or runs anything of the submission: every process of the run is born inside,
and nothing can slip out between a fork and a move. At the end every process in it is
killed and the cgroup removed. A cgroup left by a grader that was itself killed is
removed by the next grader that starts under the same cgroup (its name holds its
owner's PID namespace, pid and start time).

cgroup v2 is used when the grader's cgroup hands ``memory`` and ``pids`` down to its
children; else cgroup v1 when its ``memory`` and ``pids`` hierarchies are writable.
Otherwise nothing is enforced beyond the per-process limits, and the report says so.
``COURSE_GRADER_CGROUPS=off`` turns quotas off; a folder there is used as the cgroup
root instead of the machine's (for tests).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ENV = "COURSE_GRADER_CGROUPS"
PREFIX = "course-run-"
NEEDED = ("memory", "pids")  # without these, no quota at all
OPTIONAL = ("cpu",)
PERIOD_US = 100_000
_counter = itertools.count(1)


@dataclass(frozen=True)
class Place:
    """Where this grader makes its runs' cgroups: one folder per controller.

    With v2 every controller's folder is the same one.
    """

    version: int
    folders: dict[str, str]  # controller -> the grader's own cgroup folder for it

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(self.folders)


@dataclass(frozen=True)
class Found:
    place: Place | None
    problem: str = ""  # why there is no quota here, in words for the person grading


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount point, root inside the hierarchy, options) of every cgroup mount."""
    found = []
    with contextlib.suppress(OSError):
        for line in _read("/proc/self/mountinfo").splitlines():
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            root, point = fields[3], fields[4].replace("\\040", " ")
            found.append((tail[0], point, root, set(tail[2].split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under ``""`` its v2 cgroup."""
    own: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in _read("/proc/self/cgroup").splitlines():
            _, names, path = line.split(":", 2)
            for name in names.split(",") if names else [""]:
                own[name] = path
    return own


def _locate(point: str, root: str, path: str) -> str | None:
    """The folder of cgroup ``path`` in a hierarchy mounted at ``point`` (from ``root``)."""
    relative = path
    if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
        relative = path[len(root):]
    for candidate in (os.path.join(point, relative.lstrip("/")), point):
        if os.path.isfile(os.path.join(candidate, "cgroup.procs")):
            return os.path.normpath(candidate)
    return None


def _v2(folder: str) -> Found:
    try:
        offered = set(_read(os.path.join(folder, "cgroup.controllers")).split())
    except OSError as exc:
        return Found(None, f"cgroup v2 at {folder} cannot be read ({exc.strerror})")
    missing = [c for c in NEEDED if c not in offered]
    if missing:
        return Found(None, f"cgroup v2 does not offer {' and '.join(missing)} to the grader")
    wanted = [c for c in (*NEEDED, *OPTIONAL) if c in offered]
    control = os.path.join(folder, "cgroup.subtree_control")
    for name in wanted:
        with contextlib.suppress(OSError):
            if name not in _read(control).split():
                _write(control, f"+{name}")
    try:
        enabled = set(_read(control).split())
    except OSError:
        enabled = set()
    missing = [c for c in NEEDED if c not in enabled]
    if missing:
        return Found(None, f"cgroup v2 controllers {', '.join(missing)} are not delegated to "
                           f"the grader's cgroup {folder} (it holds processes, or is not ours)")
    return _usable(Place(2, {c: folder for c in wanted if c in enabled}))


def _v1(folders: dict[str, str]) -> Found:
    missing = [c for c in NEEDED if c not in folders]
    if missing:
        return Found(None, f"no cgroup {' or '.join(missing)} hierarchy is mounted")
    return _usable(Place(1, {c: f for c, f in folders.items() if c in (*NEEDED, *OPTIONAL)}))


def _usable(place: Place) -> Found:
    """Make and remove one cgroup, to know now rather than in the middle of a class.

    A CPU cap is worth having but not required: without it, memory and processes still
    are capped."""
    found = _try(place)
    fewer = Place(place.version, {c: f for c, f in place.folders.items() if c in NEEDED})
    if found.place is None and fewer != place and _try(fewer).place is not None:
        return Found(fewer)
    return found


def _try(place: Place) -> Found:
    probe = RunCgroup(place, memory_mb=64, processes=8, cpus=1.0)
    try:
        probe.create()
    except OSError as exc:
        probe.remove()
        where = os.path.dirname(exc.filename) if exc.filename else "the grader's cgroup"
        return Found(None, f"cannot make a cgroup in {where} ({exc.strerror})")
    probe.remove()
    return Found(place)


def _detect(setting: str) -> Found:
    if setting.lower() in ("off", "0", "no", "false"):
        return Found(None, f"turned off ({ENV}={setting})")
    if setting:
        if os.path.isfile(os.path.join(setting, "cgroup.controllers")):
            return _v2(setting)
        folders = {c: os.path.join(setting, c) for c in (*NEEDED, *OPTIONAL)
                   if os.path.isdir(os.path.join(setting, c))}
        if not all(c in folders for c in NEEDED):
            return Found(None, f"{ENV}={setting} holds neither a cgroup v2 root nor "
                               "cgroup v1 memory and pids folders")
        return _v1(folders)
    own = _own_cgroups()
    mounts = _mounts()
    problems = []
    for fstype, point, root, _ in mounts:
        if fstype == "cgroup2" and "" in own:
            folder = _locate(point, root, own[""])
            if folder is not None:
                found = _v2(folder)
                if found.place is not None:
                    return found
                problems.append(found.problem)
    v1: dict[str, str] = {}
    for fstype, point, root, options in mounts:
        for name in (*NEEDED, *OPTIONAL):
            if fstype == "cgroup" and name in options and name in own and name not in v1:
                folder = _locate(point, root, own[name])
                if folder is not None:
                    v1[name] = folder
    if v1:
        found = _v1(v1)
        if found.place is not None:
            return found
        problems.append(found.problem)
    return Found(None, "; ".join(problems) or "no cgroup file system is mounted")


@lru_cache(maxsize=8)
def _found(setting: str) -> Found:
    found = _detect(setting)
    if found.place is not None:
        sweep(found.place)
    return found


def find() -> Found:
    """Where runs' cgroups go on this machine (looked up once per setting of ``ENV``)."""
    return _found(os.environ.get(ENV, "").strip())


def note(memory_mb: int, processes: int, cpus: float) -> str:
    """One line for the report: what the quota is, or that there is none here."""
    found = find()
    if found.place is None:
        return ("total quota: NOT enforced on this machine (no usable cgroups: "
                f"{found.problem}); each process is still limited on its own")
    cores = f"{cpus:g} CPU core{'' if cpus == 1 else 's'}"
    cpu = f", {cores}" if "cpu" in found.place.folders else ""
    return (f"total quota per run: {memory_mb} MB memory (files in its /tmp included), "
            f"{processes} processes{cpu} (cgroup v{found.place.version})")


def _start_time(pid: int) -> str:
    with contextlib.suppress(OSError, IndexError):
        return _read(f"/proc/{pid}/stat").rpartition(")")[2].split()[19]
    return ""


def _pid_namespace() -> str:
    with contextlib.suppress(OSError):
        return str(os.stat("/proc/self/ns/pid").st_ino)
    return "0"


def owner_prefix(pid: int | None = None) -> str:
    """How the names of a grader's runs' cgroups begin: its PID namespace, pid and start
    time, so a grader that has gone is told apart from one that runs (or whose pid was
    reused) without guessing."""
    pid = os.getpid() if pid is None else pid
    return f"{PREFIX}{_pid_namespace()}-{pid}-{_start_time(pid) or 0}-"


def _owner_gone(name: str) -> bool:
    """Whether the grader that made cgroup ``name`` (course-run-NS-PID-START-N) is gone.

    A name from another PID namespace (another container sharing the hierarchy) is never
    judged gone: its grader's pid means nothing here.
    """
    parts = name[len(PREFIX):].split("-")
    if len(parts) != 4 or not parts[1].isdigit() or parts[0] != _pid_namespace():
        return False
    return not name.startswith(owner_prefix(int(parts[1])))


def sweep(place: Place) -> list[str]:
    """Remove the cgroups of runs whose grader has gone (killed before it cleaned up)."""
    removed = []
    for folder in dict.fromkeys(place.folders.values()):
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            names = [e.name for e in entries if e.is_dir() and e.name.startswith(PREFIX)]
        for name in names:
            if _owner_gone(name):
                leftover = RunCgroup(place, 0, 0, 0.0, name=name)
                leftover.remove()
                removed.append(name)
    return removed


@dataclass
class RunCgroup:
    """The cgroup of one sandboxed run: made before it starts, killed and removed after."""

    place: Place
    memory_mb: int
    processes: int
    cpus: float
    name: str = ""
    made: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{owner_prefix()}{next(_counter)}"

    def folders(self) -> dict[str, str]:
        return {c: os.path.join(base, self.name) for c, base in self.place.folders.items()}

    def create(self) -> None:
        """Make the cgroup and set its limits; raises OSError if that is not allowed."""
        for folder in dict.fromkeys(self.folders().values()):
            os.mkdir(folder, 0o755)
            self.made.append(folder)
        where = self.folders()
        memory = str(self.memory_mb * 1024 * 1024)
        if self.place.version == 2:
            _write(os.path.join(where["memory"], "memory.max"), memory)
            # Best effort: where swap exists, the quota should not spill into it.
            with contextlib.suppress(OSError):
                _write(os.path.join(where["memory"], "memory.swap.max"), "0")
        else:
            _write(os.path.join(where["memory"], "memory.limit_in_bytes"), memory)
        _write(os.path.join(where["pids"], "pids.max"), str(self.processes))
        if "cpu" in where:
            quota = max(int(self.cpus * PERIOD_US), 1000)
            with contextlib.suppress(OSError):  # a CPU cap is worth having, not required
                if self.place.version == 2:
                    _write(os.path.join(where["cpu"], "cpu.max"), f"{quota} {PERIOD_US}")
                else:
                    _write(os.path.join(where["cpu"], "cpu.cfs_period_us"), str(PERIOD_US))
                    _write(os.path.join(where["cpu"], "cpu.cfs_quota_us"), str(quota))

    def join_files(self) -> list[str]:
        """The ``cgroup.procs`` files the jail writes its own pid to."""
        return [os.path.join(f, "cgroup.procs") for f in dict.fromkeys(self.folders().values())]

    def describe(self) -> dict[str, Any]:
        """What a judge needs to read this cgroup's counters (JSON-ready)."""
        return {"version": self.place.version, "folders": self.folders(),
                "memory_mb": self.memory_mb, "processes": self.processes}

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in dict.fromkeys(self.folders().values()):
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in _read(os.path.join(folder, "cgroup.procs")).split()}
        return found

    def kill(self) -> None:
        """Kill every process in the cgroup; none can be born meanwhile (pids.max is 0)."""
        folders = self.folders()
        with contextlib.suppress(OSError):
            _write(os.path.join(folders["pids"], "pids.max"), "0")
        if self.place.version == 2:
            with contextlib.suppress(OSError):
                _write(os.path.join(folders["memory"], "cgroup.kill"), "1")
        for _ in range(200):
            alive = self.pids()
            if not alive:
                return
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup. Never raises: a cgroup that will not
        go (a process stuck in the kernel) is removed by the next grader's sweep."""
        self.kill()
        for folder in dict.fromkeys(self.folders().values()):
            for _ in range(50):
                try:
                    os.rmdir(folder)
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.02)  # the last processes are still exiting


def counters(info: dict[str, Any] | None) -> dict[str, int]:
    """How often the run's cgroup killed for memory (``oom``) or refused a fork (``pids``)."""
    if not info:
        return {}
    folders = info.get("folders") or {}
    found = {"oom": 0, "pids": 0}
    memory, pids = folders.get("memory"), folders.get("pids")
    files = [(memory, "memory.events" if info.get("version") == 2 else "memory.oom_control",
              "oom_kill", "oom"), (pids, "pids.events", "max", "pids")]
    for folder, name, key, label in files:
        if not isinstance(folder, str):
            continue
        with contextlib.suppress(OSError, ValueError):
            for line in _read(os.path.join(folder, name)).splitlines():
                words = line.split()
                if len(words) == 2 and words[0] == key:
                    found[label] = int(words[1])
    return found


def explain(info: dict[str, Any] | None, before: dict[str, int],
            after: dict[str, int]) -> str:
    """Which of the run's total limits was hit between two readings, in words ("" if none)."""
    if not info:
        return ""
    said = []
    if after.get("oom", 0) > before.get("oom", 0):
        said.append(f"the run's processes together needed more than its {info['memory_mb']} "
                    "MB memory quota, files in its /tmp included, so one was killed")
    if after.get("pids", 0) > before.get("pids", 0):
        said.append(f"the run reached its quota of {info['processes']} processes and threads "
                    "at once, so starting another failed")
    return "; ".join(said)
