"""Records the spans that REAL agent stacks emit, as OTLP/JSON fixtures for otel-dashboard's tests.

Each stack runs against ``scripts/fake_openai_server.py`` (a scripted OpenAI-compatible server on
127.0.0.1: first a tool call ``get_weather(city)``, then a final answer; or an HTTP 500 error) with a
dummy API key. Its spans are captured in memory on a TracerProvider set up here and written as one
OTLP/JSON ``ExportTraceServiceRequest`` document per scenario:
``<out>/<stack>/<scenario>.json`` (hex ids as OTLP/JSON asks; ids and timestamps as recorded), plus
``<out>/VERSIONS.json`` with the package versions each stack ran with.

How to run (the frameworks go in their own venv OUTSIDE the repo, never in the project's .venv)::

    python3 -m venv /work/rec-venv
    /work/rec-venv/bin/pip install -r <(python3 scripts/record_spans.py --print-requirements)
    /work/rec-venv/bin/python scripts/record_spans.py --out tests/fixtures/spans
    # one stack / one scenario:
    /work/rec-venv/bin/python scripts/record_spans.py --out tests/fixtures/spans \
        --stack smolagents --scenario ok

pip's resolver may backtrack for many minutes over traceloop-sdk's instrumentation pins;
``/work/rec-venv/bin/pip install uv`` then ``uv pip install --python /work/rec-venv/bin/python -r ...``
resolves the same pins in seconds.

``--install`` runs that pip install into the interpreter running this script (nothing is installed
otherwise). The pins below are the versions the committed fixtures were recorded with.

Stacks (each scenario runs in a fresh child interpreter, so instrumentations never meet):
  pydantic_ai     pydantic-ai's native OTel GenAI-semconv instrumentation (invoke_agent/chat/execute_tool)
  smolagents      smolagents ToolCallingAgent + openinference-instrumentation-smolagents (OpenInference)
  traceloop       traceloop-sdk (OpenLLMetry) @workflow/@agent/@tool + its OpenAI instrumentation
  openai_agents   OpenAI Agents SDK + openinference-instrumentation-openai-agents (OpenInference)
  mcp             pydantic-ai agent using a local stdio MCP server (mcp SDK's MCPServer) through
                  fastmcp's client; the mcp SDK's own OTel spans on both sides (the server's spans are
                  recorded in the server process and written into the same document)
Scenarios: ok (tool call, then an answer), tool_error (get_weather raises), model_error (every model
call answers HTTP 500 with an OpenAI-style JSON error; clients are made with max_retries=0), runaway
(pydantic_ai, smolagents, traceloop: the fake model asks for the same get_weather(city="Paris") call
8 times before it answers, so the framework's own loop calls the tool 8 times: loop detection's
fixture; the loops are allowed enough steps, MAX_RUNAWAY_STEPS).

Offline: only 127.0.0.1 is reached. The frameworks' own telemetry is switched off by environment
variables (see TELEMETRY_OFF) and, as a guard, an audit hook in every child refuses DNS look-ups and
connections to anything but loopback (a refused attempt is printed on stderr).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

REQUIREMENTS = [
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-exporter-otlp-proto-common==1.45.1",
    "pydantic-ai-slim[openai,mcp]==2.78.0",
    "smolagents[openai]==1.26.0",
    "openinference-instrumentation-smolagents==0.1.43",
    "traceloop-sdk==0.62.4",
    "openai-agents==0.24.0",
    "openinference-instrumentation-openai-agents==2.6.0",
    "mcp==2.3.0",
    "openai==3.63.0",
    "httpx==0.29.0",  # traceloop-sdk imports httpx without declaring it (openai itself moved to httpx2)
]

# Which installed distributions each stack's fixture names in its "versions".
STACK_PACKAGES = {
    "pydantic_ai": ["pydantic-ai-slim", "openai", "opentelemetry-sdk", "opentelemetry-api"],
    "smolagents": ["smolagents", "openinference-instrumentation-smolagents", "openinference-instrumentation",
                   "openinference-semantic-conventions", "openai", "opentelemetry-sdk", "opentelemetry-api"],
    "traceloop": ["traceloop-sdk", "httpx", "opentelemetry-instrumentation-openai",
                  "opentelemetry-semantic-conventions-ai", "openai", "opentelemetry-sdk",
                  "opentelemetry-api"],
    "openai_agents": ["openai-agents", "openinference-instrumentation-openai-agents",
                      "openinference-instrumentation", "openinference-semantic-conventions", "openai",
                      "opentelemetry-sdk", "opentelemetry-api"],
    "mcp": ["mcp", "fastmcp-slim", "pydantic-ai-slim", "openai", "opentelemetry-sdk", "opentelemetry-api"],
}
STACKS = list(STACK_PACKAGES)
SCENARIOS = ["ok", "tool_error", "model_error", "ok_stream", "runaway"]
# ok_stream (the same conversation with "stream": true and stream_options.include_usage) only where the
# stack's own code chooses streaming; none of these stacks streams by default. runaway where the
# agent's loop is the framework's (pydantic_ai, smolagents) and in traceloop's recorder loop.
STACK_SCENARIOS = {stack: SCENARIOS[:3] for stack in STACKS} | {
    "traceloop": SCENARIOS, "pydantic_ai": [*SCENARIOS[:3], "runaway"],
    "smolagents": [*SCENARIOS[:3], "runaway"]}
MAX_RUNAWAY_STEPS = 12  # steps a loop may take in the runaway scenario (the fake model asks for 8 calls)

TELEMETRY_OFF = {
    "TRACELOOP_TELEMETRY": "false",          # traceloop-sdk's own usage telemetry (posthog)
    "TRACELOOP_METRICS_ENABLED": "false",
    "TRACELOOP_LOGGING_ENABLED": "false",
    "TRACELOOP_TRACE_CONTENT": "true",      # the default; said out loud: prompts stay in the spans
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
    "HF_HUB_OFFLINE": "1",                   # smolagents imports huggingface_hub
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "false",
    "FASTMCP_SHOW_CLI_BANNER": "false",
    "FASTMCP_CHECK_FOR_UPDATES": "off",
    "OPENAI_API_KEY": "sk-dummy-recorder",  # never a real key
    "OPENAI_AGENTS_DONT_LOG_MODEL_DATA": "0",
    "OTEL_SEMCONV_STABILITY_OPT_IN": "",
    "LOGFIRE_SEND_TO_LOGFIRE": "false",
}

QUESTION = "What is the weather in Paris?"
AGENT_NAME = "WeatherAgent"
INSTRUCTIONS = "You answer weather questions. Use the get_weather tool."
MODEL = "fake-gpt"


# ---------------------------------------------------------------------------------------------------
# The child's side: network guard, tracer provider, serialization
# ---------------------------------------------------------------------------------------------------

def _install_network_guard() -> None:
    """Refuses DNS look-ups and connections to anything but loopback, for this interpreter."""
    loopback_names = {"localhost", "127.0.0.1", "::1", "ip6-localhost", None, ""}

    def is_loopback(host: object) -> bool:
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        return host in loopback_names or (isinstance(host, str) and host.startswith("127."))

    def hook(event: str, args: tuple) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event == "socket.connect":
            address = args[1]
            if not isinstance(address, tuple):  # AF_UNIX: a local socket
                return
            host = address[0]
        else:
            return
        if not is_loopback(host):
            print(f"[record_spans] network guard: refused {event} to {host!r}", file=sys.stderr, flush=True)
            raise PermissionError(f"record_spans: no network beyond loopback ({host!r})")

    sys.addaudithook(hook)


def _tracer_provider(service_name: str) -> tuple[Any, Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _hex_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        value = obj.get(key)
        if value:
            obj[key] = base64.b64decode(value).hex()


_MACHINE_KEYS = {"host.name", "host.id", "host.hostname"}
_DROPPED_KEYS = {"process.owner"}


def otlp_json(spans: Any) -> dict[str, Any]:
    """Finished SDK spans as an OTLP/JSON ExportTraceServiceRequest (hex ids, integer enums)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    doc = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", []):
        attrs = resource_spans.get("resource", {}).get("attributes", [])
        kept = []
        for kv in attrs:
            if kv["key"] in _DROPPED_KEYS:
                continue
            if kv["key"] in _MACHINE_KEYS:
                kv["value"] = {"stringValue": "recorder"}
            kept.append(kv)
        if "resource" in resource_spans:
            resource_spans["resource"]["attributes"] = kept
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _hex_ids(span)
                for link in span.get("links", []):
                    _hex_ids(link)
    return doc


