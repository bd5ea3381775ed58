"""The autograder: finds notebooks in a submission, runs the course tests on them in a
sandbox and reports points and feedback per exercise. See ``grading.md``."""
