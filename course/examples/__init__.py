"""Small modules that lessons and exercises work on (chapter 9 writes tests for ``prompt_kit``)."""
