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
# Hostile submission for the grader's tests: raises SystemExit while the notebook is imported


# %%
import sys

_boom = sys.exit(0)


# %%
def add(a: int, b: int) -> int:
    return a + b


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
