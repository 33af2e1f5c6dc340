"""Durable history end to end: restart and rebuild, kill -9 mid-write, and ``serve --db``.

Every test uses a real SQLite file under ``tmp_path``; the crash test kills a real process.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_dashboard import cli
from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.base import MemoryEventStore
from otel_dashboard.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.timeout(90)

STARTUP_TIMEOUT = 20.0  # a loaded 2-core machine can be slow to import aiohttp
STOP_TIMEOUT = 10.0
URL_RE = re.compile(r"otel-dashboard serving on (http://\S+)/dashboard")


def db_seqs(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]


async def run_a_workload(state: DashboardState) -> None:
    """Runs that finish (scored, unscored, failed), runs left running, opportunities, errors, meta."""
    for i in range(12):
        agent = f"agent-{i % 3}"
        await state.agent_started(agent, f"Agent {i % 3}", f"task {i}", run_id=f"run-{i}")
        await state.agent_completed(agent, f"Agent {i % 3}", f"task {i}", 10.0 * i, success=i % 4 != 0,
                                    quality_score=float(80 + i) if i % 2 else None, run_id=f"run-{i}")
    for i in range(8):
        await state.opportunity_discovered(f"opp-{i}", f"Idea {i}", "d", 0.5, "$1", "c")
    await state.error_occurred("agent-1", "boom", "RuntimeError")
    await state.quality_score_updated("agent-2", 93.0)
    await state.system_health_updated(cpu_percent=1.0)
    state.emit_metrics_if_changed()
    await state.agent_started("agent-9", "Stuck Agent", "never ends", run_id="run-stuck")
    await state.agent_started("agent-1", "Agent 1", "interrupted", run_id="run-cut")


def comparable(state: DashboardState) -> dict[str, Any]:
    metrics = state.get_metrics()
    metrics.pop("system_uptime_seconds")
    stats = state.get_dashboard_stats()
    return {
        "metrics": metrics,
        "events_by_type": stats["events_by_type"],
        "opportunities": state.get_opportunities(),
        "known_agents": state.get_known_agents(),
        "history": [e.to_dict() for e in state.get_events_after(0, 1000)],
    }


def test_a_restart_continues_seq_and_rebuilds_the_state(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    state = DashboardState(store=SqliteEventStore(path), max_opportunities=5)
    asyncio.run(run_a_workload(state))
    last = state.last_seq
    assert state.wait_durable(timeout_seconds=5) is True
    before = comparable(state)
    running = {a["run_id"] for a in state.get_active_agents()}
    assert running == {"run-stuck", "run-cut"}
    state.store.close()

    again = DashboardState(store=SqliteEventStore(path), max_opportunities=5)
    after = comparable(again)
    # Running agents are lost, not active: the only expected difference.
    assert after["metrics"].pop("active_agents") == 0 and before["metrics"].pop("active_agents") == 2
    assert after["metrics"].pop("lost_agents") == 2 and before["metrics"].pop("lost_agents") == 0
    assert after == before
    assert len(after["opportunities"]) == 5 and after["opportunities"][0]["data"]["opportunity_id"] == "opp-7"
    assert after["metrics"]["avg_quality_score"] > 0 and after["metrics"]["failed_agent_runs"] == 3

    lost = again.get_lost_agents()
    assert [a["run_id"] for a in lost] == ["run-stuck", "run-cut"]
    # "Unknown since restart" (the key stays lost_agents; lost_detected_at kept for old readers).
    assert all(a["status"] == "unknown" and a["started_at"] and a["unknown_since"] == a["lost_detected_at"]
               for a in lost)
    assert again.get_active_agents() == []
    snapshot = again.snapshot()
    assert [a["run_id"] for a in snapshot["lost_agents"]] == ["run-stuck", "run-cut"]
    assert snapshot["seq"] == last and snapshot["metrics"]["lost_agents"] == 2

    # seq continues; known agents are not registered again; a lost run that completes leaves the list.
    event = again.publish(DashboardEvent.create(
        EventType.AGENT_EXECUTION_COMPLETED,
        {"agent_id": "agent-1", "agent_name": "Agent 1", "run_id": "run-cut", "success": True},
    ))
    assert event.seq == last + 1
    assert [a["run_id"] for a in again.get_lost_agents()] == ["run-stuck"]
    assert again.wait_durable(event.seq, 5)
    again.store.close()
    assert db_seqs(path) == list(range(1, last + 2))


def test_a_rebuild_from_a_big_history_replays_only_what_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path, retention_events=None)
    seq = 0
    for i in range(4000):
        for etype, data in (
            (EventType.AGENT_EXECUTION_STARTED, {"agent_id": "a", "run_id": f"r{i}"}),
            (EventType.AGENT_EXECUTION_COMPLETED, {"agent_id": "a", "run_id": f"r{i}", "quality_score": 90}),
            (EventType.METRICS_UPDATED, {"total_events": i}),
            (EventType.OPPORTUNITY_DISCOVERED, {"opportunity_id": f"o{i}"}),
            (EventType.SYSTEM_HEALTH_UPDATED, {"status": "ok"}),
        ):
            seq += 1
            event = DashboardEvent.create(etype, data)
            event.seq = seq
            store.append(event)
    assert store.wait_durable(seq, 30)
    began = time.perf_counter()
    state = DashboardState(store=store, max_opportunities=10)
    elapsed = time.perf_counter() - began
    metrics = state.get_metrics()
    assert metrics["total_events"] == seq == state.last_seq
    assert metrics["total_agents_executed"] == 4000 and metrics["avg_quality_score"] == 90.0
    assert metrics["total_opportunities_discovered"] == 4000
    assert [o["data"]["opportunity_id"] for o in state.get_opportunities()][:2] == ["o3999", "o3998"]
    assert state.get_lost_agents() == []
    assert elapsed < 10  # about 0.1 s on a laptop; generous for a loaded CI machine
    store.close()


def test_memory_stores_are_durable_at_once() -> None:
    state = DashboardState(store=MemoryEventStore(10))
    event = state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {}))
    assert state.wait_durable(event.seq, 0) is True
    assert asyncio.run(state.wait_durable_async(timeout_seconds=0)) is True
    assert state.get_lost_agents() == [] and state.get_metrics()["lost_agents"] == 0


# ----------------------------------------------------------------------------- kill -9
_PUBLISHER = textwrap.dedent("""
    import sys
    from otel_dashboard.model.events import DashboardEvent, EventType
    from otel_dashboard.store.sqlite import SqliteEventStore
    from otel_dashboard.state.dashboard import DashboardState

    state = DashboardState(store=SqliteEventStore(sys.argv[1], batch_max_events=50))
    i = 0
    while True:
        seqs = []
        for _ in range(7):
            i += 1
            seqs.append(state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"i": i})).seq)
        if not state.wait_durable(seqs[-1], 10):
            sys.exit("not durable in time")
        for seq in seqs:
            print(seq, flush=True)
