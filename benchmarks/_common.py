"""Shared helpers of the benchmark scripts: machine facts, free ports, subprocess servers, tables, and
the ``--json PATH`` record every script can write."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def machine_info(packages: Sequence[str] = ("opentelemetry-sdk", "orjson")) -> dict[str, Any]:
    """The UTC time, cores, CPU model, OS, Python and library versions (aiohttp always among them)."""
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    libraries: dict[str, str | None] = {}
    for name in dict.fromkeys(("aiohttp", *packages)):
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {
        "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "aiohttp": libraries["aiohttp"],
        "libraries": libraries,
    }


def machine_facts(info: dict[str, Any]) -> str:
    """``info`` (from :func:`machine_info`) as the block of text every script prints above its tables."""
    libraries = ", ".join(f"{name} {version or '(not installed)'}"
                          for name, version in info["libraries"].items())
    return "\n".join([
        f"date: {info['utc'].replace('T', ' ').rstrip('Z')} UTC",
        f"machine: {info['cores']} cores, {info['cpu']}, {info['system']}",
        f"python: {info['python']}",
        f"libraries: {libraries}",
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
    with dashboard_process(*args, startup_timeout_seconds=startup_timeout_seconds) as (url, _):
        yield url


@contextlib.contextmanager
def dashboard_process(
    *args: str, startup_timeout_seconds: float = 15.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`dashboard_server`, yielding the base URL and the process (for its pid, its memory)."""
    if "--db" not in args:
        args = ("--db", ":memory:", *args)
    port = free_port()
    # OTLP/gRPC off unless ``args`` ask for it: two benchmark servers at once must not both want 4317.
    cmd = [sys.executable, "-m", "otel_dashboard", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--grpc-port", "0", "--log-level", "warning", *args]
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
        yield url, proc
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


# --------------------------------------------------------------------------- --json PATH
def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="also write the raw results (every row of every table printed, the parameters, "
                             "the machine) to PATH as JSON")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Record:
    """What one benchmark run printed, kept for ``--json PATH`` (:func:`add_json_argument`).

    Every table goes through :meth:`table`, which returns the Markdown to print and keeps the printed
    rows and, row for row, the raw values behind them; :meth:`write` saves them with the command line,
    the parameters and the machine (:func:`machine_info`, the same facts :meth:`facts` prints).
    """

    def __init__(self, args: argparse.Namespace, packages: Sequence[str] = ()) -> None:
        self.args = args
        self.machine = machine_info(packages)
        self.started = time.monotonic()
        self.tables: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}

    def facts(self) -> str:
        return machine_facts(self.machine)

    def table(self, name: str, headers: Sequence[str], rows: Sequence[Sequence[object]],
              raw: Sequence[Any]) -> str:
        """The Markdown of ``rows``, kept with ``raw`` (one item per row: the values it was made from)."""
        if len(raw) != len(rows):
            raise ValueError(f"table {name!r}: {len(rows)} rows but {len(raw)} raw items")
        self.tables.append({"name": name, "headers": [str(h) for h in headers],
                            "rows": [[str(c) for c in row] for row in rows], "raw": list(raw)})
        return table(headers, rows)

    def write(self) -> None:
        """Write the JSON record if ``--json PATH`` was given (and say where)."""
        path = getattr(self.args, "json", None)
        if path is None:
            return
        parameters = {k: (str(v) if isinstance(v, Path) else v)
                      for k, v in vars(self.args).items() if k != "json"}
        record = {
            "benchmark": Path(sys.argv[0]).name,
            "command": shlex.join(["python", *sys.argv]),
            "utc": self.machine["utc"],
            "seconds": round(time.monotonic() - self.started, 1),
            "parameters": parameters,
            "machine": self.machine,
            "tables": self.tables,
            **self.extra,
        }
        text = json.dumps(_finite(record), indent=1, allow_nan=False, default=str)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
        print(f"(raw results: {path})")
