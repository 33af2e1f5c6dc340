"""What the dashboard shows of REAL instrumentations' traces, metrics and logs, replayed together.

The fixtures (tests/fixtures/signals, made by scripts/record_signals.py; the README there says what
each stack sent) are what opentelemetry-instrumentation-openai-v2 (its default and its latest GenAI
conventions), traceloop-sdk (OpenLLMetry, events as logs, metrics on) and pydantic-ai emitted against
the scripted model server: a chat that asks for ``get_weather``, then one that answers (101/17 then
163/24 tokens); or an HTTP 500. Each set is posted as it was recorded, its times moved so that the
newest is now (the agents table counts the last hour only), OTLP/JSON (the transcripts
also re-encoded as protobuf), to ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics`` of a real server,
in both orders a real app's exporters can take (the logs before their span ends, or after), and read
back as a user would: the span API's transcript, ``GET /api/agents``, ``GET /api/events``, ``/stats``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_support import running_server

from otel_dashboard.model.otlp import decode_body, spans_from_request
from otel_dashboard.model.otlp.logs import read_logs
from otel_dashboard.model.otlp.metrics import read_metrics
from otel_dashboard.server.app import DashboardWebSocketServer

SIGNALS_DIR = Path(__file__).parent / "fixtures" / "signals"
SIGNALS = ("traces", "logs", "metrics")
STACKS = ("openai_v2", "openai_v2_latest", "traceloop", "pydantic_ai")
LOG_STACKS = ("openai_v2", "openai_v2_latest", "traceloop")  # pydantic-ai sends no log records
ORDERS = {"logs_first": ("logs", "traces", "metrics"), "spans_first": ("traces", "metrics", "logs")}
MAX_BYTES = 1024 * 1024

INSTRUCTIONS = "You answer weather questions. Use the get_weather tool."
QUESTION = "What is the weather in Paris?"
TOOL_RESULT = "Paris: sunny, 21 degrees Celsius"
ANSWER = "It is sunny and 21 degrees Celsius in Paris."
TOKENS = {"input": 101 + 163, "output": 17 + 24}
# The log records each ok set holds, and those that are GenAI events of a span (the rest: the
# Python logging bridge's httpx lines, counted only).
LOG_RECORDS = {"openai_v2": (8, 8), "openai_v2_latest": (2, 2), "traceloop": (10, 8)}
# Data points each ok set holds, and those the agents table reads (OpenLLMetry's
# gen_ai.client.generation.choices counters: counted only).
METRIC_POINTS = {"openai_v2": (3, 3), "openai_v2_latest": (3, 3), "traceloop": (6, 3), "pydantic_ai": (2, 2)}
MODEL_ERROR_TYPE = {"openai_v2": "InternalServerError", "openai_v2_latest": "InternalServerError",
                    "traceloop": "openai.InternalServerError",
                    "pydantic_ai": "pydantic_ai.exceptions.ModelServerError"}


def _doc(stack: str, scenario: str, signal: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SIGNALS_DIR / stack / f"{scenario}.{signal}.json").read_text())
    return doc


def _chat_spans(stack: str, scenario: str) -> list[tuple[str, str]]:
    """(trace id, span id) of the model-call spans, in the order they started."""
    spans = [span for rs in _doc(stack, scenario, "traces")["resourceSpans"] for ss in rs["scopeSpans"]
             for span in ss["spans"] if span["name"].startswith(("chat ", "openai.chat"))]
    spans.sort(key=lambda span: int(span["startTimeUnixNano"]))
    return [(span["traceId"], span["spanId"]) for span in spans]


def _texts(messages: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    return [(m["role"], [p.get("content", p.get("name", p.get("response"))) for p in m["parts"]])
            for m in messages]


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server() as server:
        yield server



async def _replay(session: aiohttp.ClientSession, server: DashboardWebSocketServer, stack: str,
                  scenario: str, order: tuple[str, ...], *, protobuf: bool = False) -> None:
    """Posts the recorded documents in this order, as OTLP/JSON (or re-encoded as protobuf, what the
    stock OTLP/HTTP exporters send)."""
    docs = {signal: _doc(stack, scenario, signal) for signal in order}
    shift = _shift(stack, scenario)
    for signal in order:
        body = json.dumps(_shifted(docs[signal], shift)).encode()
        content_type = "application/json"
        if protobuf:
            request, _ = decode_body(body, content_type=content_type, content_encoding=None,
                                     max_decoded_bytes=MAX_BYTES, signal=signal)
            body, content_type = request.SerializeToString(), "application/x-protobuf"
        async with session.post(f"{server.url}/v1/{signal}", data=body,
                                headers={"Content-Type": content_type}) as response:
            assert response.status == 200, (signal, await response.text())
            # no partial success: nothing rejected (an empty response message)
            assert (await response.read() == b"") if protobuf else (await response.json() == {}), signal


_SHIFTS: dict[tuple[str, str], int] = {}


def _shift(stack: str, scenario: str) -> int:
    """Recorded on one day, replayed on another: every time of a recording moves by the same amount
    (once per test run, so that a document sent again is the same document) so that its newest time
    is now, inside the agents table's window (the last hour), the order unchanged."""
    key = (stack, scenario)
    if key not in _SHIFTS:
        newest = max((t for signal in SIGNALS for t in _times(_doc(stack, scenario, signal))), default=0)
        _SHIFTS[key] = time.time_ns() - newest if newest else 0
    return _SHIFTS[key]


