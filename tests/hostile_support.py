"""Helpers for the hostile-input tests: a real ``otel-dashboard serve`` subprocess on a loopback port,
its resident memory, and how fast it answers ``/health`` while it is under attack.

Every attack test starts its own server (default options unless it says otherwise), runs the attack
against it over real sockets on 127.0.0.1, and asserts a bound: memory growth, ``/health`` latency,
the status code or close code, nothing committed, the server still serving.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from server_support import read_line_matching

__all__ = ["ServeProcess", "get_json", "health_latency_millis", "http", "serve_process"]

STARTUP_TIMEOUT = 30.0  # a loaded 2-core machine can be slow to import aiohttp (and open a big db)
STOP_TIMEOUT = 10.0
_URL_RE = re.compile(r"otel-dashboard serving on (https?://\S+)/dashboard")


class ServeProcess:
    """A running ``serve``: its process, its base URL (``http://127.0.0.1:PORT``) and its stderr so far."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        host_port = url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)

    def rss_bytes(self) -> int:
        """The process's resident memory now (``VmRSS``)."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/PID/status")

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def serve_process(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                  db: str | None = None) -> Iterator[ServeProcess]:
    """``otel-dashboard serve --port 0`` with its database in ``tmp_path`` (or ``db``), default options
    otherwise; killed (and its output collected) on exit. Its stderr goes to ``tmp_path/serve.log``."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": str(tmp_path / "data")}
    environment.pop("OTEL_DASHBOARD_TOKEN", None)
    environment.update(env or {})
    log = open(tmp_path / "serve.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_dashboard", "serve", "--port", "0", "--log-level", "warning",
         "--db", db if db is not None else str(tmp_path / "events.db"), *args],
        stdout=subprocess.PIPE, stderr=log, text=True, env=environment,
    )
    try:
        url = read_line_matching(proc, _URL_RE, STARTUP_TIMEOUT).group(1)
        yield ServeProcess(proc, url)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)
        log.close()


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request with the standard library: status, headers, body (4xx/5xx included)."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str, timeout: float = 10.0) -> Any:
    status, _, body = http("GET", url, timeout=timeout)
    assert status == 200, (status, body[:300])
    return orjson.loads(body)


def health_latency_millis(base_url: str, *, samples: int, interval_seconds: float = 0.02) -> list[float]:
    """``samples`` timings of ``GET /health`` (milliseconds, each on a new connection), sorted."""
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        status, _, _ = http("GET", base_url + "/health", timeout=10.0)
        timings.append((time.perf_counter() - start) * 1000)
        assert status == 200
        time.sleep(interval_seconds)
    return sorted(timings)