def _merge(doc: dict[str, Any], other: dict[str, Any]) -> None:
    doc.setdefault("resourceSpans", []).extend(other.get("resourceSpans", []))


def _openai_clients(base_url: str) -> tuple[Any, Any]:
    from openai import AsyncOpenAI, OpenAI

    kwargs = {"base_url": base_url, "api_key": "sk-dummy-recorder", "max_retries": 0}
    return OpenAI(**kwargs), AsyncOpenAI(**kwargs)


class ToolFailure(RuntimeError):
    """Raised by get_weather in the tool_error scenario."""


def weather(city: str, scenario: str) -> str:
    if scenario == "tool_error":
        raise ToolFailure(f"weather service unavailable for {city}")
    return f"{city}: sunny, 21 degrees Celsius"


# ---------------------------------------------------------------------------------------------------
# Stacks: each gets (scenario, base_url, provider) and returns a short outcome text
# ---------------------------------------------------------------------------------------------------

def run_pydantic_ai(scenario: str, base_url: str, provider: Any, toolsets: list | None = None) -> str:
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    _, async_client = _openai_clients(base_url)
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=async_client))
    agent = Agent(model, name=AGENT_NAME, instructions=INSTRUCTIONS, toolsets=toolsets or ())
    agent.instrument = InstrumentationSettings(tracer_provider=provider)  # the default data format (version)
    if toolsets is None:
        @agent.tool_plain
        def get_weather(city: str) -> str:
            """Returns the current weather of a city."""
            return weather(city, scenario)

    result = agent.run_sync(QUESTION)
    return f"output: {result.output!r}"


