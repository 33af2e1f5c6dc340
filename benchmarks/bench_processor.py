"""CPU cost per span of the dashboard's span processor, next to the OpenTelemetry SDK's own.

    python benchmarks/bench_processor.py [--rounds 5] [--runs 1000] [--json PATH]

Each measurement runs in a fresh child process: it makes ``--runs`` agent runs with the
``instrumentation`` decorators (an ``@agent`` calling one ``@tool``: 2 spans a run, so a
2,000-span burst by default), then flushes the provider, and reports the whole process's CPU time
(every thread, flush included: ``time.process_time``) and the agent thread's own
(``time.thread_time``) per span. Configurations alternate round by round; the table shows medians.
Remote configurations ship to one ``otel-dashboard serve`` subprocess on loopback (its CPU is not
counted: it is another process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument, dashboard_server, median

CONFIGS = {
    "none": "no processor",
    "bsp_noop": "BatchSpanProcessor + no-op exporter",
    "ours_inprocess": "DashboardSpanProcessor, in process",
    "bsp_otlp": "BatchSpanProcessor + OTLP/HTTP exporter -> server",
    "ours_remote": "DashboardSpanProcessor(endpoint=) -> server",
}

CHILD = r'''
import json, sys, time
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

config, runs, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class NoOpExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

provider = TracerProvider()
processor = None
if config == "bsp_noop":
    processor = BatchSpanProcessor(NoOpExporter())
elif config == "bsp_otlp":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces"))
elif config == "ours_inprocess":
    from otel_dashboard import DashboardSpanProcessor, DashboardState
    processor = DashboardSpanProcessor(state=DashboardState(max_history=100))
elif config == "ours_remote":
    from otel_dashboard import DashboardSpanProcessor
    processor = DashboardSpanProcessor(endpoint=url)
if processor is not None:
    provider.add_span_processor(processor)
trace.set_tracer_provider(provider)

from instrumentation import agent, tool

@tool(name="search")
def search(query):
    return query

@agent(name="Researcher", agent_id="researcher-1")
def research(task):
    return search(task)

def burst(n):
    for i in range(n):
        research("find markets")
    provider.force_flush()

burst(200)  # warm-up: imports, first-sight registration, connections
time.sleep(0.2)
results = []
for _ in range(3):
    cpu0, thread0 = time.process_time(), time.thread_time()
    burst(runs)
    results.append(((time.process_time() - cpu0), (time.thread_time() - thread0)))
dropped = getattr(processor, "dropped_events", 0) if processor is not None else 0
provider.shutdown()
print(json.dumps({"cpu": [r[0] for r in results], "thread": [r[1] for r in results], "dropped": dropped}))
'''


def run_child(config: str, runs: int, url: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, config, str(runs), url], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": "0"})
    if out.returncode != 0:
        raise RuntimeError(f"{config} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1000, help="agent runs per burst (2 spans each)")
    add_json_argument(parser)
    args = parser.parse_args()
    spans = args.runs * 2
    record = Record(args, ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "orjson"))
    print(record.facts())
    print(f"burst: {spans} spans ({args.runs} @agent runs each calling one @tool), "
          f"{args.rounds} rounds x 3 bursts per configuration, alternating; medians\n")
    samples: dict[str, dict[str, list[float]]] = {c: {"cpu": [], "thread": []} for c in CONFIGS}
    dropped: dict[str, int] = dict.fromkeys(CONFIGS, 0)
    started = time.monotonic()
    with dashboard_server() as url:
        for _ in range(args.rounds):
            for config in CONFIGS:
                result = run_child(config, args.runs, url)
                samples[config]["cpu"] += [c / spans * 1e6 for c in result["cpu"]]
                samples[config]["thread"] += [t / spans * 1e6 for t in result["thread"]]
                dropped[config] += result["dropped"]
    cpu = {c: median(s["cpu"]) for c, s in samples.items()}
    thread = {c: median(s["thread"]) for c, s in samples.items()}
    rows, raw = [], []
    for config, label in CONFIGS.items():
        base = "bsp_otlp" if config == "ours_remote" else "bsp_noop"
        ratio = cpu[config] / cpu[base] if config.startswith("ours") else None
        rows.append([label, f"{cpu[config]:.1f}", f"{thread[config]:.1f}",
                     f"{cpu[config] - cpu['none']:.1f}", f"{ratio:.2f}x vs {base}" if ratio else "",
                     dropped[config]])
        raw.append({"config": config, "label": label, "process_cpu_us_per_span": cpu[config],
                    "agent_thread_us_per_span": thread[config],
                    "over_no_processor_us": cpu[config] - cpu["none"],
                    "ratio": ratio, "ratio_base": base if ratio else None, "dropped": dropped[config],
                    "samples_process_cpu_us": samples[config]["cpu"],
                    "samples_agent_thread_us": samples[config]["thread"]})
    print(record.table("processor", ["configuration", "process CPU us/span", "agent thread us/span",
                                     "over no processor", "ratio", "dropped"], rows, raw=raw))
    print(f"\ntargets: in process <= 1.15x bsp_noop; remote <= 1.00x bsp_otlp "
          f"(took {time.monotonic() - started:.0f} s)")
    record.extra.update(spans_per_burst=spans, targets={"ours_inprocess": "<= 1.15x bsp_noop",
                                                        "ours_remote": "<= 1.00x bsp_otlp"})
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
