# Two commands: `make book` (build the rendered book) and `make test` (library tests + chapter checks).
# Both create .venv from requirements.txt on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HTML   := _build/html/index.html
SOURCES := $(wildcard book/*.ipynb book/*.md book/*.bib book/_static/*.css unrolling_lib/*.py unrolling_lib/*/*.py unrolling_lib/*/*/*.py) _config.yml _toc.yml Makefile

.DELETE_ON_ERROR:
.PHONY: book test lint venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Executes every chapter at the quick profile, offline, and fails on any warning or failing cell.
$(HTML): $(STAMP) $(SOURCES)
	$(PY) -m unrolling_lib stage-assets
	rm -f $(HTML)
	UNROLLING_BOOK_BUILD=1 $(PY) -m unrolling_lib build-book

book: $(HTML)
	@echo "The book is built: open $(CURDIR)/$(HTML) in a browser."

lint: $(STAMP)
	$(VENV)/bin/ruff check unrolling_lib tests

# Library tests, checks on the built pages (the build itself checked every claim at the quick profile),
# then every chapter under nbval at the smoke profile: papermill copies in _build/smoke, seconds each.
test: $(STAMP) lint book
	$(PY) -m unrolling_lib parameterize-chapters _build/smoke --profile smoke
	$(PY) -m pytest tests _build/smoke/*.ipynb --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

clean:
	rm -rf _build book/_mathjax book/_static/plotly.min.js
