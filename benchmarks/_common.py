"""Shared helpers of the benchmark scripts: machine facts, free ports, subprocess servers, tables."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any


def machine_facts(packages: Sequence[str] = ("opentelemetry-sdk", "aiohttp", "orjson")) -> str:
    """One block of text: date, cores, CPU model, Python, library versions."""
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return "\n".join([
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}",
        "libraries: " + ", ".join(versions),
    ])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dashboard_server(*args: str, startup_timeout_seconds: float = 15.0) -> Iterator[str]:
    """Run ``otel-dashboard serve`` on a free loopback port in a subprocess; yield its base URL.

    History stays in memory unless ``args`` name a ``--db``: a benchmark never writes to the user's
    own database (``serve``'s default file)."""
    if "--db" not in args:
        args = ("--db", ":memory:", *args)
    port = free_port()
    cmd = [sys.executable, "-m", "otel_dashboard", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_seconds
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    detail = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                    raise RuntimeError(f"server did not start: {detail}") from None
                time.sleep(0.05)
        yield url
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate ``proc`` if it still runs; kill it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (what docs/benchmarks.md shows)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)
