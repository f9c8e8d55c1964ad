# Two commands on a fresh machine with Python 3.11 and Node.js/npm:
#   make book   create .venv, install requirements.txt (+ MathJax from npm), build the book into _build/html
#   make test   also install requirements-test.txt and Chromium (apt-get, where missing), then run every
#               test: lint, the strict book build, unit tests, the lessons' checked outputs, and the
#               browser tests on the build
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
NODE_STAMP := node_modules/.installed
BUILD := $(BIN)/jupyter-book build . -W -n --keep-going
# `sudo` only where we are not root and it exists
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: lm book test site-lane tests-lane lint unit native other-kernels jitter notebooks strict-book browser browser-deps figures clean assignments colab book-nosolutions grade-class

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

# MathJax 3, served by the site itself (package.json / package-lock.json; never committed)
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js and npm (Debian/Ubuntu: apt-get install npm)"; exit 1; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

book: $(STAMP) $(NODE_STAMP)
	$(BUILD)
	@echo "Open _build/html/index.html in a browser."

# `make test` runs every test file once: the lessons and the numeric files (KERNEL_TESTS) with the
# last bits moved (other-kernels), every other file on this CPU's own kernels (native). After lint,
# two lanes of about equal length run side by side (no step keeps both cores busy all the time):
# the website and Colab (strict build, assignments, browser tests, Colab-like run) and the tests
# (native, other-kernels). `make test LANES=1` runs the same steps one after another.
LANES ?= 2
test: $(TEST_STAMP) $(NODE_STAMP) lint
	$(MAKE) -j$(LANES) --output-sync=target --no-print-directory site-lane tests-lane

site-lane: $(TEST_STAMP) $(NODE_STAMP)
	$(MAKE) -j1 --no-print-directory strict-book assignments browser colab
	@echo "site lane: strict build, assignments, browser tests and Colab-like run passed"

tests-lane: $(TEST_STAMP)
	$(MAKE) -j1 --no-print-directory native other-kernels
	@echo "tests lane: native and other-kernel tests passed"

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks tools book/_ext

# Unit tests and nbval (re-executes every lesson and compares the checked outputs) in one run, on
# this CPU's own kernels: what a developer runs while working.
unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests notebooks --ignore=tests/browser --nbval-lax --nbval-current-env -p no:cacheprovider

# The unit tests that other-kernels does not run (it runs the rest, and the lessons).
native: $(TEST_STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/browser $(addprefix --ignore=,$(KERNEL_TESTS)) \
	  -p no:cacheprovider

# The retraining checks, every test with a float tolerance, and every lesson executed once with its
# exercise solutions and its checked outputs compared with the commit by nbval's rule
# (tests/test_lesson_solutions.py, in place of a second nbval run), with the last bits of every
# result moved three ways at once, so a tolerance or a printed digit that holds on one CPU only
# fails here, not on a reader's laptop (docs-dev/KERNEL_SPREAD.md): torch's portable kernels
# (ATEN_CPU_CAPABILITY=default), MKL's reproducibility path (MKL_CBWR=COMPATIBLE), and every weight
# read from a shipped file moved by about one float32 rounding unit (TOYMODEL_WEIGHT_JITTER=1e-7,
# seeded). tests/test_kernels.py and tests/test_jitter.py check that the settings took effect;
# tests/test_notebook_digits.py is the static side of the rule.
KERNEL_TESTS := tests/test_kernels.py tests/test_jitter.py tests/test_train.py tests/test_induction.py \
	tests/test_widgets.py tests/test_webfigs.py tests/test_glued_values.py tests/test_glued_composition.py \
	tests/test_experiments.py tests/test_lesson_solutions.py tests/test_glued_language.py
LAST_BITS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE TOYMODEL_WEIGHT_JITTER=1e-7
other-kernels: $(TEST_STAMP)
	$(LAST_BITS) $(BIN)/python -m pytest $(KERNEL_TESTS) -p no:cacheprovider

# The weight jitter alone (with MKL_CBWR), on the lessons and the glued numbers: a quicker check
# while fixing a printed digit.
JITTER_TESTS := tests/test_jitter.py tests/test_glued_values.py tests/test_glued_composition.py \
	tests/test_glued_language.py
jitter: $(TEST_STAMP)
	TOYMODEL_WEIGHT_JITTER=1e-7 MKL_CBWR=COMPATIBLE $(BIN)/python -m pytest $(JITTER_TESTS) notebooks \
	  --nbval-lax --nbval-current-env -p no:cacheprovider

strict-book: $(STAMP) $(NODE_STAMP)
	rm -rf _build
	$(BUILD)

# Every lesson as Colab runs it: a wheel of the checkout installed by the lesson's own first
# cell into a runtime-like environment (ipywidgets 7.7.1; cached in ~/.cache/toymodel-colab),
# with safetensors/tqdm preinstalled (every lesson) and without them (lesson 02, which needs both;
# the install cell is the same in every lesson); checked outputs compared with the commit.
colab: $(STAMP)
	$(BIN)/python tests/colab/run_colab_like.py --b-notebooks notebooks/02_one_layer_model.ipynb

# Course assignments: student and autograder versions of assignments/*.ipynb (otter assign,
# offline) in _build/assignments; never publish the autograder folders.
assignments: $(TEST_STAMP)
	$(BIN)/python assignments/build.py --out _build/assignments

# Grade a class offline with otter (book/instructor.md): one folder per assignment under
# SUBMISSIONS, one notebook per student; results, feedback and gradebook.csv go to OUT.
SUBMISSIONS ?= submissions
OUT ?= _build/grades
grade-class: assignments
	$(BIN)/python -m tools.grade_class $(SUBMISSIONS) --out $(OUT)

# Every built page in Chromium with the network blocked (needs the build of strict-book or book);
# screenshots go to _build/screenshots/.
browser: $(TEST_STAMP) browser-deps
	TOYMODEL_REQUIRE_SITE=1 $(BIN)/python -m pytest tests/browser -p no:cacheprovider

browser-deps:
	@[ -n "$$CHROMIUM" ] || [ -x /usr/bin/chromium ] || command -v chromium >/dev/null || { \
	  if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || [ -n "$(SUDO)" ]; }; then \
	    echo "Installing Debian's chromium with apt-get (about 30 s)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; \
	  else \
	    echo "The browser tests need Chromium at /usr/bin/chromium and cannot install it here" \
	         "(no apt-get, or not root and no sudo). Install Chromium, or set CHROMIUM=/path/to/chromium."; \
	    exit 1; \
	  fi; }

# The book with every solution hidden (an edition for a course): _build/nosolutions/_build/html.
book-nosolutions: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m tools.hide_solutions --out _build/nosolutions

figures: $(STAMP)
	$(BIN)/python -m tools.diagrams book/figures

clean:
	rm -rf _build $(VENV) node_modules

# rebuild the shipped language models (maintainer command; downloads the pinned corpus with pip)
lm: $(STAMP)
	$(BIN)/python tools/build_lm.py --models one_layer two_layer two_layer_plain one_layer_plain
