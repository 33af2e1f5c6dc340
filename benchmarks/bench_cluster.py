"""Two replicas: the fan-out of two ``serve --broker`` processes sharing one Redis, next to one process.

    python benchmarks/bench_cluster.py [--clients 1000] [--configs single,replicas,alternating]
                                       [--duration 2] [--grace 0.5] [--budget 180] [--quick] [--json PATH]

It starts its own ``redis-server`` (a free loopback port, ``--save '' --appendonly no``, in a
temporary directory) and measures, with the same load generator and the same rate search as
``bench_fanout.py`` (its functions, imported):

* ``single``: one ``otel-dashboard serve`` without a broker and ``--clients`` WebSocket clients;
* ``replicas``: two ``serve --broker redis://...`` processes on that Redis, half the clients on each,
  the producer POSTing to replica 1 only: every event goes replica 1 -> Redis -> both replicas;
* ``alternating``: the same two replicas, the producer's POSTs going to each replica in turn.

One load generator process holds every client (``--ws-url`` with both replicas' URLs: the clients
are split between them) and the producer, so the latency of the clients of both replicas is taken on
one clock. For each configuration: a 1 s warm-up, then the search from the common rate (1,000
events/s) up or down, as ``bench_fanout.py`` does (doubling or halving, then geometric bisection to
within 20%, or until the configuration's share of ``--budget`` is spent). The table shows the highest
rate every client got in full, the p50/p99 latency at that rate and at the common rate (the search's
first step), and each process's CPU share at the highest rate.

``--quick`` (the smoke run): 2 x 50 clients, two fixed rates (200 and 1,000 events/s), 1 s steps.
Every process it starts (Redis, the replicas, the load generator) is stopped at the end, also when
it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument, free_port, stop_process
from bench_fanout import _fmt_latency, _fmt_rate, _measure, _round_rate, _search, _why
from loadgen import LoadGen, proc_cpu_seconds, raise_fd_limit, server_process, server_spec

CONFIGS = ("single", "replicas", "alternating")
CONFIG_LABELS = {
    "single": "single process",
    "replicas": "2 replicas, producer -> replica 1",
    "alternating": "2 replicas, producer -> both in turn",
}
COMMON_RATE = 1_000  # events/s: the rate every configuration is also shown at, side by side
QUICK_RATES = (200, COMMON_RATE)
_SERVE_ARGS = ("--history", "1000", "--no-token")


# --------------------------------------------------------------------------- Redis
def _redis_ping(port: int) -> bool:
    """Whether a Redis answers PING on the loopback ``port`` (an inline command: no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(executable: str, *,
                 startup_timeout: float = 10.0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run a throwaway ``redis-server`` on a free loopback port; yield the process and its URL.

    Nothing is persisted (no RDB snapshot, no AOF) and its working directory is a temporary one, removed
    afterwards with its log; the process is always stopped (terminated, then killed).

    Raises:
        RuntimeError: it did not answer PING within ``startup_timeout`` (the message has its log).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        log = os.path.join(workdir, "redis.log")
        cmd = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", workdir, "--logfile", log, "--daemonize", "no"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _redis_ping(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    detail = Path(log).read_text(errors="replace")[-2000:] if os.path.exists(log) else ""
                    raise RuntimeError(f"redis-server did not start: {detail}")
                time.sleep(0.02)
            yield proc, f"redis://127.0.0.1:{port}/0"
        finally:
            stop_process(proc)


# --------------------------------------------------------------------------- measuring
class _MeteredLoadGen:
    """A :class:`LoadGen` whose steps also report the CPU share of every process of the configuration.

    ``bench_fanout``'s search drives it as it drives a ``LoadGen`` (it only calls ``step``), so the rate
    search is the same code; the shares land in each result under ``cpu_percent`` (name -> %).
    """

    def __init__(self, lg: LoadGen, pids: dict[str, int]) -> None:
        self.lg = lg
        self.pids = pids

    def step(self, rate: float, duration: float, grace: float, max_inflight: int = 4) -> dict[str, Any]:
        cpu0 = {name: proc_cpu_seconds(pid) for name, pid in self.pids.items()}
        t0 = time.monotonic()
        result = self.lg.step(rate, duration, grace, max_inflight)
        wall = time.monotonic() - t0
        result["cpu_percent"] = {name: round(100 * (proc_cpu_seconds(pid) - cpu0[name]) / wall, 1)
                                 for name, pid in self.pids.items()} if wall > 0 else {}
        return result


def _http_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.loads(response.read()))


def _broker_counters(base_urls: Sequence[str]) -> str:
    """What the replicas' brokers counted (``/stats``): a sanity line under the table."""
    parts = []
    for i, base in enumerate(base_urls, 1):
        try:
            broker = _http_json(base + "/stats").get("broker") or {}
        except (OSError, ValueError) as exc:
            parts.append(f"replica {i}: /stats failed ({type(exc).__name__})")
            continue
        parts.append(f"replica {i}: appended {broker.get('appended_events')}, received "
                     f"{broker.get('received_events')}, provisional {broker.get('provisional_events')}, "
                     f"dropped {broker.get('dropped_events')}, duplicates {broker.get('duplicate_events')}, "
                     f"skipped entries {broker.get('invalid_entries')}")
    return "; ".join(parts)


def _run(config: str, lg: LoadGen, pids: dict[str, int], args: argparse.Namespace,
         deadline: float) -> dict[str, Any]:
    """Warm up, then search (or, ``--quick``, the fixed rates) on connected clients."""
    out: dict[str, Any] = {"config": config, "connect_seconds": lg.ready["connect_seconds"],
                           "found": {"pass": None, "fail": None, "steps": []}}
    if lg.ready["connected"] < lg.ready["clients"]:
        out["error"] = (f"only {lg.ready['connected']}/{lg.ready['clients']} connected: "
                        f"{lg.ready['connect_errors']}")
        return out
    metered = _MeteredLoadGen(lg, pids)
    first_replica = pids["replica 1"] if "replica 1" in pids else pids["server"]
    if args.quick:
        steps = [_measure(metered, first_replica, rate, args.duration, args.grace)  # type: ignore[arg-type]
                 for rate in QUICK_RATES]
        passing = [(int(s["rate"]), s) for s in steps if s["ok"]]
        failing = [(int(s["rate"]), s) for s in steps if not s["ok"]]
        out["found"] = {"pass": max(passing, key=lambda p: p[0]) if passing else None,
                        "fail": min(failing, key=lambda f: f[0]) if failing else None, "steps": steps}
    else:
        metered.step(_round_rate(COMMON_RATE / 4), 1.0, args.grace)  # warm-up: connections, windows, caches
        # The search's first step is the common rate itself: that step is the side-by-side figure.
        out["found"] = _search(metered, first_replica, COMMON_RATE, args.duration,  # type: ignore[arg-type]
                               args.grace, deadline)
    out["common"] = next((s for s in out["found"]["steps"] if int(s["rate"]) == COMMON_RATE), None)
    return out


def run_single(clients: int, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """Configuration ``single``: one ``serve`` without a broker, every client on it."""
    spec = server_spec("ours", extra=_SERVE_ARGS)
    with server_process(spec.cmd, spec.health_url) as proc, \
            LoadGen(spec.ws_url, spec.ingest_url, clients) as lg:
        out = _run("single", lg, {"server": proc.pid, "load gen": lg.pid}, args, deadline)
    out.update({"clients": f"{clients:,}", "replicas": 1})
    return out


def run_replicas(clients: int, configs: Sequence[str], redis_url: str, redis_pid: int,
                 args: argparse.Namespace, deadline_for: Callable[[str], float]) -> dict[str, dict[str, Any]]:
    """Configurations ``replicas`` and ``alternating``: the same two replicas, a load generator each.

    The replicas stay up between the two (only the producer's target changes); a fresh load generator
    connects the clients again for each. ``deadline_for(config)`` is called as each one starts.
    """
    prefix = f"bench{os.getpid()}"
    specs = [server_spec("ours", extra=(*_SERVE_ARGS, "--broker", redis_url, "--broker-prefix", prefix,
                                        "--name", f"replica-{i}"))
             for i in (1, 2)]
    halves = [clients // 2, clients - clients // 2]
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(server_process(spec.cmd, spec.health_url)) for spec in specs]
        for i, spec in enumerate(specs, 1):  # a replica that started degraded would measure nothing useful
            broker = _http_json(spec.health_url).get("broker") or {}
            if not broker.get("connected"):
                raise RuntimeError(f"replica {i} is not connected to Redis: {broker}")
        ws_urls = ",".join(spec.ws_url for spec in specs)
        for config in configs:
            ingest = specs[0].ingest_url if config == "replicas" else ",".join(s.ingest_url for s in specs)
            t0 = time.monotonic()
            deadline = deadline_for(config)
            try:
                with LoadGen(ws_urls, ingest, clients) as lg:
                    pids = {"replica 1": procs[0].pid, "replica 2": procs[1].pid, "redis": redis_pid,
                            "load gen": lg.pid}
                    results[config] = _run(config, lg, pids, args, deadline)
            except Exception as exc:  # one configuration failing must not hide the other's figures
                results[config] = {"config": config, "error": f"{type(exc).__name__}: {exc}"[:300],
                                   "found": {"pass": None, "fail": None, "steps": []}, "common": None}
            results[config].update({"clients": " + ".join(f"{n:,}" for n in halves), "replicas": 2})
            _progress(config, results[config], t0)
        counters = _broker_counters([spec.health_url.rsplit("/", 1)[0] for spec in specs])
        for config in configs:
            results[config]["broker"] = counters
    return results


def _progress(config: str, result: dict[str, Any], t0: float) -> None:
    print(f"  measured {CONFIG_LABELS[config]} ({len(result['found']['steps'])} steps, "
          f"{time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the table
def _cpu(result: dict[str, Any] | None, *names: str) -> str:
    if result is None:
        return "-"
    shares = result.get("cpu_percent") or {}
    values = [shares.get(name) for name in names]
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values)


def _row(result: dict[str, Any]) -> list[object]:
    found = result["found"]
    best = found["pass"][1] if found["pass"] else None
    common = result.get("common")
    at_common = _fmt_latency(common)
    if common is not None and not common["ok"]:
        at_common += " (incomplete)"
    servers = ("server",) if result.get("replicas") == 1 else ("replica 1", "replica 2")
    rate = _fmt_rate(found) if "error" not in result else "error"
    return [CONFIG_LABELS[result["config"]], result.get("clients", "-"), rate, _fmt_latency(best), at_common,
            _cpu(best, *servers), _cpu(best, "redis") if result.get("replicas") == 2 else "-",
            _cpu(best, "load gen")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000,
                        help="clients in all (the replicas get half each)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"some of {', '.join(CONFIGS)}")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of events per step")
    parser.add_argument("--grace", type=float, default=0.5,
                        help="seconds after the last event was due by which every client must have it")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for the whole run (about)")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server",
                        help="the redis-server executable (default: the one on PATH)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 x 50 clients, 200 and 1,000 ev/s, 1 s steps")
    add_json_argument(parser)
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown or not configs:
        parser.error(f"--configs: unknown {', '.join(unknown) or '(none given)'}; choose from {CONFIGS}")
    if args.quick:
        args.clients, args.duration = 100, 1.0
    if not os.access(args.redis_server, os.X_OK):
        print(f"bench_cluster: no redis-server at {args.redis_server!r} (`make system-deps` installs it, "
              f"or pass --redis-server PATH)", file=sys.stderr)
        return 2
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the finally blocks stop Redis and the servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    fd_limit = raise_fd_limit()
    started = time.monotonic()
    redis_version = subprocess.run([args.redis_server, "--version"], capture_output=True, text=True,
                                   check=False, timeout=10).stdout.split(" sha=")[0].strip()

    record = Record(args, ("orjson", "redis"))
    record.machine["redis_server"] = redis_version
    print(record.facts() + f", {redis_version}")
    print(f"load generator: one separate process (benchmarks/loadgen.py: every client and the producer, "
          f"one clock) on the SAME {os.cpu_count()} cores as the servers and Redis. Loopback only. "
          f"fd limit {fd_limit}.")
    print(f"step: {args.duration:g} s of events, every client must have every event {args.grace:g} s "
          f"after the last was due; latency = receive - send time in the load generator, on 10 clients "
          f"spread over the replicas; the producer POSTs to replica 1 unless said otherwise\n")

    not_started = list(configs)
    results: dict[str, dict[str, Any]] = {}

    def deadline_for(config: str) -> float:
        """An equal share of what is left of the budget, fixed when ``config`` starts."""
        left = args.budget - (time.monotonic() - started)
        share = max(8.0, left / max(1, len(not_started)))
        not_started.remove(config)
        return time.monotonic() + share

    if "single" in configs:
        t0 = time.monotonic()
        try:
            results["single"] = run_single(args.clients, args, deadline_for("single"))
        except Exception as exc:  # one configuration failing must not hide the others' figures
            results["single"] = {"config": "single", "clients": f"{args.clients:,}", "replicas": 1,
                                 "error": f"{type(exc).__name__}: {exc}"[:300], "common": None,
                                 "found": {"pass": None, "fail": None, "steps": []}}
        _progress("single", results["single"], t0)
    clustered = [c for c in configs if c != "single"]
    if clustered:
        try:
            with redis_server(args.redis_server) as (redis_proc, redis_url):
                results.update(run_replicas(args.clients, clustered, redis_url, redis_proc.pid, args,
                                            deadline_for))
        except Exception as exc:  # Redis or a replica did not start: say so in the table
            halves = f"{args.clients // 2:,} + {args.clients - args.clients // 2:,}"
            for config in clustered:
                results.setdefault(config, {"config": config, "clients": halves, "replicas": 2,
                                            "error": f"{type(exc).__name__}: {exc}"[:300], "common": None,
                                            "found": {"pass": None, "fail": None, "steps": []}})

    headers = ["configuration", "clients", "max ev/s", "p50 / p99 ms at max",
               f"p50 / p99 ms at {COMMON_RATE:,} ev/s", "server CPU % (each replica)", "redis CPU %",
               "load gen CPU %"]
    print(record.table("cluster", headers, [_row(results[c]) for c in configs],
                       raw=[results[c] for c in configs]))
    print(f"\nAll processes (replicas, Redis, load generator) share the same {os.cpu_count()} cores: the "
          f"two-replica rows measure the coordination cost (every event through Redis, decoded and "
          f"fanned out by each replica), not the scale-out gain of replicas on separate machines. (One "
          f"process uses at most one core; two replicas may use both, less what the load generator "
          f"takes.) CPU shares are over the step at the highest passing rate (100% = one core).")
    for config in configs:
        res = results[config]
        fail = res["found"]["fail"]
        detail = res.get("error") or (f"first failing rate {fail[0]:,}: {_why(fail[1])}" if fail
                                      else "no failing rate reached")
        common = res.get("common")
        # The same work on both sides: what the processes spend at the common rate is the coordination cost.
        if common is not None and common.get("cpu_percent"):
            shares = ", ".join(f"{name} {v:.0f}%" for name, v in common["cpu_percent"].items())
            detail += f"; CPU at {COMMON_RATE:,} ev/s: {shares}"
        print(f"- {CONFIG_LABELS[config]}: {detail}; {len(res['found']['steps'])} steps"
              + (f"; connect {res['connect_seconds']} s" if "connect_seconds" in res else ""))
    broker = next((results[c]["broker"] for c in clustered if results[c].get("broker")), None)
    if broker:
        print(f"- brokers at the end: {broker}")
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
