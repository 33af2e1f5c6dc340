"""The broadcaster: fans the state's events out to the connected WebSocket clients (``docs/server.md``).

One module per concept:

* :mod:`.broadcaster`: :class:`Broadcaster`, what the rest of the server uses: lifecycle, clients,
  messages to one client, counters; it puts the parts below together.
* :mod:`.clients`: :class:`Client` (a cursor into the log, a filter, counters) and the registry.
* :mod:`.handoff`: the state's events from any thread into the loop (one ``call_soon_threadsafe``
  per batch, bounded).
* :mod:`.log`: the shared log: each event serialized once, one cursor per client, trimmed behind
  the slowest.
* :mod:`.frames`: the bytes sent: ``events`` envelopes, RFC 6455 text frames, the shared frame.
* :mod:`.flush`: one flush pass per loop turn writes each client that is behind one frame of all it
  misses; backpressure of the direct clients.
* :mod:`.control`: control messages, in order with the events.
* :mod:`.progress`: ``run_progress``, the open runs' live state, beside the events (coalesced by
  run, never in the log, deferred for a lagging client rather than queued).
* :mod:`.slow`: the slow-client policy (overflow gap, 1013, bounded close).
* :mod:`.replay`: ``resume`` from the store.
* :mod:`.heartbeat`: one ping sweep for every client.
* :mod:`.task_writer`: a task per client that sends through aiohttp (permessage-deflate, fallback).
* :mod:`.transport`: the fence: the only module that uses aiohttp's internals (direct frame writes,
  the drain wait), and the public send path it falls back to.
* :mod:`.counters`: drops by reason, event rate, uptime.
"""

from __future__ import annotations

from otel_dashboard.server.broadcast.broadcaster import BROADCASTER_KEY, Broadcaster
from otel_dashboard.server.broadcast.clients import Client

__all__ = ["BROADCASTER_KEY", "Broadcaster", "Client"]
