"""The Collector configuration in ``docs/deployment.md`` works: send what its ``otlphttp`` exporter sends.

The test reads the ``otlphttp/dashboard`` exporter block from the document (by hand: PyYAML is not a
dependency), derives the URL the exporter posts to (``endpoint`` + ``/v1/traces``) and its
compression, and posts a request built with the stock OTLP encoder exactly as that exporter does:
protobuf, gzip, ``Content-Type: application/x-protobuf``, ``Content-Encoding: gzip``.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from server_support import EventStream, of_type, running_server

pytestmark = pytest.mark.timeout(60)

DEPLOYMENT_DOC = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def exporter_settings(document: str, name: str = "otlphttp/dashboard") -> dict[str, str]:
    """The scalar settings of exporter ``name`` in the document's Collector YAML block."""
    blocks = [block for block in _YAML_BLOCK.findall(document) if f"{name}:" in block]
    assert len(blocks) == 1, f"expected one yaml block configuring {name}"
    lines = blocks[0].splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{name}:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    settings: dict[str, str] = {}
    for line in lines[start + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(line) - len(line.lstrip()) <= indent:
            break  # the exporter's block has ended
        key, _, value = line.strip().partition(":")
        settings[key.strip()] = value.strip()
    return settings


def test_the_documented_exporter_block_is_what_the_test_expects() -> None:
    settings = exporter_settings(DEPLOYMENT_DOC.read_text())
    assert settings == {
        "endpoint": "http://dashboard-host:8000", "compression": "gzip", "encoding": "proto",
    }


def agent_spans() -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "behind-a-collector"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.deployment")
    with tracer.start_as_current_span("invoke_agent Forwarded", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Forwarded",
    }):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


async def test_the_documented_collector_exporter_delivers(session: aiohttp.ClientSession) -> None:
    settings = exporter_settings(DEPLOYMENT_DOC.read_text())
    async with running_server() as server:
        # The documented endpoint, with the test server's address in place of dashboard-host:8000.
        documented = urlsplit(settings["endpoint"])
        endpoint = documented._replace(netloc=urlsplit(server.url).netloc).geturl()
        url = endpoint.rstrip("/") + "/v1/traces"  # what otlphttp does with a base endpoint
        assert settings["encoding"] == "proto"
        body = encode_spans(agent_spans()).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf", "User-Agent": "OpenTelemetry Collector"}
        if settings["compression"] == "gzip":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"

        stream = await EventStream.connect(session, server)
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200
            assert response.content_type == "application/x-protobuf"
            parsed = ExportTraceServiceResponse.FromString(await response.read())
        assert parsed.partial_success.rejected_spans == 0
        completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="Forwarded"))
        assert completed["data"]["service_name"] == "behind-a-collector"
        await stream.wait_for(of_type("agent_execution_started", agent_name="Forwarded"))
        await stream.close()
