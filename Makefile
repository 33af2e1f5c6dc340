# The two quick-start commands (make demo, make test) need nothing but python3 on the machine.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: test demo lint typecheck bench screenshot system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

system-deps:
	@sh scripts/ensure-system-deps.sh chromium redis-server

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy: strict on the model and the public API; pyproject.toml's [tool.mypy] says what and how.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint typecheck
	$(VENV)/bin/pytest

demo: $(STAMP)
	$(VENV)/bin/otel-dashboard demo --port $(PORT)

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

# Benchmarks print tables (docs/benchmarks.md explains them); not part of `make test`. Each also writes
# its raw results as JSON into $(BENCH_JSON) (tmp/ is ignored by git).
BENCH_JSON ?= tmp/bench
bench: $(BENCH_STAMP)
	$(PY) benchmarks/bench_processor.py --json $(BENCH_JSON)/processor.json
	$(PY) benchmarks/bench_fanout.py --json $(BENCH_JSON)/fanout.json
	$(PY) benchmarks/bench_cluster.py --json $(BENCH_JSON)/cluster.json
	$(PY) benchmarks/bench_ingest.py --json $(BENCH_JSON)/ingest.json
	$(PY) benchmarks/bench_memory.py --json $(BENCH_JSON)/memory.json
	$(PY) benchmarks/bench_startup.py --json $(BENCH_JSON)/startup.json

screenshot: $(STAMP) system-deps
	$(PY) scripts/screenshot.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
