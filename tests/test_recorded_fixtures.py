"""The span fixtures recorded from real agent stacks (tests/fixtures/spans, made by scripts/record_spans.py).

Light checks only: every fixture is an OTLP/JSON document the receiver's codec takes whole (no span
rejected), its spans map to dashboard events without raising, and ``POST /v1/traces`` on a real server
accepts it. What the spans mean is for the vocabulary layer's own tests; tests/fixtures/spans/README.md
says what each stack sends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from server_support import running_server

from otel_dashboard.model.otlp import decode_body, events_from_otlp_spans, spans_from_request
from otel_dashboard.server.app import DashboardWebSocketServer

SPANS_DIR = Path(__file__).parent / "fixtures" / "spans"
FIXTURES = sorted(SPANS_DIR.glob("*/*.json"))
MAX_BYTES = 1024 * 1024


def _span_count(doc: dict) -> int:
    return sum(len(ss.get("spans", [])) for rs in doc["resourceSpans"] for ss in rs.get("scopeSpans", []))


def _ids(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_the_recorded_stacks_and_scenarios() -> None:
    stacks = {path.parent.name for path in FIXTURES}
    assert len(stacks) >= 4, stacks
    for stack in stacks:
        for scenario in ("ok", "tool_error", "model_error"):
            assert (SPANS_DIR / stack / f"{scenario}.json").is_file(), f"{stack}/{scenario}"
    versions = json.loads((SPANS_DIR / "VERSIONS.json").read_text())
    assert set(versions) == stacks


@pytest.mark.parametrize("path", FIXTURES, ids=_ids)
def test_fixture_decodes_with_no_span_rejected(path: Path) -> None:
    body = path.read_bytes()
    assert len(body) < MAX_BYTES
    doc = json.loads(body)
    assert doc["recording"]["stack"] == path.parent.name
    assert doc["recording"]["scenario"] == path.stem
    assert doc["recording"]["versions"]

    request, encoding = decode_body(body, content_type="application/json", content_encoding=None,
                                    max_decoded_bytes=MAX_BYTES)
    assert encoding == "json"
    spans, rejected, message = spans_from_request(request)
    assert (rejected, message) == (0, None)
    assert len(spans) == _span_count(doc) > 0
    trace_ids = {span.context.trace_id for span in spans}
    assert all(trace_ids), "every span has a trace id"
    events_from_otlp_spans(spans)  # the current mapping takes them without raising


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server() as server:
        yield server


async def test_every_fixture_is_accepted_by_post_v1_traces(server: DashboardWebSocketServer) -> None:
    async with aiohttp.ClientSession() as session:
        for path in FIXTURES:
            async with session.post(f"{server.url}/v1/traces", data=path.read_bytes(),
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 200, _ids(path)
                assert await response.json() == {}, _ids(path)  # no partial_success: every span accepted
