"""The traces list and conversations, server side, against a real server on loopback:
``GET /api/traces`` (order, every filter, paging past a page and past the in-memory window, the
caps, 400s) and ``GET /api/conversations/{id}`` (runs in start order, open ones included), over the
in-memory store and a real SQLite file; and the run's ``conversation_id`` read from each vocabulary
(the recorded GenAI fixtures, OpenInference spans made with the real SDK).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from server_support import running_server

from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp
from otel_dashboard.model.span_mapper import SpanMapper
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.timeout(60)

SPANS_DIR = Path(__file__).parent / "fixtures" / "spans"
BASE_NS = 1_800_000_000 * 10**9


def rid(n: int) -> str:
    return f"{n:016x}"


def tid(n: int) -> str:
    return f"{n:032x}"


def completed(n: int, *, agent: str = "Planner", service: str = "svc", ok: bool = True,
              parent: int | None = None, trace: int | None = None, conversation: str | None = None,
              tokens: tuple[int, int] = (10, 5), cost: float | None = 0.25, start_s: int | None = None,
              ) -> dict[str, Any]:
    """A run's completion as a remote processor posts it (no seq)."""
    start_ns = BASE_NS + (start_s if start_s is not None else n) * 10**9
    data: dict[str, Any] = {
        "run_id": rid(n), "agent_id": agent.lower(), "agent_name": agent, "service_name": service,
        "success": ok, "duration_ms": 500.0, "started_at": format_timestamp(start_ns),
        "tokens": {"input": tokens[0], "output": tokens[1]}, "cost_usd": cost,
        "cost_status": "priced" if cost is not None else "no_price",
        "parent_run_id": rid(parent) if parent is not None else None,
        "error_type": None if ok else "ValueError", "conversation_id": conversation,
    }
    event = DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, data,
                                  Severity.SUCCESS if ok else Severity.ERROR,
                                  timestamp_ns=start_ns + 500 * 10**6,
                                  trace_id=tid(trace if trace is not None else n), span_id=rid(n)).to_dict()
    event.pop("seq")
    return event


async def post(session: aiohttp.ClientSession, server: DashboardWebSocketServer, events: list[dict[str, Any]],
               runs: list[dict[str, Any]] | None = None) -> None:
    body: dict[str, Any] = {"events": events}
    if runs is not None:
        body["runs"] = runs
    async with session.post(server.url + "/api/events", json=body) as response:
        assert response.status == 200, await response.text()
    if isinstance(server.state.store, SqliteEventStore):
        assert server.state.wait_durable(timeout_seconds=5)


async def get(session: aiohttp.ClientSession, server: DashboardWebSocketServer, path: str,
              **params: Any) -> tuple[int, Any]:
    async with session.get(server.url + path, params=params) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()



def make_state(kind: str, tmp_path: Path) -> DashboardState:
    if kind == "sqlite":
        return DashboardState(store=SqliteEventStore(tmp_path / "events.db"))
    return DashboardState(max_history=10_000)


STORES = pytest.mark.parametrize("kind", ["memory", "sqlite"])


# --------------------------------------------------------------------------- GET /api/traces
@STORES
async def test_traces_list_order_fields_and_filters(
    session: aiohttp.ClientSession, tmp_path: Path, kind: str
) -> None:
    state = make_state(kind, tmp_path)
    try:
        async with running_server(state) as server:
            await post(session, server, [
                completed(1, agent="Planner", service="a", conversation="c1"),
                completed(2, agent="Worker", service="a", parent=1, trace=1, conversation="c1"),  # nested
                completed(3, agent="Writer", service="b", ok=False, conversation="c2"),
                completed(4, agent="Planner", service="b", conversation="c1", cost=None),
            ])
            status, body = await get(session, server, "/api/traces")
            assert status == 200, body
            assert [t["root_run_id"] for t in body["traces"]] == [rid(4), rid(3), rid(1)]  # newest first
            assert body["has_more"] is False and body["next_before_seq"] is None
            assert body["stopped_by"] is None
            first = body["traces"][2]
            assert first == {
                "trace_id": tid(1), "root_run_id": rid(1), "root": "Planner", "agent": "Planner",
                "agent_id": "planner", "service": "a", "started_at": first["started_at"],
                "ended_at": first["ended_at"], "duration_ms": 500.0, "status": "ok", "error_type": None,
                "tokens": {"input": 10, "output": 5}, "cost_usd": 0.25, "cost_status": "priced",
                "conversation_id": "c1", "seq": first["seq"],
            }
            assert first["started_at"] < first["ended_at"]
            assert body["traces"][1]["status"] == "error" and body["traces"][1]["error_type"] == "ValueError"

            async def roots(**params: Any) -> list[str]:
                status, body = await get(session, server, "/api/traces", **params)
                assert status == 200, body
                return [t["root_run_id"] for t in body["traces"]]

            assert await roots(service="a") == [rid(1)]
            assert await roots(service="a,b") == [rid(4), rid(3), rid(1)]
            assert await roots(agent="Planner") == [rid(4), rid(1)]
            assert await roots(agent="writer") == [rid(3)]  # by agent id too
            assert await roots(status="error") == [rid(3)]
            assert await roots(status="ok") == [rid(4), rid(1)]
            assert await roots(status="ok,error") == [rid(4), rid(3), rid(1)]
            assert await roots(conversation_id="c1") == [rid(4), rid(1)]
            assert await roots(conversation_id=["c2", "c1"]) == [rid(4), rid(3), rid(1)]
            assert await roots(trace_id=tid(3).upper()) == [rid(3)]  # the jump box: any case
            assert await roots(trace_id=tid(99)) == []
            assert await roots(service="b", status="ok", agent="Planner") == [rid(4)]
    finally:
        state.store.close()