def _times(value: Any) -> Iterator[int]:
    """Every ``...UnixNano`` value of a recorded OTLP/JSON document (strings or numbers, 0 aside)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("UnixNano") and isinstance(item, (str, int)) and int(item) > 0:
                yield int(item)
            else:
                yield from _times(item)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item)


def _shifted(value: Any, shift: int) -> Any:
    """The document with every non-zero ``...UnixNano`` value moved by ``shift`` nanoseconds."""
    if isinstance(value, dict):
        return {key: (str(int(item) + shift) if key.endswith("UnixNano") and isinstance(item, (str, int))
                      and int(item) > 0 else _shifted(item, shift)) for key, item in value.items()}
    if isinstance(value, list):
        return [_shifted(item, shift) for item in value]
    return value


async def _get(session: aiohttp.ClientSession, server: DashboardWebSocketServer, path: str) -> Any:
    async with session.get(f"{server.url}{path}") as response:
        assert response.status == 200, (path, await response.text())
        return await response.json()


# ------------------------------------------------------------------------------ the recordings
def test_every_stack_was_recorded_with_its_versions() -> None:
    versions = json.loads((SIGNALS_DIR / "VERSIONS.json").read_text())
    assert set(versions) == set(STACKS)
    for stack in STACKS:
        for scenario in ("ok", "model_error"):
            for signal in SIGNALS:
                recording = _doc(stack, scenario, signal)["recording"]
                assert (recording["stack"], recording["scenario"]) == (stack, scenario)
                assert recording["versions"] == versions[stack] if scenario == "ok" else recording["versions"]
    assert versions["openai_v2"]["opentelemetry-instrumentation-openai-v2"] == "2.4b0"
    assert versions["traceloop"]["traceloop-sdk"] == "0.62.4"


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("scenario", ["ok", "model_error"])
def test_the_codec_and_readers_take_every_document_whole(stack: str, scenario: str) -> None:
    for signal in SIGNALS:
        body = (SIGNALS_DIR / stack / f"{scenario}.{signal}.json").read_bytes()
        assert len(body) < MAX_BYTES
        request, encoding = decode_body(body, content_type="application/json", content_encoding=None,
                                        max_decoded_bytes=MAX_BYTES, signal=signal)
        assert encoding == "json"
        if signal == "traces":
            spans, rejected, message = spans_from_request(request)
            assert (rejected, message) == (0, None) and spans
        elif signal == "logs":
            read = read_logs(request)
            assert (read.rejected, read.message) == (0, "")
        else:
            metrics = read_metrics(request)
            assert (metrics.rejected, metrics.message) == (0, "")


# ------------------------------------------------------------------------------ the transcript
@pytest.mark.parametrize("order", [*ORDERS, "protobuf"])
@pytest.mark.parametrize("stack", LOG_STACKS)
async def test_log_events_give_each_chat_span_its_transcript(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, stack: str, order: str
) -> None:
    if order == "protobuf":
        await _replay(session, server, stack, "ok", ORDERS["logs_first"], protobuf=True)
    else:
        await _replay(session, server, stack, "ok", ORDERS[order])

    first, second = _chat_spans(stack, "ok")
    system = ("system", [INSTRUCTIONS])
    transcript = (await _get(session, server, f"/api/traces/{first[0]}/spans/{first[1]}"))["transcript"]
    assert transcript["source"] == "genai_events"
    assert _texts(transcript["input"]) == [system, ("user", [QUESTION])]
    assert _texts(transcript["output"]) == [("assistant", ["get_weather"])]  # the tool call asked for
    transcript = (await _get(session, server, f"/api/traces/{second[0]}/spans/{second[1]}"))["transcript"]
    assert transcript["source"] == "genai_events"
    assert _texts(transcript["input"]) == [system, ("user", [QUESTION]), ("assistant", ["get_weather"]),
                                           ("tool", [TOOL_RESULT])]
    assert _texts(transcript["output"]) == [("assistant", [ANSWER])]

    receiver = (await _get(session, server, "/stats"))["receiver"]
    records, attached = LOG_RECORDS[stack]
    assert receiver["otlp_log_records_accepted"] == records
    assert receiver["otlp_log_records_attached"] == attached
    assert receiver["otlp_log_records_rejected"] == 0
    assert receiver["otlp_log_errors_published"] == 0


# ------------------------------------------------------------------------------ the agents table
@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
@pytest.mark.parametrize("stack", STACKS)
async def test_the_agents_table_counts_the_tokens_once(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, stack: str, order: str
) -> None:
    await _replay(session, server, stack, "ok", ORDERS[order])
    # A periodic reader exports the same cumulative collection again: no new usage.
    await _replay(session, server, stack, "ok", ("metrics",))

    body = await _get(session, server, "/api/agents")
    rows = {entry["agent"]: entry for entry in body["agents"]}
    service = f"recorder-{stack}"
    if stack.startswith("openai_v2"):
        # No agent span (the openai client alone): the model calls' metrics make the service's row.
        assert list(rows) == [service]
        row = rows[service]
        assert (row["runs"], row["tokens"], row["sources"]) == (
            0, TOKENS, {"runs": None, "tokens": "metrics", "cost": None})
        assert (row["metrics"]["model_calls"], row["metrics"]["model_call_failures"]) == (2, 0)
        assert body["totals"]["sources"]["tokens"] == "metrics"
    else:
        # The spans name the agent and carry the tokens; the token metric names no agent: it is not
        # a second row of the same tokens under the service's name (spans first, per service).
        expected = {"WeatherAgent", "weather_workflow"} if stack == "traceloop" else {"WeatherAgent"}
        assert set(rows) == expected
        row = rows["WeatherAgent"]
        assert (row["service"], row["runs"], row["failures"]) == (service, 1, 0)
        assert (row["tokens"], row["sources"]["tokens"]) == (TOKENS, "spans")
        assert body["totals"]["sources"]["tokens"] == "spans"
    assert body["totals"]["tokens"] == TOKENS
    shown = {"input": sum(r["tokens"]["input"] for r in rows.values()),
             "output": sum(r["tokens"]["output"] for r in rows.values())}
    assert shown == TOKENS

    receiver = (await _get(session, server, "/stats"))["receiver"]
    points, used = METRIC_POINTS[stack]
    assert receiver["otlp_metric_points_accepted"] == 2 * points
    assert receiver["otlp_metric_points_used"] == used  # the same cumulative values again add nothing
    assert receiver["otlp_metric_points_rejected"] == 0


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
@pytest.mark.parametrize("stack", STACKS)
async def test_a_model_error_is_one_error_occurred(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, stack: str, order: str
) -> None:
    await _replay(session, server, stack, "model_error", ORDERS[order])

    page = await _get(session, server, "/api/events?event_type=error_occurred&limit=100")
    errors = [event["data"] for event in page["events"]]
    assert [(e["error_type"], e["span_name"]) for e in errors] == [
        (MODEL_ERROR_TYPE[stack], "openai.chat" if stack == "traceloop" else "chat fake-gpt")]
    assert errors[0]["service_name"] == f"recorder-{stack}"
    receiver = (await _get(session, server, "/stats"))["receiver"]
    assert receiver["otlp_log_errors_published"] == 0  # the exception log adds no second error

    body = await _get(session, server, "/api/agents")
    rows = {entry["agent"]: entry for entry in body["agents"]}
    if stack.startswith("openai_v2"):
        (row,) = rows.values()
        assert (row["metrics"]["model_calls"], row["metrics"]["model_call_failures"]) == (1, 1)
        assert row["tokens"] == {"input": 0, "output": 0}
    else:
        assert rows["WeatherAgent"]["failures"] == 1
        assert f"recorder-{stack}" not in rows  # the failed call's metric is the span rows' call

    if stack in LOG_STACKS:
        (chat,) = _chat_spans(stack, "model_error")
        transcript = (await _get(session, server, f"/api/traces/{chat[0]}/spans/{chat[1]}"))["transcript"]
        assert _texts(transcript["input"]) == [("system", [INSTRUCTIONS]), ("user", [QUESTION])]
        assert transcript["output"] == []


async def test_traceloop_the_apps_exception_log_joins_the_failed_agent_span(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    """The app's ``logger.exception`` inside the agent (the Python logging bridge traceloop-sdk
    installs) is an exception log of the agent span, which fails with the same exception."""
    logs = _doc("traceloop", "model_error", "logs")
    (record,) = [r for rl in logs["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]
                 if any(kv["key"] == "exception.type" for kv in r.get("attributes", []))]
    await _replay(session, server, "traceloop", "model_error", ORDERS["logs_first"])

    detail = await _get(session, server, f"/api/traces/{record['traceId']}/spans/{record['spanId']}")
    assert (detail["span"]["name"], detail["span"]["status"]) == ("WeatherAgent.agent", "error")
    # Both are shown with the span: the exception the span recorded (traceloop's decorator: the
    # qualified type) and the app's log of it (the logging bridge: the class name only).
    assert [(e["type"], e["message"]) for e in detail["exceptions"]] == [
        ("openai.InternalServerError", "Error code: 500 - The model backend failed (scripted error)."),
        ("InternalServerError", "Error code: 500 - The model backend failed (scripted error)."),
    ]
    page = await _get(session, server, "/api/events?event_type=error_occurred&limit=100")
    assert len(page["events"]) == 1


@pytest.mark.parametrize("stack", ["traceloop", "pydantic_ai"])
async def test_without_their_spans_the_metrics_make_the_services_row(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, stack: str
) -> None:
    """The per-service rule above only applies beside span rows of the same service."""
    await _replay(session, server, stack, "ok", ("metrics", "logs"))

    body = await _get(session, server, "/api/agents")
    (row,) = body["agents"]
    assert (row["agent"], row["service"]) == (f"recorder-{stack}", f"recorder-{stack}")
    assert (row["runs"], row["tokens"], row["sources"]["tokens"]) == (0, TOKENS, "metrics")
    assert body["totals"]["tokens"] == TOKENS
