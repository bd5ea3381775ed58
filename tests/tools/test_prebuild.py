"""The book's notebooks are executed side by side into the cache myst-nb reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyter_cache import get_cache

from course.authoring import prebuild

HEADER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


def write(folder: Path, name: str, code: str) -> Path:
    path = folder / name
    path.write_text(HEADER + "\n# %%\n" + code + "\n", encoding="utf-8")
    return path


def test_good_notebooks_are_cached_and_failing_ones_are_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    good = write(chapters, "good.py", "print(6 * 7)")
    bad = write(chapters, "bad.py", "raise RuntimeError('boom')")

    prebuild.execute_into_cache(tmp_path, workers=2)

    cache = get_cache(str(tmp_path / "_build" / ".jupyter_cache"))
    record = cache.match_cache_notebook(prebuild.read(good))
    outputs = cache.get_cache_bundle(record.pk).nb.cells[0].outputs
    assert outputs[0]["text"] == "42\n"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(prebuild.read(bad))
    printed = capsys.readouterr().out
    assert "bad.py: failed (" in printed and "the build will show why" in printed

    prebuild.execute_into_cache(tmp_path, workers=2)
    assert "executing 1 notebook(s)" in capsys.readouterr().out, "only the uncached notebook runs again"