@STORES
async def test_traces_paging_reaches_past_the_page_and_the_recent_events(
    session: aiohttp.ClientSession, tmp_path: Path, kind: str
) -> None:
    state = make_state(kind, tmp_path)
    try:
        async with running_server(state) as server:
            # 620 roots, each with a nested run: more than the page's 200 recent events, more than a
            # page of the list (max 500), and more than one answer's limit.
            events = []
            for n in range(1, 621):
                events += [completed(2 * n, parent=2 * n + 1, trace=n), completed(2 * n + 1, trace=n)]
            await post(session, server, events)
            seen: list[str] = []
            params: dict[str, Any] = {"limit": 250}
            pages = 0
            while True:
                status, body = await get(session, server, "/api/traces", **params)
                assert status == 200, body
                pages += 1
                seen += [t["trace_id"] for t in body["traces"]]
                if not body["has_more"]:
                    assert body["next_before_seq"] is None
                    break
                assert body["stopped_by"] == "limit" and len(body["traces"]) == 250
                params["before_seq"] = body["next_before_seq"]
            assert pages == 3
            assert seen == [tid(n) for n in range(620, 0, -1)]  # all, newest first, none twice
    finally:
        state.store.close()


@STORES
async def test_traces_scan_cap_stops_and_resumes(session: aiohttp.ClientSession, tmp_path: Path,
                                                 kind: str) -> None:
    state = make_state(kind, tmp_path)
    try:
        async with running_server(state, max_scanned_rows=50) as server:
            await post(session, server,
                       [completed(n, service="a" if n <= 10 else "b") for n in range(1, 121)])
            status, body = await get(session, server, "/api/traces", service="a")
            assert status == 200 and body["traces"] == [] and body["stopped_by"] == "max_scanned_rows"
            found: list[str] = []
            while body["has_more"]:
                found += [t["root_run_id"] for t in body["traces"]]
                status, body = await get(session, server, "/api/traces", service="a",
                                         before_seq=body["next_before_seq"])
                assert status == 200
            found += [t["root_run_id"] for t in body["traces"]]
            assert found == [rid(n) for n in range(10, 0, -1)]
    finally:
        state.store.close()


async def test_traces_response_cap(session: aiohttp.ClientSession) -> None:
    state = DashboardState(max_history=10_000)
    async with running_server(state, max_response_bytes=64 * 1024) as server:
        big = "x" * 20_000
        events = [completed(n) for n in range(1, 21)]
        for event in events:
            event["data"]["task_description"] = big
        await post(session, server, events)
        status, body = await get(session, server, "/api/traces", limit=500)
        assert status == 200 and body["stopped_by"] == "max_response_bytes" and body["has_more"]
        assert 0 < len(body["traces"]) < 20


