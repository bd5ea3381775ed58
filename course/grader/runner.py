"""The entry point inside the sandbox: ``python -I -m course.grader.runner PYTEST-ARGS``.

It is pytest's own ``console_main`` with one thing first: when jupyterlab's extras are
installed, ``jsonschema`` imports ``rfc3987_syntax``, which builds a grammar for about two
seconds on import, and every run imports ``nbformat`` (hence ``jsonschema``). Nothing
here validates IRIs, so the import is turned off, saving those seconds on every run.
The ``course`` command (whose authoring tools import jupytext) and the course's pytest
plugin (loaded before nbval, in every pytest of ``make test``) turn it off too.
"""

from __future__ import annotations

import sys


def skip_slow_imports() -> None:
    if "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # None blocks the import


def main() -> int:
    skip_slow_imports()
    import pytest

    return int(pytest.main())


if __name__ == "__main__":
    sys.exit(main())
