# Convenience wrappers around the two README quick-start commands.
PY ?= python3
VENV := .venv

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

.PHONY: install demo test lint
install: $(VENV)/.installed

demo: install
	$(VENV)/bin/reid demo

test: install
	$(VENV)/bin/python -m pytest

lint: install
	$(VENV)/bin/ruff check reidcli tests benchmarks
