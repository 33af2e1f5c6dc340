"""Hostile inputs against a real ``serve``: huge strings and events (issue 14, attack 2) and batches
that are not all-or-nothing (attack 5).

Each test starts its own ``otel-dashboard serve`` subprocess with default options
(:mod:`hostile_support`), attacks it over loopback and asserts the bound: the size of what is kept,
the status code and body, nothing committed, memory growth.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson
from hostile_support import ServeProcess, get_json, http, serve_process
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otel_dashboard.model.limits import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_SNAPSHOT_BYTES,
    DEFAULT_MAX_STRING_BYTES,
)

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def post_events(server: ServeProcess, payload: Any) -> tuple[int, Any]:
    status, _, body = http("POST", server.url + "/api/events", orjson.dumps(payload), JSON, timeout=30)
    return status, orjson.loads(body) if body else None


def stored_events(server: ServeProcess, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return list(get_json(f"{server.url}/api/events?{query}", timeout=30)["events"])


def last_seq(server: ServeProcess) -> int:
    return int(get_json(server.url + "/health")["last_seq"])


def is_cut(text: str, original_bytes: int) -> bool:
    """``text`` is the start of a string of ``original_bytes`` bytes cut to the default cap: at most
    ``max_string_bytes``, ending with ``"…[cut N bytes]"``, N the bytes it lost."""
    head, marker = text[: text.rindex("\u2026[cut ")], text[text.rindex("\u2026[cut "):]
    dropped = int(marker.removeprefix("\u2026[cut ").removesuffix(" bytes]"))
    return (len(text.encode("utf-8")) <= DEFAULT_MAX_STRING_BYTES
            and len(head.encode("utf-8")) + dropped == original_bytes)


# ------------------------------------------------------------------------------ attack 2: sizes
def test_a_14_mib_string_becomes_a_bounded_event(tmp_path: Path) -> None:
    huge = "A" * (14 * MiB)
    with serve_process(tmp_path) as server:
        status, body = post_events(server, {"event_type": "error_occurred",
                                            "data": {"source": "x", "error_message": huge}})
        assert status == 200, body
        (event,) = stored_events(server)
        message = event["data"]["error_message"]
        assert is_cut(message, len(huge))
        assert message.startswith("A" * 1000)
        assert len(orjson.dumps(event)) < DEFAULT_MAX_STRING_BYTES + 1024
        stats = get_json(server.url + "/stats")
        assert stats["cut_strings"] == 1


def test_an_event_over_max_event_bytes_refuses_the_whole_request_with_413(tmp_path: Path) -> None:
    wide = {f"key{i}": "v" * 100 for i in range(5000)}  # ~600 KiB of small strings: nothing to cut
    with serve_process(tmp_path) as server:
        status, body = post_events(server, {"events": [
            {"event_type": "error_occurred", "data": {"source": "fine"}},
            {"event_type": "error_occurred", "data": wide},
        ]})
        assert status == 413
        assert body["index"] == 1 and body["field"] == "events[1].data"
        assert body["parameter"] == "max_event_bytes" and body["max_event_bytes"] == DEFAULT_MAX_EVENT_BYTES
        assert body["size"] > DEFAULT_MAX_EVENT_BYTES
        assert last_seq(server) == 0 and stored_events(server) == []
        assert get_json(server.url + "/stats")["refused_oversized_events"] == 1


def otlp_failed_agent_span(message: str) -> bytes:
    """An OTLP/HTTP protobuf request: one agent span, status ERROR with ``message``."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="hostile")))
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(TRACE_ID)
    span.span_id = bytes.fromhex(SPAN_ID)
    span.name = "invoke_agent Victim"
    span.start_time_unix_nano = time.time_ns() - 1_000_000_000
    span.end_time_unix_nano = time.time_ns()
    span.attributes.extend([
        KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="invoke_agent")),
        KeyValue(key="gen_ai.agent.name", value=AnyValue(string_value="Victim")),
    ])
    span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=message))
    return request.SerializeToString()


