"""``GET /metrics``: the server's own figures in the Prometheus text format (server/prometheus.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.server.app import create_app
from otel_dashboard.server.prometheus import (
    CONTENT_TYPE,
    METRICS_KEY,
    add_metrics_route,
    observe_ingest_seconds,
    queue_depth_histogram,
)
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

WAIT = 10.0
P = "otel_dashboard_"


def make_app(state: DashboardState | None = None) -> web.Application:
    # The app factory adds /metrics itself.
    return create_app(state if state is not None else DashboardState(),
                      health_interval_seconds=None, metrics_interval_seconds=None)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a scrape, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE
    return samples(await resp.text())


def batch(n: int, event_type: str = "quality_score_updated") -> bytes:
    return orjson.dumps({"events": [
        {"event_type": event_type, "data": {"agent_id": "a1", "quality_score": 90.0, "i": i}}
        for i in range(n)
    ]})


async def receive_events(ws: Any, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT
    while len(got) < n:
        message = await asyncio.wait_for(ws.receive_json(), max(0.01, deadline - time.monotonic()))
        if message["type"] == "events":
            got += message["events"]
    return got


async def test_metrics_after_ingest_and_broadcast(aiohttp_client: Any) -> None:
    app = make_app()
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws")
    assert (await ws.receive_json())["type"] == "snapshot"

    resp = await client.post("/api/events", data=batch(3), headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    assert len(await receive_events(ws, 3)) == 3
    got = await scrape(client)
    assert got[(P + "ingest_request_duration_seconds_count", ())] == 1  # the POST above, timed
    ingest_seconds = got[(P + "ingest_request_duration_seconds_sum", ())]
    observe_ingest_seconds(app, 0.002)
    observe_ingest_seconds(app, 0.2)

    got = await scrape(client)
    assert got[(P + "events_accepted_total", (("event_type", "quality_score_updated"),))] == 3
    assert got[(P + "events_accepted_total", (("event_type", "error_occurred"),))] == 0
    assert got[(P + "events_broadcast_total", ())] == 3
    for reason in ("upstream", "queue_overflow", "slow_client_closed", "handoff_overflow"):
        assert got[(P + "events_dropped_total", (("reason", reason),))] == 0
    assert got[(P + "clients_connected", ())] == 1
    for reason in ("queue_overflow", "send_timeout", "queue_bytes", "total_queue_bytes"):
        assert got[(P + "slow_clients_closed_total", (("reason", reason),))] == 0
    assert got[(P + "client_queued_bytes", ())] >= 0
    assert got[(P + "last_seq", ())] == 3
    assert got[(P + "client_queue_depth_count", ())] == 1
    assert got[(P + "client_queue_depth_bucket", (("le", "+Inf"),))] == 1
    assert got[(P + "receiver_ingest_requests_total", ())] == 1
    assert got[(P + "receiver_ingested_events_total", ())] == 3
    assert got[(P + "receiver_otlp_requests_total", ())] == 0
    assert got[(P + "ingest_request_duration_seconds_count", ())] == 3
    assert got[(P + "ingest_request_duration_seconds_sum", ())] == pytest.approx(ingest_seconds + 0.202)
    assert got[(P + "uptime_seconds", ())] >= 0
    assert (P + "store_unwritten_events", ()) not in got  # the in-memory store reports nothing
    assert any(name.startswith("process_") for name, _ in got)
    await ws.close()

    # The client is gone: the gauge and the histogram follow.
    deadline = time.monotonic() + WAIT
    while (got := await scrape(client))[(P + "clients_connected", ())] != 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert got[(P + "client_queue_depth_count", ())] == 0


async def test_each_app_has_its_own_registry(aiohttp_client: Any) -> None:
    # Two servers in one process: no "duplicated timeseries", and independent figures.
    first, second = make_app(), make_app()
    assert first[METRICS_KEY].registry is not second[METRICS_KEY].registry
    one, two = await aiohttp_client(first), await aiohttp_client(second)
    resp = await one.post("/api/events", data=batch(2), headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert (await scrape(one))[(P + "events_accepted_total", (("event_type", "quality_score_updated"),))] == 2
    assert (await scrape(two))[(P + "events_accepted_total", (("event_type", "quality_score_updated"),))] == 0


async def test_broadcast_counts_from_the_start_of_the_server(aiohttp_client: Any) -> None:
    state = DashboardState()
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"error_message": "before"}))
    client = await aiohttp_client(make_app(state))
    state.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, {"error_message": "after"}))
    got = await scrape(client)
    assert got[(P + "events_accepted_total", (("event_type", "error_occurred"),))] == 2
    assert got[(P + "events_broadcast_total", ())] == 1


async def test_durable_store_figures(aiohttp_client: Any, tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    try:
        client = await aiohttp_client(make_app(DashboardState(store=store)))
        resp = await client.post("/api/events", data=batch(5), headers={"Content-Type": "application/json"})
        assert resp.status == 200  # answered once committed
        got = await scrape(client)
        assert got[(P + "store_committed_events_total", ())] >= 5
        assert got[(P + "store_write_errors_total", ())] == 0
        assert (P + "store_unwritten_events", ()) in got
    finally:
        store.close()


async def test_observe_without_metrics_is_a_no_op() -> None:
    app = web.Application()
    observe_ingest_seconds(app, 0.1)  # no /metrics on this app: nothing happens, nothing raises
    assert METRICS_KEY not in app


async def test_add_metrics_route_refuses_a_running_app(aiohttp_client: Any) -> None:
    app = web.Application()
    await aiohttp_client(app)
    with pytest.raises(RuntimeError, match="before the application starts"):
        add_metrics_route(app)


def test_queue_depth_histogram_buckets() -> None:
    buckets, total = queue_depth_histogram([0, 0, 1, 5, 50, 700, 9000, 20000])
    assert dict(buckets) == {"0": 2, "1": 3, "10": 4, "100": 5, "1000": 6, "10000": 7, "+Inf": 8}
    assert total == 0 + 0 + 1 + 5 + 50 + 700 + 9000 + 20000
    assert queue_depth_histogram([]) == ([("0", 0), ("1", 0), ("10", 0), ("100", 0), ("1000", 0),
                                          ("10000", 0), ("+Inf", 0)], 0)
