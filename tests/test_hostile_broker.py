"""Issue 14, attack 6: hostile entries in the Redis streams, and the ``/health`` contract.

Anything that can write to the cluster's Redis can add stream entries of any shape. Against real
``redis-server`` processes (tests/redis_support.py) and real replicas (``otel-dashboard serve``
subprocesses, or in-process servers where a test breaks the reader on purpose), the entries are
written straight into the streams with the ``redis`` client, and the tests assert that every replica
reads on: the entry is skipped and counted by kind in ``/stats``, logged once per kind, the cursor moves
past it (no busy loop), and a good event sent afterwards reaches every replica. A reader that fails
anyway is restarted, and ``/health`` says ``degraded`` ("broker reader not reading") meanwhile.

The ``/health`` contract is the original design's: ``"healthy"`` or ``"degraded"`` with ``reasons``;
a stalled agent is counted (``stalled_agents``), not a reason.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from fuzz_support import fuzz_settings
from hostile_support import get_json, http, serve_process
from hypothesis import given
from hypothesis import strategies as st
from redis_support import RedisServer
from server_support import WAIT, running_server

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.server import health as health_module
from otel_dashboard.server.broker import BROKER_KEY, BrokerConfig, RedisBroker
from otel_dashboard.server.broker.entries import SKIP_KINDS, decode_event_entry, decode_span_entry
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.timeout(60)

TRACE_ID, SPAN_ID = "ab" * 16, "cd" * 8
JSON = {"Content-Type": "application/json"}


def _event_json(**fields: Any) -> bytes:
    return orjson.dumps({"seq": None, "event_type": "error_occurred", "data": {}, **fields})


def _record(span_id: str = SPAN_ID, **fields: Any) -> dict[str, Any]:
    return {"trace_id": TRACE_ID, "span_id": span_id, "name": "hostile.span", **fields}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def _wait_for_seq(url: str, seq: int) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while (health := get_json(url + "/health"))["last_seq"] < seq:
        assert time.monotonic() < deadline, f"{url} stopped reading at seq {health['last_seq']}, not {seq}"
        time.sleep(0.05)
    return health


# --------------------------------------------------------------------------- real serve replicas
def test_two_serve_replicas_read_on_past_every_hostile_entry(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"hostile-{uuid.uuid4().hex[:8]}"
    args = ("--broker", redis_server.url, "--broker-prefix", prefix, "--broker-max-entry-bytes", "65536")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with serve_process(tmp_path / "a", *args, "--name", "a") as a, \
            serve_process(tmp_path / "b", *args, "--name", "b") as b:
        status, _, body = http("POST", a.url + "/api/events", _event_json(data={"i": 0}), JSON)
        assert status == 200
        first = orjson.loads(body)["last_seq"]
        for replica in (a, b):
            _wait_for_seq(replica.url, first)

        client = redis.Redis.from_url(redis_server.url)
        events, spans = f"{prefix}:events", f"{prefix}:spans"
        hostile_events: list[tuple[dict[bytes, bytes], str]] = [
            ({b"x": b"1"}, "missing_field"),
            ({b"e": b"\xff{not json"}, "not_json"),
            ({b"e": b"[1, 2]"}, "invalid_event"),
            ({b"e": _event_json(event_type="no_such_type")}, "invalid_event"),
            ({b"e": _event_json(data=[1, 2])}, "invalid_event"),
            ({b"e": _event_json(timestamp=[1])}, "invalid_event"),
            ({b"e": _event_json(event_id=5)}, "invalid_event"),
            ({b"e": _event_json(data={"blob": "x" * 100_000})}, "too_large"),
        ]
        seq = first
        for fields, _ in hostile_events:
            seq += 1
            client.xadd(events, fields, id=f"{seq}-0")
        # The attack as found: one span record whose attributes are a list killed every reader.
        client.xadd(spans, {b"o": b"evil", b"r": orjson.dumps([_record(attributes=[1, 2])])})
        client.xadd(spans, {b"o": b"evil", b"r": b"{"})
        client.xadd(spans, {b"o": b"evil", b"r": b'{"records": []}'})
        client.xadd(spans, {b"o": b"evil"})
        client.xadd(spans, {b"o": b"evil", b"r": orjson.dumps(
            [{"trace_id": "zz"}, 5, _record("ef" * 8, attributes={"k": "v"})])})
        # And a malformed newest entry, which made a busy loop: nothing after it to move the cursor.
        seq += 1
        client.xadd(events, {b"e": b"garbage"}, id=f"{seq}-0")
        expected = dict.fromkeys(SKIP_KINDS, 0)
        expected.update({"missing_field": 2, "not_json": 3, "invalid_event": 5, "too_large": 1,
                         "invalid_span_entry": 1, "invalid_span_record": 2})

        def skipped(url: str) -> dict[str, int]:
            return get_json(url + "/stats")["broker"]["skipped_entries"]  # type: ignore[no-any-return]

        for replica in (a, b):
            deadline = time.monotonic() + WAIT
            while skipped(replica.url) != expected:
                assert time.monotonic() < deadline, skipped(replica.url)
                time.sleep(0.05)
        # No busy loop: a second later nothing was read again, and the replicas were idle.
        cpu = [_cpu_seconds(replica.proc.pid) for replica in (a, b)]
        time.sleep(1.0)
        for replica, before in zip((a, b), cpu, strict=True):
            assert skipped(replica.url) == expected
            assert _cpu_seconds(replica.proc.pid) - before < 0.5

        # Both replicas still read: a good event sent to b reaches both, after the hostile ones.
        status, _, body = http("POST", b.url + "/api/events", _event_json(data={"i": 1}), JSON)
        assert status == 200
        last = orjson.loads(body)["last_seq"]
        assert last > seq
        for replica in (a, b):
            health = _wait_for_seq(replica.url, last)
            assert health["status"] == "healthy" and health["reasons"] == [], health
            assert health["broker"]["reading"] is True
            broker = get_json(replica.url + "/stats")["broker"]
            assert broker["reader_restarts"] == 0 and broker["invalid_entries"] == sum(expected.values())
            # The span records that could be used were kept, cleaned as ingest cleans them.
            trace = get_json(f"{replica.url}/api/traces/{TRACE_ID}")
            attributes = {span["span_id"]: span["attributes"] for span in trace["spans"]}
            assert attributes == {SPAN_ID: {}, "ef" * 8: {"k": "v"}}
        client.close()
    # One log line per kind and replica, however many entries of the kind: the log is bounded.
    for name in ("a", "b"):
        log = (tmp_path / name / "serve.log").read_text(encoding="utf-8")
        lines = [line for line in log.splitlines() if "otel-dashboard broker: skipped" in line]
        assert len(lines) == sum(1 for count in expected.values() if count), lines
        assert "Traceback" not in log


# --------------------------------------------------------------------------- in-process replicas
def _config(redis_server: RedisServer, **kwargs: Any) -> BrokerConfig:
    return BrokerConfig(redis_server.url, prefix=f"hostile-{uuid.uuid4().hex[:8]}", **kwargs)


async def _health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url + "/health") as response:
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]


async def _until_health(session: aiohttp.ClientSession, url: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while (health := await _health(session, url))["status"] != status:
        assert time.monotonic() < deadline, f"/health stayed {health['status']}: {health.get('reasons')}"
        await asyncio.sleep(0.05)
    return health


async def test_a_failing_reader_restarts_and_health_says_it_is_not_reading(
    redis_server: RedisServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(DashboardState(), broker=_config(redis_server)) as server:
        assert (await _health(session, server.url))["status"] == "healthy"
        broker = server.app[BROKER_KEY]
        parse = broker._parse

        def broken(entries: Any) -> list[DashboardEvent]:
            raise RuntimeError("a bug in the reader")

        broker._parse = broken  # type: ignore[method-assign]
        response = await session.post(server.url + "/api/events", data=_event_json(data={"i": 0}),
                                      headers=JSON)
        seq = (await response.json())["last_seq"]
        health = await _until_health(session, server.url, "degraded")
        assert health["reasons"] == ["broker reader not reading"]
        assert health["broker"]["reading"] is False and health["broker"]["connected"] is True
        await asyncio.sleep(0.5)  # restarts after 0.1, 0.2 s...: it keeps trying, and says so once
        stats = broker.status()
        assert stats["reader_restarts"] >= 2 and "a bug in the reader" in stats["reader_last_error"]
        failures = [r for r in caplog.records if "stream reader failed" in r.getMessage()]
        assert len(failures) == 1
        assert not broker._reader_task.done()  # type: ignore[union-attr]

        broker._parse = parse  # type: ignore[method-assign]
        health = await _until_health(session, server.url, "healthy")
        assert health["reasons"] == [] and health["last_seq"] == seq  # the event was not lost
        text = await (await session.get(server.url + "/metrics")).text()
        assert "otel_dashboard_healthy 1.0" in text and "otel_dashboard_broker_reader_reading 1.0" in text

        # A reader task that is gone (not restarted: it was cancelled) is not reading either.
        broker._reader_task.cancel()  # type: ignore[union-attr]
        health = await _until_health(session, server.url, "degraded")
        assert health["reasons"] == ["broker reader not reading"]
        text = await (await session.get(server.url + "/metrics")).text()
        assert "otel_dashboard_healthy 0.0" in text and "otel_dashboard_broker_reader_reading 0.0" in text


async def test_an_event_the_state_cannot_take_is_skipped_and_the_rest_taken(
    redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with running_server(DashboardState(), broker=_config(redis_server)) as server:
        state = server.state
        apply = state._apply

        def fragile(event: DashboardEvent) -> None:
            if event.data.get("poison"):
                raise TypeError("unhashable type: 'list'")
            apply(event)

        state._apply = fragile  # type: ignore[method-assign]
        batch = {"events": [{"event_type": "error_occurred", "data": {"i": i, "poison": i == 1}}
                            for i in range(4)]}
        response = await session.post(server.url + "/api/events", json=batch)
        last = (await response.json())["last_seq"]
        deadline = time.monotonic() + WAIT
        while state.last_seq < last:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        broker = server.app[BROKER_KEY]
        assert broker.skipped_entries["unappliable"] == 1
        assert broker.received_events == 3
        assert state.get_metrics()["total_errors"] == 3
        assert (await _health(session, server.url))["status"] == "healthy"


# --------------------------------------------------------------------------- the /health contract
async def test_health_says_store_not_writing_while_the_store_fails(
    session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_module, "_DEGRADED_WINDOW_SECONDS", 0.5)
    monkeypatch.setattr(health_module, "_STORE_STALL_SECONDS", 0.5)
    store = SqliteEventStore(tmp_path / "events.db", retry_initial_seconds=0.05, retry_max_seconds=0.1)
    try:
        async with running_server(DashboardState(store=store)) as server:
            assert (await _health(session, server.url))["status"] == "healthy"
            writer = store._writer
            execute = writer.execute_batch

            def failing(*args: Any) -> None:
                raise sqlite3.OperationalError("disk I/O error")

            writer.execute_batch = failing  # type: ignore[method-assign]
            server.state.publish(DashboardEvent.create("error_occurred", {"i": 0}))
            health = await _until_health(session, server.url, "degraded")
            assert health["reasons"] == ["store not writing"]
            writer.execute_batch = execute  # type: ignore[method-assign]
            health = await _until_health(session, server.url, "healthy")
            assert health["reasons"] == [] and store.unwritten_events == 0
    finally:
        store.close()


async def test_health_is_the_servers_and_stalled_agents_are_counted_apart(
    session: aiohttp.ClientSession
) -> None:
    state = DashboardState(stall_threshold_seconds=0.01)
    async with running_server(state) as server:
        await state.agent_started("a1", "Slow", "t")
        await asyncio.sleep(0.05)
        health = await _health(session, server.url)
        assert health["status"] == "healthy" and health["reasons"] == []
        assert health["active_agents"] == 1 and health["stalled_agents"] == 1
        event = server.app[health_module.HEALTH_KEY].publish_health()
        assert event.severity.value == "info" and event.data["status"] == "healthy"


# --------------------------------------------------------------------------- fuzzing the decoding
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_record_values = st.fixed_dictionaries({}, optional={
    "trace_id": st.sampled_from([TRACE_ID, "0" * 32, "zz"]) | _json,
    "span_id": st.sampled_from([SPAN_ID, "0" * 16]) | _json,
    "name": st.text(max_size=10) | _json,
    "attributes": _json,
    "start_time_unix_nano": _json,
    "status": _json,
    "kind": _json,
})
_event_values = st.fixed_dictionaries({}, optional={
    "seq": _json,
    "event_type": st.sampled_from(["error_occurred", "agent_execution_started", "nope"]) | _json,
    "event_id": _json,
    "timestamp": _json,
    "severity": st.sampled_from(["info", "error"]) | _json,
    "data": st.dictionaries(st.sampled_from(["agent_id", "run_id", "agent_name", "x"]), _json) | _json,
    "trace_id": _json,
    "span_id": _json,
})
_field_value = (
    st.binary(max_size=40)
    | _json.map(orjson.dumps)
    | _event_values.map(orjson.dumps)
    | st.lists(_record_values, max_size=3).map(orjson.dumps)
)
_entry_id = st.binary(max_size=12) | st.from_regex(rb"\A[0-9]{1,21}-[0-9]{1,21}\Z") | st.just(b"7-0")
_fields = st.dictionaries(st.sampled_from([b"e", b"r", b"o", b"x"]), _field_value, max_size=3) | _json


@fuzz_settings(60)
@given(entries=st.lists(st.tuples(_entry_id, _fields), max_size=4))
def test_no_entry_raises_out_of_the_reader(entries: list[tuple[Any, Any]]) -> None:
    for entry_id, fields in entries:
        event = decode_event_entry(entry_id, fields, max_entry_bytes=4096)
        assert isinstance(event, DashboardEvent) or event in SKIP_KINDS
        records, problems = decode_span_entry(entry_id, fields, replica=b"me", max_entry_bytes=4096)
        assert all(isinstance(r, dict) for r in records) and set(problems) <= set(SKIP_KINDS)
    # The reader's own steps on the same entries: parse, accept into a real state, keep the spans.
    broker = RedisBroker(BrokerConfig("redis://127.0.0.1:1/0", max_entry_bytes=4096))
    state = DashboardState()
    broker._accept(state, broker._parse(entries))  # type: ignore[arg-type]
    broker._take_spans(state, entries)  # type: ignore[arg-type]
    assert set(broker.skipped_entries) == set(SKIP_KINDS)
