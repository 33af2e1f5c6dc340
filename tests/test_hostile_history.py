"""Hostile history reads: heavy ``/api/events`` queries and ``resume`` from 0 against 1,000,000 events.

The attack of issue 14: one ``GET /api/events?service=x`` (a page on any site can fire it) froze the
server for ~11 s and took +1.3 GB, an ``agent=`` list of more than 250 names answered an empty 200,
a ``resume`` from 0 with a filter matching nothing cost 4.4 s of CPU per message, and
``/api/events?limit=1000`` could answer 100 MB. Here a real ``serve`` on the session's big database
(``big_db``) takes ten such clients at once while ``/health`` must answer within 50 ms (p99) and the
memory stay bounded; then the bounds are checked one by one: every filter answers, in pages that say
where to continue, and walking them covers the history exactly once. The small tests check the same
contracts on both stores, in process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from bigdb_support import (
    AGENTS,
    SERVICES,
    THOUSAND_AGENTS,
    BigDbFacts,
    agent_name,
    generate_big_db,
    service_of,
)
from hostile_support import ServeProcess, get_json, health_latency_millis, http, serve_process
from server_support import WAIT, running_server

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.base import (
    STOPPED_BY_BYTES,
    STOPPED_BY_LIMIT,
    STOPPED_BY_SCAN,
    EventQuery,
    EventStore,
    MemoryEventStore,
    StoreReadError,
)
from otel_dashboard.store.sqlite import SqliteEventStore
from otel_dashboard.store.sqlite.schema import SCHEMA_VERSION

LOAD_SECONDS = 6.0
HEALTH_P99_MILLIS = 50.0
RSS_GROWTH_BYTES = 200 * 1024 * 1024
SCAN_CAP = 100_000  # serve's default --max-scanned-rows
_SUPPORT = Path(__file__).with_name("bigdb_support.py")


# --------------------------------------------------------------------------- the big database, served
@pytest.fixture(scope="module")
def big_server(big_db: BigDbFacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``serve`` on a copy of the big database (a server writes to its file), default options."""
    tmp_path = tmp_path_factory.mktemp("big-serve")
    db = tmp_path / "events.db"
    shutil.copyfile(big_db.path, db)
    with serve_process(tmp_path, db=str(db)) as server:
        yield server


def p99(sorted_values: list[float]) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * 0.99))]


