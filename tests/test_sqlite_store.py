"""The event store: one contract for both implementations, then what only the SQLite store does.

Every SQLite test uses a real database file under ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.base import EventQuery, EventStore, MemoryEventStore, StoreError
from otel_dashboard.store.sqlite import SCHEMA_VERSION, SqliteEventStore

pytestmark = pytest.mark.timeout(60)

_TYPES = [EventType.AGENT_EXECUTION_STARTED, EventType.ERROR_OCCURRED, EventType.OPPORTUNITY_DISCOVERED]
_SEVERITIES = [Severity.INFO, Severity.ERROR, Severity.SUCCESS]


def make_event(seq: int, *, timestamp_ns: int | None = None, **data: Any) -> DashboardEvent:
    """Event ``seq``: its type, severity and agent cycle with ``seq`` so that filters have work to do."""
    data = {"agent_id": f"id-{seq % 4}", "agent_name": f"Agent{seq % 4}", "n": seq, **data}
    event = DashboardEvent.create(_TYPES[seq % 3], data, _SEVERITIES[seq % 3], timestamp_ns=timestamp_ns)
    event.seq = seq
    return event


def seqs(events: list[DashboardEvent]) -> list[int]:
    return [e.seq or 0 for e in events]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def db_seqs(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]


class BlockedWriter:
    """Holds the SQLite writer before its next transaction, so appended events stay pending."""

    def __init__(self, store: SqliteEventStore) -> None:
        self.release = threading.Event()
        self._writer = store._writer
        self._original = store._writer.execute_batch

    def __enter__(self) -> BlockedWriter:
        def blocked(*args: Any) -> None:
            self.release.wait(30)
            self._original(*args)

        self._writer.execute_batch = blocked  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.execute_batch = self._original  # type: ignore[method-assign]
        self.release.set()


# ----------------------------------------------------------------------------- the contract
# "sqlite" reads while the events are (mostly) still queued, "sqlite-committed" after they are
# committed, "sqlite-split" with the first half committed and the second half held in the queue.
STORE_KINDS = ["memory", "sqlite", "sqlite-committed", "sqlite-split"]


@pytest.fixture(name="load", params=STORE_KINDS)
def fixture_load(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., EventStore]]:
    kind = request.param
    opened: list[EventStore] = []
    blockers: list[BlockedWriter] = []

    def load(events: list[DashboardEvent]) -> EventStore:
        store: EventStore
        if kind == "memory":
            store = MemoryEventStore(10_000)
        else:
            store = SqliteEventStore(tmp_path / f"events-{len(opened)}.db")
        opened.append(store)
        if kind == "sqlite-split" and isinstance(store, SqliteEventStore):
            half = len(events) // 2
            for event in events[:half]:
                store.append(event)
            assert store.wait_durable(events[half - 1].seq or 0 if half else 0, 10)
            blocker = BlockedWriter(store).__enter__()
            blockers.append(blocker)
            events = events[half:]
        for event in events:
            store.append(event)
        if kind == "sqlite-committed" and events:
            assert store.wait_durable(events[-1].seq or 0, 10)
        return store

    yield load
    for blocker in blockers:
        blocker.__exit__()
    for store in opened:
        store.close()


def test_after_is_ascending_paged_and_bounded(load: Callable[..., EventStore]) -> None:
    store = load([make_event(i) for i in range(1, 1501)])
    assert seqs(store.after(0, 1200)) == list(range(1, 1201))  # limits past 1,000 work
    assert seqs(store.after(1195, 10)) == list(range(1196, 1206))
    assert seqs(store.after(1495, 1000)) == [1496, 1497, 1498, 1499, 1500]
    assert store.after(1500, 10) == []
    assert store.after(0, 0) == []
    # Paging through everything visits each event once, in order.
    cursor, seen = 0, []
    while page := store.after(cursor, 333):
        seen.extend(seqs(page))
        cursor = page[-1].seq or 0
    assert seen == list(range(1, 1501))


def test_events_come_back_whole(load: Callable[..., EventStore]) -> None:
    original = make_event(1, nested={"list": [1, 2.5, None], "text": "<b>é</b>"})
    original.trace_id, original.span_id = "ab" * 16, "cd" * 8
    store = load([original, make_event(2)])
    (back,) = store.after(0, 1)
    assert back.to_dict() == original.to_dict()
    assert back.event_type is EventType.ERROR_OCCURRED and back.severity is Severity.ERROR


def test_recent_is_newest_first_and_bounded(load: Callable[..., EventStore]) -> None:
    store = load([make_event(i) for i in range(1, 51)])
    assert seqs(store.recent(5)) == [50, 49, 48, 47, 46]
    assert seqs(store.recent(30)) == list(range(50, 20, -1))
    assert seqs(store.recent(500)) == list(range(50, 0, -1))
    assert store.recent(0) == []


def test_query_filters_by_type_severity_and_agent(load: Callable[..., EventStore]) -> None:
    store = load([make_event(i) for i in range(1, 61)])
    errors = store.query(EventQuery(after_seq=0, event_types=[EventType.ERROR_OCCURRED]), 5)
    assert seqs(errors) == [1, 4, 7, 10, 13]
    by_severity = store.query(EventQuery(after_seq=10, severities=["success"]), 3)
    assert seqs(by_severity) == [11, 14, 17]
    by_id = store.query(EventQuery(after_seq=0, agents=["id-1"]), 4)
    assert seqs(by_id) == [1, 5, 9, 13]
    by_name = store.query(EventQuery(after_seq=0, agents=["Agent2", "id-3"]), 4)
    assert seqs(by_name) == [2, 3, 6, 7]
    combined = EventQuery(after_seq=0, event_types=["opportunity_discovered"], agents=["Agent1"])
    assert seqs(store.query(combined, 100)) == [i for i in range(1, 61) if i % 3 == 2 and i % 4 == 1]
    assert store.query(EventQuery(after_seq=0, agents=["nobody"]), 10) == []


def test_query_without_after_seq_gives_the_newest_matches_oldest_first(
    load: Callable[..., EventStore],
) -> None:
    store = load([make_event(i) for i in range(1, 61)])
    newest_errors = store.query(EventQuery(event_types=[EventType.ERROR_OCCURRED]), 3)
    assert seqs(newest_errors) == [52, 55, 58]
    assert seqs(store.query(EventQuery(), 4)) == [57, 58, 59, 60]
    assert seqs(store.query(EventQuery(agents=["id-0"]), 100)) == list(range(4, 61, 4))
    assert store.query(EventQuery(), 0) == []


def test_first_last_and_counts(load: Callable[..., EventStore]) -> None:
    empty = load([])
    assert empty.first_seq() is None and empty.last_seq() is None
    assert empty.count_by_type() == {} and empty.recent(3) == [] and empty.after(0, 3) == []
    store = load([make_event(i) for i in range(5, 35)])
    assert store.first_seq() == 5
    assert store.last_seq() == 34
    assert store.count_by_type() == {
        "agent_execution_started": 10, "error_occurred": 10, "opportunity_discovered": 10,
    }


def test_wait_durable_answers_for_stored_events(load: Callable[..., EventStore]) -> None:
    store = load([make_event(i) for i in range(1, 11)])
    assert store.wait_durable(5, 5.0) is True  # (the split fixture committed 1-5 and holds 6-10)
    assert asyncio.run(store.wait_durable_async(5, 5.0)) is True


def test_close_is_idempotent(load: Callable[..., EventStore]) -> None:
    store = load([])
    store.close()
    store.close()
    assert store.recent(5) == []


def test_until_seq_bounds_a_query_from_above(load: Callable[..., EventStore]) -> None:
    store = load([make_event(i) for i in range(1, 61)])
    assert seqs(store.query(EventQuery(until_seq=40), 3)) == [38, 39, 40]  # the newest up to it
    assert seqs(store.query(EventQuery(after_seq=36, until_seq=40), 10)) == [37, 38, 39, 40]
    errors_up_to_50 = store.query(EventQuery(until_seq=50, event_types=[EventType.ERROR_OCCURRED]), 2)
    assert seqs(errors_up_to_50) == [46, 49]
    by_agent = store.query(EventQuery(after_seq=0, until_seq=12, agents=["id-1"]), 10)
    assert seqs(by_agent) == [1, 5, 9]
    assert store.query(EventQuery(until_seq=0), 10) == []
    assert seqs(store.query(EventQuery(until_seq=10**9), 2)) == [59, 60]


def test_async_reads_answer_as_the_plain_ones(load: Callable[..., EventStore]) -> None:
    # For SQLite the "sqlite" and "sqlite-split" kinds read events still queued for the writer.
    store = load([make_event(i) for i in range(1, 61)])
    queries = [EventQuery(), EventQuery(after_seq=10, severities=["success"]),
               EventQuery(agents=["Agent2", "id-3"]), EventQuery(after_seq=5, until_seq=45),
               EventQuery(until_seq=33, event_types=[EventType.ERROR_OCCURRED])]

    async def scenario() -> None:
        assert seqs(await store.recent_async(5)) == [60, 59, 58, 57, 56]
        assert seqs(await store.after_async(25, 1000)) == list(range(26, 61))
        assert await store.after_async(60, 10) == []
        for query in queries:
            assert seqs(await store.query_async(query, 7)) == seqs(store.query(query, 7))
        assert await store.count_by_type_async() == store.count_by_type() == {
            "agent_execution_started": 20, "error_occurred": 20, "opportunity_discovered": 20,
        }
        assert await store.first_seq_async() == 1

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- SQLite only
@pytest.fixture(name="db_path")
def fixture_db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def test_file_is_a_versioned_wal_database_with_the_indexes(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    store.append(make_event(1))
    assert store.wait_durable(1, 5)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexed = {row[2] for name in ("events_by_type", "events_by_agent_id", "events_by_agent_name",
                                       "events_by_time", "events_by_service")
                   for row in conn.execute(f"PRAGMA index_info({name})")}
        assert indexed == {"event_type", "agent_id", "agent_name", "ts", "service_name"}
        seq, etype, agent_id, agent_name, ts, service, body = conn.execute(
            "SELECT seq, event_type, agent_id, agent_name, ts, service_name, event_json FROM events"
        ).fetchone()
    assert (seq, etype, agent_id, agent_name, service) == (1, "error_occurred", "id-1", "Agent1", None)
    assert abs(ts - time.time()) < 60
    assert '"seq":1' in body
    store.close()


def test_reads_see_queued_events_and_never_double_them(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    for i in range(1, 11):
        store.append(make_event(i))
    assert store.wait_durable(10, 5)
    with BlockedWriter(store) as blocker:
        for i in range(11, 21):
            store.append(make_event(i))
        assert store.unwritten_events == 10
        assert seqs(store.after(5, 100)) == list(range(6, 21))
        assert seqs(store.recent(12)) == list(range(20, 8, -1))
        blocker.release.set()
        # Reads racing the commit: every read is whole, whatever the writer is doing.
        for _ in range(200):
            assert seqs(store.after(0, 100)) == list(range(1, 21))
    assert store.wait_durable(20, 5)
    assert db_seqs(db_path) == list(range(1, 21))
    store.close()


def test_async_reads_see_queued_events_and_never_double_them(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    for i in range(1, 11):
        store.append(make_event(i))
    assert store.wait_durable(10, 5)

    async def scenario() -> None:
        with BlockedWriter(store) as blocker:
            for i in range(11, 21):
                store.append(make_event(i))
            assert store.unwritten_events == 10
            assert seqs(await store.after_async(5, 100)) == list(range(6, 21))
            assert seqs(await store.recent_async(12)) == list(range(20, 8, -1))
            assert seqs(await store.query_async(EventQuery(until_seq=15), 3)) == [13, 14, 15]
            assert (await store.count_by_type_async())["error_occurred"] == 7
            blocker.release.set()
            # Reads racing the commit: every read is whole, whatever the writer is doing.
            for _ in range(50):
                assert seqs(await store.after_async(0, 100)) == list(range(1, 21))

    asyncio.run(scenario())
    store.close()


def test_async_reads_run_no_sql_on_the_event_loop(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import otel_dashboard.store.sqlite.reader as reader_module

    sql_threads: set[int] = set()
    real_connect = reader_module.connect_reader

    def traced_connect(path: str) -> sqlite3.Connection:
        conn = real_connect(path)
        conn.set_trace_callback(lambda statement: sql_threads.add(threading.get_ident()))
        return conn

    monkeypatch.setattr(reader_module, "connect_reader", traced_connect)

    async def scenario() -> None:
        store = SqliteEventStore(db_path)  # made on the loop's thread, like a server's
        for i in range(1, 31):
            store.append(make_event(i))
        assert await store.wait_durable_async(30, 5)
        assert seqs(await store.recent_async(3)) == [30, 29, 28]
        assert len(await store.after_async(0, 100)) == 30
        assert len(await store.query_async(EventQuery(agents=["id-1"]), 100)) == 8
        assert sum((await store.count_by_type_async()).values()) == 30
        assert await store.first_seq_async() == 1
        assert sql_threads and threading.get_ident() not in sql_threads
        store.close()
        # Closed: async reads find nothing, and still run no SQL on the loop.
        assert await store.recent_async(3) == [] and await store.after_async(0, 10) == []
        assert await store.first_seq_async() is None
        assert threading.get_ident() not in sql_threads

    asyncio.run(scenario())


def test_append_needs_an_increasing_seq(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    store.append(make_event(3))
    unnumbered = make_event(4)
    unnumbered.seq = None
    with pytest.raises(ValueError, match="seq"):
        store.append(unnumbered)
    with pytest.raises(ValueError, match="increasing"):
        store.append(make_event(3))
    store.close()


def test_close_writes_what_is_queued(db_path: Path) -> None:
    store = SqliteEventStore(db_path, batch_max_events=50)
    for i in range(1, 2001):
        store.append(make_event(i))
    store.close()
    assert db_seqs(db_path) == list(range(1, 2001))
    assert store.wait_durable(2000, 0) is True
    # After close: nothing is stored any more, and that is said, not hidden.
    store.append(make_event(2001))
    assert store.wait_durable(2001, 0) is False
    assert store.dropped_events == 1
    assert store.after(0, 10) == []


def test_seq_high_water_mark_survives_even_when_retention_empties_the_table(db_path: Path) -> None:
    two_hours_ago = time.time_ns() - 2 * 3600 * 10**9
    store = SqliteEventStore(db_path, retention_hours=1, retention_interval_seconds=0.05)
    for i in range(1, 6):
        store.append(make_event(i, timestamp_ns=two_hours_ago))
    assert store.wait_durable(5, 5)
    wait_until(lambda: db_seqs(db_path) == [])
    store.close()
    reopened = SqliteEventStore(db_path)
    assert reopened.last_seq() == 5 and reopened.first_seq() is None
    reopened.close()


def test_retention_by_count_deletes_in_small_batches(db_path: Path) -> None:
    store = SqliteEventStore(db_path, retention_events=10, retention_batch_events=3, batch_max_events=7)
    for i in range(1, 51):
        store.append(make_event(i))
    assert store.wait_durable(50, 5)
    wait_until(lambda: store.first_seq() == 41)
    assert db_seqs(db_path) == list(range(41, 51))
    assert seqs(store.after(0, 100)) == list(range(41, 51))
    assert store.stats()["deleted_events"] == 40
    store.close()


def test_retention_by_age_uses_the_event_timestamp(db_path: Path) -> None:
    two_hours_ago = time.time_ns() - 2 * 3600 * 10**9
    store = SqliteEventStore(db_path, retention_events=None, retention_hours=1.0,
                             retention_interval_seconds=0.05, retention_batch_events=4)
    for i in range(1, 31):
        store.append(make_event(i, timestamp_ns=two_hours_ago if i % 2 else None))
    unreadable_time = make_event(31)
    unreadable_time.timestamp = "yesterday-ish"  # kept: aged from when it was written
    store.append(unreadable_time)
    assert store.wait_durable(31, 5)
    wait_until(lambda: db_seqs(db_path) == [*range(2, 31, 2), 31])
    store.close()


def test_async_wait_does_not_block_the_loop_and_times_out(db_path: Path) -> None:
    store = SqliteEventStore(db_path)

    async def scenario() -> None:
        with BlockedWriter(store) as blocker:
            store.append(make_event(1))
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            task = asyncio.create_task(ticker())
            assert await store.wait_durable_async(1, 0.2) is False  # held: times out
            assert ticks >= 5  # the loop kept running while we waited
            waiting = asyncio.create_task(store.wait_durable_async(1, 5))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            blocker.release.set()
            assert await waiting is True
            task.cancel()

    asyncio.run(scenario())
    store.close()


def test_events_that_orjson_refuses_do_not_poison_the_batch(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    store.append(make_event(1, huge=2**70))
    store.append(make_event(2))
    assert store.wait_durable(2, 5)
    first, second = store.after(0, 10)
    assert first.data["huge"] in (2**70, str(2**70)) and second.seq == 2
    store.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"retention_events": 0}, "retention_events"),
        ({"retention_hours": -1}, "retention_hours"),
        ({"batch_max_events": 0}, "batch_max_events"),
        ({"synchronous": "off"}, "synchronous"),
        ({"max_unwritten_events": 0}, "max_unwritten_events"),
    ],
)
def test_bad_options_are_value_errors(db_path: Path, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SqliteEventStore(db_path, **kwargs)


def test_memory_is_not_a_path() -> None:
    with pytest.raises(ValueError, match="MemoryEventStore"):
        SqliteEventStore(":memory:")


def test_full_synchronous_mode_is_applied(db_path: Path) -> None:
    store = SqliteEventStore(db_path, synchronous="full")
    assert store._writer.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


# ----------------------------------------------------------------------------- errors at start
def test_a_corrupt_file_is_a_clear_error_naming_the_path(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, it is garbage\x00\xff" * 200)
    with pytest.raises(StoreError) as excinfo:
        SqliteEventStore(db_path)
    assert str(db_path) in str(excinfo.value)
    assert "corrupt" in str(excinfo.value)
    assert excinfo.value.path == str(db_path)
    assert isinstance(excinfo.value, ValueError)


def test_a_foreign_sqlite_file_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not an otel-dashboard database") as excinfo:
        SqliteEventStore(db_path)
    assert str(db_path) in str(excinfo.value)


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    SqliteEventStore(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        SqliteEventStore(db_path)


# The suite runs as root in CI, where chmod does not stop writes. These locations are unwritable
# for root too: a path under a regular FILE, and a path that IS a directory.
def test_a_path_under_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    path = not_a_dir / "events.db"
    with pytest.raises(StoreError) as excinfo:
        SqliteEventStore(path)
    assert str(path) in str(excinfo.value)


def test_a_directory_as_the_path_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.mkdir()
    with pytest.raises(StoreError) as excinfo:
        SqliteEventStore(path)
    assert str(path) in str(excinfo.value) and "cannot open" in str(excinfo.value)


def test_a_second_server_on_the_same_file_is_refused(db_path: Path) -> None:
    first = SqliteEventStore(db_path)
    with pytest.raises(StoreError, match="in use by another otel-dashboard process"):
        SqliteEventStore(db_path)
    first.close()
    SqliteEventStore(db_path).close()  # free again once the first one closed


# ----------------------------------------------------------------------------- errors while running
class DiskFull:
    """Makes the writer's transactions fail like a full disk until ``clear()``.

    Fault injection: a real full disk cannot be had in a test, so the writer's one-transaction seam
    raises what SQLite raises then.
    """

    def __init__(self, store: SqliteEventStore) -> None:
        self.failing = True
        self.attempts = 0
        original = store._writer.execute_batch

        def execute(*args: Any) -> None:
            if self.failing:
                self.attempts += 1
                raise sqlite3.OperationalError("database or disk is full")
            original(*args)

        store._writer.execute_batch = execute  # type: ignore[method-assign]

    def clear(self) -> None:
        self.failing = False


def test_a_full_disk_is_counted_logged_and_the_backlog_written_later(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteEventStore(db_path, retry_initial_seconds=0.01, retry_max_seconds=0.05)
    state = DashboardState(store=store)
    live: list[int] = []
    state.subscribe(lambda event: live.append(event.seq or 0))
    disk = DiskFull(store)
    with caplog.at_level(logging.WARNING, logger="otel_dashboard.store.sqlite"):
        for i in range(50):
            state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"i": i}, Severity.ERROR))
        assert live == list(range(1, 51))  # live events keep flowing
        assert state.wait_durable(50, 0.2) is False
        wait_until(lambda: store.write_errors >= 3)  # the first message was logged before attempt 2
    assert disk.attempts >= 3
    assert store.unwritten_events == 50
    assert seqs(state.get_events_after(0, 100)) == list(range(1, 51))  # history still answers
    assert any("database or disk is full" in r.getMessage() and str(db_path) in r.getMessage()
               for r in caplog.records)
    # Rate-limited: a handful of retries, one message.
    assert sum("disk is full" in r.getMessage() for r in caplog.records) == 1
    disk.clear()
    assert state.wait_durable(50, 5) is True
    assert store.unwritten_events == 0 and store.dropped_events == 0
    assert db_seqs(db_path) == list(range(1, 51))
    store.close()


def test_beyond_the_cap_the_oldest_unwritten_are_dropped_loudly(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteEventStore(db_path, max_unwritten_events=20, retry_initial_seconds=0.01,
                             retry_max_seconds=0.02)
    disk = DiskFull(store)
    with caplog.at_level(logging.WARNING, logger="otel_dashboard.store.sqlite"):
        for i in range(1, 51):
            store.append(make_event(i))
        wait_until(lambda: store.dropped_events == 30)
        wait_until(lambda: any(r.levelno == logging.ERROR and "DROPPED the oldest 30" in r.getMessage()
                               for r in caplog.records))
    assert store.wait_durable(10, 0) is False  # dropped: said at once, no waiting
    disk.clear()
    assert store.wait_durable(50, 5) is True
    assert db_seqs(db_path) == list(range(31, 51))
    assert store.stats()["dropped_events"] == 30
    store.close()


def test_close_during_an_outage_is_bounded_and_counts_what_is_lost(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteEventStore(db_path, retry_initial_seconds=0.01, retry_max_seconds=0.02)
    DiskFull(store)
    store.append(make_event(1))
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="otel_dashboard.store.sqlite"):
        store.close(timeout_seconds=0.3)
    assert time.monotonic() - began < 5
    assert store.dropped_events == 1 and store.wait_durable(1, 0) is False
    assert any("not written" in r.getMessage() for r in caplog.records)


def test_lone_surrogates_from_json_ingest_are_stored_and_read_back(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    odd = make_event(1, agent_id="agent-\ud800", note="half a pair: \udfff")
    odd.event_id = "id-\ud800"
    store.append(odd)
    store.append(make_event(2))
    assert store.wait_durable(2, 5)
    back = store.after(0, 1)[0]
    assert back.data["note"] == "half a pair: \udfff" and back.event_id == "id-\ud800"
    assert store.read_errors == 0
    store.close()


def test_a_row_sqlite_refuses_is_dropped_alone_and_said_loudly(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import otel_dashboard.store.sqlite.writer as writer_module

    original_row = writer_module.event_row

    def row(event: DashboardEvent, now: float) -> tuple[Any, ...]:
        values = original_row(event, now)
        # Fault injection: a value no SQLite column can hold, in event 3 only.
        return (*values[:4], object(), *values[5:]) if event.seq == 3 else values

    monkeypatch.setattr(writer_module, "event_row", row)
    store = SqliteEventStore(db_path)
    with caplog.at_level(logging.ERROR, logger="otel_dashboard.store.sqlite"):
        for i in range(1, 6):
            store.append(make_event(i))
        assert store.wait_durable(5, 5) is True
    assert store.wait_durable(3, 0) is False
    assert db_seqs(db_path) == [1, 2, 4, 5]
    assert store.dropped_events == 1
    assert any("seq=3 cannot be stored" in r.getMessage() for r in caplog.records)
    store.close()


def test_traces_list_filters_agree_in_every_store(load: Callable[..., EventStore]) -> None:
    """``root_only``, ``conversation_ids``, ``trace_ids`` and ``success`` (the traces list's filters)
    give the same pages from memory, the database and its queue."""
    events = []
    for seq in range(1, 61):
        event = make_event(seq, parent_run_id=None if seq % 2 else f"{seq:016x}",
                           conversation_id=f"c{seq % 3}" if seq % 5 else None, success=seq % 4 != 0)
        event.trace_id = f"{seq % 7 + 1:032x}"
        events.append(event)
    store = load(events)

    def found(**filters: Any) -> list[int]:
        page = store.search(EventQuery(**filters), 1000, max_scanned_rows=1000)
        return seqs(page.events)

    expected = {
        "root_only": [e.seq for e in events if e.data["parent_run_id"] is None],
        "conversation": [e.seq for e in events if e.data["conversation_id"] in ("c1", "c2")],
        "trace": [e.seq for e in events if e.trace_id == f"{3:032x}"],
        "failed": [e.seq for e in events if e.data["success"] is False],
        "ok_roots_c0": [e.seq for e in events if e.data["success"] and e.data["parent_run_id"] is None
                        and e.data["conversation_id"] == "c0"],
    }
    assert found(root_only=True) == expected["root_only"]
    assert found(conversation_ids=["c1", "c2"]) == expected["conversation"]
    assert found(trace_ids=[f"{3:032x}"]) == expected["trace"]
    assert found(success=False) == expected["failed"]
    assert found(success=True, root_only=True, conversation_ids=["c0"]) == expected["ok_roots_c0"]
    assert all(expected.values())
