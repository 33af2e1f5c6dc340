"""The history API and ``resume`` against 1,000,000 stored events: is the server still responsive?

    python benchmarks/bench_history.py [--events 1000000] [--seconds 8] [--json PATH]

It generates an SQLite event database of ``--events`` realistic events (``tests/bigdb_support.py``:
300 agents, 12 services, ten event types; the same generator as the test suite's), starts
``otel-dashboard serve --db <a copy>`` (default options: ``--max-scanned-rows 100000``,
``--max-response-bytes 4194304``) on a free loopback port, and measures:

1. ``GET /health`` (a new connection each, 5 ms apart) idle, then while 10 heavy clients run for
   ``--seconds``: one client per kind of heavy request (a service or severity filter matching
   nothing, 1000 agent names, the biggest pages, ``resume`` from 0 with a filter matching nothing),
   each sending its next request as soon as the last is answered. The load runs in a process of its
   own. Target: ``/health`` p99 < 50 ms under that load.
2. Each kind of request alone (10 in a row): its latency, and what one answer holds.
3. The same requests under the load (from the load's own timings).
4. The migration of a version 1 database of ``--events`` events to version 2 (``docs/operations.md``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test suite's generator
from _common import Record, add_json_argument, dashboard_process
from bigdb_support import HEAVY_REQUESTS, generate_big_db
from loadgen import proc_rss_bytes

_LOAD = Path(__file__).resolve().parent.parent / "tests" / "bigdb_support.py"

TARGET_P99_MILLIS = 50.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def _health(url: str, samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            response.read()
        timings.append((time.perf_counter() - started) * 1000)
        time.sleep(0.005)
    return timings


def _get(url: str) -> tuple[float, dict[str, Any], int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        raw = response.read()
    return (time.perf_counter() - started) * 1000, orjson.loads(raw), len(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long the heavy load runs")
    add_json_argument(parser)
    args = parser.parse_args()
    started = time.monotonic()
    record = Record(args, ("orjson", "opentelemetry-sdk"))
    print(record.facts())
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        facts = generate_big_db(tmp / "big.db", args.events)
        db = tmp / "events.db"
        shutil.copyfile(facts.path, db)
        print(f"{args.events:,} events generated in {facts.seconds:.1f} s "
              f"({(tmp / 'big.db').stat().st_size / 1e6:.0f} MB); serve --db <a copy>, default options\n")
        with dashboard_process("--db", str(db), startup_timeout_seconds=120.0) as (url, proc):
            pid = proc.pid
            _health(url, 10)
            idle = _health(url, 200)
            alone: dict[str, dict[str, Any]] = {}
            for kind, path in HEAVY_REQUESTS.items():
                times, body, size = [], {}, 0
                for _ in range(10):
                    millis, body, size = _get(url + path)
                    times.append(millis)
                alone[kind] = {"p50": statistics.median(times), "max": max(times),
                               "events": len(body["events"]), "bytes": size, "stopped_by": body["stopped_by"]}
            rss_before = proc_rss_bytes(pid)
            load = subprocess.Popen([sys.executable, str(_LOAD), "load", url, str(args.seconds)],
                                    stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            loaded = _health(url, int((args.seconds - 1.0) / 0.0065))
            rss_after = proc_rss_bytes(pid)
            out, _ = load.communicate(timeout=args.seconds + 60)
            under_load: dict[str, dict[str, Any]] = orjson.loads(out)

        rows, raw = [], []
        for name, timings in (("idle", idle), ("10 heavy clients", loaded)):
            p99 = _pct(timings, 0.99)
            rows.append([name, len(timings), f"{_pct(timings, 0.5):.1f}", f"{p99:.1f}", f"{max(timings):.1f}",
                         f"< {TARGET_P99_MILLIS:g}", "yes" if p99 < TARGET_P99_MILLIS else "NO"])
            raw.append({"load": name, "samples": len(timings), "p50_ms": _pct(timings, 0.5), "p99_ms": p99,
                        "max_ms": max(timings), "met": p99 < TARGET_P99_MILLIS})
        print(record.table("health", ["/health", "samples", "p50 ms", "p99 ms", "max ms", "target p99",
                                      "met"], rows, raw))
        print(f"\nserver RSS: {rss_before / 1e6:.0f} MB before the load, {rss_after / 1e6:.0f} MB at its "
              f"end (+{(rss_after - rss_before) / 1e6:.0f} MB)")
        record.extra["rss_mb"] = {"before": rss_before / 1e6, "after": rss_after / 1e6}

        rows, raw = [], []
        for kind, result in alone.items():
            rows.append([kind, f"{result['p50']:.1f}", f"{result['max']:.1f}", result["events"],
                         f"{result['bytes'] / 1024:.0f}", result["stopped_by"] or "-"])
            raw.append({"kind": kind, **result})
        print("\n" + record.table("alone", ["request (alone, 10 in a row)", "p50 ms", "max ms", "events",
                                            "KiB", "stopped_by"], rows, raw))

        rows, raw = [], []
        for kind, result in under_load.items():
            latencies = result["latencies_ms"]
            rows.append([kind, len(latencies), f"{_pct(latencies, 0.5):.0f}", f"{_pct(latencies, 0.99):.0f}",
                         ", ".join(f"{k} x{v}" for k, v in result["statuses"].items())])
            raw.append({"kind": kind, "requests": len(latencies), "p50_ms": _pct(latencies, 0.5),
                        "p99_ms": _pct(latencies, 0.99), "statuses": result["statuses"]})
        print("\n" + record.table("under_load", [f"request (10 clients, {args.seconds:g} s)", "answered",
                                                 "p50 ms", "p99 ms", "answers"], rows, raw))

        v1 = tmp / "v1.db"
        generate_big_db(v1, args.events, schema_version=1)
        from otel_dashboard.store.sqlite import SqliteEventStore

        began = time.perf_counter()
        SqliteEventStore(v1, retention_events=None).close()
        migrate = time.perf_counter() - began
        print("\n" + record.table("migration", ["schema 1 -> 2", "events", "seconds (open, migrate, close)"],
                                  [["service_name column + index", f"{args.events:,}", f"{migrate:.1f}"]],
                                  [{"events": args.events, "seconds": migrate}]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
