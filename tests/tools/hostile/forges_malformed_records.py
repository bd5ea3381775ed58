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
# Hostile submission for the grader's tests: finds the signed writer in pytest's memory
# (the nonce is in its closure) and sends correctly signed records of the wrong shape


# %%
import sys


def add(a: int, b: int) -> int:
    plugin = sys.modules.get("course.pytest_plugin")
    emit = getattr(getattr(plugin, "_channel", None), "emit", None)
    if emit is not None:
        emit({"t": "result", "id": ["a", "list"], "outcome": "passed"})
        emit({"t": "result", "id": {"a": "dict"}, "outcome": "passed"})
        emit({"t": "collected", "ids": [1, 2, 3]})
        emit({"t": "done", "status": 5, "exitstatus": "zero"})
        emit({"t": "start", "id": None})
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


# %% tags=["demo"]
print(add(2, 3), greet("Ada"))
c = Counter()
c.add("a")
print(c.most_common())
