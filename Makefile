# Two commands on a fresh machine with Python 3.11:
#   make book   create .venv, install requirements.txt, build the book into _build/html
#   make test   create .venv, install requirements.txt, run every test (lint, unit, nbval, strict build)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BUILD := $(BIN)/jupyter-book build . -W -n --keep-going

.PHONY: book test lint unit notebooks strict-book figures clean assignments

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

book: $(STAMP)
	$(BUILD)
	@echo "Open _build/html/index.html in a browser."

test: $(TEST_STAMP) lint strict-book assignments unit

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

# Unit tests and nbval (re-executes every lesson and compares the checked outputs) in one run.
unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

strict-book: $(STAMP)
	rm -rf _build
	$(BUILD)

# Course assignments: student and autograder versions of assignments/*.ipynb (otter assign,
# offline) in _build/assignments; never publish the autograder folders.
assignments: $(TEST_STAMP)
	$(BIN)/python assignments/build.py --out _build/assignments

figures: $(STAMP)
	$(BIN)/python -m toymodel.diagrams book/figures

clean:
	rm -rf _build $(VENV)
