"""Shared by every test. The course's pytest plugin (``--target``, the ``notebook``
fixture, the ``exercise`` marker) is loaded from ``pyproject.toml``.

``make test`` runs the suite in two passes: everything not marked ``serial`` spread
over every core (pytest-xdist), then the ``serial`` tests apart, a file per worker.
Serial are the tests whose subject is timing or concurrency (rate limits, timeouts,
streams that stall, the notebooks that measure sequential against concurrent), which
sharing the cores with the CPU-bound grading tests could make slow enough to fail; they
mostly wait on timers, so two of them share the cores well.
"""

from __future__ import annotations

import pytest

SERIAL = {
    "test_04_async.py", "test_07_streaming.py", "test_11_capstone.py",
    "test_llm_server_faults.py", "04_async.ipynb", "07_streaming.ipynb", "11_capstone.ipynb",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "serial: run alone, after the parallel pass")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL:
            item.add_marker(pytest.mark.serial)
