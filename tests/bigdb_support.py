"""A big event database for the history tests and benchmark: 1,000,000 realistic events, made fast.

:func:`generate_big_db` writes the rows straight into a new file with the store's own schema
(``otel_dashboard.store.sqlite.schema``): the tables, then the rows by ``executemany`` in large
transactions with the journal off, then the indexes (an index built over sorted keys at the end is
several times faster than one kept up row by row). Each row is what
:func:`~otel_dashboard.store.sqlite.rows.event_row` makes of a real :class:`DashboardEvent`, without
building one per row: the ``event_json`` is the wire form, with the data the span mapper writes
(agent runs, errors, opportunities, registrations, metrics) for 300 agents in 12 services.

What the data holds, for tests to rely on (see :class:`BigDbFacts`): seqs ``1..events`` without
holes; every event names a service from :data:`SERVICES` (no event names ``"no-such-service"``);
agent events name one of :func:`agent_name` ``(0..AGENTS-1)``; every 1000th event is an
``error_occurred`` of severity ``error`` (about 0.1 %: a selective severity filter).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from otel_dashboard.store.sqlite.schema import INDEXES, INSERT, SCHEMA_VERSION, TABLES

__all__ = ["AGENTS", "SERVICES", "BigDbFacts", "agent_name", "generate_big_db"]

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


def _row(seq: int) -> tuple[object, ...]:
    """The row of event ``seq``: a run start or end most of the time, now and then something else."""
    agent = (seq * 7919) % AGENTS
    service = SERVICES[agent % len(SERVICES)]
    ts = _BASE_TS + seq * 0.05
    timestamp = _iso(ts)
    run_id = f"{(seq // 2) * 2654435761 % (1 << 64):016x}"
    trace_id = f"{seq * 11400714819323198485 % (1 << 128):032x}"
    name, agent_id = agent_name(agent), f"agent-{agent:03d}"
    kind = seq % 10
    severity = "info"
    if seq % 1000 == 0:
        event_type, severity = "error_occurred", "error"
        data: dict[str, object] = {
            "source": name, "error_message": f"tool call timed out after 30 s (attempt {seq % 3 + 1})",
            "error_type": "TimeoutError", "span_name": f"execute_tool web_search {seq}",
            "service_name": service, "agent_id": agent_id, "agent_name": name}
    elif kind in (0, 2, 4, 6):
        event_type = "agent_execution_started"
        data = {"agent_id": agent_id, "agent_name": name,
                "task_description": f"Summarise the findings of batch {seq // 100} for the weekly report",
                "run_id": run_id, "started_at": timestamp, "service_name": service,
                "parent_span_id": None}
    elif kind in (1, 3, 5, 7):
        event_type, severity = "agent_execution_completed", "success"
        data = {"agent_id": agent_id, "agent_name": name,
                "task_description": f"Summarise the findings of batch {seq // 100} for the weekly report",
                "run_id": run_id, "duration_ms": float(100 + seq % 9000), "success": True,
                "quality_score": float(80 + seq % 20), "data_source": None, "error_message": None,
                "started_at": timestamp, "service_name": service, "parent_span_id": None,
                "error_type": None, "input_tokens": 1200 + seq % 500, "output_tokens": 300 + seq % 200}
    elif kind == 8:
        event_type, severity = "opportunity_discovered", "success"
        data = {"opportunity_id": f"opp-{seq}", "title": f"Bundle pricing for segment {seq % 40}",
                "description": "Customers who buy the annual plan often add the reporting module.",
                "confidence_score": 0.5 + (seq % 50) / 100, "revenue_potential": "$120K ARR",
                "category": "pricing", "agent_id": agent_id, "agent_name": name, "service_name": service}
    else:
        event_type = "metrics_updated"
        data = {"total_events": seq, "total_agents_executed": seq // 2,
                "total_opportunities_discovered": seq // 10, "avg_quality_score": 89.5,
                "active_agents": seq % 17, "system_uptime_seconds": seq * 0.05, "service_name": service}
    event_id = f"{seq:08x}-{run_id[:4]}-4000-8000-{trace_id[:12]}"
    wire = {"seq": seq, "event_id": event_id, "event_type": event_type, "timestamp": timestamp,
            "severity": severity, "data": data, "trace_id": trace_id, "span_id": run_id}
    agent_col = data.get("agent_id")
    name_col = data.get("agent_name")
    return (seq, event_id, event_type, severity,
            agent_col if isinstance(agent_col, str) else None,
            name_col if isinstance(name_col, str) else None,
            ts, service, orjson.dumps(wire).decode())


def generate_big_db(path: Path, events: int = 1_000_000) -> BigDbFacts:
    """Write a schema-current event database of ``events`` events at ``path`` (a new file).

    It is left as a cleanly stopped server leaves it (WAL mode, ``last_seq`` and ``clean_shutdown``
    set), so ``serve --db path`` continues at ``events + 1``.
    """
    started = time.perf_counter()
    if path.exists():
        raise FileExistsError(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -200000")  # 200 MB while the indexes are built
        for statement in TABLES:
            conn.execute(statement)
        for first in range(1, events + 1, _CHUNK):
            rows = [_row(seq) for seq in range(first, min(first + _CHUNK, events + 1))]
            conn.execute("BEGIN")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        for statement in INDEXES:
            conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('last_seq', ?)", (events,))
        conn.execute("INSERT INTO meta (key, value) VALUES ('clean_shutdown', 1)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    return BigDbFacts(path, events, time.perf_counter() - started, events // 1000)
