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
# Hostile submission for the grader's tests: many processes, each holding memory that
# the per-process limit allows, together far more than a run's total quota


# %%
import os
import signal
import time


def add(a: int, b: int) -> int:
    children = []
    for _ in range(16):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            hoard = b"x" * 100_000_000  # written, so every page is really used
            while hoard:
                time.sleep(60)
        children.append(pid)
    # Until one of them is killed for memory (only a total quota does that): then the
    # rest go too, and the probe fails with an error instead of an answer.
    os.wait()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    raise RuntimeError("one of my processes was killed")


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
