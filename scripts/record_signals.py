"""Records the traces, METRICS and LOGS that real GenAI instrumentations emit, as OTLP/JSON fixtures.

The sibling of ``scripts/record_spans.py`` (same fake model server, same network guard, same child
interpreter per scenario, same dummy key), for the ``/v1/metrics`` and ``/v1/logs`` receivers: each
scenario's three signals are captured in memory in the child (an ``InMemorySpanExporter``, an
``InMemoryMetricReader`` or an in-memory metric exporter, an ``InMemoryLogExporter`` behind a
``SimpleLogRecordProcessor``), encoded with ``opentelemetry-exporter-otlp-proto-common``
(``encode_spans`` / ``encode_metrics`` / ``encode_logs``) and written as OTLP/JSON documents
(``MessageToDict``, hex ids)::

    <out>/<stack>/<scenario>.traces.json    ExportTraceServiceRequest
    <out>/<stack>/<scenario>.metrics.json   ExportMetricsServiceRequest (one cumulative collection)
    <out>/<stack>/<scenario>.logs.json      ExportLogsServiceRequest

each with a ``"recording"`` member (stack, scenario, outcome, the model calls the fake server saw,
versions; the receivers ignore unknown members), plus ``<out>/VERSIONS.json``.

How to run (in the recording venv, OUTSIDE the repo; see record_spans.py)::

    python3 -m venv /work/rec-venv && /work/rec-venv/bin/pip install uv
    /work/rec-venv/bin/uv pip install --python /work/rec-venv/bin/python \\
        -r <(python3 scripts/record_signals.py --print-requirements)
    /work/rec-venv/bin/python scripts/record_signals.py --out tests/fixtures/signals

Stacks:
  openai_v2         the official ``opentelemetry-instrumentation-openai-v2`` on the openai client, on
                    its default (semconv 1.30) path with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
                    =true: the messages as log records (gen_ai.system/user/assistant/tool.message,
                    gen_ai.choice) tied to the chat span; metrics gen_ai.client.token.usage and
                    gen_ai.client.operation.duration
  openai_v2_latest  the same with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental and
                    capture mode ``event_only`` (opentelemetry-util-genai): one
                    gen_ai.client.inference.operation.details log record per call
  traceloop         traceloop-sdk (OpenLLMetry) with metrics on (TRACELOOP_METRICS_ENABLED=true, its
                    metric exporter an in-memory one), ``use_attributes=False`` (prompts and
                    completions as log events, through the global LoggerProvider set here) and its
                    Python-logging bridge on (TRACELOOP_LOGGING_ENABLED=true): in model_error the
                    agent logs the failure with ``logger.exception`` and re-raises, as apps do
  pydantic_ai       pydantic-ai's native instrumentation with a MeterProvider: gen_ai.client.token.usage
                    (and operation.cost when a price is known); no log records (it has no event mode)
Scenarios: ok (the openai client stacks: a chat that asks for get_weather, the tool's result, a second
chat that answers), model_error (HTTP 500 from the fake server; the client's max_retries=0).

Other stacks of record_spans.py emit no metrics or logs: smolagents and openai_agents (OpenInference
instrumentations: spans only), mcp (the mcp SDK and fastmcp: spans only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import record_spans as rs  # noqa: E402  (the sibling recorder: guard, serialization, the agents)

REQUIREMENTS = [
    *rs.REQUIREMENTS,
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    # 2.4b0 asks for opentelemetry-util-genai>=0.4b0.dev but imports its module `instruments`, which
    # 1.x renamed (_instruments): the newest resolution (1.3b0) fails to import.
    "opentelemetry-util-genai==0.4b0",
]

_OTEL = ["opentelemetry-sdk", "opentelemetry-api", "opentelemetry-exporter-otlp-proto-common"]
STACK_PACKAGES = {
    "openai_v2": ["opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai",
                  "opentelemetry-semantic-conventions", "openai", *_OTEL],
    "openai_v2_latest": ["opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai",
                         "opentelemetry-semantic-conventions", "openai", *_OTEL],
    "traceloop": ["traceloop-sdk", "opentelemetry-instrumentation-openai",
                  "opentelemetry-semantic-conventions-ai", "opentelemetry-instrumentation-logging", "openai",
                  *_OTEL],
    "pydantic_ai": ["pydantic-ai-slim", "openai", *_OTEL],
}
STACKS = list(STACK_PACKAGES)
SCENARIOS = ["ok", "model_error"]

# On top of record_spans.TELEMETRY_OFF (which keeps the frameworks' own telemetry off).
STACK_ENV: dict[str, dict[str, str]] = {
    "openai_v2": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
                  "OTEL_SEMCONV_STABILITY_OPT_IN": ""},
    "openai_v2_latest": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only",
                         "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},
    # OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION=false: the logging instrumentation traceloop turns on would
    # add a second LoggingHandler (to the global provider this recorder sets), sending every Python
    # log record twice; traceloop's own handler stays.
    "traceloop": {"TRACELOOP_METRICS_ENABLED": "true", "TRACELOOP_LOGGING_ENABLED": "true",
                  "TRACELOOP_TELEMETRY": "false", "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION": "false"},
    "pydantic_ai": {},
}

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Returns the current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


# ---------------------------------------------------------------------------------------------------
# The child's side
# ---------------------------------------------------------------------------------------------------

class Capture:
    """The child's in-memory providers: spans, metrics, logs."""

    def __init__(self, service_name: str) -> None:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.resources import Resource

        self.tracer_provider, self.span_exporter = rs._tracer_provider(service_name)
        self.tracer_provider._recorder_exporter = self.span_exporter
        resource = Resource.create({"service.name": service_name})
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.metric_reader])
        self.log_exporter = InMemoryLogExporter()
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.metrics_data: Any = None  # set by a stack that exports its metrics through its own provider


