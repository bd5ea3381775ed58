"""Shared by every test. The course's pytest plugin (``--target``, the ``notebook``
fixture, the ``exercise`` marker) is loaded from ``pyproject.toml``."""