def test_a_7_mib_otlp_status_message_is_bounded_in_both_events(tmp_path: Path) -> None:
    huge = "\u00e9" * (7 * MiB // 2)  # 7 MiB of two-byte characters: the cut falls on a boundary
    with serve_process(tmp_path) as server:
        status, _, body = http("POST", server.url + "/v1/traces", otlp_failed_agent_span(huge),
                               {"Content-Type": "application/x-protobuf"}, timeout=30)
        assert status == 200, body[:300]
        events = stored_events(server)
        by_type = {e["event_type"]: e for e in events}
        for kind in ("agent_execution_completed", "error_occurred"):
            message = by_type[kind]["data"]["error_message"]
            assert is_cut(message, 7 * MiB), kind
            assert message.startswith("\u00e9" * 1000)
        assert sum(len(orjson.dumps(e)) for e in events) < 4 * DEFAULT_MAX_STRING_BYTES
        trace = get_json(f"{server.url}/api/traces/{TRACE_ID}")
        assert len(orjson.dumps(trace)) < DEFAULT_MAX_STRING_BYTES


def stalled_ws_client(server: ServeProcess) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((
        f"GET /ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing of the snapshot is read
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock


def test_big_events_and_idle_clients_keep_memory_and_answers_bounded(tmp_path: Path) -> None:
    """The issue's numbers: 20 events of 7 MiB and 5 idle WebSocket clients took RSS from 151 to
    817 MiB, and ``/api/events?limit=1000`` answered 100 MiB."""
    with serve_process(tmp_path) as server:
        started = server.rss_bytes()
        for i in range(20):
            # 7 MiB strings, and events near max_event_bytes (15 strings cut to 16 KiB each).
            data = {"source": f"s{i}", "error_message": "M" * (7 * MiB),
                    **{f"field{k}": "F" * (64 * 1024) for k in range(14)}}
            status, body = post_events(server, {"event_type": "error_occurred", "data": data})
            assert status == 200, body
        after_ingest = server.rss_bytes()
        status, _, raw = http("GET", server.url + "/api/events?limit=1000", timeout=30)
        assert status == 200 and len(raw) < 20 * DEFAULT_MAX_EVENT_BYTES
        page = orjson.loads(raw)
        # All 20 kept; the answer pages by bytes (max_response_bytes, 4 MiB): the rest come next.
        assert page["has_more"] and page["stopped_by"] == "max_response_bytes"
        events: list[dict[str, Any]] = []
        cursor = 0
        for _ in range(20):
            page = get_json(f"{server.url}/api/events?limit=1000&after_seq={cursor}", timeout=30)
            events += page["events"]
            cursor = page["next_after_seq"]
            if not page["has_more"]:
                break
        # (The server's own health and metrics events, every 5 s, may be among them on a slow machine.)
        kept = [e["data"]["source"] for e in events if e["event_type"] == "error_occurred"]
        assert kept == [f"s{i}" for i in range(20)]  # each once, in order
        clients = [stalled_ws_client(server) for _ in range(5)]
        try:
            time.sleep(1.0)  # the snapshots are built and written (as far as the idle peers allow)
            with_clients = server.rss_bytes()
            assert get_json(server.url + "/health")["connected_clients"] == 5
            stats = get_json(server.url + "/stats")
            assert stats["snapshot_events_left_out"] > 0  # 20 x ~256 KiB is over the 4 MiB cap
        finally:
            for sock in clients:
                sock.close()
    growth_clients = (with_clients - after_ingest) / MiB
    growth_total = (with_clients - started) / MiB
    print(f"\nRSS: start {started / MiB:.0f} MiB, after 20 events {after_ingest / MiB:.0f} MiB, "
          f"with 5 idle clients {with_clients / MiB:.0f} MiB; "
          f"/api/events?limit=1000 {len(raw) / MiB:.1f} MiB")
    # An idle client costs at most its snapshot (max_snapshot_bytes, 4 MiB of events) decoded and
    # encoded, and its unsent bytes (max_client_queue_bytes, 8 MiB): measured 12-16 MiB a client.
    # Before the caps: +666 MiB for these 5.
    per_client = (2 * DEFAULT_MAX_SNAPSHOT_BYTES + 8 * MiB) / MiB
    assert growth_clients < 5 * per_client + 20
    assert growth_total < 200


# ------------------------------------------------------------------------------ attack 5: batches
def good(i: int) -> dict[str, Any]:
    return {"event_type": "agent_execution_started",
            "data": {"agent_id": f"a{i}", "agent_name": f"A{i}", "run_id": f"{i + 1:016x}"}}


def test_a_bad_item_anywhere_in_a_batch_commits_nothing(tmp_path: Path) -> None:
    bad_run_event = {"event_type": "agent_execution_completed",
                     "data": {"agent_id": {"nested": 1}, "run_id": "00000000000000aa", "success": True}}
    bad_list_agent = {"event_type": "agent_execution_started", "data": {"agent_id": [1, 2]}}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"events": [bad_run_event, good(1), good(2)]}, 400, "events[0].data.agent_id"),
        ({"events": [good(0), bad_run_event, good(2)]}, 400, "events[1].data.agent_id"),
        ({"events": [good(0), good(1), bad_list_agent]}, 400, "events[2].data.agent_id"),
        ({"events": [good(0), good(1), {"event_type": "nope"}]}, 400, "events[2].event_type"),
        ({"events": [good(0), {"event_type": "error_occurred", "timestamp": 5}]}, 400, "events[1].timestamp"),
        ({"events": [good(0), good(1)], "runs": [{"run_id": "0000000000000001", "agent_id": {"x": 1}}]},
         400, "runs[0].agent_id"),
        ({"events": [good(0)], "runs": [{"run_id": "0000000000000001"}, {"agent_id": "a"}]},
         400, "runs[1].run_id"),
        ({"events": [good(0)], "spans": [{"trace_id": TRACE_ID, "span_id": "xyz", "name": "n"}]},
         400, "spans[0].span_id"),
        ({"events": [good(0), {"event_type": "error_occurred",
                               "data": {f"k{i}": "v" * 100 for i in range(5000)}}]},
         413, "events[1].data"),
    ]
    with serve_process(tmp_path) as server:
        for payload, expected_status, field in cases:
            status, body = post_events(server, payload)
            assert (status, body["field"]) == (expected_status, field), (payload.keys(), body)
            if field.startswith("events["):
                assert body["index"] == int(field[7:field.index("]")])
            assert body["error"].startswith(field)
            assert last_seq(server) == 0, field
            assert stored_events(server) == [], field
        # Never a 500, whatever JSON comes: odd values in every field the state keys on.
        for value in ({}, [], [[]], {"a": {"b": []}}, 1e308, -1, True, None, "x" * 100):
            for key in ("agent_id", "agent_name", "run_id", "parent_span_id", "service_name",
                        "duration_ms", "success", "quality_score", "started_at"):
                for event_type in ("agent_execution_started", "agent_execution_completed",
                                   "agent_registered", "opportunity_discovered"):
                    event = {"event_type": event_type, "trace_id": TRACE_ID, "span_id": SPAN_ID,
                             "data": {"run_id": "00000000000000ab", key: value}}
                    status, body = post_events(server, {"events": [good(0), event]})
                    assert status in (200, 400), (event, status, body)
        assert server.alive()
        # The server still takes a good batch, whole.
        before = last_seq(server)
        status, body = post_events(server, {"events": [good(7), good(8)]})
        assert status == 200 and body["accepted"] == 2 and body["last_seq"] >= before + 2
