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
# Hostile submission for the grader's tests: takes over the worker's requests and answers
# every probe itself, with the published example values, without running any code


# %%
import json
import os
import sys


def _take_over() -> None:
    """Replace the worker's answer loop: every probe gets 5 (what add(2, 3) returns)."""
    for name in ("__main__", "course.grader.worker"):  # it runs as python -m ...
        worker = getattr(sys.modules.get(name), "Worker", None)
        if worker is not None:
            worker.answer = lambda self, request: {"call": request["call"], "value": 5}


_TAKEN = _take_over()


def add(a: int, b: int) -> int:
    raise NotImplementedError


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
