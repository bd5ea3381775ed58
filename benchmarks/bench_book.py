"""Time the book build: clean, unchanged rebuild, and rebuild after editing one chapter.

Run with ``make bench-book``. It copies the course to a scratch folder so the edit never
touches your work tree, and it checks that a cached rebuild still shows cell outputs
(myst-nb's cache with Jupytext sources has had rough edges there).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course.authoring.prebuild import execute_into_cache

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))
SKIP = shutil.ignore_patterns("_build", ".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache")


def build(root: Path) -> float:
    """What ``course book`` does: notebooks executed side by side into the cache, then the build."""
    start = time.perf_counter()
    execute_into_cache(root)
    subprocess.run(
        [JUPYTER_BOOK, "build", str(root), "--warningiserror", "--keep-going", "-q"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def outputs_shown(page: Path) -> bool:
    return "cell_output" in page.read_text(encoding="utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "course"
        shutil.copytree(ROOT, root, ignore=SKIP)
        chapter = sorted((root / "chapters").glob("*.py"))[0]
        page = root / "_build" / "html" / "chapters" / f"{chapter.stem}.html"

        clean = build(root)
        unchanged = build(root)
        with chapter.open("a", encoding="utf-8") as handle:
            handle.write("\n# %%\nedited_for_the_benchmark = True\n")
        edited = build(root)

        print(f"clean build (every notebook executed): {clean:6.1f} s   goal < 60 s")
        print(f"rebuild, nothing changed:              {unchanged:6.1f} s")
        print(f"rebuild after editing {chapter.name}: {edited:6.1f} s   goal < 10 s")
        ok = outputs_shown(page)
        print(f"cached rebuild still shows outputs:    {'yes' if ok else 'NO'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
