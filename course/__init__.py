"""The course's own tools: notebook loader, exercise generator, grader, local LLM API server."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the folder that holds chapters/, solutions/, exercises/ and tests/."""

NOTEBOOK_SUFFIXES = (".py", ".ipynb")
"""The notebook files the course reads: Jupytext percent scripts and Jupyter notebooks."""

__all__ = ["NOTEBOOK_SUFFIXES", "ROOT"]
