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
# Hostile submission for the grader's tests: looks for the judge (its pytest, its
# frames, its report file) from inside the worker, and leaves a thread and signal
# handlers behind


# %%
import gc
import os
import signal
import sys
import threading


def _hunt() -> list:
    found = []
    for obj in gc.get_objects():
        if hasattr(obj, "runtest") and hasattr(obj, "nodeid"):
            obj.runtest = lambda: None
            found.append("item")
    frame = sys._getframe()
    while frame is not None:
        if "report" in frame.f_locals or "expected" in frame.f_locals:
            found.append("frame")
        frame = frame.f_back
    for root, _, files in os.walk("/tmp"):
        for name in files:
            if name == "report.json":
                try:
                    with open(os.path.join(root, name), "w") as handle:
                        handle.write('[{"nodeid": "x", "outcome": "passed"}]')
                    found.append("report")
                except OSError:
                    pass
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=lambda: signal.pause(), daemon=False).start()
    return found


def add(a: int, b: int) -> int:
    _hunt()
    return 0


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
