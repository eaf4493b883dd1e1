# Every target works from a fresh clone: the virtualenv at .venv is created when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TINY_MODEL := .cache/tiny-model

.PHONY: demo test test-long bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# The pip bundled with Python 3.11 backtracks for many minutes on these pins.
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[worker,operator,dev]'
	touch $@

$(TINY_MODEL)/config.json: $(STAMP)
	$(BIN)/worker make-tiny-model $(TINY_MODEL)

demo: $(STAMP) $(TINY_MODEL)/config.json
	$(BIN)/python examples/offline_demo.py --model $(TINY_MODEL)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

test-long: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/worker bench

clean:
	rm -rf $(VENV) .cache
