# Two commands do everything on a fresh clone:
#   make demo   builds a demo ledger on SQLite (demo.db) and tours it
#   make test   lint, types and the whole test suite on SQLite and PostgreSQL
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint types unit bench fuzz clean

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
	rm -f demo.db demo.db-wal demo.db-shm demo.db.signing-key demo.db.signing-key.*.old
	$(BIN)/ledger --db demo.db demo

test: $(BIN)/.installed
	.ci/ensure-postgres
	.ci/ensure-chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(BIN)/.installed
	$(BIN)/ruff check .

types: $(BIN)/.installed
	$(BIN)/mypy

# The fuzzer's long run: LEDGER_FUZZ_EXAMPLES random examples per test and store (the
# suite runs a short deterministic one). FUZZ_STORES=sqlite limits it to one store.
LEDGER_FUZZ_EXAMPLES ?= 5000
FUZZ_STORES ?= sqlite or postgres
fuzz: $(BIN)/.installed
	.ci/ensure-postgres
	LEDGER_FUZZ_EXAMPLES=$(LEDGER_FUZZ_EXAMPLES) $(BIN)/pytest tests/commands/test_fuzz.py \
		-o timeout=0 -q -s -k "$(FUZZ_STORES)"

bench: $(BIN)/.installed
	$(BIN)/python bench/write_path.py

clean:
	rm -rf $(VENV) demo.db* .pytest_cache .mypy_cache .ruff_cache
