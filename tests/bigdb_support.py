"""A big event database for the history tests and benchmark: 1,000,000 realistic events, made fast.

:func:`generate_big_db` writes the rows straight into a new file with the store's own schema
(``otel_dashboard.store.sqlite.schema``): the tables, then the rows by ``executemany`` in large
transactions with the journal off, then the indexes (an index built over sorted keys at the end is
several times faster than one kept up row by row). Each row is what
:func:`~otel_dashboard.store.sqlite.rows.event_row` makes of a real :class:`DashboardEvent`, without
building one per row: the ``event_json`` is the wire form, with the data the span mapper writes
(agent runs, quality scores, syntheses, opportunities, errors, health and metrics) for 300 agents in
12 services. Agent runs are a fifth of the events: a server starting on the file replays them into
its state (``state/rebuild.py``), which is what bounds how fast it starts.

What the data holds, for tests to rely on (see :class:`BigDbFacts`): seqs ``1..events`` without
holes; every event names a service from :data:`SERVICES` (no event names ``"no-such-service"``);
agent events name one of :func:`agent_name` ``(0..AGENTS-1)``; every 1000th event is an
``error_occurred`` of severity ``error`` (about 0.1 %: a selective severity filter); no event has
severity ``warning`` (a severity filter that matches nothing).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from otel_dashboard.store.sqlite.schema import INDEXES, INSERT, SCHEMA_VERSION, TABLES

__all__ = ["AGENTS", "HEAVY_REQUESTS", "HEAVY_RESUMES", "SERVICES", "THOUSAND_AGENTS", "BigDbFacts",
           "agent_name", "generate_big_db", "heavy_load", "service_of"]

AGENTS = 300
SERVICES = tuple(f"svc-{name}" for name in (
    "research", "billing", "search", "planner", "support", "ingest", "ranking", "synthesis",
    "reports", "crawler", "alerts", "ops"))
_BASE_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_CHUNK = 50_000


def agent_name(i: int) -> str:
    """The name of agent ``i`` (its id is ``agent-<i>``)."""
    return f"Agent{i:03d}"


@dataclass(frozen=True)
class BigDbFacts:
    """What :func:`generate_big_db` wrote."""

    path: Path
    events: int
    seconds: float
    error_events: int
    """Events of severity ``error`` (every 1000th seq)."""


_second: list[object] = [-1, ""]  # the last second formatted (20 events per second)


def _iso(ts: float) -> str:
    seconds = int(ts)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{int((ts - seconds) * 1000):03d}Z"


_AGENT_IDS = [f"agent-{i:03d}" for i in range(AGENTS)]
_AGENT_NAMES = [agent_name(i) for i in range(AGENTS)]
_AGENT_SERVICES = [SERVICES[i % len(SERVICES)] for i in range(AGENTS)]


def _row(seq: int) -> tuple[object, ...]:
    """The row of event ``seq``: a run start or end, a score, a synthesis, an opportunity, health
    or metrics, by ``seq % 10``; an error every 1000th."""
    agent = (seq * 7919) % AGENTS
    agent_id, name, service = _AGENT_IDS[agent], _AGENT_NAMES[agent], _AGENT_SERVICES[agent]
    ts = _BASE_TS + seq * 0.05
    timestamp = _iso(ts)
    run_id = f"{(seq >> 1) * 2654435761 & 0xFFFFFFFFFFFFFFFF:016x}"
    trace_id = run_id + run_id[::-1]
    kind = seq % 10
    severity = "info"
    task = f"Summarise the findings of batch {seq // 100} for the weekly report"
    if seq % 1000 == 0:
        event_type, severity = "error_occurred", "error"
        data: dict[str, object] = {
            "source": name, "error_message": f"tool call timed out after 30 s (attempt {seq % 3 + 1})",
            "error_type": "TimeoutError", "span_name": f"execute_tool web_search {seq}",
            "service_name": service, "agent_id": agent_id, "agent_name": name}
    elif kind == 0:
        event_type = "agent_execution_started"
        data = {"agent_id": agent_id, "agent_name": name, "task_description": task, "run_id": run_id,
                "started_at": timestamp, "service_name": service, "parent_span_id": None}
    elif kind == 1:
        event_type, severity = "agent_execution_completed", "success"
        data = {"agent_id": agent_id, "agent_name": name, "task_description": task, "run_id": run_id,
                "duration_ms": float(100 + seq % 9000), "success": True,
                "quality_score": float(80 + seq % 20), "data_source": None, "error_message": None,
                "started_at": timestamp, "service_name": service, "parent_span_id": None,
                "error_type": None, "input_tokens": 1200 + seq % 500, "output_tokens": 300 + seq % 200}
    elif kind == 2:
        event_type, severity = "quality_score_updated", "success"
        data = {"source": name, "overall_score": 95.0 + seq % 5,
                "dimension_scores": {"accuracy": 97.5, "completeness": 96.0, "clarity": 98.0},
                "agent_id": agent_id, "agent_name": name, "run_id": run_id, "service_name": service}
    elif kind in (3, 4):
        event_type = "synthesis_started" if kind == 3 else "synthesis_completed"
        severity = "info" if kind == 3 else "success"
        data = {"phase": f"phase-{seq % 4}", "description": "Merge the agents' findings into one brief",
                "run_id": run_id, "service_name": service}
        if kind == 4:
            data.update({"duration_ms": float(seq % 5000), "patterns_found": seq % 12, "success": True,
                         "error_message": None})
    elif kind == 5:
        event_type, severity = "opportunity_discovered", "success"
        data = {"opportunity_id": f"opp-{seq}", "title": f"Bundle pricing for segment {seq % 40}",
                "description": "Customers who buy the annual plan often add the reporting module.",
                "confidence_score": 0.5 + (seq % 50) / 100, "revenue_potential": "$120K ARR",
                "category": "pricing", "agent_id": agent_id, "agent_name": name, "service_name": service}
    elif kind == 8:
        event_type = "system_health_updated"
        data = {"connected_clients": seq % 7, "events_per_second": 42.0, "dropped_events": 0,
                "uptime_seconds": seq * 0.05, "memory_mb": 151.5, "stalled_agents": 0,
                "service_name": service}
    else:
        event_type = "metrics_updated"
        data = {"total_events": seq, "total_agents_executed": seq // 2,
                "total_opportunities_discovered": seq // 10, "avg_quality_score": 89.5,
                "active_agents": seq % 17, "system_uptime_seconds": seq * 0.05, "service_name": service}
    event_id = f"{seq:08x}-{run_id[:4]}-4000-8000-{run_id[4:16]}"
    wire = {"seq": seq, "event_id": event_id, "event_type": event_type, "timestamp": timestamp,
            "severity": severity, "data": data, "trace_id": trace_id, "span_id": run_id}
    agent_col = data.get("agent_id")
    name_col = data.get("agent_name")
    return (seq, event_id, event_type, severity,
            agent_col if isinstance(agent_col, str) else None,
            name_col if isinstance(name_col, str) else None,
            ts, service, orjson.dumps(wire).decode())


# Schema version 1, as otel-dashboard 0.1 wrote it (no service_name column): the migration's input.
V1_TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, event_type TEXT NOT NULL,"
    " severity TEXT NOT NULL, agent_id TEXT, agent_name TEXT, ts REAL NOT NULL, event_json TEXT NOT NULL)",
)
V1_INDEXES = (
    "CREATE INDEX events_by_type ON events (event_type)",
    "CREATE INDEX events_by_agent_id ON events (agent_id)",
    "CREATE INDEX events_by_agent_name ON events (agent_name)",
    "CREATE INDEX events_by_time ON events (ts)",
)
_V1_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def service_of(seq: int) -> str:
    """The ``data.service_name`` of event ``seq``."""
    return _AGENT_SERVICES[(seq * 7919) % AGENTS]


def generate_big_db(
    path: Path, events: int = 1_000_000, *, schema_version: int = SCHEMA_VERSION
) -> BigDbFacts:
    """Write an event database of ``events`` events at ``path`` (a new file), in the current schema
    or in version 1 (``schema_version=1``: what the migration to version 2 starts from).

    It is left as a cleanly stopped server leaves it (WAL mode, ``last_seq`` and ``clean_shutdown``
    set), so ``serve --db path`` continues at ``events + 1``.
    """
    if schema_version not in (1, SCHEMA_VERSION):
        raise ValueError(f"schema_version must be 1 or {SCHEMA_VERSION}, got {schema_version!r}")
    v1 = schema_version == 1
    started = time.perf_counter()
    if path.exists():
        raise FileExistsError(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -200000")  # 200 MB while the indexes are built
        for statement in V1_TABLES if v1 else TABLES:
            conn.execute(statement)
        for first in range(1, events + 1, _CHUNK):
            rows = [_row(seq) for seq in range(first, min(first + _CHUNK, events + 1))]
            if v1:
                rows = [(*row[:7], row[8]) for row in rows]  # no service_name
            conn.execute("BEGIN")
            conn.executemany(_V1_INSERT if v1 else INSERT, rows)
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        for statement in V1_INDEXES if v1 else INDEXES:
            conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('last_seq', ?)", (events,))
        conn.execute("INSERT INTO meta (key, value) VALUES ('clean_shutdown', 1)")
        conn.execute(f"PRAGMA user_version = {schema_version}")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    return BigDbFacts(path, events, time.perf_counter() - started, events // 1000)


# --------------------------------------------------------------------------- the heavy history load
# Ten kinds of heavy history request, one client each: the filters that used to walk the whole
# history (a service or a severity that matches nothing, 1000 agent names), the biggest pages, and
# `resume` from 0 over the WebSocket with a filter that matches nothing.
_NOT_AGENTS = [f"n{i}" for i in range(1000 - AGENTS)]
THOUSAND_AGENTS = ",".join([agent_name(i) for i in range(AGENTS)] + _NOT_AGENTS[: 1000 - AGENTS])
"""1000 agent names (the most a filter takes): the 300 of the database and 700 unknown ones."""
NO_SUCH_AGENTS = [f"ghost-{i}" for i in range(1000)]
HEAVY_REQUESTS: dict[str, str] = {
    "service matching nothing, newest": "/api/events?service=no-such-service&limit=1000",
    "service matching nothing, after_seq=0": "/api/events?service=no-such-service&after_seq=0&limit=1000",
    "1000 agents": "/api/events?agent=" + THOUSAND_AGENTS + "&limit=1000",
    "severity matching nothing": "/api/events?severity=warning&limit=1000",
    "rare severity, after_seq=0": "/api/events?severity=error&after_seq=0&limit=1000",
    "12 services + severity matching nothing": "/api/events?service=" + ",".join(SERVICES)
                                               + "&severity=warning&limit=1000",
    "after_seq=0, limit=1000": "/api/events?after_seq=0&limit=1000",
    "newest, limit=1000": "/api/events?limit=1000",
}
"""Name -> path of the heavy GET requests."""
HEAVY_RESUMES: dict[str, dict[str, list[str]]] = {
    "resume from 0, severity matching nothing": {"severities": ["warning"]},
    "resume from 0, 1000 unknown agents": {"agents": NO_SUCH_AGENTS},
}
"""Name -> subscribe filter of the WebSocket clients that ``resume`` from 0 again and again."""


async def heavy_load(base_url: str, seconds: float) -> dict[str, dict[str, Any]]:
    """Run one client per heavy request (10) against ``base_url`` for ``seconds``, each repeating its
    request (a GET, or a ``resume`` until its ``resumed``) as soon as the previous one is answered.

    Returns:
        Per kind: ``latencies_ms`` (one per request), ``statuses`` (HTTP status or ``"resumed"``
        with ``complete`` true/false, and how many), ``bytes`` (the largest answer).
    """
    import aiohttp

    deadline = time.monotonic() + seconds
    results: dict[str, dict[str, Any]] = {}

    def note(kind: str, started: float, status: str, size: int) -> None:
        entry = results.setdefault(kind, {"latencies_ms": [], "statuses": {}, "bytes": 0})
        entry["latencies_ms"].append((time.perf_counter() - started) * 1000)
        entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
        entry["bytes"] = max(entry["bytes"], size)

    async def get(session: aiohttp.ClientSession, kind: str, path: str) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.get(base_url + path) as response:
                body = await response.read()  # not parsed: the client's CPU is the server's too
            note(kind, started, str(response.status), len(body))

    async def resume(session: aiohttp.ClientSession, kind: str, lists: dict[str, list[str]]) -> None:
        async with session.ws_connect(base_url + "/ws", max_msg_size=0) as ws:
            await ws.receive()  # the snapshot
            await ws.send_str(orjson.dumps({"type": "subscribe", **lists}).decode())
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await ws.send_str('{"type": "resume", "after_seq": 0}')
                while True:
                    message = orjson.loads((await ws.receive()).data)
                    if message.get("type") == "resumed":
                        break
                note(kind, started, f"resumed complete={message.get('complete')}", 0)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*[get(session, kind, path) for kind, path in HEAVY_REQUESTS.items()],
                             *[resume(session, kind, lists) for kind, lists in HEAVY_RESUMES.items()])
    return results


def main(argv: list[str]) -> int:
    """``python tests/bigdb_support.py load BASE_URL SECONDS``: :func:`heavy_load`, its results as
    JSON on stdout (a process of its own, so the load's client never shares a GIL with whoever
    measures the server)."""
    if len(argv) != 3 or argv[0] != "load":
        print("usage: bigdb_support.py load BASE_URL SECONDS", file=sys.stderr)
        return 2
    results = asyncio.run(heavy_load(argv[1], float(argv[2])))
    sys.stdout.write(orjson.dumps(results).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
