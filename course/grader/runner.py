"""The entry point of every pytest the grader starts: ``python -I -m course.grader.runner
PYTEST-ARGS`` (built by :func:`command`), for the judge, nbval's run in the sandbox and
the collection of the course's tests.

pytest loads only the plugins the command line names (the course's, pytest-asyncio for
the course's settings, nbval where a notebook runs), not every installed one: nbval,
xdist, anyio and what they import would cost each run more than its tests.

And when jupyterlab's extras are installed, ``jsonschema`` imports ``rfc3987_syntax``,
which builds a grammar for about two seconds on import, and every run imports
``nbformat`` (hence ``jsonschema``). Nothing here validates IRIs, so the import is
turned off, saving those seconds on every run.
The ``course`` command (whose authoring tools import jupytext) and the course's pytest
plugin (loaded before nbval, in every pytest of ``make test``) turn it off too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PLUGINS = ("course.pytest_plugin", "pytest_asyncio.plugin")


def command(python: str, ini: Path, rootdir: Path, *args: str) -> list[str]:
    """The command line that runs pytest with the course's ``ini`` (a submission's own
    pytest.ini, pyproject.toml or setup.cfg is never read) and the course's plugins."""
    plugins = [flag for name in PLUGINS for flag in ("-p", name)]
    return [python, "-I", "-m", "course.grader.runner", "-c", str(ini), "--rootdir",
            str(rootdir), "-p", "no:cacheprovider", *plugins, *args]


def skip_slow_imports() -> None:
    if "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # None blocks the import


def main() -> int:
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    skip_slow_imports()
    from course.grader import zygote

    if zygote.enabled() and any(arg.startswith(("--course-worker=", "--course-channel="))
                                for arg in sys.argv):
        zygote.fork_here()  # the judge's workers, nbval's kernels: forked, not started anew
    import pytest

    try:
        return int(pytest.main())
    finally:
        zygote.stop()


if __name__ == "__main__":
    sys.exit(main())
