"""The OTLP/gRPC receiver on a real server: the stock OTLP/gRPC exporters, raw gRPC calls, the wrong ports.

The stock exporters (``opentelemetry-exporter-otlp-proto-grpc``) are synchronous: they run in a
thread while the server's loop serves. Raw calls use a ``grpc.aio`` channel on the test's loop with
no deserializer, so the test reads exactly the bytes the server answered.

Metrics and logs: these tests pin the transport (routing, token, partial success, an intake that
fails) with ``accept_export`` replaced by a recorder (the metric and log intakes are tested over
HTTP by their own files; what they keep does not depend on the transport). Traces go all the way.

About 500 lines for a reason: one file for every promise docs/otlp.md makes about OTLP/gRPC (each
test is short; they share the request builders and the raw-call helper).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from server_support import WAIT, EventStream, make_certificate, running_server
from test_otlp_receiver import RecordingExporter, assert_agent_arrives, run_agent_through

from otel_dashboard.model.otlp import SIGNALS
from otel_dashboard.server import grpc_receiver
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.server.grpc_receiver import GrpcBindError, peer_address
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.otlp_ingest import ExportResult
from otel_dashboard.server.security import SECURITY_KEY, SecurityConfig

pytestmark = pytest.mark.timeout(60)

TOKEN = "grpc-test-token-5678"
SMALL_LIMIT = 64 * 1024
TRACES = SIGNALS["traces"].grpc_method
_OTLP_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION",
             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_CERTIFICATE")


@pytest.fixture(autouse=True)
def _clean_otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTLP_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server(grpc_port=0, max_body_bytes=SMALL_LIMIT) as server:
        yield server


def counters(server: DashboardWebSocketServer) -> dict[str, int]:
    assert server.app is not None
    return server.app[HEALTH_KEY].counters


def span_request(*, n_spans: int = 1, bad_span_id: bool = False) -> ExportTraceServiceRequest:
    """A request with ``n_spans`` plain spans; the first one's span id 3 bytes long when asked."""
    spans = []
    for i in range(n_spans):
        span_id = b"\x01\x02\x03" if bad_span_id and i == 0 else bytes([0, 0, 0, 0, 0, 0, 1, i + 1])
        spans.append(Span(trace_id=b"\x11" * 16, span_id=span_id, name=f"work {i}",
                          start_time_unix_nano=1_700_000_000_000_000_000,
                          end_time_unix_nano=1_700_000_001_000_000_000))
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    service = KeyValue(key="service.name", value=AnyValue(string_value="raw"))
    resource_spans.resource.attributes.append(service)
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


async def raw_call(
    target: str, data: bytes, *, method: str = TRACES, metadata: tuple[tuple[str, str], ...] = (),
    compression: grpc.Compression | None = None, credentials: grpc.ChannelCredentials | None = None,
) -> bytes:
    """One unary call with raw bytes in and out (raises grpc.aio.AioRpcError on an error status)."""
    if credentials is not None:
        channel = grpc.aio.secure_channel(target, credentials)
    else:
        channel = grpc.aio.insecure_channel(target)
    async with channel:
        call = channel.unary_unary(method)
        answer: bytes = await call(data, metadata=metadata, compression=compression, timeout=WAIT)
        return answer


def target(server: DashboardWebSocketServer) -> str:
    return f"127.0.0.1:{server.grpc_port}"


# ------------------------------------------------------------------------------ traces end to end
@pytest.mark.parametrize("compression", [None, "gzip"])
async def test_stock_grpc_exporter_delivers_agent_spans(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, compression: str | None
) -> None:
    stream = await EventStream.connect(session, server)
    exporter = RecordingExporter(OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{server.grpc_port}", insecure=True, timeout=WAIT,
        compression=grpc.Compression.Gzip if compression else grpc.Compression.NoCompression,
    ))
    trace_id = await asyncio.to_thread(run_agent_through, exporter, "grpc-e2e", "Planner")
    assert exporter.results == [SpanExportResult.SUCCESS] * 2
    await assert_agent_arrives(stream, session, server, "Planner", "grpc-e2e", trace_id)
    await stream.close()
    assert counters(server)["grpc_requests"] == 2
    assert counters(server)["otlp_spans_accepted"] == 2
    assert "grpc_refused_requests" not in counters(server)


