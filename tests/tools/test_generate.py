"""Exercise generation: answers become stubs, and a stale exercises/ is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from course.generate import GenerateError, make_exercise, stale_exercises, write_exercises
from course.notebook import load_notebook

SOLUTION = """# %% [markdown]
# Write `count_tokens`.

# %%
class Counter:
    unit: str = "token"

    def count(self, text: str) -> int:
        # BEGIN SOLUTION
        words = text.split()
        return len(words)
        # END SOLUTION


def limit() -> int:
    # BEGIN SOLUTION
    # STUB: return 0
    return 4096
    # END SOLUTION

# %% [markdown] tags=["solution"]
# Why this answer works: it splits on whitespace.

# %%
print(Counter().count("a b"))
"""


def test_answers_become_stubs() -> None:
    exercise = make_exercise(SOLUTION)
    assert "words = text.split()" not in exercise
    assert 'raise NotImplementedError("Write Counter.count(): see the instructions above.")' in exercise
    assert "        raise NotImplementedError" in exercise  # kept at the answer's indentation
    assert "    return 0\n" in exercise and "4096" not in exercise
    assert "BEGIN SOLUTION" not in exercise and "STUB:" not in exercise
    assert "Why this answer works" not in exercise  # the cell tagged solution is gone
    assert 'print(Counter().count("a b"))' in exercise


def test_stub_loads_and_raises_with_a_pointer(tmp_path: Path) -> None:
    path = tmp_path / "ex.py"
    path.write_text(make_exercise(SOLUTION), encoding="utf-8")
    module = load_notebook(path)
    assert module.limit() == 0
    with pytest.raises(NotImplementedError, match="see the instructions above"):
        module.Counter().count("a b")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# %%\ndef f():\n    # BEGIN SOLUTION\n    return 1\n", "has no # END SOLUTION"),
        ("# %%\ndef f():\n    return 1\n    # END SOLUTION\n", "without # BEGIN SOLUTION"),
        ("# %%\n# BEGIN SOLUTION\n# BEGIN SOLUTION\n", "nested"),
        ("# %%\n# BEGIN SOLUTION\nx = 1\n# %%\n# END SOLUTION\n", "has no # END SOLUTION in its cell"),
    ],
)
def test_unpaired_markers_name_the_line(text: str, problem: str) -> None:
    with pytest.raises(GenerateError, match=problem) as caught:
        make_exercise(text, "solutions/99_demo.py")
    assert str(caught.value).startswith("solutions/99_demo.py:")


def test_stale_exercises_are_found_and_fixed(tmp_path: Path) -> None:
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "solutions" / "01_demo.py").write_text(SOLUTION, encoding="utf-8")
    (tmp_path / "exercises" / "99_orphan.py").write_text("x = 1\n", encoding="utf-8")
    reasons = {s.path.name: s.reason for s in stale_exercises(tmp_path)}
    assert reasons == {"01_demo.py": "missing", "99_orphan.py": "not made from any solution"}

    write_exercises(tmp_path)
    assert stale_exercises(tmp_path) == []
    assert not (tmp_path / "exercises" / "99_orphan.py").exists()

    (tmp_path / "exercises" / "01_demo.py").write_text("edited by hand\n", encoding="utf-8")
    assert [s.reason for s in stale_exercises(tmp_path)] == ["out of date"]