async def test_traces_bad_parameters(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        for params, name in [({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"),
                             ({"limit": "x"}, "limit"),
                             ({"before_seq": "0"}, "before_seq"), ({"status": "failed"}, "status"),
                             ({"trace_id": "abc"}, "trace_id"), ({"trace_id": "0" * 32}, "trace_id"),
                             ({"trace_id": "g" * 32}, "trace_id"), ({"nope": "1"}, "nope"),
                             ({"conversation_id": ",".join(str(i) for i in range(1001))}, "conversation_id")]:
            status, body = await get(session, server, "/api/traces", **params)
            assert status == 400 and body["parameter"] == name, (params, body)


async def test_traces_and_conversations_need_the_token(session: aiohttp.ClientSession) -> None:
    token = "s3cret-token-123"
    config = SecurityConfig.from_options(token=token, bind_host="127.0.0.1")
    async with running_server(security=config) as server:
        for path in ("/api/traces", "/api/conversations/c"):
            async with session.get(server.url + path) as response:
                assert response.status == 401
            async with session.get(server.url + path, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200


async def test_traces_unreadable_store_is_503(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    state = DashboardState(store=SqliteEventStore(tmp_path / "events.db"))
    try:
        async with running_server(state) as server:
            await post(session, server, [completed(1, conversation="c")])

            def broken(*args: Any, **kwargs: Any) -> Any:
                from otel_dashboard.store.base import StoreReadError
                raise StoreReadError("events.db", "disk I/O error")

            state.store.search = broken  # type: ignore[method-assign]
            state.store.search_async = _async(broken)  # type: ignore[method-assign]
            for path in ("/api/traces", "/api/conversations/c"):
                status, body = await get(session, server, path)
                assert status == 503 and "cannot be read" in body["error"], body
    finally:
        state.store.close()


def _async(function: Any) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    return wrapper


# --------------------------------------------------------------------------- conversations
@STORES
async def test_conversation_runs_in_start_order_with_open_runs(
    session: aiohttp.ClientSession, tmp_path: Path, kind: str
) -> None:
    state = make_state(kind, tmp_path)
    try:
        async with running_server(state) as server:
            # Completions arrive out of start order; a nested run shares the conversation.
            await post(session, server, [
                completed(3, agent="Planner", conversation="conv-1", start_s=30),
                completed(1, agent="Planner", conversation="conv-1", start_s=10, ok=False),
                completed(2, agent="Other", conversation="conv-2", start_s=20),
                completed(5, agent="Worker", conversation="conv-1", start_s=31, parent=3, trace=3),
            ], runs=[{"run_id": rid(9), "trace_id": tid(9), "agent_name": "Planner", "service_name": "svc",
                      "started_at": format_timestamp(BASE_NS + 40 * 10**9), "status": "running",
                      "conversation_id": "conv-1", "tokens": {"input": 3, "output": 1}},
                     {"run_id": rid(8), "trace_id": tid(8), "agent_name": "Planner",
                      "started_at": format_timestamp(BASE_NS + 41 * 10**9), "conversation_id": "conv-2"}])
            status, body = await get(session, server, "/api/conversations/conv-1")
            assert status == 200, body
            assert body["conversation_id"] == "conv-1" and body["has_more"] is False
            rows = body["runs"]
            assert [(r["run_id"], r["status"]) for r in rows] == [
                (rid(1), "error"), (rid(3), "ok"), (rid(5), "ok"), (rid(9), "running")]
            assert rows[0]["trace_id"] == tid(1) and rows[0]["agent"] == "Planner"
            assert rows[0]["tokens"] == {"input": 10, "output": 5} and rows[0]["cost_usd"] == 0.25
            assert rows[0]["duration_ms"] == 500.0 and rows[0]["started_at"].endswith("Z")
            assert rows[2]["parent_run_id"] == rid(3) and rows[2]["trace_id"] == tid(3)
            assert rows[3]["tokens"] == {"input": 3, "output": 1} and rows[3]["seq"] is None

            # Paging: the newest completions (1 and 5 came last) first, then older ones; each page in
            # start order; the open runs on page one only.
            status, page1 = await get(session, server, "/api/conversations/conv-1", limit=2)
            assert [r["run_id"] for r in page1["runs"]] == [rid(1), rid(5), rid(9)]
            assert page1["has_more"] and page1["stopped_by"] == "limit"
            status, page2 = await get(session, server, "/api/conversations/conv-1", limit=2,
                                      before_seq=page1["next_before_seq"])
            assert [r["run_id"] for r in page2["runs"]] == [rid(3)] and not page2["has_more"]

            status, body = await get(session, server, "/api/conversations/nothing")
            assert status == 200 and body["runs"] == []
            for params, name in [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                                 ({"before_seq": "-1"}, "before_seq"), ({"x": "1"}, "x")]:
                status, body = await get(session, server, "/api/conversations/conv-1", **params)
                assert status == 400 and body["parameter"] == name
            status, body = await get(session, server, "/api/conversations/" + "c" * 257)
            assert status == 400 and body["parameter"] == "conversation_id"
    finally:
        state.store.close()


# --------------------------------------------------------------------------- conversation ids read
@pytest.mark.parametrize("stack", ["pydantic_ai", "mcp"])
async def test_conversation_id_from_recorded_genai_spans(session: aiohttp.ClientSession, stack: str) -> None:
    """The recorded GenAI stacks write ``gen_ai.conversation.id``: each run carries it, and the list
    and the conversation find it through ``POST /v1/traces``."""
    async with running_server(DashboardState(max_history=10_000)) as server:
        expected = {}
        for scenario in ("ok", "tool_error", "model_error"):
            raw = (SPANS_DIR / stack / f"{scenario}.json").read_bytes()
            document = json.loads(raw)
            spans = [s for rs in document["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
            root = next(s for s in spans if not s.get("parentSpanId"))
            conversation = next(a["value"]["stringValue"] for a in root["attributes"]
                                if a["key"] == "gen_ai.conversation.id")
            expected[root["traceId"].lower()] = conversation
            async with session.post(server.url + "/v1/traces", data=raw,
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 200
        status, body = await get(session, server, "/api/traces")
        assert status == 200
        got = {t["trace_id"]: t["conversation_id"] for t in body["traces"]}
        assert got == expected
        for trace_id, conversation in expected.items():
            status, body = await get(session, server, f"/api/conversations/{conversation}")
            assert [r["trace_id"] for r in body["runs"]] == [trace_id]
            status, body = await get(session, server, "/api/events", event_type="agent_execution_started",
                                     run_id=body["runs"][0]["run_id"])
            assert body["events"][0]["data"]["conversation_id"] == conversation


def _sdk_spans(agent_attrs: dict[str, Any], model_attrs: dict[str, Any]) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("Planner", attributes=agent_attrs), \
            tracer.start_as_current_span("llm", attributes=model_attrs):
        pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize(("agent_attrs", "model_attrs", "expected"), [
    # OpenInference: session.id (openinference-semantic-conventions SpanAttributes.SESSION_ID).
    ({"openinference.span.kind": "AGENT", "session.id": "s-1"},
     {"openinference.span.kind": "LLM", "llm.model_name": "m"}, "s-1"),
    # Only the model call names it: the run takes its first model call's.
    ({"openinference.span.kind": "AGENT"},
     {"openinference.span.kind": "LLM", "llm.model_name": "m", "session.id": "s-2"}, "s-2"),
    # GenAI semconv: gen_ai.conversation.id on the invoke_agent span.
    ({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner",
      "gen_ai.conversation.id": "g-1"},
     {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}, "g-1"),
    ({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner"},
     {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.conversation.id": "g-2"}, "g-2"),
    # None named: null. A huge id is cut like other names (256 characters).
    ({"openinference.span.kind": "AGENT"}, {"openinference.span.kind": "LLM"}, None),
    ({"openinference.span.kind": "AGENT", "session.id": "z" * 5000}, {"openinference.span.kind": "LLM"},
     "z" * 256),
])
def test_conversation_id_from_each_vocabulary(agent_attrs: dict[str, Any], model_attrs: dict[str, Any],
                                              expected: str | None) -> None:
    spans = _sdk_spans(agent_attrs, model_attrs)
    # In-process order (start, start, end, end) and received order (map_received) agree.
    mapper = SpanMapper()
    agent, model = spans[1], spans[0]
    live = mapper.start(agent) + mapper.start(model)
    progress = mapper.take_progress()
    live += mapper.end(model) + mapper.end(agent)
    received = SpanMapper().map_received(spans)
    for events in (live, received):
        completed_event = next(e for e in events if e.event_type is EventType.AGENT_EXECUTION_COMPLETED)
        assert completed_event.data["conversation_id"] == expected
    # The start knows the agent span only; the model call's id joins the run when the call ends.
    started = next(e for e in live if e.event_type is EventType.AGENT_EXECUTION_STARTED)
    on_agent = agent_attrs.get("session.id", agent_attrs.get("gen_ai.conversation.id"))
    assert started.data["conversation_id"] == (on_agent[:256] if on_agent else None)
    assert progress[0]["conversation_id"] == started.data["conversation_id"]