class InMemoryMetricExporter:
    """A MetricExporter keeping the last MetricsData it was given (traceloop-sdk takes an exporter)."""

    def __new__(cls) -> Any:
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

        class _Exporter(MetricExporter):
            def __init__(self) -> None:
                super().__init__()
                self.last: Any = None

            def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
                self.last = metrics_data
                return MetricExportResult.SUCCESS

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return True

            def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
                pass

        return _Exporter()


def _chat_loop(client: Any) -> str:
    """The app: ask, run the tool the model asks for, ask again; the model's final text."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": rs.INSTRUCTIONS},
                                      {"role": "user", "content": rs.QUESTION}]
    for _ in range(3):
        response = client.chat.completions.create(model=rs.MODEL, messages=messages, tools=TOOLS)
        message = response.choices[0].message.model_dump(exclude_none=True)
        if not message.get("tool_calls"):
            return message.get("content") or ""
        messages.append(message)
        for call in message["tool_calls"]:
            args = json.loads(call["function"]["arguments"])
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": rs.weather(args["city"], "ok")})
    return ""


def run_openai_v2(scenario: str, base_url: str, capture: Capture) -> str:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=capture.tracer_provider,
                                    meter_provider=capture.meter_provider,
                                    logger_provider=capture.logger_provider)
    client, _ = rs._openai_clients(base_url)
    return f"output: {_chat_loop(client)!r}"


def run_traceloop(scenario: str, base_url: str, capture: Capture) -> str:
    from opentelemetry import metrics
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, workflow
    from traceloop.sdk.instruments import Instruments

    # use_attributes=False sends prompts and completions to the GLOBAL logger provider (its docs).
    set_logger_provider(capture.logger_provider)
    metric_exporter = InMemoryMetricExporter()
    exporter = capture.span_exporter
    Traceloop.init(app_name="recorder-traceloop", disable_batch=True, telemetry_enabled=False,
                   instruments={Instruments.OPENAI}, processor=SimpleSpanProcessor(exporter),
                   metrics_exporter=metric_exporter, logging_exporter=capture.log_exporter,
                   use_attributes=False, api_endpoint="http://127.0.0.1:9/")
    client, _ = rs._openai_clients(base_url)
    log = logging.getLogger("weather_app")

    @agent(name=rs.AGENT_NAME)
    def weather_agent() -> str:
        try:
            return _chat_loop(client)
        except Exception:
            log.exception("the model call failed")  # the app's own error log, then the failure goes on
            raise

    @workflow(name="weather_workflow")
    def run() -> str:
        return weather_agent()

    try:
        return f"output: {run()!r}"
    finally:
        metrics.get_meter_provider().force_flush()
        capture.metrics_data = metric_exporter.last
        for handler in logging.getLogger().handlers:  # the SDK LoggingHandler traceloop installed
            handler.flush()


def run_pydantic_ai(scenario: str, base_url: str, capture: Capture) -> str:
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    _, async_client = rs._openai_clients(base_url)
    model = OpenAIChatModel(rs.MODEL, provider=OpenAIProvider(openai_client=async_client))
    agent = Agent(model, name=rs.AGENT_NAME, instructions=rs.INSTRUCTIONS)
    agent.instrument = InstrumentationSettings(tracer_provider=capture.tracer_provider,
                                               meter_provider=capture.meter_provider)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Returns the current weather of a city."""
        return rs.weather(city, "ok")

    return f"output: {agent.run_sync(rs.QUESTION).output!r}"


