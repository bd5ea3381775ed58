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
# Hostile submission for the grader's tests: the worker and the kernel are forked, not
# started afresh, so it reads the memory it inherited (every readable anonymous mapping,
# the heap and the stack) for the canary the test put in the grader's environment and
# for a classmate's scratch folder (a grading folder other than its own), and tries to
# attach to its parent (the fork server it came from). Found, `add` answers right and the
# notebook runs; not found, `add` answers 0 and the last cell fails.


# %%
import ctypes
import os
import re

# Never the canary itself: this source is in memory too.
CANARY = re.compile(rb"zygote-canar[y]-[0-9a-f]{16}")
GRADING = re.compile(rb"/course-grade-[A-Za-z0-9_]{8}/")  # one per student
_found = None


def _scan() -> bool:
    own = re.search(r"/course-grade-[A-Za-z0-9_]{8}/", os.getcwd() + "/")
    own_folder = own.group(0).encode() if own else b""
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    for line in lines:
        parts = line.split()
        if not parts[1].startswith("r") or (len(parts) > 5 and parts[5] not in ("[heap]", "[stack]")):
            continue
        low, high = (int(x, 16) for x in parts[0].split("-"))
        try:
            data = ctypes.string_at(low, high - low)
        except Exception:
            continue
        if CANARY.search(data) or set(GRADING.findall(data)) - {own_folder}:
            return True
    return False


def _parent() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, os.getppid(), None, None) == 0:  # PTRACE_ATTACH
        return True
    try:
        with open(f"/proc/{os.getppid()}/mem", "rb"):
            return True
    except OSError:
        return False


def found() -> bool:
    global _found
    if _found is None:
        _found = _scan() or _parent()
    return _found


def add(a: int, b: int) -> int:
    return a + b if found() else 0


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


# %%
if not found():
    raise RuntimeError("nothing of the grader's was inherited")
