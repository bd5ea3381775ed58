"""Tools for the people who write the course: they read ``solutions/`` and ``chapters/``
and write ``exercises/``, the appendix, the book and the student edition.

Nothing here is imported by a notebook, a graded test or the grader's sandboxed worker.
"""
