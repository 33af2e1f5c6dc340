"""OTLP ingest, both transports side by side: agent traces over OTLP/HTTP (protobuf) and OTLP/gRPC.

    python benchmarks/bench_otlp_ingest.py [--duration 5] [--concurrency 4] [--spans 100] [--json PATH]

For each transport, a fresh ``otel-dashboard serve --db :memory:`` in a subprocess (listening on both
ports; its ingest rate limit raised out of the way: this measures the receivers, not the limiter).
The same pre-built requests, each a whole agent trace of ``--spans`` spans (``big_trace.py``'s shape:
agents, model calls with tokens, tools), are sent for ``--duration`` seconds by ``--concurrency``
concurrent callers: as ``POST /v1/traces`` (aiohttp, keep-alive), then as ``TraceService/Export``
calls (one ``grpc.aio`` channel, the way an SDK exporter multiplexes). Each request carries a trace
of its own (fresh trace ids, built before the clock starts; the server maps each span as it would a
real one). Reported per transport: spans/s accepted (answered 200 / OK), requests/s, the round trip's
p50 / p99, and the server's CPU. The callers run in this process and share the machine's cores with
the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument, free_port
from big_trace import big_trace, otlp_bodies
from loadgen import proc_cpu_seconds, server_process

from otel_dashboard.model.otlp import SIGNALS, decode_body

TRACES_METHOD = SIGNALS["traces"].grpc_method


def build_requests(count: int, spans: int, *, first: int = 0) -> list[bytes]:
    """``count`` serialized ``ExportTraceServiceRequest`` of one ``spans``-span trace each, every one
    with trace ids of its own (numbered from ``first``): one trace is built, and its 16-byte trace
    id, which the protobuf encoding carries as it is in every span, is replaced per request."""
    template_id = bytes.fromhex("be9c" * 8)
    trace, _ = big_trace(spans, template_id.hex(), workers=max(1, spans // 25))
    body = next(otlp_bodies(trace, service="bench-otlp", per_request=spans))
    message, _ = decode_body(body, content_type="application/json", content_encoding=None,
                             max_decoded_bytes=64 * 1024 * 1024)
    template = message.SerializeToString()
    return [template.replace(template_id, (0xbe9c << 112 | first + i).to_bytes(16, "big"))
            for i in range(count)]


async def _drive(send: Any, requests: list[bytes], concurrency: int, duration: float) -> dict[str, Any]:
    """Call ``send(body)`` from ``concurrency`` callers until ``duration`` s have passed or the
    requests run out; each caller takes the next unsent request."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    cursor = iter(range(len(requests)))
    deadline = time.monotonic() + duration

    async def caller() -> None:
        for index in cursor:
            if time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            try:
                await send(requests[index])
            except Exception as exc:  # counted and shown: a failing run says so rather than stopping
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall = time.monotonic() - started
    return {"requests": len(latencies), "wall_seconds": wall, "latencies": latencies, "failures": failures,
            "ran_out": len(latencies) + sum(failures.values()) >= len(requests)}


async def run_http(url: str, requests: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    # Bounded like the gRPC calls: a stuck server ends the run in 30 s, not aiohttp's default 5 min.
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def send(body: bytes) -> None:
            async with session.post(url + "/v1/traces", data=body,
                                    headers={"Content-Type": "application/x-protobuf"}) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")

        await send(requests[-1])  # warm-up: the connection, the first mapping
        return await _drive(send, requests[:-1], args.concurrency, args.duration)


async def run_grpc(target: str, requests: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(TRACES_METHOD)

        async def send(body: bytes) -> None:
            await call(body, timeout=30)

        await send(requests[-1])
        return await _drive(send, requests[:-1], args.concurrency, args.duration)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per transport")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent callers")
    parser.add_argument("--spans", type=int, default=100, help="spans per request (one trace)")
    parser.add_argument("--max-requests", type=int, default=5000,
                        help="requests built per transport (a run that uses them all ends early, and "
                             "says so)")
    parser.add_argument("--quick", action="store_true", help="2-second runs")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.duration = 2.0
    started = time.monotonic()
    record = Record(args, ("grpcio", "aiohttp", "protobuf"))
    print(record.facts())
    print(f"load: this process, {args.concurrency} concurrent callers per transport, one {args.spans}-span "
          f"agent trace per request, {args.duration:g} s each; it shares the {os.cpu_count()} cores with "
          "the server. Loopback only.\n")
    pools = {name: build_requests(args.max_requests + 1, args.spans, first=n * (args.max_requests + 1))
             for n, name in enumerate(("OTLP/HTTP", "OTLP/gRPC"))}
    results: dict[str, dict[str, Any]] = {}
    for name, runner in (("OTLP/HTTP", run_http), ("OTLP/gRPC", run_grpc)):
        http_port, grpc_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "otel_dashboard", "serve", "--host", "127.0.0.1", "--port",
               str(http_port), "--grpc-port", str(grpc_port), "--db", ":memory:", "--log-level", "warning",
               "--ingest-rate", "100000000"]
        where = f"http://127.0.0.1:{http_port}" if runner is run_http else f"127.0.0.1:{grpc_port}"
        try:
            with server_process(cmd, f"http://127.0.0.1:{http_port}/health") as proc:
                cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
                result = asyncio.run(runner(where, pools[name], args))
                result["server_cpu_percent"] = round(100 * (proc_cpu_seconds(proc.pid) - cpu0)
                                                     / (time.monotonic() - t0), 1)
        except Exception as exc:  # show the other transport's figures anyway
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        results[name] = result
    rows, raw = [], []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, r["error"], "", "", "", ""])
            raw.append({"transport": name, **r})
            continue
        latencies = sorted(r.pop("latencies"))
        p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
        p99 = (latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies
               else float("nan"))
        per_second = r["requests"] / r["wall_seconds"] if r["wall_seconds"] else 0.0
        failed = ", ".join(f"{k}: {v}" for k, v in r["failures"].items()) or "none"
        rows.append([name, f"{per_second * args.spans:,.0f}", f"{per_second:,.1f}", f"{p50:.1f} / {p99:.1f}",
                     f"{r['server_cpu_percent']:.0f}",
                     failed + (" (used every built request: raise --max-requests)" if r["ran_out"] else "")])
        raw.append({"transport": name, "spans_per_second": per_second * args.spans,
                    "requests_per_second": per_second, "p50_ms": p50, "p99_ms": p99, **r})
    print(record.table("otlp_ingest", ["transport", "spans/s accepted", "requests/s", "p50 / p99 ms",
                                       "server CPU %", "failures"], rows, raw=raw))
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
