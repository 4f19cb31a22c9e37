# OpenADS — every command a developer or CI needs. Python 3.11, Debian.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench migrate-check clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/openads demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy models ari_app
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy models ari_app

migrate-check: $(STAMP)
	$(BIN)/python -m bench.migrate_check

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var/ build/ *.egg-info
