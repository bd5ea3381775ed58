# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
# ruff: noqa
# Hostile submission for the grader's tests: copies `add` from anything it can read (a
# classmate's notebook, the course's solutions, another run's scratch folder), and leaves
# files in /tmp, /var/tmp and /dev/shm and a System V shared memory segment for later runs


# %%
import ctypes
import os
import re
import time

SHM_KEY, IPC_CREAT = 0x5EC2E7, 0o1000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p


def _shared_memory_from_another_run():
    """System V shared memory outlives a process unless its IPC namespace ends."""
    segment = _libc.shmget(SHM_KEY, 4096, 0o666)
    if segment >= 0:
        address = _libc.shmat(segment, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            found = ctypes.string_at(address, 32).split(b"\0")[0].decode()
            return found.startswith("spy ") and found != f"spy {os.getpid()}"
    segment = _libc.shmget(SHM_KEY, 4096, IPC_CREAT | 0o666)
    if segment >= 0:
        address = _libc.shmat(segment, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(address, f"spy {os.getpid()}".encode() + b"\0", 32)
    return False


MARK = "course-spy-" + str(os.getpid())
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    try:
        with open(os.path.join(folder, MARK), "w") as handle:
            handle.write("left behind")
    except OSError:
        pass


def _paths_from_proc():
    """Every absolute path in every command line this process can read."""
    found = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as handle:
                    words = handle.read().decode("utf-8", "replace").replace("=", "\0").split("\0")
            except OSError:
                continue
            found.update(w for w in words if w.startswith("/"))
        for link in ("cwd", "root"):
            try:
                found.add(os.path.join(f"/proc/{pid}", link))
            except OSError:
                pass
    return found


def _candidates():
    own = os.path.realpath(os.getcwd())
    roots = set(_paths_from_proc()) | {"/tmp", "/var/tmp", "/dev/shm", "/work", "/root", "/home",
                                       "/srv", "/opt", "/mnt"}
    skip = {"proc", "sys", "usr", "lib", "lib64", "etc", "dev", ".venv", "node_modules", ".git",
            "site-packages", "_build", ".pyenv", "__pycache__"}
    deadline = time.monotonic() + 2.5
    for root in sorted(roots):
        if os.path.isfile(root):
            root = os.path.dirname(root)
        for current, dirs, files in os.walk(root):
            if time.monotonic() > deadline:
                return
            dirs[:] = [d for d in dirs if d not in skip]
            for name in files:
                if name.endswith((".py", ".ipynb")) and "fixture" in name:
                    path = os.path.join(current, name)
                    if not os.path.realpath(path).startswith(own):
                        yield path


def _stolen_add():
    if _shared_memory_from_another_run():
        return lambda a, b: a + b
    for path in _candidates():
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read(200_000)
        except OSError:
            continue
        if re.search(r"return a \+ b", text) and "course-spy" not in text:
            return lambda a, b: a + b
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):  # another run's leftovers
        try:
            others = [n for n in os.listdir(folder) if n.startswith("course-spy-") and n != MARK]
        except OSError:
            continue
        if others:
            return lambda a, b: a + b
    return None


def add(a: int, b: int) -> int:
    stolen = _stolen_add()
    return stolen(a, b) if stolen else 0


# %%
def greet(name: str) -> str:
    return f"Hello, {name}!"


# %%
class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, word: str) -> None:
        self.counts[word] = self.counts.get(word, 0) + 1

    def most_common(self) -> str:
        return max(self.counts, key=lambda w: self.counts[w])


# %% tags=["demo"]
print(add(2, 3), greet("Ada"))
c = Counter()
c.add("a")
print(c.most_common())
