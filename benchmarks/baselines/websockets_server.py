"""Baseline: the ``websockets`` library's ``broadcast()``, fed by the same ingest endpoint.

    python benchmarks/baselines/websockets_server.py --ws-port 8001 --ingest-port 8002

The WebSocket side is ``websockets``' own asyncio server (``websockets.asyncio.server.serve``, its
defaults: permessage-deflate negotiated when the client offers it, pings every 20 s) on
``--ws-port``; a connection is added to a set and held until it closes. The ingest side is a tiny
aiohttp app on ``--ingest-port`` in the same event loop: ``POST /api/events`` takes
``{"events": [...]}`` (or one event) as ``otel-dashboard serve`` does; each event gets a ``seq``, an
id and a timestamp, is encoded ONCE (``json.dumps``) and handed to
``websockets.asyncio.server.broadcast(clients, message)``, which writes it to every open connection
without waiting (no backpressure: a slow client's buffer grows). Answers
``{"accepted", "first_seq", "last_seq"}``; ``GET /health`` answers 200. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
import time
from typing import Any

from aiohttp import web
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()
_SEQ = itertools.count(1)


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        async for _message in ws:
            pass
    finally:
        CLIENTS.discard(ws)


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


async def ingest(request: web.Request) -> web.Response:
    body = await request.json()
    events = body["events"] if isinstance(body, dict) and "events" in body else [body]
    first = last = None
    for item in events:
        seq = next(_SEQ)
        first = first or seq
        last = seq
        event: dict[str, Any] = {
            "seq": seq,
            "event_id": f"ws-{seq}",
            "event_type": item["event_type"],
            "timestamp": item.get("timestamp") or _timestamp(),
            "severity": item.get("severity", "info"),
            "data": item.get("data", {}),
            "trace_id": item.get("trace_id"),
            "span_id": item.get("span_id"),
        }
        broadcast(CLIENTS, json.dumps(event))
    return web.json_response({"accepted": len(events), "first_seq": first, "last_seq": last})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "connected_clients": len(CLIENTS)})


async def run(host: str, ws_port: int, ingest_port: int) -> None:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/api/events", ingest)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # max_size None: clients send nothing big; max_queue default. Backlog large for 10,000 connects.
    async with serve(handler, host, ws_port, max_size=None, backlog=1024):
        site = web.TCPSite(runner, host, ingest_port)
        await site.start()  # /health answers only once both servers listen
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--ingest-port", type=int, required=True)
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error("loopback only")
    asyncio.run(run(args.host, args.ws_port, args.ingest_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