async def test_rejected_spans_are_a_partial_success(server: DashboardWebSocketServer) -> None:
    answer = await raw_call(target(server), span_request(n_spans=3, bad_span_id=True).SerializeToString())
    response = ExportTraceServiceResponse.FromString(answer)
    assert response.partial_success.rejected_spans == 1
    assert "spanId must be 8 bytes" in response.partial_success.error_message
    assert counters(server)["otlp_spans_accepted"] == 2


async def test_an_accepted_request_answers_an_empty_response(server: DashboardWebSocketServer) -> None:
    answer = await raw_call(target(server), span_request(n_spans=2).SerializeToString())
    assert answer == b""  # no partial_success: the response message with no field set
    assert not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")


async def test_bytes_that_are_no_request_are_invalid_argument(server: DashboardWebSocketServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(target(server), b"\x0a\xff\xff\xff\xff\x0f")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not an OTLP trace export request" in (caught.value.details() or "")
    assert counters(server)["grpc_refused_requests"] == 1
    assert server.app is not None and server.app[SECURITY_KEY].counters["ingest_failed_decodes"] == 1


# ------------------------------------------------------------------------------ size and gzip
async def test_an_oversize_message_is_resource_exhausted(server: DashboardWebSocketServer) -> None:
    big = span_request()
    big.resource_spans[0].scope_spans[0].spans[0].name = "x" * (SMALL_LIMIT + 10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(target(server), big.SerializeToString())
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (caught.value.details() or "")
    assert "grpc_requests" not in counters(server)  # refused by grpc core before the handler


async def test_a_gzip_message_is_measured_once_inflated(server: DashboardWebSocketServer) -> None:
    # Small on the wire (gzip compresses the repeated name to ~100 bytes), over the limit inflated.
    big = span_request()
    big.resource_spans[0].scope_spans[0].spans[0].name = "x" * (SMALL_LIMIT + 10)
    data = big.SerializeToString()
    assert len(gzip.compress(data)) < SMALL_LIMIT // 100
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(target(server), data, compression=grpc.Compression.Gzip)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # Under the limit, compressed: accepted.
    answer = await raw_call(target(server), span_request(n_spans=2).SerializeToString(),
                            compression=grpc.Compression.Gzip)
    assert answer == b""
    assert counters(server)["otlp_spans_accepted"] == 2


# ------------------------------------------------------------------------------ token
async def test_the_token_is_required_in_the_authorization_metadata(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    data = span_request().SerializeToString()
    async with running_server(grpc_port=0, security=SecurityConfig(token=TOKEN)) as server:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await raw_call(target(server), data)
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await raw_call(target(server), data, metadata=(("authorization", f"Bearer {TOKEN}x"),))
        with pytest.raises(grpc.aio.AioRpcError) as basic:
            await raw_call(target(server), data, metadata=(("authorization", f"Basic {TOKEN}"),))
        for caught in (missing, wrong, basic):
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "a token is required" in (missing.value.details() or "")
        assert wrong.value.details() == "the token is wrong"
        # The scheme is case-insensitive.
        assert await raw_call(target(server), data, metadata=(("authorization", f"bearer {TOKEN}"),)) == b""
        # The stock exporter, with the header as OTEL_EXPORTER_OTLP_HEADERS would give it.
        exporter = RecordingExporter(OTLPSpanExporter(
            endpoint=f"http://{target(server)}", insecure=True, timeout=WAIT,
            headers=(("authorization", f"Bearer {TOKEN}"),)))
        await asyncio.to_thread(run_agent_through, exporter, "grpc-token", "Guarded")
        assert exporter.results == [SpanExportResult.SUCCESS] * 2
        assert counters(server)["grpc_unauthenticated"] == 3
        assert counters(server)["otlp_spans_accepted"] == 3
        assert server.app is not None and server.app[SECURITY_KEY].counters["unauthorized"] == 3
    assert TOKEN not in caplog.text


async def test_the_environment_headers_of_the_stock_exporter_carry_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_server(grpc_port=0, security=SecurityConfig(token=TOKEN)) as server:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{target(server)}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        exporter = RecordingExporter(OTLPSpanExporter(timeout=WAIT))
        await asyncio.to_thread(run_agent_through, exporter, "grpc-env", "FromEnv")
        assert exporter.results == [SpanExportResult.SUCCESS] * 2


# ------------------------------------------------------------------------------ TLS
@pytest.mark.parametrize("key_in_certfile", [False, True], ids=["separate-key", "key-in-certfile"])
async def test_tls_uses_the_servers_certificate(tmp_path: Path, key_in_certfile: bool) -> None:
    cert, key = make_certificate(tmp_path)
    if key_in_certfile:
        both = tmp_path / "both.pem"
        both.write_bytes(cert.read_bytes() + key.read_bytes())
        security = SecurityConfig(tls_certfile=str(both))
    else:
        security = SecurityConfig(tls_certfile=str(cert), tls_keyfile=str(key))
    async with running_server(grpc_port=0, security=security) as server:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        answer = await raw_call(f"localhost:{server.grpc_port}", span_request().SerializeToString(),
                                credentials=credentials)
        assert answer == b""
        # A plaintext client gets no answer from a TLS port.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw_call(target(server), span_request().SerializeToString())
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        # The stock exporter with the certificate, as OTEL_EXPORTER_OTLP_CERTIFICATE gives it.
        exporter = RecordingExporter(OTLPSpanExporter(
            endpoint=f"https://localhost:{server.grpc_port}", credentials=credentials, timeout=WAIT))
        await asyncio.to_thread(run_agent_through, exporter, "grpc-tls", "Secure")
        assert exporter.results == [SpanExportResult.SUCCESS] * 2
        # A gRPC client on the HTTPS port gets through TLS (ALPN h2 is offered after http/1.1) to the
        # answer naming the gRPC port; a client offering both still gets http/1.1.
        with pytest.raises(grpc.aio.AioRpcError) as wrong_port:
            await raw_call(f"localhost:{server.port}", b"", credentials=credentials)
        assert wrong_port.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert f"send OTLP/gRPC to port {server.grpc_port}" in (wrong_port.value.details() or "")
        context = ssl.create_default_context(cafile=str(cert))
        context.set_alpn_protocols(["h2", "http/1.1"])
        _, writer = await asyncio.open_connection("localhost", server.port, ssl=context)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.close()


# ------------------------------------------------------------------------------ rate limit
async def test_over_the_ingest_rate_is_unavailable_with_retry_info() -> None:
    security = SecurityConfig(ingest_events_per_second=1.0, ingest_burst_events=2)
    async with running_server(grpc_port=0, security=security) as server:
        # The first request goes through and leaves the address's bucket in debt (5 events, burst 2).
        assert await raw_call(target(server), span_request(n_spans=5).SerializeToString()) == b""
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw_call(target(server), span_request(n_spans=1).SerializeToString())
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE  # the code every exporter retries
        assert "ingest rate exceeded" in (caught.value.details() or "")
        trailer = dict(caught.value.trailing_metadata() or ())
        retry = RetryInfo.FromString(trailer["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds >= 1
        assert counters(server)["grpc_refused_requests"] == 1
        assert counters(server)["otlp_refused_requests"] == 1
        # One bucket per address for both transports: OTLP/HTTP from the same address waits too.
        async with aiohttp.ClientSession() as session, session.post(
            server.url + "/v1/traces", data=span_request().SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        ) as response:
            assert response.status == 429


def test_peer_strings_become_the_http_sides_addresses() -> None:
    assert peer_address("ipv4:127.0.0.1:50123") == "127.0.0.1"
    assert peer_address("ipv6:[::1]:50123") == "::1"
    assert peer_address("ipv6:%5B::1%5D:50123") == "::1"
    assert peer_address("ipv6:::1:50123") == "::1"
    assert peer_address("unix:/tmp/socket") == "unix:/tmp/socket"


# ------------------------------------------------------------------------------ metrics and logs
class RecordingIntake:
    """Stands in for ``accept_export`` (see the module docstring): records what the receiver routed."""

    def __init__(self, result: ExportResult | Exception) -> None:
        self.result = result
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, app: Any, signal: str, request: Any, *, address: str) -> ExportResult:
        self.calls.append((signal, type(request).__name__, address))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def export_metrics(endpoint: str, headers: tuple[tuple[str, str], ...] = ()) -> bool:
    exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=WAIT, headers=headers)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "m"}))
    try:
        histogram = provider.get_meter("tests.grpc").create_histogram("gen_ai.client.token.usage")
        histogram.record(42, {"gen_ai.token.type": "input", "gen_ai.request.model": "m-1"})
        return provider.force_flush(timeout_millis=int(WAIT * 1000))
    finally:
        provider.shutdown()


