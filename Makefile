# The two quick-start commands (make demo, make test) need nothing but python3 on the machine.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
GRPC_PORT ?= 4317

.PHONY: test fuzz demo lint typecheck bench screenshot system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# A second venv with the oldest aiohttp that pyproject.toml accepts (read from it), for the WebSocket
# tests: the broadcaster reaches into aiohttp (otel_dashboard/server/broadcast/transport.py), and so
# does the HTTP connection tracker (server/security/connections.py, tests/test_hostile_http.py), so the
# floor is tested, not only the newest release. pytest-aiohttp 1.1 needs aiohttp 3.11: its last
# release before that is pinned.
MIN_VENV ?= .venv-aiohttp-min
MIN_STAMP := $(MIN_VENV)/.installed-stamp
AIOHTTP_MIN := $(shell sed -n 's/^ *"aiohttp>=\([0-9.]*\)",$$/\1/p' pyproject.toml)
MIN_TESTS := tests/test_broadcast.py tests/test_websocket_server.py tests/test_server_security.py \
	tests/test_hostile_http.py \
	tests/test_perf_smoke.py tests/test_crash_resume.py

$(MIN_STAMP): pyproject.toml
	@test -n "$(AIOHTTP_MIN)" || { echo "no aiohttp>= floor found in pyproject.toml"; exit 1; }
	@test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --quiet -e '.[test]' 'aiohttp==$(AIOHTTP_MIN)' 'pytest-aiohttp==1.0.5'
	@touch $(MIN_STAMP)

system-deps:
	@sh scripts/ensure-system-deps.sh chromium redis-server curl

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy: strict on the model and the public API; pyproject.toml's [tool.mypy] says what and how.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# pytest on TEST_WORKERS processes (pytest-xdist). --dist loadfile keeps a test file on one worker, so
# its module fixtures (a browser, a server) are made once, as in a serial run; every test binds port 0
# and writes under tmp_path, so the workers never collide. TEST_WORKERS=0 runs serially (pytest-xdist's
# -n 0), e.g. to read one failure's output without interleaving.
# The files in SERIAL_TESTS assert latency, render time or memory bounds (a health p99 under load, a
# 10,000-span trace's first render, RSS growth): they run after the others, alone, so a second worker
# never competes with them for the two cores. So does the oldest-aiohttp run (test_perf_smoke is in it).
TEST_WORKERS ?= 2
SERIAL_TESTS := tests/test_hostile_history.py tests/test_perf_smoke.py tests/test_remote.py \
	tests/test_hostile_limits.py tests/test_browser_trace_page.py tests/test_agent_graph.py \
	tests/test_sqlite_store.py tests/test_hostile_http.py
test: $(STAMP) $(MIN_STAMP) system-deps lint typecheck
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile $(addprefix --ignore=,$(SERIAL_TESTS))
	$(VENV)/bin/pytest -q -p no:cacheprovider $(SERIAL_TESTS)
	$(MIN_VENV)/bin/pytest -q -p no:cacheprovider $(MIN_TESTS)

# The property tests (hypothesis) with FUZZ times their examples, random each run: the ingest bodies,
# the OTLP bodies, WebSocket messages, raw HTTP requests and the Redis broker's entries, against real
# servers. Not part of `make test` (minutes, not seconds); tests/fuzz_support.py explains the factor.
FUZZ ?= 20
FUZZ_TESTS := $(shell grep -l '@given' tests/test_*.py)
fuzz: $(STAMP) system-deps
	OTEL_DASHBOARD_FUZZ=$(FUZZ) $(VENV)/bin/pytest -q -p no:cacheprovider -o timeout=3600 \
		--hypothesis-show-statistics $(FUZZ_TESTS)

demo: $(STAMP)
	$(VENV)/bin/otel-dashboard demo --port $(PORT) --grpc-port $(GRPC_PORT)

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
	$(PY) benchmarks/bench_otlp_ingest.py --json $(BENCH_JSON)/otlp_ingest.json
	$(PY) benchmarks/bench_memory.py --json $(BENCH_JSON)/memory.json
	$(PY) benchmarks/bench_startup.py --json $(BENCH_JSON)/startup.json
	$(PY) benchmarks/bench_history.py --json $(BENCH_JSON)/history.json
	$(PY) benchmarks/bench_trace_render.py --json $(BENCH_JSON)/trace_render.json

screenshot: $(STAMP) system-deps
	$(PY) scripts/screenshot.py

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache .ruff_cache .mypy_cache
