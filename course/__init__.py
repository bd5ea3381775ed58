"""The course's own tools: notebook loader, exercise generator, grader, local LLM API server.

Where the course keeps things (``ROOT``, its folders, which notebook file is a chapter's)
is :mod:`course.layout`'s to say.
"""

from course.layout import NOTEBOOK_SUFFIXES, ROOT  # older imports: `from course import ROOT`

__all__ = ["NOTEBOOK_SUFFIXES", "ROOT"]