def export_logs(endpoint: str) -> list[str]:
    results: list[str] = []

    class Recording(OTLPLogExporter):
        def export(self, batch: Any) -> Any:
            result = super().export(batch)
            results.append(result.name)
            return result

    provider = LoggerProvider(resource=Resource.create({"service.name": "l"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(Recording(endpoint=endpoint, insecure=True,
                                                                         timeout=WAIT)))
    try:
        provider.get_logger("tests.grpc").emit(body="one log record", severity_number=SeverityNumber.WARN)
    finally:
        provider.shutdown()
    return results


async def test_metrics_and_logs_are_routed_to_the_ingest_path(
    server: DashboardWebSocketServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = RecordingIntake(ExportResult(1, "one point was bad"))
    monkeypatch.setattr(grpc_receiver, "accept_export", intake)
    endpoint = f"http://{target(server)}"
    assert await asyncio.to_thread(export_metrics, endpoint)
    assert await asyncio.to_thread(export_logs, endpoint) == ["SUCCESS"]
    # (the metric reader exports at the flush and again at shutdown: cumulative temporality)
    assert set(intake.calls) == {("metrics", "ExportMetricsServiceRequest", "127.0.0.1"),
                                 ("logs", "ExportLogsServiceRequest", "127.0.0.1")}
    # The partial success goes back in each signal's own field.
    answer = await raw_call(target(server), b"", method=SIGNALS["metrics"].grpc_method)
    assert b"one point was bad" in answer
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    assert ExportMetricsServiceResponse.FromString(answer).partial_success.rejected_data_points == 1


async def test_metrics_need_the_token_too(monkeypatch: pytest.MonkeyPatch) -> None:
    intake = RecordingIntake(ExportResult())
    monkeypatch.setattr(grpc_receiver, "accept_export", intake)
    async with running_server(grpc_port=0, security=SecurityConfig(token=TOKEN)) as server:
        for method in (SIGNALS["metrics"].grpc_method, SIGNALS["logs"].grpc_method):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await raw_call(target(server), b"", method=method)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert intake.calls == []
        endpoint = f"http://{target(server)}"
        assert await asyncio.to_thread(export_metrics, endpoint, (("authorization", f"Bearer {TOKEN}"),))
        assert {call[0] for call in intake.calls} == {"metrics"}


async def test_an_intake_that_fails_is_internal_and_logged_once(
    server: DashboardWebSocketServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(grpc_receiver, "accept_export", RecordingIntake(NotImplementedError("not yet")))
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw_call(target(server), b"", method=SIGNALS["logs"].grpc_method)
        assert caught.value.code() is grpc.StatusCode.INTERNAL
        assert "could not keep this logs export" in (caught.value.details() or "")
    errors = [r for r in caplog.records if r.name == grpc_receiver.__name__ and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert counters(server)["grpc_refused_requests"] == 3


async def test_unknown_methods_are_unimplemented(server: DashboardWebSocketServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(target(server), b"", method="/opentelemetry.proto.collector.profiles.v1development."
                                                    "ProfilesService/Export")
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


# ------------------------------------------------------------------------------ the wrong ports
def _our_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.levelno >= logging.ERROR and r.name.startswith(("aiohttp", "otel_"))]


@pytest.mark.parametrize("grpc_on", [True, False], ids=["grpc-on", "grpc-off"])
async def test_a_grpc_client_on_the_http_port_is_told_where_to_go(
    caplog: pytest.LogCaptureFixture, grpc_on: bool
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server(grpc_port=0 if grpc_on else None) as server:
        where = f"; send OTLP/gRPC to port {server.grpc_port}" if grpc_on else " and OTLP/gRPC is off"
        hint = "otel-dashboard: this is the OTLP/HTTP port" + where
        for _ in range(2):
            exporter = RecordingExporter(OTLPSpanExporter(
                endpoint=f"http://127.0.0.1:{server.port}", insecure=True, timeout=WAIT))
            await asyncio.to_thread(run_agent_through, exporter, "lost", "Lost")
            assert exporter.results == [SpanExportResult.FAILURE] * 2  # at once: UNIMPLEMENTED is final
        # What the exporter logs ("error code: StatusCode.UNIMPLEMENTED, error details: <hint>"; its
        # own duplicate filter may hide repeats, so the call's status is read directly).
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw_call(f"127.0.0.1:{server.port}", span_request().SerializeToString())
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert (caught.value.details() or "").startswith(hint)
        assert server.app is not None
        assert server.app[SECURITY_KEY].stats()["grpc_on_http_port"] >= 5
        # The HTTP port still serves HTTP.
        async with aiohttp.ClientSession() as session, session.get(server.url + "/health") as response:
            assert response.status == 200
    warnings = [r for r in caplog.records if r.name == "otel_dashboard.server.security.connections"
                and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [w.getMessage() for w in warnings]  # once a minute, the rest counted
    assert "a gRPC client (from 127.0.0.1) connected to the OTLP/HTTP port" in warnings[0].getMessage()
    assert _our_errors(caplog) == []


async def test_the_preface_is_recognised_when_it_arrives_in_pieces(server: DashboardWebSocketServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for piece in (b"PRI * HT", b"TP/2.0\r\n\r\nS", b"M\r\n\r\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        head = await asyncio.wait_for(reader.readexactly(9), WAIT)
        assert head[3] == 0x4  # an HTTP/2 SETTINGS frame, not an HTTP/1.1 answer
        # A HEADERS frame on stream 1 (its block is not read) gets the trailers-only answer and GOAWAY.
        writer.write(struct.pack(">I", 1)[1:] + b"\x01\x05" + struct.pack(">I", 1) + b"\x82")
        rest = await asyncio.wait_for(reader.read(), WAIT)
        assert b"grpc-status" in rest and b"send OTLP/gRPC to port" in rest
    finally:
        writer.close()


async def test_http_on_the_grpc_port_gets_grpc_cores_http2_answer(
    server: DashboardWebSocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    # What curl reports as "Received HTTP/0.9 when not allowed" and the OTLP/HTTP exporter as
    # BadStatusLine('\x00\x00...'): grpc core answers an HTTP/1.1 request with its HTTP/2 SETTINGS
    # frame and closes (docs/otlp.md says so).
    reader, writer = await asyncio.open_connection("127.0.0.1", server.grpc_port)
    try:
        writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    assert not answer.startswith(b"HTTP/")
    assert answer[3] == 0x4  # SETTINGS
    assert _our_errors(caplog) == []


# ------------------------------------------------------------------------------ life cycle, ports
async def test_off_by_default_in_the_python_api() -> None:
    async with running_server() as server:
        assert server.grpc_port is None


async def test_a_busy_grpc_port_fails_the_start_with_one_clear_message() -> None:
    async with running_server(grpc_port=0) as first:
        busy = first.grpc_port
        assert busy
        # Not shared (grpc's SO_REUSEPORT is off): a second dashboard cannot take the same port.
        second = DashboardWebSocketServer(port=0, grpc_port=busy, health_interval_seconds=None,
                                          metrics_interval_seconds=None)
        with pytest.raises(GrpcBindError) as caught:
            await second.start()
        assert str(caught.value) == (f"cannot listen for OTLP/gRPC on 127.0.0.1:{busy}: address in use; "
                                     "pass --grpc-port N, or 0 to turn it off")
        assert not second.started
        # Its HTTP port was released.
        assert await raw_call(target(first), span_request().SerializeToString()) == b""


async def test_stop_releases_the_grpc_port() -> None:
    async with running_server(grpc_port=0) as server:
        port = server.grpc_port
    assert port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # would raise EADDRINUSE if the receiver still listened


async def test_an_ipv6_host(monkeypatch: pytest.MonkeyPatch) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    intake = RecordingIntake(ExportResult())
    monkeypatch.setattr(grpc_receiver, "accept_export", intake)
    async with running_server(host="::1", grpc_port=0) as server:
        assert await raw_call(f"[::1]:{server.grpc_port}", b"") == b""
    assert intake.calls == [("traces", "ExportTraceServiceRequest", "::1")]
