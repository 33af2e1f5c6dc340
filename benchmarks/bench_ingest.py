"""Durable ingest: sustained ``POST /api/events`` (batches of 100) into SQLite and out to 10 clients.

    python benchmarks/bench_ingest.py [--duration 10] [--concurrency 4] [--batch 100] [--clients 10]
                                      [--json PATH]

``otel-dashboard serve`` runs in a subprocess, once with its default store, SQLite (a temporary
``--db`` file; every answer waits until the events are committed), once with ``--db :memory:`` for
comparison. A separate load process (``loadgen.py --flood``) keeps ``--concurrency`` connections
POSTing batches of ``--batch`` events as fast as the server answers for ``--duration`` seconds, while
``--clients`` WebSocket clients receive. Reported: events/s accepted (answered 200 by the end of the
POSTs), events/s delivered as the clients measured it (each client counts the events it receives and
stamps the arrival of the last one: the events every client received over the time from the start
until the last client's last one arrived), the POST round trip, and both processes' CPU. The load
generator shares the machine's cores with the server. Target: >= 50,000 events/s accepted and
delivered with SQLite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument
from loadgen import LoadGen, proc_cpu_seconds, proc_rss_bytes, raise_fd_limit, server_process, server_spec

TARGET = 50_000


def run(db: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = server_spec("ours", db=db)
    with server_process(spec.cmd, spec.health_url) as proc, \
            LoadGen(spec.ws_url, spec.ingest_url, args.clients, latency_clients=2) as lg:
        if lg.ready["connected"] < args.clients:
            raise RuntimeError(f"only {lg.ready['connected']}/{args.clients} clients connected")
        lg.flood(1.0, args.batch, args.concurrency, grace=10.0)  # warm-up
        cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
        result = lg.flood(args.duration, args.batch, args.concurrency, grace=args.grace)
        wall = time.monotonic() - t0
        result["server_cpu_percent"] = round(100 * (proc_cpu_seconds(proc.pid) - cpu0) / wall, 1)
        result["server_rss_mb"] = round(proc_rss_bytes(proc.pid) / 2**20, 1)
    if db != ":memory:":
        result["db_mb"] = round(sum(os.path.getsize(p) for p in Path(db).parent.glob(Path(db).name + "*"))
                                / 2**20, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4, help="POSTing connections")
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--clients", type=int, default=10, help="WebSocket clients receiving")
    parser.add_argument("--grace", type=float, default=15.0,
                        help="seconds after the last POST for every client to have every event")
    parser.add_argument("--quick", action="store_true", help="2-second runs")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.duration = 2.0
    raise_fd_limit()
    started = time.monotonic()
    record = Record(args, ("orjson",))
    print(record.facts())
    print(f"load: one separate process, {args.concurrency} connections POSTing batches of {args.batch} "
          f"events as fast as answered for {args.duration:g} s, {args.clients} WebSocket clients "
          f"receiving; it shares the {os.cpu_count()} cores with the server. Loopback only.\n")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for label, db in (("SQLite (default store)", os.path.join(tmp, "events.db")),
                          ("--db :memory:", ":memory:")):
            try:
                results[label] = run(db, args)
            except Exception as exc:  # show the other configuration's figures anyway
                results[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    rows = []
    for label, r in results.items():
        if "error" in r:
            rows.append([label, r["error"], "", "", "", "", "", "", ""])
            continue
        delivered = f"{r['delivered_per_second']:,}" if r["delivered_per_second"] else "none"
        if r["delivered"] < r["published"]:
            delivered += f" (short: {r['delivered']:,} of {r['published']:,} events)"
        last = f"{r['delivered_seconds']:.2f}" if r["delivered_seconds"] else "-"
        rows.append([
            label, f"{r['accepted_per_second']:,}", delivered, f"{r['duration']:.2f} / {last}",
            f"{r['post_p50_ms']:.1f} / {r['post_p99_ms']:.1f}",
            f"{r['server_cpu_percent']:.0f}", f"{r['loadgen_cpu_percent']:.0f}",
            f"{r['server_rss_mb']}" + (f" (db {r['db_mb']} MB)" if "db_mb" in r else ""),
            ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())),
        ])
    print(record.table("ingest", [
        "store", "accepted ev/s", f"delivered ev/s (at each of {args.clients} clients)",
        "last POST answered / last event received s", "POST p50 / p99 ms", "server CPU %", "load gen CPU %",
        "server RSS MB", "answers"], rows, raw=[{"store": label, **r} for label, r in results.items()]))
    sqlite = results.get("SQLite (default store)", {})
    if "accepted_per_second" in sqlite:
        met = (sqlite["accepted_per_second"] >= TARGET and (sqlite["delivered_per_second"] or 0) >= TARGET
               and sqlite["delivered"] >= sqlite["published"])
        print(f"\ntarget: >= {TARGET:,} events/s accepted and delivered with SQLite: "
              f"{'met' if met else 'NOT met'}")
        record.extra["target"] = {"events_per_second": TARGET, "store": "SQLite (default store)", "met": met}
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
