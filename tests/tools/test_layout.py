"""course.layout: the one rule for which file is a chapter's notebook."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from course import layout
from course.notebook import NotebookError


def _touch(path: Path, mtime: float) -> Path:
    path.write_text("# %%\n", encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def test_the_notebook_saved_last_wins(tmp_path: Path) -> None:
    _touch(tmp_path / "01_classes.py", 1_000)
    edited = _touch(tmp_path / "01_classes.ipynb", 2_000)
    assert layout.notebook("01_classes", tmp_path) == edited
    newer_py = _touch(tmp_path / "01_classes.py", 3_000)
    assert layout.notebook("01_classes", tmp_path) == newer_py


def test_a_tie_goes_to_the_percent_script(tmp_path: Path) -> None:
    script = _touch(tmp_path / "01_classes.py", 1_000)
    _touch(tmp_path / "01_classes.ipynb", 1_000)
    assert layout.notebook("01_classes", tmp_path) == script


def test_a_single_file_must_be_that_chapter(tmp_path: Path) -> None:
    other = _touch(tmp_path / "02_types.ipynb", 1_000)
    assert layout.notebook("02_types", other) == other
    with pytest.raises(NotebookError, match=r"02_types\.ipynb is not the notebook 01_classes"):
        layout.notebook("01_classes", other)


def test_a_missing_notebook_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match=r"no notebook 01_classes\.py or 01_classes\.ipynb in"):
        layout.notebook("01_classes", tmp_path)


def test_folders_follow_the_root(tmp_path: Path) -> None:
    course = layout.Layout(tmp_path)
    assert course.exercises == tmp_path / "exercises"
    (tmp_path / "chapters").mkdir()
    _touch(tmp_path / "chapters" / "02_b.py", 1)
    _touch(tmp_path / "chapters" / "01_a.py", 1)
    assert [p.name for p in course.notebooks(layout.CHAPTERS)] == ["01_a.py", "02_b.py"]