def run_mcp(scenario: str, base_url: str, provider: Any) -> str:
    from fastmcp.client.transports import StdioTransport
    from opentelemetry import trace
    from pydantic_ai.mcp import MCPToolset

    # The mcp SDK takes its tracer from the global provider.
    trace.set_tracer_provider(provider)
    env = {**os.environ, "RECORD_SCENARIO": scenario}
    transport = StdioTransport(command=sys.executable, args=[str(Path(__file__).resolve()), "--mcp-server"],
                               env=env, keep_alive=False)
    toolset = MCPToolset(transport, id="weather-mcp")  # tool_error_behavior: the default, "retry"
    return run_pydantic_ai(scenario, base_url, provider, toolsets=[toolset])


def run_smolagents(scenario: str, base_url: str, provider: Any) -> str:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from smolagents import OpenAIModel, ToolCallingAgent, tool

    SmolagentsInstrumentor().instrument(tracer_provider=provider)

    @tool
    def get_weather(city: str) -> str:
        """Returns the current weather of a city.

        Args:
            city: the city's name
        """
        return weather(city, scenario)

    model = OpenAIModel(model_id=MODEL, api_base=base_url, api_key="sk-dummy-recorder",
                        client_kwargs={"max_retries": 0})
    max_steps = MAX_RUNAWAY_STEPS if scenario == "runaway" else 3
    agent = ToolCallingAgent(tools=[get_weather], model=model, name=AGENT_NAME,
                             description="Answers weather questions", max_steps=max_steps, verbosity_level=0)
    result = agent.run(QUESTION)
    return f"output: {result!r}"


