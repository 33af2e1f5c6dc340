"""A generated agent trace of any size, as OTLP/JSON for ``POST /v1/traces``: the trace page's
benchmark (``bench_trace_render.py``) and its browser test (``tests/test_browser_trace_page.py``).

The shape is an agent system's: a root agent (``Planner``) invokes worker agents in turn; each worker
runs steps, and a step is a chain span with a model call (``chat gpt-4o``, with tokens) and a tool
call (``execute_tool web_search``) that makes an HTTP request. Spans are made in preorder and cut at
``spans``, so every kept span's parent is kept. One deep span near the end is the *needle*: an HTTP
span named ``GET needle-host`` whose ``error.type`` attribute is ``NeedleError`` (a kept attribute),
for the in-trace search.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["NEEDLE_ERROR", "NEEDLE_NAME", "big_trace", "ingest_body", "otlp_bodies"]

NEEDLE_NAME = "GET needle-host"
NEEDLE_ERROR = "NeedleError"
_STEP_NS = 1_000_000  # 1 ms between span starts
_BASE_NS = 1_700_000_000_000_000_000


def _attr(key: str, value: str | int) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def big_trace(spans: int, trace_id: str, *, workers: int = 20) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``spans`` spans of one finished trace (plain dicts: ``span_id``, ``parent_span_id``, ``name``,
    ``kind``, ``start_ns``, ``end_ns``, ``attributes``, ``error``), for :func:`otlp_bodies` or
    :func:`ingest_body`, and facts about it.

    Returns:
        The spans, in preorder, and ``{"trace_id", "root", "last", "needle", "needle_parents"}``: the
        root's span id, the last span's (in preorder), the needle's, and the needle's ancestors from
        the root.
    """
    ids = (f"{n:016x}" for n in itertools.count(0x1000))
    clock = itertools.count()
    out: list[dict[str, Any]] = []
    parents: dict[str, str | None] = {}

    def span(name: str, kind: str, parent: str | None, attrs: dict[str, str | int], length: int, *,
             error: str = "") -> str:
        sid = next(ids)
        start = _BASE_NS + next(clock) * _STEP_NS
        out.append({"span_id": sid, "parent_span_id": parent, "name": name, "kind": kind, "start_ns": start,
                    "end_ns": start + length * _STEP_NS, "attributes": attrs, "error": error})
        parents[sid] = parent
        return sid

    def agent(name: str) -> dict[str, str | int]:
        return {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}

    per_worker = max(1, (spans - 1) // workers)
    steps = max(1, (per_worker - 1) // 4)
    root = span("invoke_agent Planner", "agent", None, agent("Planner"), spans + 10)
    needle = ""
    for w in range(workers):
        worker = span(f"invoke_agent Worker{w}", "agent", root, agent(f"Worker{w}"), steps * 4 + 2)
        for s in range(steps):
            step = span(f"step {s}", "chain", worker, {}, 4)
            span("chat gpt-4o", "model", step, {
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 800 + s, "gen_ai.usage.output_tokens": 120}, 1)
            tool = span("execute_tool web_search", "tool", step,
                        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"}, 2)
            if w == workers - 2 and s == steps - 1:
                needle = span(NEEDLE_NAME, "other", tool, {"error.type": NEEDLE_ERROR}, 1,
                              error="needle failed")
            else:
                span("GET search-api", "other", tool, {}, 1)
    # Filler spans under the root up to the count; then the cut (preorder: parents come first).
    while len(out) < spans:
        span("execute_tool tidy_up", "tool", root,
             {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "tidy_up"}, 1)
    out = out[:spans]
    kept = {item["span_id"] for item in out}
    if needle not in kept:
        needle = ""
    chain: list[str] = []
    node: str | None = parents.get(needle) if needle else None
    while node:
        chain.append(node)
        node = parents[node]
    for item in out:
        item["trace_id"] = trace_id
    return out, {"trace_id": trace_id, "root": root, "last": out[-1]["span_id"], "needle": needle,
                 "needle_parents": chain[::-1]}


def otlp_bodies(spans: list[dict[str, Any]], *, service: str = "big-trace", per_request: int = 2500
                ) -> Iterator[bytes]:
    """The spans as OTLP/JSON bodies for ``POST /v1/traces`` of at most ``per_request`` spans each
    (the receiver maps each span as it would a real one: about 0.5 ms a span)."""
    for i in range(0, len(spans), per_request):
        items = []
        for item in spans[i:i + per_request]:
            otlp: dict[str, Any] = {
                "traceId": item["trace_id"], "spanId": item["span_id"], "name": item["name"], "kind": 1,
                "startTimeUnixNano": str(item["start_ns"]), "endTimeUnixNano": str(item["end_ns"]),
                "attributes": [_attr(k, v) for k, v in item["attributes"].items()],
                "status": {"code": 2, "message": item["error"]} if item["error"] else {},
            }
            if item["parent_span_id"]:
                otlp["parentSpanId"] = item["parent_span_id"]
            items.append(otlp)
        yield json.dumps({"resourceSpans": [{
            "resource": {"attributes": [_attr("service.name", service)]},
            "scopeSpans": [{"scope": {"name": "big_trace"}, "spans": items}],
        }]}).encode()


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def ingest_body(spans: list[dict[str, Any]], *, service: str = "big-trace") -> bytes:
    """The spans as span records for ``POST /api/events`` (``{"events": [], "spans": [...]}``, at most
    10,000 per request): they go to the trace store as they are, without the OTLP mapping's cost."""
    records = [{
        "trace_id": item["trace_id"], "span_id": item["span_id"], "parent_span_id": item["parent_span_id"],
        "name": item["name"], "kind": item["kind"], "status": "error" if item["error"] else "ok",
        "status_message": item["error"] or None, "duration_ms": (item["end_ns"] - item["start_ns"]) / 1e6,
        "start_time": _iso(item["start_ns"]), "end_time": _iso(item["end_ns"]),
        "start_time_unix_nano": item["start_ns"], "end_time_unix_nano": item["end_ns"],
        "service_name": service, "attributes": item["attributes"],
        "agent_name": item["attributes"].get("gen_ai.agent.name"),
        "tool_name": item["attributes"].get("gen_ai.tool.name"),
    } for item in spans]
    return json.dumps({"events": [], "spans": records}).encode()
