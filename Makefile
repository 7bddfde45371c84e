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
	# An independent C2SP tlog-witness/cosignature implementation the tests check the
	# witness against; it declares Python >= 3.12 but runs on 3.11.
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python \
		'aics-tlog==0.2.1' 'aics-witness==0.1.0'
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
