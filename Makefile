# One entry point for learners, teachers and CI; every target creates the virtual
# environment on first use. Learners: `make lab`, `make check`, `make progress`, `make book`
# (none of them changes a file in exercises/). Maintainers and CI: `make test` and the rest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: lab check progress book book-force test browser-check linkcheck bench-book bench bench-peers exercises appendix release clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# Bytecode for the course package now: sandboxed runs read it and may not write it.
	$(BIN)/python -m compileall -q course
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/python -m course lab

# The grader's verdict on your exercises/ (CHAPTER=01_classes for one chapter).
check: $(STAMP)
	$(BIN)/python -m course check $(CHAPTER)

progress: $(STAMP)
	$(BIN)/python -m course progress

book: $(STAMP)
	$(BIN)/python -m course book

book-force: $(STAMP)
	$(BIN)/python -m course book --force

test: $(STAMP)
	$(BIN)/python -m course test

browser-check: $(STAMP)
	$(BIN)/python -m course browser-check

linkcheck: $(STAMP)
	$(BIN)/python -m course linkcheck

bench-book: $(STAMP)
	$(BIN)/python benchmarks/bench_book.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_grader.py

# The grader against otter-grader and nbgrader on chapter 1 (their venvs go under
# _build/bench-peers/). BENCH_ARGS=--quick for a smoke run; --runs N, --batch N.
bench-peers: $(STAMP)
	$(BIN)/python benchmarks/bench_peers.py $(BENCH_ARGS)

exercises: $(STAMP)
	$(BIN)/python -m course generate

appendix: $(STAMP)
	$(BIN)/python -m course appendix

# The student edition for a class: make release OUT=../course-student-edition
release: $(STAMP)
	$(BIN)/python -m course release $(OUT) --git

clean:
	rm -rf _build
