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
# Hostile submission for the grader's tests: add is right, greet calls os._exit, Counter loops forever


# %%
def add(a: int, b: int) -> int:
    return a + b


# %%
import os


def greet(name: str) -> str:
    os._exit(0)


# %%
class Counter:
    def __init__(self) -> None:
        while True:
            pass

    def add(self, word: str) -> None:
        pass

    def most_common(self) -> str:
        return ""


# %% tags=["demo"]
print(add(2, 3), greet("Ada"))
c = Counter()
c.add("a")
print(c.most_common())
