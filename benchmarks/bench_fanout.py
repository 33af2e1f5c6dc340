"""Fan-out: the highest event rate every WebSocket client gets in full, ours next to two baselines.

    python benchmarks/bench_fanout.py [--clients 10,100,1000] [--servers ours,naive,websockets]
                                      [--duration 2] [--grace 0.5] [--budget 240] [--deflate] [--quick]
                                      [--json PATH]

For each number of clients N and each server, the server runs in a subprocess and the load generator
(``loadgen.py``) in another: N WebSocket clients and a producer that POSTs events to the server's
ingest endpoint on a schedule. A step at rate R sends R x ``--duration`` events; it passes when every
event was accepted and every client received every event within ``--grace`` seconds of the last one
being due. The search starts at 100,000/N events/s, doubles while steps pass (halves while they
fail), then bisects (geometric midpoints) until the bracket is within 20% or the server's share of
``--budget`` is spent. The table shows the highest passing rate and the p50/p99 latency (receive
time minus send time, ingest HTTP + server + WebSocket + client) measured at that rate; at 100 clients
also a light-load step (100 events/s for 3 s). Events per frame is what the clients counted: the events
they received over the frames that carried them (ours sends a client what it is behind by as one frame,
the baselines one event a frame); it is shown for the highest passing rate and for the target steps.
Under the tables: ours' highest rate over each baseline's, at each number of clients.

Servers (the same load generator and the same event payload for all three):

* ``ours``: ``otel-dashboard serve --db :memory:`` (timers at their defaults);
* ``naive``: ``baselines/naive_server.py``, the original design's ``for ws in clients: await
  ws.send_str(json.dumps(event))`` in the ingest handler;
* ``websockets``: ``baselines/websockets_server.py``, the ``websockets`` library's ``broadcast()``.

The load generator shares the machine's cores with the server: its CPU share is shown per row.
``--quick`` (the smoke run): ten clients, two fixed rates, one-second steps, every server.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument
from loadgen import LoadGen, proc_cpu_seconds, raise_fd_limit, server_process, server_spec

SERVER_LABELS = {"ours": "ours", "naive": "naive aiohttp loop", "websockets": "websockets broadcast()"}
TARGETS = {100: (10_000, 25.0), 1000: (1_000, 100.0)}  # clients: (events/s, p99 ms)
LIGHT_RATE, LIGHT_CLIENTS, LIGHT_P99_MS = 100, 100, 5.0


def _round_rate(rate: float) -> int:
    """Two significant digits (1,234 -> 1,200), at least 10."""
    if rate < 10:
        return 10
    digits = math.floor(math.log10(rate)) - 1
    return int(round(rate / 10 ** digits) * 10 ** digits)


def _measure(lg: LoadGen, pid: int, rate: float, duration: float, grace: float) -> dict[str, Any]:
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    result = lg.step(rate, duration, grace)
    wall = time.monotonic() - t0
    result["server_cpu_percent"] = round(100 * (proc_cpu_seconds(pid) - cpu0) / wall, 1) if wall else None
    return result


def _search(lg: LoadGen, pid: int, start: float, duration: float, grace: float, deadline: float,
            max_rate: float = 200_000, min_rate: float = 10) -> dict[str, Any]:
    """Doubling (or halving) from ``start``, then geometric bisection, until ``deadline``."""
    lo: tuple[int, dict[str, Any]] | None = None
    hi: tuple[int, dict[str, Any]] | None = None
    steps: list[dict[str, Any]] = []
    rate = _round_rate(start)
    step_seconds = duration + grace + 0.5
    while time.monotonic() + step_seconds < deadline:
        result = _measure(lg, pid, rate, duration, grace)
        steps.append(result)
        if result["ok"]:
            lo = (rate, result)
        else:
            hi = (rate, result)
        if lo is not None and hi is not None:
            if hi[0] <= lo[0] * 1.2:
                break
            nxt = _round_rate(math.sqrt(lo[0] * hi[0]))
            if nxt in (lo[0], hi[0]):
                break
            rate = nxt
        elif lo is not None:
            if rate >= max_rate:
                break
            rate = _round_rate(min(max_rate, rate * 2))
        else:
            if rate <= min_rate:
                break
            rate = _round_rate(max(min_rate, rate / 2))
    return {"pass": lo, "fail": hi, "steps": steps}


def _why(result: dict[str, Any]) -> str:
    if result["connected"] < result["clients"]:
        why = f"only {result['connected']} clients connected"
    elif result["errors"]:
        why = str(result["errors"][0])[:50]
    elif result["sent"] < result["expected"]:
        why = f"producer sent {result['sent']}/{result['expected']} in time"
    else:
        why = (f"{result['complete_clients']}/{result['clients']} clients complete "
               f"(min {result['min_count']}/{result['expected']})")
    return (f"{why} (CPU: server {result.get('server_cpu_percent', 0):.0f}%, "
            f"load gen {result.get('loadgen_cpu_percent') or 0:.0f}%)")


def _load_limited(result: dict[str, Any]) -> bool:
    """The step failed with the load generator saturated and the server not: the figure is a floor."""
    return (result.get("loadgen_cpu_percent") or 0) >= 90 and (result.get("server_cpu_percent") or 0) < 90


def _fmt_rate(found: dict[str, Any]) -> str:
    if found["pass"] is None:
        first = found["fail"][0] if found["fail"] else None
        return f"< {first:,}" if first else "not measured"
    rate = f"{found['pass'][0]:,}"
    if found["fail"] is None:
        return f">= {rate}"
    return f">= {rate} (load gen limit)" if _load_limited(found["fail"][1]) else rate


def _fmt_latency(result: dict[str, Any] | None) -> str:
    if result is None or result.get("p50_ms") is None:
        return "-"
    return f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f}"


def _ratios(results: dict[tuple[int, str], dict[str, Any]], clients_list: list[int],
            servers: list[str]) -> list[dict[str, Any]]:
    """Ours' highest passing rate over each baseline's, per number of clients (where both passed)."""
    out = []
    for n in clients_list:
        ours = results.get((n, "ours"), {}).get("found", {})
        if not ours.get("pass"):
            continue
        floor = ours["fail"] is None or _load_limited(ours["fail"][1])
        for kind in servers:
            base = results[(n, kind)]["found"]
            if kind == "ours" or not base["pass"]:
                continue
            base_floor = base["fail"] is None or _load_limited(base["fail"][1])
            if floor and base_floor:  # two floors: the ratio says nothing
                continue
            ratio = ours["pass"][0] / base["pass"][0]
            text = (f"{n:,} clients: {'>= ' if floor else '<= ' if base_floor else ''}{ratio:.1f}x "
                    f"{SERVER_LABELS.get(kind, kind)} ({ours['pass'][0]:,} / {base['pass'][0]:,})")
            out.append({"clients": n, "baseline": kind, "ratio": round(ratio, 2), "ours_a_floor": floor,
                        "baseline_a_floor": base_floor, "text": text})
    return out


def run_combo(kind: str, clients: int, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    spec = server_spec(kind)
    out: dict[str, Any] = {"server": kind, "clients": clients, "light": None, "target": None,
                           "found": {"pass": None, "fail": None, "steps": []}}
    with server_process(spec.cmd, spec.health_url) as proc, \
            LoadGen(spec.ws_url, spec.ingest_url, clients, deflate=args.deflate) as lg:
        out["connect_seconds"] = lg.ready["connect_seconds"]
        if lg.ready["connected"] < clients:
            out["error"] = f"only {lg.ready['connected']}/{clients} connected: {lg.ready['connect_errors']}"
            return out
        if args.quick:
            steps = [_measure(lg, proc.pid, rate, args.duration, args.grace) for rate in args.quick_rates]
            passing = [(int(s["rate"]), s) for s in steps if s["ok"]]
            failing = [(int(s["rate"]), s) for s in steps if not s["ok"]]
            out["found"] = {"pass": passing[-1] if passing else None,
                            "fail": failing[0] if failing else None, "steps": steps}
            return out
        start = 100_000 / clients
        lg.step(_round_rate(start / 4), 1.0, args.grace)  # warm-up: connections, TCP windows, caches
        if clients == LIGHT_CLIENTS:
            out["light"] = _measure(lg, proc.pid, LIGHT_RATE, 3.0, args.grace)
        if kind == "ours" and clients in TARGETS:  # the target itself, measured as such
            out["target"] = _measure(lg, proc.pid, TARGETS[clients][0], args.duration, args.grace)
        out["found"] = _search(lg, proc.pid, start, args.duration, args.grace, deadline)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100,1000")
    parser.add_argument("--servers", default="ours,naive,websockets")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of events per step")
    parser.add_argument("--grace", type=float, default=0.5,
                        help="seconds after the last event was due by which every client must have it")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for the whole run (about)")
    parser.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 clients, 2 rates, 1 s steps")
    add_json_argument(parser)
    args = parser.parse_args()
    clients_list = [int(n) for n in args.clients.split(",")]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.quick:
        clients_list, args.clients, args.duration, args.quick_rates = [10], "10", 1.0, [200, 2000]
    fd_limit = raise_fd_limit()
    started = time.monotonic()

    record = Record(args, ("orjson", "websockets"))
    print(record.facts())
    print(f"load generator: one separate process (benchmarks/loadgen.py: the clients and the producer) "
          f"on the SAME {os.cpu_count()} cores as the server; its CPU share is in the details. "
          f"Loopback only. fd limit {fd_limit}.")
    print(f"step: {args.duration:g} s of events, every client must have every event {args.grace:g} s "
          f"after the last was due; latency = receive - send time in the load generator"
          f"{'; clients offer permessage-deflate' if args.deflate else ''}\n")

    combos = [(n, kind) for n in clients_list for kind in servers]
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for index, (n, kind) in enumerate(combos):
        remaining = args.budget - (time.monotonic() - started)
        share = max(8.0, remaining / (len(combos) - index))
        deadline = time.monotonic() + share
        t0 = time.monotonic()
        try:
            results[(n, kind)] = run_combo(kind, n, args, deadline)
        except Exception as exc:  # one server failing must not hide the others' figures
            results[(n, kind)] = {"server": kind, "clients": n, "error": f"{type(exc).__name__}: {exc}"[:300],
                                  "light": None, "found": {"pass": None, "fail": None, "steps": []}}
        print(f"  measured {SERVER_LABELS.get(kind, kind)} with {n} clients "
              f"({len(results[(n, kind)]['found']['steps'])} steps, {time.monotonic() - t0:.0f} s)",
              file=sys.stderr, flush=True)

    headers = ["clients"]
    for kind in servers:
        headers += [f"{SERVER_LABELS.get(kind, kind)}: max ev/s", "p50 / p99 ms"]
    rows, raw_rows = [], []
    for n in clients_list:
        row: list[object] = [f"{n:,}"]
        raw: dict[str, Any] = {"clients": n, "step": "highest passing rate"}
        for kind in servers:
            found = results[(n, kind)]["found"]
            best = found["pass"][1] if found["pass"] else None
            row += [_fmt_rate(found), _fmt_latency(best)]
            raw[kind] = {"max_rate": found["pass"][0] if found["pass"] else None, "shown": _fmt_rate(found),
                         "p50_ms": best and best["p50_ms"], "p99_ms": best and best["p99_ms"]}
        rows.append(row)
        raw_rows.append(raw)
        if n == LIGHT_CLIENTS and not args.quick:
            light_row: list[object] = [f"{n:,} at {LIGHT_RATE} ev/s (light load)"]
            raw = {"clients": n, "step": f"light load, {LIGHT_RATE} ev/s"}
            for kind in servers:
                light = results[(n, kind)]["light"]
                ok = "" if light is None or light["ok"] else " (incomplete)"
                light_row += ["", _fmt_latency(light) + ok]
                raw[kind] = {"ok": light and light["ok"], "p50_ms": light and light["p50_ms"],
                             "p99_ms": light and light["p99_ms"]}
            rows.append(light_row)
            raw_rows.append(raw)
    print(record.table("fanout", headers, rows, raw=raw_rows))

    details = []
    for (n, kind), res in results.items():
        found = res["found"]
        best = found["pass"][1] if found["pass"] else None
        fail = found["fail"]
        details.append([
            SERVER_LABELS.get(kind, kind), f"{n:,}", _fmt_rate(found),
            f"{best['max_ms']:.1f}" if best else "-",
            f"{best['server_cpu_percent']:.0f}" if best else "-",
            f"{best['loadgen_cpu_percent']:.0f}" if best else "-",
            f"{best['events_per_frame']}" if best else "-",
            f"{fail[0]:,}: {_why(fail[1])}" if fail else (res.get("error") or "-"),
            len(found["steps"]),
        ])
    print()
    detail_headers = ["server", "clients", "max ev/s", "max ms", "server CPU % (at max)", "load gen CPU %",
                      "events/frame", "first failing rate: why", "steps"]
    print(record.table("fanout details", detail_headers, details, raw=list(results.values())))
    ratios = _ratios(results, clients_list, servers)
    if ratios:
        print("\nours' highest rate over each baseline's: " + "; ".join(r["text"] for r in ratios))
        record.extra["ratios"] = ratios
    print("\ntargets (ours): 100 clients: 10,000 ev/s with p99 <= 25 ms; 1,000 clients: 1,000 ev/s with "
          f"p99 <= 100 ms; light load (100 clients x 100 ev/s): p99 <= {LIGHT_P99_MS:g} ms")
    verdicts, raw_verdicts = [], []
    for n, (rate, p99) in TARGETS.items():
        target = results.get((n, "ours"), {}).get("target")
        if target:
            met = target["ok"] and target["p99_ms"] is not None and target["p99_ms"] <= p99
            verdicts.append(f"{n} clients at {rate:,} ev/s: {'met' if met else 'NOT met'} "
                            f"({'complete' if target['ok'] else _why(target)}, p99 {target['p99_ms']} ms, "
                            f"{target['events_per_frame']} events/frame)")
            raw_verdicts.append({"clients": n, "rate": rate, "p99_limit_ms": p99, "met": met, "step": target})
    light = results.get((LIGHT_CLIENTS, "ours"), {}).get("light")
    if light:
        met = light["ok"] and light["p99_ms"] is not None and light["p99_ms"] <= LIGHT_P99_MS
        verdicts.append(f"light load: {'met' if met else 'NOT met'} (p99 {light['p99_ms']} ms, "
                        f"{light['events_per_frame']} events/frame)")
        raw_verdicts.append({"clients": LIGHT_CLIENTS, "rate": LIGHT_RATE, "p99_limit_ms": LIGHT_P99_MS,
                             "met": met, "step": light})
    if verdicts:
        print("ours, measured at the target rates: " + "; ".join(verdicts))
        record.extra["targets"] = raw_verdicts
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
