"""Start-up and idle footprint: ``otel-dashboard serve`` from ``Popen`` to its first ``/health`` 200.

    python benchmarks/bench_startup.py [--runs 5] [--idle 2] [--json PATH]

Each run starts ``otel-dashboard serve --db <a new temporary file>`` (the default SQLite store, empty)
on a free loopback port, polls ``GET /health`` every 10 ms from the moment of ``Popen`` until the
first 200, then leaves the server idle for ``--idle`` seconds and reads its resident memory (VmRSS of
/proc/<pid>/status), and stops it (SIGTERM; killed if it does not exit in 10 s). The table shows the
median and the range of the runs. Targets: < 1 s to the first 200, < 60 MB idle.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument, free_port, stop_process
from loadgen import proc_rss_bytes

TARGET_SECONDS = 1.0
TARGET_MB = 60.0


def _command(port: int, db: str) -> list[str]:
    """The installed ``otel-dashboard`` script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("otel-dashboard")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "otel_dashboard"]
    # OTLP/gRPC on (serve's default), on a free port rather than 4317.
    return [*base, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(free_port()),
            "--db", db, "--log-level", "warning"]


def _health_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def one_run(idle_seconds: float, timeout: float = 20.0) -> tuple[float, float]:
    """(seconds from Popen to the first /health 200, idle RSS in MB)."""
    tmp = tempfile.mkdtemp(prefix="bench-startup-")
    port = free_port()
    proc = None
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(_command(port, os.path.join(tmp, "events.db")), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout
        while not _health_ok(port):
            if proc.poll() is not None or time.perf_counter() > deadline:
                detail = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                raise RuntimeError(f"serve did not answer /health: {detail}")
            time.sleep(0.01)
        ready = time.perf_counter() - t0
        time.sleep(idle_seconds)
        rss = proc_rss_bytes(proc.pid) / 2**20
        return ready, rss
    finally:
        if proc is not None:
            stop_process(proc)
        if proc is not None and proc.stderr is not None:
            with contextlib.suppress(OSError):
                proc.stderr.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before reading the RSS")
    add_json_argument(parser)
    args = parser.parse_args()
    started = time.monotonic()
    record = Record(args, ("orjson", "opentelemetry-sdk"))
    print(record.facts())
    shown = " ".join(_command(0, "<tmp>/events.db")).replace("--port 0", "--port <free>")
    print(f"{args.runs} runs of `{shown}` (a new empty SQLite file each); /health polled every 10 ms "
          f"from Popen; RSS after {args.idle:g} s idle\n")
    readies, rsss = [], []
    for _ in range(args.runs):
        ready, rss = one_run(args.idle)
        readies.append(ready)
        rsss.append(rss)
    ready_med, rss_med = statistics.median(readies), statistics.median(rsss)
    print(record.table("startup", ["measure", "median", "min", "max", "target", "met"], [
        ["Popen -> first /health 200 (s)", f"{ready_med:.3f}", f"{min(readies):.3f}", f"{max(readies):.3f}",
         f"< {TARGET_SECONDS:g} s", "yes" if ready_med < TARGET_SECONDS else "NO"],
        [f"idle RSS after {args.idle:g} s (MB)", f"{rss_med:.1f}", f"{min(rsss):.1f}", f"{max(rsss):.1f}",
         f"< {TARGET_MB:g} MB", "yes" if rss_med < TARGET_MB else "NO"],
    ], raw=[
        {"measure": "ready_seconds", "median": ready_med, "runs": readies, "target_below": TARGET_SECONDS,
         "met": ready_med < TARGET_SECONDS},
        {"measure": "idle_rss_mb", "median": rss_med, "runs": rsss, "target_below": TARGET_MB,
         "met": rss_med < TARGET_MB},
    ]))
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
