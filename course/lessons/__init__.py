"""Code the chapters work on: modules that lessons, exercises and their graded tests import.

``prompt_kit`` is what chapter 9's learners write tests for; ``devenv_checks`` reads the
Dockerfile, compose file and Makefile of chapter 10's exercise. Learners import these
from their notebooks, so a rename here is a change to ``chapters/``, ``solutions/`` and
``tests/`` too (then regenerate ``exercises/``).
"""
