"""The appendix pages: questions gathered from the lessons, the exercise index, staleness."""

from __future__ import annotations

from pathlib import Path

import pytest

import course.authoring.appendix as appendix
from course.authoring.appendix import AppendixError, exercises_page, read_lesson, stale_pages, write_pages
from course.cli import main
from course.layout import ROOT

HEADER = "# %% [markdown]\n# # 1. A demo chapter\n#\n# Some prose.\n\n# %%\nx = 1\n\n"
QUESTIONS = """# %% [markdown]
# ## Check your understanding
#
# **1.** Why is the sky blue? See [Chapter 2](02_next) and [above](#colours).
#
# ```{admonition} Answer
# :class: dropdown
# Rayleigh scattering.
# ```
#
# **2. A topic.** A question
# on two lines, with code:
#
# ```python
# print("hi")
# ```
#
# ````{admonition} Answer
# :class: dropdown
# An answer with its own code block:
# ```python
# print("bye")
# ```
# ````

# %% [markdown]
# ## Next
"""


def write(folder: Path, text: str, slug: str = "01_demo") -> Path:
    path = folder / "chapters" / f"{slug}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    (folder / "tests").mkdir(exist_ok=True)  # no graded tests: an empty exercise index
    path.write_text(text, encoding="utf-8")
    return path


def test_questions_and_hidden_answers_are_extracted(tmp_path: Path) -> None:
    lesson = read_lesson(write(tmp_path, HEADER + QUESTIONS))
    assert lesson.title == "Chapter 1. A demo chapter"
    assert lesson.questions.startswith("**1.** Why is the sky blue?")
    assert "**2. A topic.** A question\non two lines" in lesson.questions
    assert lesson.questions.count(":class: dropdown") == 2
    assert lesson.questions.endswith('print("bye")\n```\n````')
    assert "## Next" not in lesson.questions
    # Links were relative to chapters/; the page lives in appendix/.
    assert "[Chapter 2](../chapters/02_next)" in lesson.questions
    assert "[above](../chapters/01_demo#colours)" in lesson.questions


def test_questions_page_has_a_section_per_chapter(tmp_path: Path) -> None:
    write(tmp_path, HEADER + QUESTIONS)
    write(tmp_path, HEADER.replace("1. A demo", "Chapter 2. Another") + QUESTIONS, "02_next")
    page = appendix.pages(tmp_path)[tmp_path / "appendix" / "questions.md"]
    assert "## Chapter 1. A demo chapter\n\n[Back to the chapter](../chapters/01_demo)" in page
    assert "## Chapter 2. Another chapter\n\n[Back to the chapter](../chapters/02_next)" in page
    assert page.index("Chapter 1.") < page.index("Chapter 2.")


def test_exercise_index_totals() -> None:
    page = exercises_page({"01_demo": {"alpha": (2, 3), "beta": (1, 4)}, "02_next": {"gamma": (1, 1)}},
                          {"01_demo": "Chapter 1. Demo"})
    assert "| [Chapter 1. Demo](../exercises/01_demo) | 2 | 8 |" in page  # 3 + 4 + 1 for running
    assert "| [02_next](../exercises/02_next) | 1 | 2 |" in page
    assert "| **course** | **3** | **10** |" in page
    assert "| `beta` | 1 | 4 |" in page and "| **total** | **3** | **8** |" in page


def test_stale_pages_are_caught(tmp_path: Path) -> None:
    chapter = write(tmp_path, HEADER + QUESTIONS)
    assert {p.name for p in stale_pages(tmp_path)} == {"questions.md", "exercises.md"}
    assert len(write_pages(tmp_path)) == 2
    assert stale_pages(tmp_path) == [] and write_pages(tmp_path) == []
    chapter.write_text(HEADER + QUESTIONS.replace("Rayleigh", "Mie"), encoding="utf-8")
    assert [p.name for p in stale_pages(tmp_path)] == ["questions.md"]


def test_the_command_says_what_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, HEADER + QUESTIONS)
    monkeypatch.setattr(appendix, "ROOT", tmp_path)
    assert main(["appendix", "--check"]) == 1
    assert "appendix/questions.md is stale: run `python -m course appendix`" in capsys.readouterr().err
    assert main(["appendix"]) == 0
    assert main(["appendix", "--check"]) == 0
    write(tmp_path, HEADER + QUESTIONS.replace(":class: dropdown\n# Rayleigh", "# Rayleigh"))
    assert main(["appendix", "--check"]) == 1
    assert "error: " in capsys.readouterr().err


HEADING = "# ## Check your understanding\n"
BROKEN = {  # id: (text to replace, replacement, what the error must say)
    "not-dropdown": (":class: dropdown\n# Rayleigh", "# Rayleigh",
                     r"question 1: the answer must start with ':class: dropdown'"),
    "unclosed-answer": ("# Rayleigh scattering.\n# ```\n", "# Rayleigh scattering.\n",
                        r"an answer at '````\{admonition\} Answer' follows no \*\*N\.\*\* question"),
    "unclosed-long-fence": ("# ````\n", "", r"question 2: the answer is never closed with ````"),
    "numbering": ("**2. A topic.**", "**3.**", r"question \*\*3\.\*\* should be \*\*2\.\*\*"),
    "no-number": ("# **1.** Why", "# Why", r"question 1: expected '\*\*1\.\*\* question', got 'Why"),
    "no-answer": ("on two lines", "**3.** on two lines", r"question 2 has no answer before question 3"),
    "stray-text": (HEADING + "#\n", HEADING + "#\n# Hi.\n#\n",
                   r"question 1: expected '\*\*1\.\*\* question', got 'Hi\.'"),
    "heading-inside-prose": (HEADING, "# Intro.\n#\n" + HEADING,
                             r"must be the first line of its own markdown cell"),
    "split-cells": ("#\n# **2. A topic.**", "\n# %% [markdown]\n# **2. A topic.**",
                    r"the questions continue in the next cell"),
    "missing": (HEADING, "# ## Questions\n", r"expected one markdown cell .* found 0"),
    "twice": ("# ## Next\n", HEADING, r"found 2"),
}


@pytest.mark.parametrize(("old", "new", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_malformed_blocks_say_where_and_how(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in QUESTIONS
    path = write(tmp_path, HEADER + QUESTIONS.replace(old, new))
    with pytest.raises(AppendixError, match=message) as raised:
        read_lesson(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("chapter", sorted((ROOT / "chapters").glob("*.py")), ids=lambda p: p.stem)
def test_every_lesson_follows_the_layout(chapter: Path) -> None:
    lesson = read_lesson(chapter)
    assert lesson.questions.count(":class: dropdown") == lesson.questions.count("{admonition} Answer")
