"""Baseline: the original design's broadcast, a naive aiohttp loop, fed by the same ingest endpoint.

    python benchmarks/baselines/naive_server.py --port 8001 [--no-compress]

What the original design did, on the same wire interface as ``otel-dashboard serve`` so that the
load generator is identical for every server:

* ``GET /ws``: ``web.WebSocketResponse()`` with aiohttp's defaults (``compress=True``: permessage-deflate
  is negotiated when the client offers it, as browsers do; ``--no-compress`` makes it a bare handler),
  the socket added to a set, incoming messages read and ignored;
* ``POST /api/events``: ``{"events": [...]}`` (or one event), parsed with ``request.json()``; each
  event gets a ``seq``, a ``uuid4`` id and a ``datetime`` timestamp, and then, in the request
  handler, ``for ws in clients: await ws.send_str(json.dumps(event))``: one frame per event per
  client, encoded again for every client, the answer only once every client has been written to.
  Answers ``{"accepted", "first_seq", "last_seq"}``;
* ``GET /health``: 200.

The one change from the original: it iterates over a copy of the set (``list(clients)``); the
original iterated the set itself and crashed ("Set changed size during iteration") when a client
connected while a broadcast was blocked. A send that fails drops the client.
Loopback only.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import datetime, timezone

from aiohttp import web


class _Hub:
    """The original design's globals: the connected sockets, the next seq, the compress setting."""

    def __init__(self, compress: bool) -> None:
        self.clients: set[web.WebSocketResponse] = set()
        self.seq = 0
        self.compress = compress


HUB_KEY = web.AppKey("hub", _Hub)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse(compress=hub.compress)
    await ws.prepare(request)
    clients = hub.clients
    clients.add(ws)
    try:
        async for _msg in ws:
            pass
    finally:
        clients.discard(ws)
    return ws


async def ingest(request: web.Request) -> web.Response:
    body = await request.json()
    events = body["events"] if isinstance(body, dict) and "events" in body else [body]
    hub = request.app[HUB_KEY]
    clients = hub.clients
    first = hub.seq + 1
    for item in events:
        hub.seq += 1
        event = {
            "seq": hub.seq,
            "event_id": str(uuid.uuid4()),
            "event_type": item["event_type"],
            "timestamp": item.get("timestamp") or datetime.now(timezone.utc).isoformat(),
            "severity": item.get("severity", "info"),
            "data": item.get("data", {}),
            "trace_id": item.get("trace_id"),
            "span_id": item.get("span_id"),
        }
        for ws in list(clients):
            try:
                await ws.send_str(json.dumps(event))
            except Exception:
                clients.discard(ws)
    return web.json_response({"accepted": len(events), "first_seq": first if events else None,
                              "last_seq": hub.seq if events else None})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "connected_clients": len(request.app[HUB_KEY].clients)})


def make_app(compress: bool = True) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[HUB_KEY] = _Hub(compress)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/events", ingest)
    app.router.add_get("/health", health)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-compress", action="store_true",
                        help="do not negotiate permessage-deflate (a bare aiohttp WebSocket handler)")
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error("loopback only")
    web.run_app(make_app(compress=not args.no_compress), host=args.host, port=args.port,
                print=None, access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
