# Two commands on a fresh machine: `make run` and `make test` (each installs what it needs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench bench-inbound bench-outbound bench-memory bench-postgres bench-backup bench-zns bench-cluster bench-all clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/feedbot run

test: $(BIN)/.installed
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/python bench/csat_pipeline.py

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# The issue-7 figures: inbound vs PTB's webhook dispatch, outbound drain (~8 min), memory.
bench-inbound: $(BIN)/.bench-installed
	$(BIN)/python bench/inbound_vs_ptb.py

bench-outbound: $(BIN)/.installed
	$(BIN)/python bench/outbound_drain.py

bench-backup: $(BIN)/.installed
	$(BIN)/python bench/backup.py

bench-zns: $(BIN)/.installed
	$(BIN)/python bench/zns_routes.py

bench-memory: $(BIN)/.installed
	$(BIN)/python bench/memory.py

# One instance on PostgreSQL (the local server) vs SQLite, and db copy's cost.
bench-postgres: $(BIN)/.installed
	$(BIN)/python bench/postgres.py

bench-cluster: $(BIN)/.installed
	$(BIN)/python bench/cluster.py

bench-all: bench bench-inbound bench-outbound bench-memory

clean:
	rm -rf $(VENV) *.egg-info