RUNNERS = {
    "openai_v2": run_openai_v2,
    "openai_v2_latest": run_openai_v2,
    "traceloop": run_traceloop,
    "pydantic_ai": run_pydantic_ai,
}


def _clean_resource(doc: dict[str, Any], key: str) -> None:
    for resource_entry in doc.get(key, []):
        resource = resource_entry.get("resource")
        if not resource:
            continue
        kept = []
        for kv in resource.get("attributes", []):
            if kv["key"] in rs._DROPPED_KEYS:
                continue
            if kv["key"] in rs._MACHINE_KEYS:
                kv["value"] = {"stringValue": "recorder"}
            kept.append(kv)
        resource["attributes"] = kept


def metrics_json(metrics_data: Any) -> dict[str, Any]:
    """SDK MetricsData as an OTLP/JSON ExportMetricsServiceRequest ({} for none)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    if metrics_data is None:
        return {}
    doc = MessageToDict(encode_metrics(metrics_data), use_integers_for_enums=True)
    _clean_resource(doc, "resourceMetrics")
    for rm in doc.get("resourceMetrics", []):
        for sm in rm.get("scopeMetrics", []):
            for metric in sm.get("metrics", []):
                for kind in ("sum", "histogram", "gauge", "exponentialHistogram"):
                    for point in metric.get(kind, {}).get("dataPoints", []):
                        for exemplar in point.get("exemplars", []):
                            rs._hex_ids(exemplar)
    return doc


def logs_json(records: Any) -> dict[str, Any]:
    """SDK log records as an OTLP/JSON ExportLogsServiceRequest ({} for none)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

    if not records:
        return {}
    doc = MessageToDict(encode_logs(records), use_integers_for_enums=True)
    _clean_resource(doc, "resourceLogs")
    for rl in doc.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for record in sl.get("logRecords", []):
                rs._hex_ids(record)
                # the Python logging bridge records the source file's absolute path: the recorder's
                for kv in record.get("attributes", []):
                    if kv["key"] == "code.file.path" or kv["key"] == "code.filepath":
                        kv["value"] = {"stringValue": Path(kv["value"].get("stringValue", "")).name}
    return doc


def _versions(stack: str) -> dict[str, str]:
    return rs.package_versions(STACK_PACKAGES[stack])


