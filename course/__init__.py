"""The course's own tools: notebook loader, exercise generator, grader, local LLM API server.

Where the course keeps things (``ROOT``, its folders, which notebook file is a chapter's)
is :mod:`course.layout`'s to say.
"""
