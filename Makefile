# The README's two set-up commands are `make demo` and `make test`; each installs what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(VENV)/bin/pip install -q -c constraints.txt
KGREASON_DATA_DIR ?= $(abspath ../shared/data)
export KGREASON_DATA_DIR

.PHONY: install install-test demo test test-only lint bench

$(VENV)/bin/python:
	python3 -m venv $(VENV)

install: $(VENV)/bin/python
	$(PIP_INSTALL) -e '.[plot]'

install-test: $(VENV)/bin/python
	$(PIP_INSTALL) -e '.[test]'

demo: install
	$(VENV)/bin/kgreason demo

test: install-test test-only

test-only:
	$(PY) -m pytest -q -ra

lint:
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/kgreason
