"""The internal link check finds broken links in pages and notebooks, and passes good ones."""

from __future__ import annotations

from pathlib import Path

from course.authoring.linkcheck import broken_links

CONFIG = """title: A tiny book
only_build_toc_files: true
execute:
  execute_notebooks: force
sphinx:
  config:
    nb_execution_raise_on_error: true
    nb_custom_formats:
      .py:
        - jupytext.reads
        - fmt: py:percent
"""
TOC = "format: jb-book\nroot: intro\nchapters:\n  - file: chapters/01_first\n"
INTRO = """# Intro

Read [the first chapter](chapters/01_first), then [a chapter that is missing](chapters/02_gone).
The web is not checked: [example](https://example.invalid/page).
"""
CHAPTER = """# %% [markdown]
# # 1. First

# %%
raise SystemExit("never executed by the link check")

# %% [markdown]
# ## Next
#
# Back to [the intro](../intro); on to
# [Chapter 3](03_later).
"""


def test_broken_internal_links_are_listed_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "chapters").mkdir()
    for name, text in [("_config.yml", CONFIG), ("_toc.yml", TOC), ("intro.md", INTRO),
                       ("chapters/01_first.py", CHAPTER)]:
        (tmp_path / name).write_text(text, encoding="utf-8")
    problems = broken_links(tmp_path)
    assert problems == [
        "chapters/01_first.py:10: 'myst' cross-reference target not found: '03_later'",
        "intro.md:3: 'myst' cross-reference target not found: 'chapters/02_gone'",
    ], problems
