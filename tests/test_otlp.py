"""The OTLP/HTTP codec: protobuf from the stock OTLP encoder, OTLP/JSON with hex ids, gzip and gzip bombs,
refusals with their HTTP statuses, rejected spans counted for partial success, both response encodings."""

from __future__ import annotations

import copy
import gzip
import json
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from instrumentation import semconv as sc
from otel_dashboard.model.events import EventType, Severity
from otel_dashboard.model.otlp import (
    OtlpDecodeError,
    OtlpError,
    PayloadTooLarge,
    UnsupportedMediaType,
    content_codings,
    decode_body,
    encode_error,
    encode_response,
    events_from_otlp_spans,
    spans_from_request,
)
from otel_dashboard.model.span_mapper import SpanMapper

FIXTURE = Path(__file__).parent / "fixtures" / "otlp_agent_trace.json"
LIMIT = 4 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C


def _decode(body: bytes, content_type: str | None = JSON, encoding: str | None = None,
            limit: int = LIMIT) -> tuple[ExportTraceServiceRequest, str]:
    return decode_body(body, content_type=content_type, content_encoding=encoding,
                       max_decoded_bytes=limit)


def _fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document).encode()


def _sdk_spans() -> tuple[ReadableSpan, ...]:
    """Real SDK spans: an agent run with a model call, a failing tool and a synthesis step."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "research-agents"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("otel_dashboard.instrumentation", "0.1.0")
    agent_attrs = {
        sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: "Researcher",
        sc.GEN_AI_AGENT_ID: "researcher-1",
        sc.TASK_DESCRIPTION: "Size the market",
        sc.QUALITY_SCORE: 91.5,
    }
    with tracer.start_as_current_span("invoke_agent Researcher", attributes=agent_attrs) as agent:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                sc.GEN_AI_OPERATION_NAME: "chat",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                sc.GEN_AI_USAGE_INPUT_TOKENS: 812,
                "gen_ai.request.stop_sequences": ["END", "\n\n"],
                "gen_ai.request.temperature": 0.2,
                "flags": [True, False],
            },
            links=[Link(agent.get_span_context(), {"link.reason": "same run"})],
        ):
            pass
        try:
            with tracer.start_as_current_span(
                "execute_tool web_search",
                attributes={sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL,
                            sc.GEN_AI_TOOL_NAME: "web_search"},
            ):
                raise TimeoutError("search timed out")
        except TimeoutError:
            pass
        with tracer.start_as_current_span(
            "synthesis merge", attributes={sc.SPAN_KIND: sc.SPAN_KIND_SYNTHESIS, sc.SYNTHESIS_PHASE: "merge"}
        ):
            pass
        agent.add_event("opportunity_discovered", {sc.OPPORTUNITY_TITLE: "Retrofit installers",
                                                   sc.OPPORTUNITY_CONFIDENCE: 0.87})
        agent.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return exporter.get_finished_spans()


def _comparable(event: Any) -> tuple[Any, ...]:
    return (event.event_type, event.severity, event.timestamp, json.dumps(event.data, sort_keys=True),
            event.trace_id, event.span_id)


# ---------------------------------------------------------------------------------- protobuf
def test_protobuf_from_the_stock_encoder_becomes_equal_sdk_spans() -> None:
    originals = _sdk_spans()
    body = encode_spans(originals).SerializeToString()

    request, encoding = _decode(body, PROTOBUF)
    spans, rejected, message = spans_from_request(request)

    assert (encoding, rejected, message) == ("protobuf", 0, None)
    assert len(spans) == len(originals) == 4
    by_id = {span.context.span_id: span for span in spans}
    for original in originals:
        span = by_id[original.context.span_id]
        assert span.name == original.name
        assert span.context.trace_id == original.context.trace_id
        assert span.context.is_remote and span.context.trace_flags.sampled
        assert (span.parent.span_id if span.parent else None) == (
            original.parent.span_id if original.parent else None
        )
        assert span.kind == original.kind
        assert span.status.status_code == original.status.status_code
        assert span.status.description == original.status.description
        assert (span.start_time, span.end_time) == (original.start_time, original.end_time)
        assert dict(span.attributes) == dict(original.attributes)
        assert [(e.name, dict(e.attributes), e.timestamp) for e in span.events] == [
            (e.name, dict(e.attributes), e.timestamp) for e in original.events
        ]
        assert [(link.context.trace_id, link.context.span_id, dict(link.attributes))
                for link in span.links] == [
            (link.context.trace_id, link.context.span_id, dict(link.attributes))
            for link in original.links
        ]
        assert dict(span.resource.attributes) == dict(original.resource.attributes)
        assert span.instrumentation_scope.name == "otel_dashboard.instrumentation"
        assert span.instrumentation_scope.version == "0.1.0"
    chat = next(span for span in spans if span.name == "chat gpt-4o")
    assert chat.attributes["gen_ai.request.stop_sequences"] == ("END", "\n\n")
    assert chat.attributes["flags"] == (True, False)


def test_received_spans_map_exactly_like_in_process_spans() -> None:
    originals = _sdk_spans()
    spans, _, _ = spans_from_request(_decode(encode_spans(originals).SerializeToString(), PROTOBUF)[0])

    received = events_from_otlp_spans(spans)
    # In process, the processor's mapper sees every start before the children's, and every end.
    mapper = SpanMapper()
    in_process = [e for span in sorted(originals, key=lambda s: s.start_time) for e in mapper.start(span)]
    in_process += [e for span in sorted(originals, key=lambda s: s.end_time) for e in mapper.end(span)]

    assert sorted(map(_comparable, received)) == sorted(map(_comparable, in_process))
    types = [event.event_type for event in received]
    for expected in (EventType.AGENT_EXECUTION_STARTED, EventType.AGENT_EXECUTION_COMPLETED,
                     EventType.SYNTHESIS_STARTED, EventType.SYNTHESIS_COMPLETED,
                     EventType.ERROR_OCCURRED, EventType.OPPORTUNITY_DISCOVERED,
                     EventType.QUALITY_SCORE_UPDATED):
        assert expected in types
    assert all(event.data.get("service_name") == "research-agents" for event in received)


def test_events_come_in_time_order_and_started_is_stamped_with_the_span_start() -> None:
    originals = _sdk_spans()
    spans, _, _ = spans_from_request(_decode(encode_spans(originals).SerializeToString(), PROTOBUF)[0])
    agent = next(span for span in originals if span.name == "invoke_agent Researcher")

    events = events_from_otlp_spans(spans)

    # The exporter sends the agent span last (it ends last), yet its start comes first.
    assert events[0].event_type is EventType.AGENT_EXECUTION_STARTED
    assert events[0].data["started_at"] == events[0].timestamp
    assert events[0].span_id == format(agent.context.span_id, "016x")
    assert events[-1].event_type in (EventType.AGENT_EXECUTION_COMPLETED, EventType.ERROR_OCCURRED)
    timestamps = [event.timestamp for event in events]
    assert timestamps == sorted(timestamps)


def test_a_span_the_mapping_fails_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import otel_dashboard.model.mapping as mapping

    spans, _, _ = spans_from_request(_decode(FIXTURE.read_bytes())[0])
    original = mapping.map_span_end

    def flaky(span: ReadableSpan, **kwargs: Any) -> Any:
        if span.name.startswith("execute_tool"):
            raise RuntimeError("bug")
        return original(span, **kwargs)

    monkeypatch.setattr(mapping, "map_span_end", flaky)
    events = events_from_otlp_spans(spans)
    assert EventType.AGENT_EXECUTION_COMPLETED in [e.event_type for e in events]
    assert EventType.ERROR_OCCURRED not in [e.event_type for e in events]


def test_malformed_protobuf_is_a_400() -> None:
    with pytest.raises(OtlpDecodeError) as info:
        _decode(b"\x0a\x05abc", PROTOBUF)  # a field that claims 5 bytes and has 3
    assert info.value.http_status == 400
    assert info.value.encoding == "protobuf"


def test_empty_bodies_are_empty_requests() -> None:
    for body, content_type in ((b"", PROTOBUF), (b"{}", JSON)):
        request, _ = _decode(body, content_type)
        assert spans_from_request(request) == ([], 0, None)


# ---------------------------------------------------------------------------------- JSON
def test_the_json_fixture_decodes_with_hex_ids_and_string_int64() -> None:
    request, encoding = _decode(FIXTURE.read_bytes(), "application/json; charset=utf-8")
    spans, rejected, _ = spans_from_request(request)

    assert (encoding, rejected, len(spans)) == ("json", 0, 3)
    chat, tool, agent = spans
    assert agent.context.trace_id == TRACE_ID
    assert agent.context.span_id == 0xEEE19B7EC3C1B174
    assert agent.parent is None
    assert chat.parent.span_id == tool.parent.span_id == 0xEEE19B7EC3C1B174
    assert agent.start_time == 1_700_000_000_000_000_000
    assert agent.end_time == 1_700_000_002_500_000_000
    assert chat.kind is SpanKind.CLIENT and tool.kind is SpanKind.INTERNAL
    assert agent.status.status_code is StatusCode.OK
    assert chat.status.status_code is StatusCode.UNSET
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.status.description == "TimeoutError: search timed out after 0.8 s"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 812
    assert chat.attributes["gen_ai.usage.output_tokens"] == 164
    assert chat.attributes["gen_ai.request.temperature"] == 0.2
    assert chat.attributes["gen_ai.request.stop_sequences"] == ("\n\n", "END")
    assert json.loads(tool.attributes["tool.arguments"]) == {
        "query": "EU heat pump market 2025", "max_results": 5,
    }
    assert tool.events[0].attributes["exception.escaped"] is True
    assert tool.events[0].timestamp == 1_700_000_001_990_000_000
    assert chat.links[0].context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert chat.links[0].attributes["link.reason"] == "follows"
    assert agent.resource.attributes["service.name"] == "research-agents"
    assert agent.resource.attributes["host.cpu.count"] == 8
    assert agent.resource is chat.resource  # one Resource per resourceSpans


def test_the_json_fixture_maps_to_dashboard_events() -> None:
    spans, _, _ = spans_from_request(_decode(FIXTURE.read_bytes())[0])

    events = events_from_otlp_spans(spans)

    by_type = {event.event_type: event for event in events}
    assert [e.event_type for e in events] == [
        EventType.AGENT_EXECUTION_STARTED,  # at the agent's start
        EventType.ERROR_OCCURRED,  # at the tool's end
        EventType.OPPORTUNITY_DISCOVERED,  # the agent's end events, in the mapping's order
        EventType.QUALITY_SCORE_UPDATED,
        EventType.AGENT_EXECUTION_COMPLETED,
    ]
    started = by_type[EventType.AGENT_EXECUTION_STARTED]
    assert started.timestamp == "2023-11-14T22:13:20.000Z"
    assert started.data["agent_name"] == "Researcher"
    assert started.data["service_name"] == "research-agents"
    assert started.trace_id == format(TRACE_ID, "032x")
    completed = by_type[EventType.AGENT_EXECUTION_COMPLETED]
    assert completed.data["duration_ms"] == 2500.0
    assert completed.data["success"] is True
    assert completed.severity is Severity.SUCCESS
    error = by_type[EventType.ERROR_OCCURRED]
    assert error.data["error_type"] == "TimeoutError"
    assert error.data["service_name"] == "research-agents"
    assert by_type[EventType.OPPORTUNITY_DISCOVERED].data["opportunity_id"] == "opp-42"
    assert by_type[EventType.QUALITY_SCORE_UPDATED].data["overall_score"] == 96.5


def test_json_accepts_snake_case_numbers_enum_names_and_upper_case_hex() -> None:
    document = {
        "resource_spans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "svc"}}]},
            "scope_spans": [{"spans": [{
                "trace_id": "5B8EFFF798038103D269B633813FC60C",
                "span_id": "EEE19B7EC3C1B174",
                "parent_span_id": "eee19b7ec3c1b173",
                "name": "s",
                "kind": "SPAN_KIND_SERVER",
                "start_time_unix_nano": 1_700_000_000_000_000_000,
                "end_time_unix_nano": 1_700_000_000_500_000_000,
                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                "someFutureField": {"x": 1},
            }]}],
        }],
    }

    spans, rejected, _ = spans_from_request(_decode(_json_bytes(document))[0])

    assert rejected == 0
    (span,) = spans
    assert span.context.trace_id == TRACE_ID
    assert span.parent.span_id == 0xEEE19B7EC3C1B173
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.ERROR
    assert span.end_time - span.start_time == 500_000_000
    assert span.resource.attributes["service.name"] == "svc"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"resourceSpans": 5}',
     b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5, "startTimeUnixNano": "x"}]}]}]}',
     b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": '
     b'{"bytesValue": "not base64!"}}]}]}]}]}'],
)
def test_malformed_json_is_a_400(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError) as info:
        _decode(body)
    assert info.value.http_status == 400
    assert info.value.encoding == "json"
    assert len(str(info.value)) <= 500


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(300):
        value = {"arrayValue": {"values": [value]}}
    document = {"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": value}]}}]}
    with pytest.raises(OtlpDecodeError):
        _decode(_json_bytes(document))


# ---------------------------------------------------------------------------------- rejected spans
def _span(**overrides: Any) -> dict[str, Any]:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "ok",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
    }
    span.update(overrides)
    return {key: value for key, value in span.items() if value is not None}


def _request_of(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}


REJECTED_SPANS = {
    "short trace id": _span(traceId="5b8efff798038103"),
    "non-hex span id": _span(spanId="zzzzzzzzzzzzzzzz"),
    "odd-length span id": _span(spanId="eee19b7ec3c1b17"),
    "all-zero trace id": _span(traceId="0" * 32),
    "all-zero span id": _span(spanId="0" * 16),
    "missing trace id": _span(traceId=None),
    "numeric span id": _span(spanId=12345),
    "base64 trace id": _span(traceId="W47/95gDgQPSabYzgT/GDA=="),
    "bad parent id": _span(parentSpanId="eee19b7ec3"),
    "no name": _span(name=None),
    "no start time": _span(startTimeUnixNano=None),
    "end before start": _span(endTimeUnixNano="1600000000000000000"),
}


def test_spans_with_bad_ids_or_times_are_rejected_one_by_one() -> None:
    good = [_span(spanId="eee19b7ec3c1b170", parentSpanId=""),
            _span(spanId="eee19b7ec3c1b171", parentSpanId="0000000000000000")]
    document = _request_of(*good, *REJECTED_SPANS.values())

    spans, rejected, message = spans_from_request(_decode(_json_bytes(document))[0])

    assert [span.context.span_id for span in spans] == [0xEEE19B7EC3C1B170, 0xEEE19B7EC3C1B171]
    assert all(span.parent is None for span in spans)  # empty and all-zero parents mean root
    assert rejected == len(REJECTED_SPANS)
    assert message.startswith(f"{len(REJECTED_SPANS)} span(s) rejected: ")
    assert "traceId" in message and len(message) <= 500


@pytest.mark.parametrize("case", sorted(REJECTED_SPANS))
def test_each_rejection_rule(case: str) -> None:
    spans, rejected, message = spans_from_request(_decode(_json_bytes(_request_of(REJECTED_SPANS[case])))[0])
    assert (spans, rejected) == ([], 1)
    assert message


def test_protobuf_spans_with_bad_ids_are_rejected_too() -> None:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id in ((b"\x01" * 16, b"\x02" * 8), (b"\x01" * 15, b"\x02" * 8),
                              (b"\x01" * 16, b"\x02" * 9)):
        span = scope_spans.spans.add(trace_id=trace_id, span_id=span_id, name="s",
                                     start_time_unix_nano=1, end_time_unix_nano=2)
        del span
    decoded, _ = _decode(request.SerializeToString(), PROTOBUF)
    spans, rejected, _ = spans_from_request(decoded)
    assert (len(spans), rejected) == (1, 2)


def test_invalid_links_are_dropped_and_the_span_kept() -> None:
    document = _request_of(_span(links=[
        {"traceId": "nothex", "spanId": "eee19b7ec3c1b173"},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"},
    ]))
    (span,), rejected, _ = spans_from_request(_decode(_json_bytes(document))[0])
    assert rejected == 0
    assert [link.context.span_id for link in span.links] == [0xB7AD6B7169203331]


# ---------------------------------------------------------------------------------- attribute values
def test_any_value_conversions() -> None:
    attrs = [
        {"key": "mixed", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "a"}]}}},
        {"key": "ints", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": 2}]}}},
        {"key": "empty_array", "value": {"arrayValue": {}}},
        {"key": "nested", "value": {"arrayValue": {"values": [{"arrayValue": {"values": [
            {"boolValue": True}]}}]}}},
        {"key": "bytes", "value": {"bytesValue": "AAEC"}},
        {"key": "kv", "value": {"kvlistValue": {"values": [
            {"key": "b", "value": {"bytesValue": "/w=="}}, {"key": "n", "value": {}}]}}},
        {"key": "empty", "value": {}},
        {"key": "", "value": {"stringValue": "no key"}},
    ]
    (span,), _, _ = spans_from_request(_decode(_json_bytes(_request_of(_span(attributes=attrs))))[0])
    assert dict(span.attributes) == {
        "mixed": '[1,"a"]',
        "ints": (1, 2),
        "empty_array": (),
        "nested": "[[true]]",
        "bytes": "AAEC",
        "kv": '{"b":"/w==","n":null}',
    }


@pytest.mark.parametrize(
    ("otlp_kind", "kind"),
    [(0, SpanKind.INTERNAL), (1, SpanKind.INTERNAL), (2, SpanKind.SERVER), (3, SpanKind.CLIENT),
     (4, SpanKind.PRODUCER), (5, SpanKind.CONSUMER), (99, SpanKind.INTERNAL)],
)
def test_span_kinds(otlp_kind: int, kind: SpanKind) -> None:
    (span,), _, _ = spans_from_request(_decode(_json_bytes(_request_of(_span(kind=otlp_kind))))[0])
    assert span.kind is kind


@pytest.mark.parametrize(
    ("status", "code", "description"),
    [({}, StatusCode.UNSET, None), ({"code": 0, "message": "ignored"}, StatusCode.UNSET, None),
     ({"code": 1}, StatusCode.OK, None), ({"code": 2, "message": "boom"}, StatusCode.ERROR, "boom"),
     ({"code": 2}, StatusCode.ERROR, None), ({"code": 7}, StatusCode.UNSET, None)],
)
def test_status_codes(status: dict[str, Any], code: StatusCode, description: str | None) -> None:
    (span,), _, _ = spans_from_request(_decode(_json_bytes(_request_of(_span(status=status))))[0])
    assert (span.status.status_code, span.status.description) == (code, description)


# ---------------------------------------------------------------------------------- media types, gzip, size
@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/xml", "multipart/form-data"])
def test_other_content_types_are_a_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        _decode(b"{}", content_type)
    assert info.value.http_status == 415
    assert info.value.encoding is None


@pytest.mark.parametrize("content_type", ["Application/JSON", "application/json;charset=UTF-8",
                                          " application/x-protobuf ; foo=bar", "application/protobuf"])
def test_content_type_parameters_and_case_are_ignored(content_type: str) -> None:
    _decode(b"{}" if "json" in content_type.lower() else b"", content_type)


def test_unknown_content_encoding_is_a_415() -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        _decode(b"{}", JSON, "br")
    assert info.value.encoding == "json"


@pytest.mark.parametrize("content_encoding", ["gzip", "GZIP", "x-gzip", "identity, gzip"])
def test_gzip_bodies(content_encoding: str) -> None:
    request, _ = _decode(gzip.compress(FIXTURE.read_bytes()), JSON, content_encoding)
    assert len(spans_from_request(request)[0]) == 3


def test_gzip_protobuf_and_identity() -> None:
    body = encode_spans(_sdk_spans()).SerializeToString()
    assert len(spans_from_request(_decode(gzip.compress(body), PROTOBUF, "gzip")[0])[0]) == 4
    assert len(spans_from_request(_decode(body, PROTOBUF, "identity")[0])[0]) == 4


def test_concatenated_gzip_members() -> None:
    raw = FIXTURE.read_bytes()
    half = len(raw) // 2
    members = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    assert len(spans_from_request(_decode(members, JSON, "gzip")[0])[0]) == 3


@pytest.mark.parametrize("content_encoding", ["gzip, gzip", "gzip,deflate", "GZIP, identity, x-gzip",
                                              ", ".join(["gzip"] * 1000)])
def test_more_than_one_coding_layer_is_a_415_before_any_inflation(content_encoding: str) -> None:
    # Each layer would be a whole inflation: N layers of a small body cost seconds. Refused from the
    # header alone: the body here is not even gzip, and nothing of it is examined.
    with pytest.raises(UnsupportedMediaType) as info:
        _decode(b"not gzip", JSON, content_encoding)
    assert info.value.http_status == 415
    assert "Content-Encoding" in str(info.value)
    assert info.value.examined_bytes == 0
    assert content_codings("identity, gzip") == ["gzip"]
    assert content_codings(None) == []


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_deflate_bodies_zlib_or_raw(wbits: int) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    packed = compressor.compress(FIXTURE.read_bytes()) + compressor.flush()
    request, _ = _decode(packed, JSON, "deflate")
    assert len(spans_from_request(request)[0]) == 3
    with pytest.raises(OtlpDecodeError, match="deflate"):
        _decode(packed + b"tail", JSON, "deflate")


def test_failed_decodes_say_how_much_they_examined() -> None:
    # The receiver charges a refused body by what it cost: the bytes inflated or parsed.
    with pytest.raises(OtlpDecodeError) as info:
        _decode(b"x" * 5000, JSON)
    assert info.value.examined_bytes == 5000
    bomb = gzip.compress(bytes(4 * 1024 * 1024))
    with pytest.raises(PayloadTooLarge) as too_large:
        _decode(bomb, PROTOBUF, "gzip", limit=1024 * 1024)
    assert too_large.value.examined_bytes > 1024 * 1024


# Ids: a gzip header holds the time, and pytest-xdist needs every worker to collect the same ids.
@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b'{"resourceSpans": []}')[:-6],
                                  gzip.compress(b"{}") + b"trailing garbage"],
                         ids=["not gzip", "truncated", "trailing garbage"])
def test_broken_gzip_is_a_400(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError):
        _decode(body, JSON, "gzip")


def test_a_gzip_bomb_is_stopped_without_inflating_it() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(100)) + compressor.flush()  # 100 MB of zeros
    assert len(bomb) < 200_000

    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge) as info:
        _decode(bomb, PROTOBUF, "gzip", limit=1024 * 1024)
    assert time.perf_counter() - started < 0.5  # inflating all of it would take longer
    assert info.value.http_status == 413
    assert info.value.encoding == "protobuf"


def test_size_limit_applies_before_and_after_decompression() -> None:
    raw = FIXTURE.read_bytes()
    with pytest.raises(PayloadTooLarge):
        _decode(raw, JSON, limit=len(raw) - 1)
    _decode(raw, JSON, limit=len(raw))  # exactly at the limit is fine
    packed = gzip.compress(raw)
    with pytest.raises(PayloadTooLarge):
        _decode(packed, JSON, "gzip", limit=len(raw) - 1)
    _decode(packed, JSON, "gzip", limit=len(raw))


def test_error_classes() -> None:
    for cls, status in ((OtlpDecodeError, 400), (PayloadTooLarge, 413), (UnsupportedMediaType, 415)):
        assert issubclass(cls, OtlpError) and issubclass(cls, ValueError)
        assert cls("x").http_status == status


# ---------------------------------------------------------------------------------- responses
def test_protobuf_responses() -> None:
    body, content_type = encode_response("protobuf")
    assert content_type == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")

    body, _ = encode_response("protobuf", 3, "3 span(s) rejected")
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "3 span(s) rejected"


def test_json_responses() -> None:
    body, content_type = encode_response("json")
    assert (json.loads(body), content_type) == ({}, "application/json")

    body, _ = encode_response("json", 2, "bad ids")
    document = json.loads(body)
    assert document == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}
    response = json_format.Parse(body, ExportTraceServiceResponse())
    assert response.partial_success.rejected_spans == 2


def test_unknown_response_encoding() -> None:
    with pytest.raises(ValueError, match="encoding"):
        encode_response("xml")


def test_error_bodies_are_rpc_status_in_the_request_encoding() -> None:
    body, content_type = encode_error("json", "invalid JSON body", 400)
    assert (json.loads(body), content_type) == (
        {"code": 3, "message": "invalid JSON body"}, "application/json"
    )
    body, content_type = encode_error(None, "unsupported", 415)
    assert content_type == "application/json"
    body, content_type = encode_error("protobuf", "too large \u2013 " + "x" * 300, 413)
    assert content_type == "application/x-protobuf"
    from google.rpc import status_pb2  # googleapis-common-protos comes with the OTLP exporter
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (8, "too large \u2013 " + "x" * 300)


def test_the_fixture_is_the_spec_encoding() -> None:
    # Guard against the fixture drifting: ids hex, int64 as strings, enums as integers.
    spans = _fixture()["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for span in spans:
        assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
        assert isinstance(span["startTimeUnixNano"], str)
        assert isinstance(span["kind"], int)
    doc = copy.deepcopy(_fixture())
    assert _decode(_json_bytes(doc))[1] == "json"
