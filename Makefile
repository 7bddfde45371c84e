# Two commands do everything on a fresh clone:
#   make demo   builds a demo ledger on SQLite (demo.db) and tours it
#   make test   lint, types and the whole test suite on SQLite and PostgreSQL
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint types unit bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/ledger --db demo.db demo

test: $(BIN)/.installed
	.ci/ensure-postgres
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(BIN)/.installed
	$(BIN)/ruff check .

types: $(BIN)/.installed
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python bench/write_path.py

clean:
	rm -rf $(VENV) demo.db* .pytest_cache .mypy_cache .ruff_cache
