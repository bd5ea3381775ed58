"""Exercise generation: answers become stubs, and a stale exercises/ is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from course.authoring.generate import (
    EditedExercises,
    GenerateError,
    learner_edits,
    make_exercise,
    stale_exercises,
    write_exercises,
)
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


def _course(tmp_path: Path) -> Path:
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "solutions" / "01_demo.py").write_text(SOLUTION, encoding="utf-8")
    return tmp_path


def test_stale_exercises_are_found_and_fixed(tmp_path: Path) -> None:
    root = _course(tmp_path)
    assert {s.path.name: s.reason for s in stale_exercises(root)} == {"01_demo.py": "missing"}
    write_exercises(root)
    assert stale_exercises(root) == []
    assert learner_edits(root) == []

    # The solution changes; the exercise is untouched, so regenerating loses nothing.
    solution = root / "solutions" / "01_demo.py"
    solution.write_text(SOLUTION.replace("Write `count_tokens`", "Write `count_words`"), encoding="utf-8")
    assert [s.reason for s in stale_exercises(root)] == ["out of date"]
    write_exercises(root)
    assert stale_exercises(root) == []


def test_a_learners_edit_is_not_staleness_and_is_never_overwritten_silently(tmp_path: Path) -> None:
    root = _course(tmp_path)
    write_exercises(root)
    exercise = root / "exercises" / "01_demo.py"
    work = exercise.read_text(encoding="utf-8").replace("return 0", "return 4096")
    exercise.write_text(work, encoding="utf-8")

    assert stale_exercises(root) == [], "a learner's work is not a stale exercises/"
    assert learner_edits(root) == [exercise]
    with pytest.raises(EditedExercises, match="--force"):
        write_exercises(root)
    assert exercise.read_text(encoding="utf-8") == work

    # Solutions change too: the check fails and says the file was edited.
    solution = root / "solutions" / "01_demo.py"
    solution.write_text(SOLUTION.replace("Write `count_tokens`", "Write `count_words`"), encoding="utf-8")
    reasons = [s.reason for s in stale_exercises(root)]
    assert len(reasons) == 1 and "edited" in reasons[0] and "--force" in reasons[0]
    with pytest.raises(EditedExercises):
        write_exercises(root)
    assert exercise.read_text(encoding="utf-8") == work

    write_exercises(root, force=True)
    assert exercise.read_text(encoding="utf-8") == make_exercise(solution.read_text(), "solutions/01_demo.py")
    kept = list((root / "backups").rglob("01_demo.py"))
    assert [k.read_text(encoding="utf-8") for k in kept] == [work]


def test_orphans_generate_wrote_go_and_a_learners_own_files_stay(tmp_path: Path) -> None:
    root = _course(tmp_path)
    (root / "solutions" / "02_gone.py").write_text(SOLUTION, encoding="utf-8")
    write_exercises(root)
    (root / "solutions" / "02_gone.py").unlink()
    (root / "exercises" / "my_notes.py").write_text("x = 1\n", encoding="utf-8")
    assert [(s.path.name, s.reason) for s in stale_exercises(root)] == [
        ("02_gone.py", "not made from any solution")
    ]
    write_exercises(root)
    assert not (root / "exercises" / "02_gone.py").exists()
    assert (root / "exercises" / "my_notes.py").read_text(encoding="utf-8") == "x = 1\n"
    assert stale_exercises(root) == []


def test_the_record_knows_the_untouched_notebook_in_any_format(tmp_path: Path) -> None:
    """The grader's 'untouched' verdict comes from the record, not from exercises/."""
    import jupytext

    from course.grader import prepare, stubs

    root = _course(tmp_path)
    write_exercises(root)
    exercise = root / "exercises" / "01_demo.py"
    recorded = stubs.original(root, "01_demo")
    stub = exercise.read_text(encoding="utf-8")
    exercise.write_text(SOLUTION, encoding="utf-8")  # the learner's work, in place
    assert prepare.is_untouched(prepare.read("01_demo.py", stub.encode()), recorded)
    # Saved from Jupyter as .ipynb (Jupytext writes it): still the untouched exercise.
    ipynb = jupytext.writes(jupytext.reads(stub, fmt="py:percent"), fmt="ipynb")
    assert prepare.is_untouched(prepare.read("01_demo.ipynb", ipynb.encode()), recorded)
    learner = prepare.read("01_demo.py", exercise.read_bytes())
    assert not prepare.is_untouched(learner, recorded)
    assert stubs.pristine_text(root, "01_demo") == make_exercise(SOLUTION, "solutions/01_demo.py")