def run_traceloop(scenario: str, base_url: str, provider: Any) -> str:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, tool, workflow
    from traceloop.sdk.instruments import Instruments

    exporter = provider._recorder_exporter
    Traceloop.init(app_name="recorder-traceloop", exporter=exporter, disable_batch=True,
                   telemetry_enabled=False, instruments={Instruments.OPENAI},
                   processor=SimpleSpanProcessor(exporter), api_endpoint="http://127.0.0.1:9/")
    client, _ = _openai_clients(base_url)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Returns the current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

    @tool(name="get_weather")
    def get_weather(city: str) -> str:
        return weather(city, scenario)

    @agent(name=AGENT_NAME)
    def weather_agent(question: str) -> str:
        messages: list[dict[str, Any]] = [{"role": "system", "content": INSTRUCTIONS},
                                          {"role": "user", "content": question}]
        for _ in range(MAX_RUNAWAY_STEPS if scenario == "runaway" else 3):
            if scenario == "ok_stream":
                message = _streamed_message(client.chat.completions.create(
                    model=MODEL, messages=messages, tools=tools, stream=True,
                    stream_options={"include_usage": True}))
            else:
                response = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
                message = response.choices[0].message.model_dump(exclude_none=True)
            if not message.get("tool_calls"):
                return message.get("content") or ""
            messages.append(message)
            for call in message["tool_calls"]:
                args = json.loads(call["function"]["arguments"])
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": get_weather(**args)})
        return ""

    @workflow(name="weather_workflow")
    def run() -> str:
        return weather_agent(QUESTION)

    return f"output: {run()!r}"


def _streamed_message(stream: Any) -> dict[str, Any]:
    """The assistant message that a chat-completions chunk stream adds up to."""
    content, calls = "", {}
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": "", "type": "function",
                                                   "function": {"name": "", "arguments": ""}})
                call["id"] = tc.id or call["id"]
                if tc.function:
                    call["function"]["name"] += tc.function.name or ""
                    call["function"]["arguments"] += tc.function.arguments or ""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


def run_openai_agents(scenario: str, base_url: str, provider: Any) -> str:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    # exclusive_processor: replaces the SDK's default trace processor (which would upload to OpenAI).
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider, exclusive_processor=True)
    _, async_client = _openai_clients(base_url)

    @function_tool
    def get_weather(city: str) -> str:
        """Returns the current weather of a city.

        Args:
            city: the city's name
        """
        return weather(city, scenario)

    agent = Agent(name=AGENT_NAME, instructions=INSTRUCTIONS, tools=[get_weather],
                  model=OpenAIChatCompletionsModel(model=MODEL, openai_client=async_client))
    result = Runner.run_sync(agent, QUESTION)
    return f"output: {result.final_output!r}"


RUNNERS = {
    "pydantic_ai": run_pydantic_ai,
    "smolagents": run_smolagents,
    "traceloop": run_traceloop,
    "openai_agents": run_openai_agents,
    "mcp": run_mcp,
}


def mcp_server_main() -> None:
    """The stdio MCP server the mcp stack spawns: one tool, get_weather; its spans go to a file."""
    from mcp.server.mcpserver import MCPServer
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    _install_network_guard()
    spans_file = Path(os.environ["RECORD_MCP_SERVER_SPANS"])
    scenario = os.environ.get("RECORD_SCENARIO", "ok")

    class FileExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            with spans_file.open("a") as fh:
                fh.write(json.dumps(otlp_json(spans)) + "\n")
            return SpanExportResult.SUCCESS

    provider, _ = _tracer_provider("recorder-mcp-server")
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)

    server = MCPServer("weather")

    @server.tool()
    def get_weather(city: str) -> str:
        """Returns the current weather of a city."""
        return weather(city, scenario)

    server.run()