def test_ten_heavy_history_clients_leave_health_fast_and_memory_bounded(
    big_server: ServeProcess, big_db: BigDbFacts
) -> None:
    url = big_server.url
    assert get_json(url + "/health")["last_seq"] == big_db.events
    health_latency_millis(url, samples=5)  # warm the server's path (and the page cache) first
    rss_before = big_server.rss_bytes()
    peak = [rss_before]
    stop = threading.Event()

    def watch_rss() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], big_server.rss_bytes())

    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()
    # The load runs in a process of its own: its client never holds this process's GIL while
    # /health is timed here.
    load = subprocess.Popen([sys.executable, str(_SUPPORT), "load", url, str(LOAD_SECONDS)],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # every client has its first request in flight
        samples = int((LOAD_SECONDS - 1.0) / 0.025)
        timings = health_latency_millis(url, samples=samples, interval_seconds=0.005)
        out, _ = load.communicate(timeout=LOAD_SECONDS + 30)
    finally:
        if load.poll() is None:
            load.kill()
        stop.set()
        watcher.join()
    assert load.returncode == 0
    results: dict[str, dict[str, Any]] = orjson.loads(out)
    assert len(results) == 10
    for kind, result in results.items():
        statuses = result["statuses"]
        assert set(statuses) <= {"200", "resumed complete=False"}, (kind, statuses)
        assert sum(statuses.values()) >= 2, (kind, statuses)  # each kind answered, again and again
        assert result["bytes"] <= 4 * 1024 * 1024, kind
    health = {"p50": timings[len(timings) // 2], "p99": p99(timings), "max": timings[-1]}
    # (The load average in the message tells a busy machine from a slow server.)
    assert health["p99"] < HEALTH_P99_MILLIS, (health, len(timings), "load average", os.getloadavg())
    assert peak[0] - rss_before < RSS_GROWTH_BYTES, (rss_before, peak[0])
    assert big_server.alive()


def _walk_up(url: str, query: str) -> tuple[list[int], int]:
    """Every seq ``/api/events?{query}`` gives, following ``next_after_seq`` from 0; and the requests."""
    seqs: list[int] = []
    after, requests = 0, 0
    while True:
        body = get_json(f"{url}/api/events?{query}&after_seq={after}")
        requests += 1
        seqs.extend(e["seq"] for e in body["events"])
        assert body["next_after_seq"] >= after
        if not body["has_more"]:
            assert body["stopped_by"] is None and body["next_after_seq"] == body["last_seq"]
            return seqs, requests
        assert body["stopped_by"] in ("limit", "max_scanned_rows", "max_response_bytes"), body["stopped_by"]
        after = body["next_after_seq"]


def test_the_scan_cap_pages_the_big_history_without_gaps_or_duplicates(big_server: ServeProcess) -> None:
    url = big_server.url
    # A service matching nothing: one page per 100,000 events walked, each saying where to go on.
    # (The server's own health events are stored too, and retention keeps the newest 1,000,000: the
    # history begins at first_seq.)
    body = get_json(url + "/api/events?service=no-such-service&after_seq=0")
    assert body == {**body, "events": [], "has_more": True, "stopped_by": "max_scanned_rows",
                    "next_after_seq": body["first_seq"] - 1 + SCAN_CAP}
    seqs, requests = _walk_up(url, "service=no-such-service")
    assert seqs == [] and requests == -(-(body["last_seq"] - body["first_seq"] + 1) // SCAN_CAP)
    # A rare severity: each error once, in order, none missed.
    seqs, requests = _walk_up(url, "severity=error&limit=1000")
    assert seqs == list(range(1000, 1_000_001, 1000)) and requests in (10, 11)
    # Newest first, backwards with next_before_seq.
    before: int | None = None
    newest: list[int] = []
    while True:
        body = get_json(url + "/api/events?severity=error&event_type=error_occurred&limit=150"
                        + (f"&before_seq={before}" if before else ""))
        newest[:0] = [e["seq"] for e in body["events"]]
        if not body["has_more"]:
            assert body["next_before_seq"] is None
            break
        before = body["next_before_seq"]
    assert newest == list(range(1000, 1_000_001, 1000))


def test_a_thousand_agents_filter_answers_its_matches(big_server: ServeProcess) -> None:
    # More than 250 names used to hit SQLite's compound SELECT limit: a 200 with no events.
    body = get_json(big_server.url + "/api/events?limit=1000&agent=" + THOUSAND_AGENTS)
    assert len(body["events"]) == 1000 and body["has_more"] and body["stopped_by"] == "limit"
    names = {agent_name(i) for i in range(AGENTS)}
    assert all(e["data"]["agent_name"] in names for e in body["events"])
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs) and seqs[-1] > 990_000
    status, _, answer = http("GET", big_server.url + "/api/events?agent=" + ",".join(["a"] * 1001))
    assert status == 400 and orjson.loads(answer)["parameter"] == "agent"


def test_the_biggest_page_of_the_big_history(big_server: ServeProcess) -> None:
    status, _, raw = http("GET", big_server.url + "/api/events?after_seq=0&limit=1000")
    assert status == 200 and len(raw) <= 4 * 1024 * 1024
    body = orjson.loads(raw)
    first = body["first_seq"]  # ~600 bytes an event: the limit stops this page, not the byte cap
    assert [e["seq"] for e in body["events"]] == list(range(first, first + 1000))
    assert body["stopped_by"] == "limit" and body["next_after_seq"] == first + 999


def test_resume_from_zero_walks_a_bounded_part_per_message(big_server: ServeProcess) -> None:
    async def run() -> list[dict[str, Any]]:
        answers = []
        async with aiohttp.ClientSession() as session, session.ws_connect(big_server.url + "/ws") as ws:
            assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "snapshot"
            await ws.send_json({"type": "subscribe", "severities": ["error"]})
            message: dict[str, Any] = {"next_after_seq": 0, "seq": None}
            replayed: list[int] = []
            while True:
                started = time.perf_counter()
                resume = {"type": "resume", "after_seq": message["next_after_seq"]}
                if message["seq"] is not None:
                    resume["until_seq"] = message["seq"]
                await ws.send_json(resume)
                while True:
                    message = orjson.loads((await ws.receive(timeout=WAIT)).data)
                    if message["type"] == "events":
                        assert message["replay"] is True
                        replayed.extend(e["seq"] for e in message["events"])
                    elif message["type"] == "resumed":
                        break
                answers.append({**message, "seconds": time.perf_counter() - started})
                if message["complete"]:
                    break
            assert replayed == list(range(1000, 1_000_001, 1000))
        return answers

    first = get_json(big_server.url + "/api/events?limit=1")["first_seq"]
    answers = asyncio.run(run())
    # 100,000 events walked per message at most, each message going on where the last stopped.
    assert [a["next_after_seq"] for a in answers[:-1]] == \
        list(range(first - 1 + SCAN_CAP, answers[0]["seq"], SCAN_CAP))
    assert not answers[0]["complete"] and answers[0]["replayed"] == 100
    assert answers[-1]["complete"] and len(answers) == -(-(answers[0]["seq"] - first + 1) // SCAN_CAP)
    assert max(a["seconds"] for a in answers) < 2.0, answers


# --------------------------------------------------------------------------- both stores, in process
def _event(seq: int, *, agent: Any = None, service: Any = None, severity: str = "info",
           event_type: str = "agent_execution_started", size: int = 0) -> DashboardEvent:
    data: dict[str, Any] = {"i": seq}
    if agent is not None:
        data["agent_name"] = agent
        data["agent_id"] = f"id-{agent}" if isinstance(agent, str) else agent
    if service is not None:
        data["service_name"] = service
    if size:
        data["blob"] = "x" * size
    return DashboardEvent(f"e{seq}", event_type, "2026-01-15T10:30:00.000Z", data, Severity(severity),
                          seq=seq)


def _mixed(seq: int) -> DashboardEvent:
    """Varied events: 400 agents, 5 services (and some events with none, or with a non-string one)."""
    service: Any = ["svc-a", "svc-b", "svc-c", "svc-d", "svc-e", None, {"not": "a name"}][seq % 7]
    return _event(seq, agent=f"agent-{seq % 400}" if seq % 3 else None, service=service,
                  severity=["info", "success", "warning", "error"][seq % 4],
                  event_type=[t.value for t in EventType][seq % 10])


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    made: EventStore = (MemoryEventStore(10_000) if request.param == "memory"
                        else SqliteEventStore(tmp_path / "events.db"))
    try:
        yield made
    finally:
        made.close()


def _fill(store: EventStore, seqs: range | list[int]) -> list[DashboardEvent]:
    events = [_mixed(seq) for seq in seqs]
    for event in events:
        store.append(event)
    assert store.wait_durable(events[-1].seq or 0)
    return events


QUERIES = [
    {"services": ["svc-b"]},
    {"services": ["svc-a", "svc-e", "nowhere"]},
    {"services": ["nowhere"]},
    {"agents": [f"agent-{i}" for i in range(0, 400, 2)] + [f"ghost-{i}" for i in range(800)]},
    {"agents": ["id-agent-7"], "services": ["svc-c", "svc-d"]},
    {"severities": ["error"], "event_types": ["error_occurred", "metrics_updated", "agent_registered"]},
    {"severities": ["warning"], "services": ["svc-a"], "agents": ["agent-1", "agent-5"]},
    {},
]


@pytest.mark.parametrize("filters", QUERIES)
def test_search_matches_the_reference_on_both_stores(store: EventStore, filters: dict[str, Any]) -> None:
    events = _fill(store, [*range(1, 1201), *range(1500, 2001)])  # a hole: 1201-1499 were never stored
    reference = [e for e in events if EventQuery(**filters).matches(e)]
    wanted = [e.seq for e in reference]
    # The plain query: newest first (returned ascending), and from a seq on.
    assert [e.seq for e in store.query(EventQuery(**filters), 50)] == wanted[-50:]
    assert [e.seq for e in store.query(EventQuery(after_seq=300, **filters), 50)] == \
        [s for s in wanted if s > 300][:50]
    # Paged with a small scan cap, both ways: every match exactly once, in order.
    for cap in (7, 128, 5000):
        up: list[int] = []
        after = 0
        for _ in range(2000):
            query = EventQuery(after_seq=after, until_seq=2000, **filters)
            page = store.search(query, 20, max_scanned_rows=cap)
            up.extend(e.seq or 0 for e in page.events)
            assert page.scanned <= cap
            if page.complete:
                assert page.resume_seq == 2000 and page.stopped_by is None
                break
            assert page.resume_seq > after and page.stopped_by in (STOPPED_BY_LIMIT, STOPPED_BY_SCAN)
            after = page.resume_seq
        assert up == wanted, cap
        down: list[int] = []
        until: int | None = None
        for _ in range(2000):
            page = store.search(EventQuery(until_seq=until, **filters), 20, max_scanned_rows=cap)
            down[:0] = [e.seq or 0 for e in page.events]
            if page.complete:
                break
            assert until is None or page.resume_seq < until
            until = page.resume_seq
        assert down == wanted, cap
    # A cursor from beyond the end (a poller ahead of a restored backup) stays where it was.
    page = store.search(EventQuery(after_seq=5000, until_seq=2000, **filters), 10, max_scanned_rows=7)
    assert page == page._replace(events=[], complete=True, resume_seq=5000, stopped_by=None)


def test_service_filter_ignores_non_string_services(store: EventStore) -> None:
    _fill(store, range(1, 100))
    assert store.query(EventQuery(services=["{'not': 'a name'}", "None"]), 100) == []
    found = store.query(EventQuery(services=["svc-a"]), 100)
    assert found and all(e.data["service_name"] == "svc-a" for e in found)


def test_a_scan_cap_skips_what_retention_deleted(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db", retention_events=100)
    try:
        _fill(store, range(1, 501))
        deadline = time.monotonic() + WAIT
        while store.first_seq() != 401 and time.monotonic() < deadline:
            time.sleep(0.01)
        # The window begins at the first event held (401), not at after_seq + 1.
        page = store.search(EventQuery(after_seq=0), 1000, max_scanned_rows=50)
        assert page.first_seq == 401 and [e.seq for e in page.events] == list(range(401, 451))
        assert page.stopped_by == STOPPED_BY_SCAN and page.resume_seq == 450
    finally:
        store.close()


def test_search_stops_at_max_bytes_and_keeps_one_event_at_least(store: EventStore) -> None:
    events = [_event(seq, size=10_000) for seq in range(1, 51)]
    for event in events:
        store.append(event)
    store.wait_durable(50)
    page = store.search(EventQuery(after_seq=0), 1000, max_bytes=35_000)
    assert [e.seq for e in page.events] == [1, 2, 3] and page.stopped_by == STOPPED_BY_BYTES
    assert page.resume_seq == 3 and sum(len(e.to_json_bytes()) + 1 for e in page.events) <= 35_000
    page = store.search(EventQuery(), 1000, max_bytes=100)  # one event is bigger than the cap
    assert [e.seq for e in page.events] == [50] and page.resume_seq == 49


def test_bad_search_bounds_are_value_errors(store: EventStore) -> None:
    for kwargs in ({"max_scanned_rows": 0}, {"max_bytes": -1}, {"max_scanned_rows": True}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            store.search(EventQuery(), 10, **kwargs)


def test_a_read_error_is_an_error_not_an_empty_page(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    try:
        _fill(store, range(1, 20))
        other = sqlite3.connect(tmp_path / "events.db")
        other.execute("DROP TABLE events")  # the file is damaged under the server's feet
        other.close()
        with pytest.raises(StoreReadError, match="read failed"):
            store.search(EventQuery(after_seq=0), 10)
        assert store.read_errors >= 1
        # A snapshot still gets what is queued (nothing here) instead of failing the connection.
        assert store.query(EventQuery(), 10) == []
    finally:
        store.close()


async def test_api_503_and_resume_error_when_the_history_cannot_be_read(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    state = DashboardState(store=store)
    try:
        for i in range(20):
            await state.error_occurred("src", f"boom {i}", "E")
        assert store.wait_durable(state.last_seq)
        async with running_server(state) as server, aiohttp.ClientSession() as session:
            async with session.get(server.url + "/api/events?service=svc") as response:
                assert response.status == 200 and (await response.json())["events"] == []
            other = sqlite3.connect(tmp_path / "events.db")
            other.execute("DROP TABLE events")
            other.close()
            async with session.get(server.url + "/api/events?service=svc") as response:
                assert response.status == 503
                assert "cannot be read" in (await response.json())["error"]
            async with session.ws_connect(server.url + "/ws") as ws:
                assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "snapshot"
                await ws.send_json({"type": "resume", "after_seq": 0})
                message = orjson.loads((await ws.receive(timeout=WAIT)).data)
                assert message["type"] == "resumed" and message["complete"] is False
                assert message["next_after_seq"] == 0 and "cannot be read" in message["error"]
    finally:
        store.close()


async def test_api_pages_by_bytes_and_scan_cap_in_process() -> None:
    state = DashboardState(max_history=5000)
    for seq in range(1, 401):
        state.publish(DashboardEvent(f"e{seq}", "agent_execution_started", "2026-01-15T10:30:00.000Z",
                                     {"agent_name": f"a{seq % 3}", "service_name": f"s{seq % 4}",
                                      "blob": "y" * 2000}))
    async with running_server(state, max_response_bytes=64 * 1024, max_scanned_rows=150) as server, \
            aiohttp.ClientSession() as session:
        async def get(query: str) -> tuple[int, dict[str, Any], int]:
            async with session.get(server.url + "/api/events" + query) as response:
                raw = await response.read()
                return response.status, orjson.loads(raw), len(raw)

        status, body, size = await get("?after_seq=0&limit=1000")
        assert status == 200 and size <= 64 * 1024
        assert body["has_more"] and body["stopped_by"] == "max_response_bytes"
        assert [e["seq"] for e in body["events"]] == list(range(1, len(body["events"]) + 1))
        assert body["next_after_seq"] == body["events"][-1]["seq"]
        # Following the cursor walks everything once, whichever bound stops each page.
        stops: set[str] = set()
        for filters, matching in (("service=s1,s2", lambda s: s % 4 in (1, 2)),
                                  ("service=s1&agent=a1", lambda s: s % 4 == 1 and s % 3 == 1)):
            seqs: list[int] = []
            after = 0
            while True:
                status, body, size = await get(f"?after_seq={after}&limit=1000&{filters}")
                assert status == 200 and size <= 64 * 1024
                seqs.extend(e["seq"] for e in body["events"])
                if not body["has_more"]:
                    break
                stops.add(body["stopped_by"])
                after = body["next_after_seq"]
            assert seqs == [s for s in range(1, 401) if matching(s)], filters
        assert stops == {"max_response_bytes", "max_scanned_rows"}
        too_many = ",".join("x" * 1001)
        for query, parameter in [("?before_seq=0", "before_seq"), ("?service=" + too_many, "service")]:
            status, body, _ = await get(query)
            assert status == 400 and body["parameter"] == parameter


class _SlowSearches(MemoryEventStore):
    """A memory store whose searches take 50 ms and note how many run at once."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0

    def search(self, query: EventQuery, limit: int, **bounds: Any) -> Any:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return super().search(query, limit, **bounds)
        finally:
            with self.lock:
                self.running -= 1


async def test_resume_after_resume_keeps_one_search_in_flight_per_client() -> None:
    store = _SlowSearches()
    state = DashboardState(store=store)
    for i in range(50):
        await state.error_occurred("src", f"boom {i}", "E")
    async with running_server(state) as server, aiohttp.ClientSession() as session, \
            session.ws_connect(server.url + "/ws") as ws:
        assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "snapshot"
        for _ in range(30):  # faster than the store answers
            await ws.send_json({"type": "resume", "after_seq": 0})
        resumed = 0
        while resumed == 0 or store.running:
            message = orjson.loads((await ws.receive(timeout=WAIT)).data)
            resumed += message["type"] == "resumed"
        assert store.most == 1 and store.calls < 30, (store.most, store.calls)


# --------------------------------------------------------------------------- schema version 1 -> 2
def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    events = 100_000
    generate_big_db(path, events, schema_version=1)
    with sqlite3.connect(path) as conn:  # one row a version 1 server could not parse as JSON either
        conn.execute("UPDATE events SET event_json = 'not json at all' WHERE seq = 5")
    started = time.perf_counter()
    store = SqliteEventStore(path, retention_events=None)
    seconds = time.perf_counter() - started
    try:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert "events_by_service" in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        by_service = dict(conn.execute("SELECT service_name, COUNT(*) FROM events GROUP BY service_name"))
        conn.close()
        expected: dict[str | None, int] = {None: 1}
        for seq in range(1, events + 1):
            if seq != 5:
                expected[service_of(seq)] = expected.get(service_of(seq), 0) + 1
        assert by_service == expected
        found = store.query(EventQuery(services=["svc-ops"]), 5)
        newest_ops = [s for s in range(events - 200, events + 1) if service_of(s) == "svc-ops"]
        assert [e.seq for e in found] == newest_ops[-5:]
        # The writer goes on in the migrated layout (the column computes itself).
        new = _event(events + 1, service="svc-new")
        store.append(new)
        assert store.wait_durable(events + 1)
        assert store.query(EventQuery(services=["svc-new"]), 5) == [new]
    finally:
        store.close()
    assert seconds < 5.0, seconds  # 1,000,000 events: about 2 s (docs/operations.md)
    SqliteEventStore(path).close()  # opened again: version 2 already, nothing to do


def test_new_databases_have_the_service_column_before_the_event_text(tmp_path: Path) -> None:
    SqliteEventStore(tmp_path / "events.db").close()
    conn = sqlite3.connect(tmp_path / "events.db")
    columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    conn.close()
    assert columns[-2:] == ["service_name", "event_json"]


def test_filters_keep_their_services_set() -> None:
    assert EventQuery(services=SERVICES).services == frozenset(SERVICES)
    assert EventQuery(services=[]).services is None


@pytest.mark.parametrize("option, value", [("max_scanned_rows", 0), ("max_scanned_rows", True),
                                           ("max_response_bytes", 1024), ("max_response_bytes", "4M")])
def test_the_history_bounds_are_validated(option: str, value: Any) -> None:
    from otel_dashboard.server.app import DashboardWebSocketServer

    with pytest.raises(ValueError, match=option):
        DashboardWebSocketServer(**{option: value})
