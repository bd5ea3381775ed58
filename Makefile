# One entry point for readers, teachers and CI. `make book` and `make test` are the
# README's two commands; both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: book book-force test browser-check linkcheck bench-book bench exercises appendix clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

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

exercises: $(STAMP)
	$(BIN)/python -m course generate

appendix: $(STAMP)
	$(BIN)/python -m course appendix

clean:
	rm -rf _build