""")


def test_kill_9_mid_write_loses_nothing_that_was_reported_durable(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    proc = subprocess.Popen([sys.executable, "-c", _PUBLISHER, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    durable: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while len(durable) < 1500 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            durable.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of writing: it never stops on its own
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, stderr
    assert len(durable) >= 1500, stderr
    assert durable == list(range(1, len(durable) + 1))

    stored = db_seqs(path)
    assert stored == list(range(1, len(stored) + 1))  # in order, contiguous from 1
    assert len(stored) >= len(durable)  # every seq reported durable is there (and maybe a few more)
    store = SqliteEventStore(path)
    state = DashboardState(store=store)
    # The kill was unclean: seq goes on past every seq the dead run could have handed out (and
    # streamed) without committing, so none is ever reused.
    assert state.last_seq == len(stored) + store.max_unwritten_events
    assert [e.seq for e in state.get_events_after(durable[-1] - 3, 3)] == durable[-3:]
    store.close()
    # After a clean stop the next start continues right after the last seq.
    state = DashboardState(store=SqliteEventStore(path))
    assert state.last_seq == len(stored) + store.max_unwritten_events
    state.store.close()


# ----------------------------------------------------------------------------- serve --db
def _serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otel_dashboard", "serve", "--port", "0", "--log-level", "warning", *args]


def _read_until_url(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = URL_RE.search(line)
            if match:
                return match.group(1), seen
    raise AssertionError(f"no URL printed; stdout so far: {seen!r}, exit code {proc.poll()}")


@pytest.fixture(name="serve")
def fixture_serve() -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str, list[str]]:
        proc = subprocess.Popen(_serve_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        procs.append(proc)
        url, lines = _read_until_url(proc)
        return proc, url, lines

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)


def test_serve_keeps_history_in_the_given_database(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "data" / "events.db"  # the directory is created
    proc, url, lines = serve("--db", str(path), "--retention-events", "5000", "--retention-hours", "48")
    assert any(f"otel-dashboard database: {path}" in line for line in lines)
    with urllib.request.urlopen(url + "/health", timeout=5) as response:
        assert response.status == 200
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= 0


def test_serve_defaults_to_the_user_data_directory(serve: Any, tmp_path: Path) -> None:
    proc, _, lines = serve(env={"XDG_DATA_HOME": str(tmp_path)})
    expected = tmp_path / "otel-dashboard" / "events.db"
    assert any(str(expected) in line for line in lines)
    assert expected.is_file()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0


def test_serve_in_memory_writes_no_file(serve: Any, tmp_path: Path) -> None:
    proc, _, lines = serve("--db", ":memory:", "--history", "50", env={"XDG_DATA_HOME": str(tmp_path)})
    assert any("in memory (50 events" in line for line in lines)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["corrupt", "under-a-file", "a-directory", "in-use"])
def test_serve_with_an_unusable_database_exits_1_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "events.db"
    holder = None
    if damage == "corrupt":
        path.write_bytes(b"\x00garbage, not SQLite\xff" * 300)
    elif damage == "under-a-file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "events.db"
    elif damage == "a-directory":
        path.mkdir()
    else:
        holder = SqliteEventStore(path)
    try:
        proc = subprocess.run(_serve_command("--db", str(path)), capture_output=True, text=True,
                              timeout=STARTUP_TIMEOUT)
    finally:
        if holder is not None:
            holder.close()
    assert proc.returncode == 1, proc.stderr
    assert str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--retention-events", "-1"], "--retention-events"),
        (["serve", "--retention-events", "many"], "--retention-events"),
        (["serve", "--retention-hours", "-2"], "--retention-hours"),
        (["serve", "--retention-hours", "nan"], "--retention-hours"),
        (["serve", "--db", ""], "--db"),
        (["serve", "--db-synchronous", "off"], "--db-synchronous"),
    ],
)
def test_bad_database_options_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2
    assert needle in capsys.readouterr().err


def test_default_db_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert cli.default_db_path() == tmp_path / "otel-dashboard" / "events.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli.default_db_path() == tmp_path / "home" / ".local" / "share" / "otel-dashboard" / "events.db"
