"""The grader's percent-format reader (``course/percent.py``) reads notebooks as Jupytext does.

The grader reads submissions with its own reader, the book and the learner's Jupyter
with Jupytext; where the two disagreed, a learner's cell would be graded differently from
how they see it. Compared on what the grader uses: each cell's type, code (normalised as
the grader compares it), markdown text and tags.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from course.grader.prepare import _normal
from course.layout import ROOT
from course.percent import PercentError, read_percent

NOTEBOOKS = sorted(
    path for folder in ("chapters", "solutions", "exercises", "tests/tools/fixtures",
                        "tests/tools/hostile")
    for path in (ROOT / folder).rglob("*.py")
    if "# %%" in path.read_text(encoding="utf-8")
)
EDGE_CASES = {
    "magics are uncommented": "# %%\n# %time x = 1\n# !ls\nx = 1\n",
    "blank lines around code": "# %%\n\n\nx = 1\n\n\n\n# %%\ny = 2\n",
    "code before the first marker": "import os\n\n# %%\nx = 1\n",
    "markdown, every kind of comment": (
        "# %% [markdown]\n# # Title\n#\n#    indented\n#no space\n\n# %% [md] tags=[\"a\"]\n# x\n"),
    "title, tags and other metadata": '# %% A title tags=["a", "b"] foo="bar"\nx\n# %% [raw]\n# r\n',
    "a marker inside a triple-quoted string": "# %%\ns = '''\n# %%\n'''\n# %%\nz = 1\n",
    "a header": "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: P\n#     "
                "language: python\n#     name: python3\n# ---\n\n# %%\nx = 1\n",
    "markers without a space": "#%%\nx = 1\n#  %%\ny = 2\n",
}


def _as_graded(cells: list[tuple[str, str, tuple[str, ...]]]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(kind, _normal(source) if kind == "code" else source.rstrip(), tags)
            for kind, source, tags in cells]


def _both(text: str) -> tuple[list[tuple[str, str, tuple[str, ...]]], ...]:
    theirs = [(c.cell_type, c.source, tuple(c.metadata.get("tags", [])))
              for c in jupytext.reads(text, fmt="py:percent").cells]
    ours = [(c.cell_type, c.source, c.tags) for c in read_percent(text)]
    return _as_graded(theirs), _as_graded(ours)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_notebook_of_the_course_reads_as_jupytext_reads_it(path: Path) -> None:
    theirs, ours = _both(path.read_text(encoding="utf-8"))
    assert ours == theirs


@pytest.mark.parametrize("text", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_read_as_jupytext_reads_them(text: str) -> None:
    theirs, ours = _both(text)
    assert ours == theirs


def test_each_cell_knows_its_first_line_in_the_file() -> None:
    text = "x = 0\n# %%\na = 1\n\n# %% [markdown]\n# text\n# %%\n\nb = 2\n"
    cells = read_percent(text)
    lines = text.splitlines()
    assert [c.first_line for c in cells] == [1, 3, 6, 8]
    assert lines[cells[3].first_line] == "b = 2"  # the cell's second line


def test_a_cell_with_unreadable_tags_names_its_line() -> None:
    with pytest.raises(PercentError, match="line 3: the cell's tags"):
        read_percent("# %%\nx = 1\n# %% tags=[not json]\ny = 2\n")
    with pytest.raises(PercentError, match=r"line 1: .* list of text"):
        read_percent('# %% tags=[1, 2]\ny = 2\n')


def test_reading_is_linear_in_the_number_of_cells() -> None:
    """Jupytext's reader was quadratic; 20 000 cells must read (a count, not a time)."""
    text = "".join(f"# %%\nx{i} = {i}\n\n" for i in range(20_000))
    cells = read_percent(text)
    assert len(cells) == 20_000 and cells[-1].source == "x19999 = 19999"


@pytest.mark.parametrize("token", ["a=[ ", "a={ ", 'a=" ', "tags=[1, "])
def test_a_marker_line_of_unclosed_values_is_read_in_one_pass(token: str) -> None:
    """A 1 MB marker line: a pattern for whole key=value pairs took minutes here."""
    text = "# %% " + token * (2**20 // len(token)) + "\nx = 1\n"
    if token.startswith("tags"):
        with pytest.raises(PercentError, match="line 1: the cell's tags are not a JSON list"):
            read_percent(text)
    else:
        assert [c.source for c in read_percent(text)] == ["x = 1"]
