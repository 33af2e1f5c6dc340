"""Helpers for tests against a real dashboard server on a loopback port, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType

from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

__all__ = ["WAIT", "EventStream", "make_certificate", "of_type", "read_line_matching", "running_server"]

WAIT = 10.0  # generous bound for any single wait; the tests normally take milliseconds


@asynccontextmanager
async def running_server(
    state: DashboardState | None = None, **options: Any
) -> AsyncIterator[DashboardWebSocketServer]:
    """A started server (port 0 unless ``port=`` is given, no timers unless asked for)."""
    options.setdefault("health_interval_seconds", None)
    options.setdefault("metrics_interval_seconds", None)
    server = DashboardWebSocketServer(
        port=options.pop("port", 0), state=state if state is not None else DashboardState(), **options
    )
    await server.start()
    try:
        yield server
    finally:
        await asyncio.wait_for(server.stop(), WAIT)


class EventStream:
    """A real WebSocket client of ``/ws`` that keeps every event it receives, with its arrival time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, snapshot: dict[str, Any]) -> None:
        self.ws = ws
        self.snapshot = snapshot
        self.received: list[tuple[float, dict[str, Any]]] = []  # (time.monotonic() at arrival, event)

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, server: DashboardWebSocketServer) -> EventStream:
        ws = await asyncio.wait_for(session.ws_connect(server.url + "/ws"), WAIT)
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        snapshot = orjson.loads(msg.data)
        assert snapshot["type"] == "snapshot", snapshot
        return cls(ws, snapshot)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _, event in self.received]

    async def wait_for_timed(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> tuple[float, dict[str, Any]]:
        """The first received event (already received or arriving) matching, with its arrival time."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for arrived, event in self.received[checked:]:
                if predicate(event):
                    return arrived, event
            checked = len(self.received)
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching event within {timeout} s; got {self.summary()}"
            try:
                msg = await asyncio.wait_for(self.ws.receive(), remaining)
            except asyncio.TimeoutError:
                continue
            arrived = time.monotonic()
            assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)
            message = orjson.loads(msg.data)
            if message["type"] == "events":
                self.received.extend((arrived, event) for event in message["events"])

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The first received event matching ``predicate`` (see :meth:`wait_for_timed`)."""
        return (await self.wait_for_timed(predicate, timeout))[1]

    def summary(self) -> list[tuple[str, Any]]:
        return [(e["event_type"], e["data"].get("agent_name")) for e in self.events][-20:]

    async def close(self) -> None:
        await self.ws.close()


def of_type(event_type: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the event type, and these ``data`` fields."""

    def check(event: dict[str, Any]) -> bool:
        return event["event_type"] == event_type and all(event["data"].get(k) == v for k, v in data.items())

    return check



def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (and its key), made with openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate"
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost", "-days", "1",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def read_line_matching(
    proc: subprocess.Popen[str], pattern: re.Pattern[str], timeout: float
) -> re.Match[str]:
    """The first line of ``proc``'s stdout (a text pipe) matching ``pattern``, within ``timeout`` seconds.

    Lines are read in a helper thread, not with a selector on the pipe: a line the text stream has
    already buffered (two prints arriving together) is never waited for. On timeout the process is
    killed (which ends the read) and AssertionError raised with what was printed.
    """
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        while True:
            pending = reader.submit(proc.stdout.readline)
            try:
                line = pending.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                proc.kill()
                break
            if not line:
                break
            seen.append(line)
            match = pattern.search(line)
            if match:
                return match
    raise AssertionError(f"nothing matching {pattern.pattern!r} printed; stdout so far: {seen!r}, "
                         f"exit code {proc.poll()}")