def package_versions(names: list[str]) -> dict[str, str]:
    """The Python version and the installed version of each distribution (``"not installed"``)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _versions(stack: str) -> dict[str, str]:
    return package_versions(STACK_PACKAGES[stack])


def child_main(stack: str, scenario: str, base_url: str, result_path: Path) -> None:
    _install_network_guard()
    provider, exporter = _tracer_provider(f"recorder-{stack}")
    provider._recorder_exporter = exporter
    mcp_spans = Path(tempfile.mkstemp(prefix="mcp-server-spans-", suffix=".jsonl")[1])
    os.environ["RECORD_MCP_SERVER_SPANS"] = str(mcp_spans)
    error = None
    try:
        outcome = RUNNERS[stack](scenario, base_url, provider)
    except Exception as exc:  # the scenario's failure, as the stack raised it
        outcome = f"raised {type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:300]}"
        error = type(exc).__qualname__
    provider.force_flush()
    time.sleep(0.2)
    doc = otlp_json(exporter.get_finished_spans())
    if mcp_spans.exists():
        for line in mcp_spans.read_text().splitlines():
            if line.strip():
                _merge(doc, json.loads(line))
        mcp_spans.unlink()
    result_path.write_text(json.dumps({"doc": doc, "outcome": outcome, "error": error,
                                       "versions": _versions(stack)}))


# ---------------------------------------------------------------------------------------------------
# The parent's side: the fake server, one child per (stack, scenario), the files
# ---------------------------------------------------------------------------------------------------

def _span_count(doc: dict[str, Any]) -> int:
    return sum(len(ss.get("spans", []))
               for rs in doc.get("resourceSpans", []) for ss in rs.get("scopeSpans", []))


def run_child(script: Path, stack: str, scenario: str, base_url: str, env: dict[str, str],
              timeout: float) -> tuple[dict[str, Any] | None, subprocess.CompletedProcess[str]]:
    """Run ``script --child`` for one stack and scenario in a fresh interpreter; its result (None,
    said on stderr, when the child failed) and the finished process (its stderr holds the guard's
    refusals)."""
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, str(script.resolve()), "--child", stack, "--scenario", scenario,
               "--base-url", base_url, "--result", str(result_path)]
        proc = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
        if proc.returncode != 0 or not result_path.exists():
            print(f"FAILED {stack}/{scenario} (exit {proc.returncode}):\n{proc.stderr[-3000:]}",
                  file=sys.stderr)
            return None, proc
        result: dict[str, Any] = json.loads(result_path.read_text())
        return result, proc


def record(out: Path, stacks: list[str], scenarios: list[str], timeout: float) -> int:
    import fake_openai_server

    server = fake_openai_server.start()
    env = {**os.environ, **TELEMETRY_OFF}
    versions_path = out / "VERSIONS.json"
    all_versions = json.loads(versions_path.read_text()) if versions_path.exists() else {}
    failures = 0
    try:
        for stack in stacks:
            for scenario in [s for s in scenarios if s in STACK_SCENARIOS[stack]]:
                # The fake server's mode: runaway (like ok, tool_error) is its own.
                mode = {"model_error": "error500", "ok_stream": "ok"}.get(scenario, scenario)
                before = len(server.log)
                result, proc = run_child(Path(__file__), stack, scenario, server.base_url(mode), env,
                                          timeout)
                if result is None:
                    failures += 1
                    continue
                calls = server.log[before:]
                doc = result["doc"]
                doc["recording"] = {
                    "stack": stack, "scenario": scenario, "outcome": result["outcome"],
                    "model_calls": calls, "versions": result["versions"],
                }
                target = out / stack / f"{scenario}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
                all_versions[stack] = result["versions"]
                guard = [line for line in proc.stderr.splitlines() if "network guard" in line]
                print(f"{stack}/{scenario}: {_span_count(doc)} spans, {len(calls)} model calls, "
                      f"{target.stat().st_size} bytes; {result['outcome'][:120]}"
                      + (f"; {len(guard)} refused network attempts" if guard else ""))
    finally:
        server.shutdown()
    out.mkdir(parents=True, exist_ok=True)
    versions_path.write_text(json.dumps(all_versions, indent=2, sort_keys=True) + "\n")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description="Records real agent stacks' spans as OTLP/JSON fixtures.")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/spans"))
    parser.add_argument("--stack", action="append", choices=STACKS, help="repeatable; default: all")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per scenario")
    parser.add_argument("--install", action="store_true", help="pip install the pinned frameworks first")
    parser.add_argument("--print-requirements", action="store_true")
    parser.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mcp-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mcp_server:
        mcp_server_main()
        return
    if args.child:
        child_main(args.child, args.scenario[0], args.base_url, args.result)
        return
    if args.print_requirements:
        print("\n".join(REQUIREMENTS))
        return
    if args.install:
        subprocess.run([sys.executable, "-m", "pip", "install", *REQUIREMENTS], check=True)
    if Path(sys.prefix).resolve() == (Path(__file__).resolve().parents[1] / ".venv").resolve():
        sys.exit("record_spans.py: run it with the recorder's own venv, not the project's .venv")
    failures = record(args.out, args.stack or STACKS, args.scenario or SCENARIOS, args.timeout)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