def child_main(stack: str, scenario: str, base_url: str, result_path: Path) -> None:
    rs._install_network_guard()
    capture = Capture(f"recorder-{stack}")
    error = None
    try:
        outcome = RUNNERS[stack](scenario, base_url, capture)
    except Exception as exc:  # the scenario's failure, as the stack raised it
        outcome = f"raised {type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:300]}"
        error = type(exc).__qualname__
    capture.tracer_provider.force_flush()
    capture.logger_provider.force_flush()
    time.sleep(0.2)
    metrics_data = capture.metrics_data or capture.metric_reader.get_metrics_data()
    docs = {
        "traces": rs.otlp_json(capture.span_exporter.get_finished_spans()),
        "metrics": metrics_json(metrics_data),
        "logs": logs_json(capture.log_exporter.get_finished_logs()),
    }
    result_path.write_text(json.dumps({"docs": docs, "outcome": outcome, "error": error,
                                       "versions": _versions(stack)}))


# ---------------------------------------------------------------------------------------------------
# The parent's side
# ---------------------------------------------------------------------------------------------------

def _count(doc: dict[str, Any], outer: str, middle: str, inner: str) -> int:
    return sum(len(m.get(inner, [])) for o in doc.get(outer, []) for m in o.get(middle, []))


def record(out: Path, stacks: list[str], scenarios: list[str], timeout: float) -> int:
    import fake_openai_server

    server = fake_openai_server.start()
    versions_path = out / "VERSIONS.json"
    all_versions = json.loads(versions_path.read_text()) if versions_path.exists() else {}
    failures = 0
    try:
        for stack in stacks:
            env = {**os.environ, **rs.TELEMETRY_OFF, **STACK_ENV[stack]}
            for scenario in scenarios:
                mode = {"model_error": "error500"}.get(scenario, scenario)
                before = len(server.log)
                result, proc = rs.run_child(Path(__file__), stack, scenario, server.base_url(mode), env,
                                             timeout)
                if result is None:
                    failures += 1
                    continue
                recording = {"stack": stack, "scenario": scenario, "outcome": result["outcome"],
                             "model_calls": server.log[before:], "env": STACK_ENV[stack],
                             "versions": result["versions"]}
                (out / stack).mkdir(parents=True, exist_ok=True)
                sizes = []
                for signal, doc in result["docs"].items():
                    doc["recording"] = recording
                    target = out / stack / f"{scenario}.{signal}.json"
                    target.write_text(json.dumps(doc, indent=1) + "\n")
                    sizes.append(target.stat().st_size)
                all_versions[stack] = result["versions"]
                docs = result["docs"]
                guard = [line for line in proc.stderr.splitlines() if "network guard" in line]
                spans = _count(docs["traces"], "resourceSpans", "scopeSpans", "spans")
                metrics = _count(docs["metrics"], "resourceMetrics", "scopeMetrics", "metrics")
                records = _count(docs["logs"], "resourceLogs", "scopeLogs", "logRecords")
                refused = f"; {len(guard)} refused network attempts" if guard else ""
                print(f"{stack}/{scenario}: {spans} spans, {metrics} metrics, {records} log records, "
                      f"{len(recording['model_calls'])} model calls, {sum(sizes)} bytes; "
                      f"{result['outcome'][:100]}{refused}")
    finally:
        server.shutdown()
    out.mkdir(parents=True, exist_ok=True)
    versions_path.write_text(json.dumps(all_versions, indent=2, sort_keys=True) + "\n")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description="Records real GenAI instrumentations' traces, metrics "
                                                 "and logs as OTLP/JSON fixtures.")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/signals"))
    parser.add_argument("--stack", action="append", choices=STACKS, help="repeatable; default: all")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per scenario")
    parser.add_argument("--print-requirements", action="store_true")
    parser.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child_main(args.child, args.scenario[0], args.base_url, args.result)
        return
    if args.print_requirements:
        print("\n".join(REQUIREMENTS))
        return
    if Path(sys.prefix).resolve() == (Path(__file__).resolve().parents[1] / ".venv").resolve():
        sys.exit("record_signals.py: run it with the recorder's own venv, not the project's .venv")
    failures = record(args.out, args.stack or STACKS, args.scenario or SCENARIOS, args.timeout)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
