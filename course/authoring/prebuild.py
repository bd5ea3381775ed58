"""Execute the book's notebooks side by side, into the cache Jupyter Book reads.

Jupyter Book (myst-nb, ``execute_notebooks: cache``) runs one notebook after another. On
two cores that leaves one idle, and most chapters spend their time waiting on the local
LLM server anyway. So ``course book`` first runs every notebook whose outputs are not
cached yet in a pool of processes, and stores each result in ``_build/.jupyter_cache``
exactly as myst-nb would. The build then finds every notebook cached and only renders.

A notebook that fails here is simply not cached: the build executes it again and reports
the error with its traceback, as it always did.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

from course.layout import BOOK_EXECUTED, Layout


def execution_settings(root: Path) -> tuple[int, bool]:
    """``execute.timeout`` and ``execute.allow_errors`` from the book's ``_config.yml``,
    with Jupyter Book's defaults, so this runs notebooks under the build's own rules."""
    config_file = Layout(root).config
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else None
    execute = (config or {}).get("execute") or {}
    return int(execute.get("timeout", 30)), bool(execute.get("allow_errors", False))


def read(path: Path) -> Any:
    """Read a notebook as myst-nb's custom format for ``.py`` does, so the hashes match."""
    import jupytext

    return jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")


def _cached(cache: Any, path: Path) -> bool:
    try:
        cache.match_cache_notebook(read(path))
    except KeyError:
        return False
    return True


def _quiet_kernels() -> None:
    """Kernels inherit the worker's stderr and warn about TCP on start-up; a failure comes
    back as the execution's error (and the build re-runs it with the full traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def _execute(path: Path, timeout: int, allow_errors: bool) -> tuple[Path, Any, float, str | None]:
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = read(path)
    result = single_nb_execution(
        notebook, cwd=str(path.parent), allow_errors=allow_errors, timeout=timeout, meta_override=True
    )
    error = None if result.err is None else f"{type(result.err).__name__}: {result.err}"
    return path, notebook, result.time, error


def execute_into_cache(root: Path, workers: int | None = None) -> None:
    """Run every notebook of the book at ``root`` whose outputs are not in its cache."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    course = Layout(root)
    cache = get_cache(str(course.jupyter_cache))
    stale = [p for p in course.notebooks(*BOOK_EXECUTED) if not _cached(cache, p)]
    if not stale:
        print("every notebook's outputs are cached", flush=True)
        return
    start = time.perf_counter()
    workers = workers or max(1, min(len(stale), os.cpu_count() or 1))
    print(f"executing {len(stale)} notebook(s), {workers} at a time", flush=True)
    timeout, allow_errors = execution_settings(root)
    run = partial(_execute, timeout=timeout, allow_errors=allow_errors)
    with ProcessPoolExecutor(workers, initializer=_quiet_kernels) as pool:
        for path, notebook, seconds, error in pool.map(run, stale):
            name = path.relative_to(root)
            if error:
                print(f"  {name}: failed ({error.splitlines()[0]}); the build will show why", flush=True)
                continue
            cache.cache_notebook_bundle(
                CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            print(f"  {name}: {seconds:.1f} s", flush=True)
    print(f"executed in {time.perf_counter() - start:.1f} s", flush=True)
