"""The notebook-as-module loader: what it keeps, what it drops, how it reports errors."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

from course.notebook import NotebookError, load_notebook

HEADER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

NOTEBOOK = HEADER + """
# %% [markdown]
# # A tiny exercise

# %%
import asyncio

MODEL = "small-model"


def count_tokens(text: str) -> int:
    return len(text.split())


class Client:
    async def ask(self, prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt.upper()

# %%
print("demo output")
answer = await Client().ask("hello")
side_effects = []
side_effects.append("ran")
# %timeit count_tokens("a b")

# %% tags=["demo"]
DEMO_ONLY = True
"""


def write(tmp_path: Path, text: str, name: str = "nb.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_keeps_definitions_and_drops_demo_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_notebook(write(tmp_path, NOTEBOOK))
    assert module.MODEL == "small-model"
    assert module.count_tokens("one two three") == 3
    assert module.side_effects == []  # the assignment is kept, the .append call is not
    assert not hasattr(module, "answer")  # assigned from a top-level await: a demo
    assert not hasattr(module, "DEMO_ONLY")  # in a cell tagged demo
    assert capsys.readouterr().out == ""


def test_loads_ipynb_the_same_way(tmp_path: Path) -> None:
    notebook = jupytext.reads(NOTEBOOK, fmt="py:percent")
    path = tmp_path / "nb.ipynb"
    jupytext.write(notebook, path, fmt="ipynb")
    module = load_notebook(path)
    assert module.count_tokens("a b") == 2
    assert not hasattr(module, "DEMO_ONLY")


def test_classes_get_a_module_name_that_resolves(tmp_path: Path) -> None:
    module = load_notebook(write(tmp_path, NOTEBOOK, "07_demo.py"))
    assert module.Client.__module__ == module.__name__ == "nb_07_demo"


def test_syntax_error_names_cell_and_line(tmp_path: Path) -> None:
    text = NOTEBOOK + "\n# %%\nx = 1\ndef broken(:\n    pass\n"
    path = write(tmp_path, text)
    with pytest.raises(NotebookError) as caught:
        load_notebook(path)
    message = str(caught.value)
    file_line = text.splitlines().index("def broken(:") + 1
    assert "syntax error in cell 5, line 2" in message
    assert f"line {file_line} of the file" in message
    assert "def broken(:" in message


def test_syntax_error_in_ipynb_names_cell_and_line(tmp_path: Path) -> None:
    notebook = jupytext.reads(NOTEBOOK + "\n# %%\nreturn_value = (\n", fmt="py:percent")
    path = tmp_path / "nb.ipynb"
    jupytext.write(notebook, path, fmt="ipynb")
    with pytest.raises(NotebookError, match=r"syntax error in cell 5, line 1"):
        load_notebook(path)


def test_error_while_loading_names_cell_and_line(tmp_path: Path) -> None:
    text = NOTEBOOK + "\n# %%\nLIMIT = undefined_name + 1\n"
    with pytest.raises(NotebookError) as caught:
        load_notebook(write(tmp_path, text))
    line = text.splitlines().index("LIMIT = undefined_name + 1") + 1
    assert str(caught.value).startswith(f"nb.py: NameError while loading cell 5, line {line} of the file")


def test_not_json_ipynb_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "this is not json", "nb.ipynb")
    with pytest.raises(NotebookError, match=r"nb.ipynb: not a valid .ipynb notebook"):
        load_notebook(path)


def test_ipynb_that_is_json_but_not_a_notebook(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"hello": "world"}), "nb.ipynb")
    with pytest.raises(NotebookError, match=r"not a valid .ipynb notebook"):
        load_notebook(path)


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="no such notebook"):
        load_notebook(tmp_path / "absent.py")
    with pytest.raises(NotebookError, match=r"expected a \.py"):
        load_notebook(write(tmp_path, "x = 1", "notes.txt"))
