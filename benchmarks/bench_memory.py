"""Server memory per idle WebSocket client: 10,000 idle clients that offer permessage-deflate.

    python benchmarks/bench_memory.py [--clients 10000] [--procs 2] [--servers ours,bare,naive,websockets]
                                      [--json PATH]

Each server runs in a subprocess. Its resident memory (VmRSS of /proc/<pid>/status) is read once it
is warm and idle with no client (a few clients have connected, received an event and left, so every
code path a client uses is loaded), then ``--clients`` WebSocket clients connect from ``--procs`` load
processes (``loadgen.py --hold``, aiohttp's client with ``compress=15``: permessage-deflate offered as
browsers do; in batches of 64 concurrent connects, each bounded by a timeout), spread over several
loopback source addresses (a server may limit connections per address), one event is broadcast to all
of them (a browser always gets at least the snapshot), and once idle for 2 s the RSS is read again:
(after - before) / connected clients.

Servers: ``ours`` (``otel-dashboard serve --db :memory:``: permessage-deflate off by default), ``bare``
(a bare aiohttp WebSocket handler, ``compress=False``), ``naive`` (the original design's handler:
aiohttp's default ``compress=True``, so deflate is negotiated) and ``websockets`` (the ``websockets``
library's server with its defaults: deflate negotiated). Target: <= 16 KB per client for ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument
from loadgen import LoadGen, proc_rss_bytes, raise_fd_limit, server_process, server_spec

LABELS = {
    "ours": "ours (otel-dashboard serve)",
    "bare": "bare aiohttp handler (compress=False)",
    "naive": "original design (aiohttp default compress=True)",
    "websockets": "websockets library server (defaults)",
}
TARGET_KB = 16.0
PER_ADDRESS = 2500  # clients per loopback source address (ours allows 4,096 per address by default)


def _post_event(url: str) -> None:
    body = json.dumps({"events": [{"event_type": "quality_score_updated", "severity": "info",
                                   "data": {"agent_id": "researcher-1", "quality_score": 87.5}}]}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _settled_rss(pid: int, seconds: float) -> int:
    """The RSS after ``seconds`` of idleness (the smallest of a few readings in the last second)."""
    time.sleep(max(0.0, seconds - 1.0))
    readings = []
    for _ in range(5):
        readings.append(proc_rss_bytes(pid))
        time.sleep(0.2)
    return min(readings)


def measure(kind: str, clients: int, procs: int, client_impl: str) -> dict[str, Any]:
    spec = server_spec(kind)
    out: dict[str, Any] = {"server": kind}
    with server_process(spec.cmd, spec.health_url) as proc:
        # Warm-up: a few clients connect, get an event, leave.
        with LoadGen(spec.ws_url, spec.ingest_url, 20, deflate=True, client=client_impl,
                     latency_clients=0, hold=True):
            _post_event(spec.ingest_url)
            time.sleep(0.5)
        before = _settled_rss(proc.pid, 2.0)
        loads: list[LoadGen] = []
        t0 = time.monotonic()
        try:
            per_proc = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
            next_ip = 1
            for n in per_proc:
                addresses = max(1, -(-n // PER_ADDRESS))
                ips = [f"127.0.0.{next_ip + i}" for i in range(addresses)]
                next_ip += addresses
                loads.append(LoadGen(spec.ws_url, spec.ingest_url, n, deflate=True, client=client_impl,
                                     latency_clients=0, hold=True, source_ips=ips, ready_timeout=240))
            out["connect_seconds"] = round(time.monotonic() - t0, 1)
            connected = sum(load.ready["connected"] for load in loads)
            out["connected"] = connected
            out["deflate"] = sum(load.ready.get("deflate_negotiated", 0) for load in loads)
            out["connect_errors"] = [e for load in loads for e in load.ready["connect_errors"]][:3]
            _post_event(spec.ingest_url)
            after = _settled_rss(proc.pid, 2.0)
            still = sum(load.command(30, cmd="status")["connected"] for load in loads)
            out["still_connected"] = still
        finally:
            for load in loads:
                load.close()
    out["before_mb"] = before / 2**20
    out["after_mb"] = after / 2**20
    out["per_client_kb"] = (after - before) / 1024 / connected if connected else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=2, help="load processes holding the clients")
    parser.add_argument("--servers", default="ours,bare,naive,websockets")
    parser.add_argument("--client", choices=("aiohttp", "raw"), default="aiohttp",
                        help="the load generator's client (both offer permessage-deflate)")
    parser.add_argument("--quick", action="store_true", help="500 clients, ours and bare only")
    add_json_argument(parser)
    args = parser.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.quick:
        args.clients, servers = 500, ["ours", "bare"]
        args.servers = ",".join(servers)
    fd_limit = raise_fd_limit()
    started = time.monotonic()
    record = Record(args, ("websockets",))
    print(record.facts())
    print(f"{args.clients:,} idle WebSocket clients offering permessage-deflate ({args.client} client), "
          f"held by {args.procs} load processes on the same machine; server RSS from /proc/<pid>/status. "
          f"fd limit {fd_limit}.\n")
    rows = []
    results = {}
    for kind in servers:
        try:
            r = measure(kind, args.clients, args.procs, args.client)
        except Exception as exc:
            r = {"server": kind, "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[kind] = r
        if "error" in r:
            rows.append([LABELS.get(kind, kind), r["error"], "", "", "", "", ""])
            continue
        rows.append([
            LABELS.get(kind, kind), f"{r['connected']:,} ({r['still_connected']:,} at the end)",
            f"{r['deflate']:,}", f"{r['before_mb']:.1f}", f"{r['after_mb']:.1f}",
            f"{r['per_client_kb']:.1f}" if r["per_client_kb"] is not None else "-",
            f"{r['connect_seconds']:.0f}",
        ])
        print(f"  measured {kind} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    print(record.table("memory", ["server", "clients connected", "deflate negotiated", "RSS before MB",
                                  "RSS after MB", "KB per client", "connect s"], rows,
                       raw=[{"label": LABELS.get(kind, kind), **r} for kind, r in results.items()]))
    ours = results.get("ours", {})
    if ours.get("per_client_kb") is not None:
        connected = ours["connected"]
        met = ours["per_client_kb"] <= TARGET_KB and connected >= args.clients
        short = "" if connected >= args.clients else f", only {connected:,} of {args.clients:,} connected"
        print(f"\ntarget: <= {TARGET_KB:g} KB per idle client with {args.clients:,} clients held: "
              f"{'met' if met else 'NOT met'} ({ours['per_client_kb']:.1f} KB{short})")
        record.extra["target"] = {"kb_per_client": TARGET_KB, "clients": args.clients, "met": met}
        if ours.get("connect_errors"):
            print(f"connect errors (first few): {ours['connect_errors']}")
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
