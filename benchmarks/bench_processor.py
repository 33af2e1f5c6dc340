"""CPU cost per span of the dashboard's span processor, next to the OpenTelemetry SDK's own.

    python benchmarks/bench_processor.py [--rounds 5] [--runs 1000] [--json PATH]
                                         [--workload plain,events]
                                         [--configs none,bsp_noop,ours_inprocess]

Each measurement runs in a fresh child process: it makes ``--runs`` agent runs with the
``instrumentation`` decorators (an ``@agent`` calling one ``@tool``: 2 spans a run, so a
2,000-span burst by default), then flushes the provider, and reports the whole process's CPU time
(every thread, flush included: ``time.process_time``) and the agent thread's own
(``time.thread_time``) per span. Configurations alternate round by round; the table shows medians,
and the ratio's range over the rounds (each round's median over the same round's median of the
baseline).

Workloads (``--workload``, comma-separated, one table each):

* ``plain``: the spans carry their attributes only;
* ``events``: each span also gets one span event with two attributes (``retrieval``, as an
  application logs a step), the shape of spans that log prompts or steps: a live span then holds
  more objects, and mapping reads its events.

Remote configurations ship to one ``otel-dashboard serve`` subprocess on loopback (its CPU is not
counted: it is another process); the server is started only when one of them is selected.
"""

from __future__ import annotations

import argparse
import contextlib
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

config, runs, url, workload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

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

step = trace.get_current_span if workload == "events" else None
STEP = {"step.kind": "retrieval", "step.documents": 3}

@tool(name="search")
def search(query):
    if step is not None:
        step().add_event("retrieval", STEP)
    return query

@agent(name="Researcher", agent_id="researcher-1")
def research(task):
    if step is not None:
        step().add_event("retrieval", STEP)
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


WORKLOADS = ("plain", "events")


def run_child(config: str, runs: int, url: str, workload: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, config, str(runs), url, workload], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": "0"})
    if out.returncode != 0:
        raise RuntimeError(f"{config} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _names(text: str, known: tuple[str, ...] | dict[str, str], option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"{option}: unknown {unknown or text!r}; choose from {', '.join(known)}")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1000, help="agent runs per burst (2 spans each)")
    parser.add_argument("--workload", default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {', '.join(CONFIGS)} (default: all)")
    add_json_argument(parser)
    args = parser.parse_args()
    workloads = _names(args.workload, WORKLOADS, "--workload")
    configs = _names(args.configs, CONFIGS, "--configs")
    spans = args.runs * 2
    record = Record(args, ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "orjson"))
    print(record.facts())
    print(f"burst: {spans} spans ({args.runs} @agent runs each calling one @tool), "
          f"{args.rounds} rounds x 3 bursts per configuration, alternating; medians\n")
    started = time.monotonic()
    remote = any(c in ("bsp_otlp", "ours_remote") for c in configs)
    with dashboard_server() if remote else contextlib.nullcontext("http://127.0.0.1:9") as url:
        for workload in workloads:
            print(f"workload: {workload}")
            print(_measure(record, workload, configs, args.rounds, args.runs, url))
            print()
    print(f"targets: in process <= 1.15x bsp_noop; remote <= 1.00x bsp_otlp "
          f"(took {time.monotonic() - started:.0f} s)")
    record.extra.update(spans_per_burst=spans, targets={"ours_inprocess": "<= 1.15x bsp_noop",
                                                        "ours_remote": "<= 1.00x bsp_otlp"})
    record.write()
    return 0


def _measure(record: Record, workload: str, configs: list[str], rounds: int, runs: int, url: str) -> str:
    """One table: every configuration, ``rounds`` times, alternating. Its name in the JSON record is
    ``processor`` for the plain workload, ``processor <workload>`` for the others."""
    spans = runs * 2
    samples: dict[str, dict[str, list[float]]] = {c: {"cpu": [], "thread": []} for c in configs}
    per_round: dict[str, list[float]] = {c: [] for c in configs}  # each round's median CPU per span
    dropped: dict[str, int] = dict.fromkeys(configs, 0)
    for _ in range(rounds):
        for config in configs:
            result = run_child(config, runs, url, workload)
            cpu_us = [c / spans * 1e6 for c in result["cpu"]]
            samples[config]["cpu"] += cpu_us
            samples[config]["thread"] += [t / spans * 1e6 for t in result["thread"]]
            per_round[config].append(median(cpu_us))
            dropped[config] += result["dropped"]
    cpu = {c: median(s["cpu"]) for c, s in samples.items()}
    thread = {c: median(s["thread"]) for c, s in samples.items()}
    rows, raw = [], []
    for config in configs:
        base = "bsp_otlp" if config == "ours_remote" else "bsp_noop"
        ratio = cpu[config] / cpu[base] if config.startswith("ours") and base in cpu else None
        ratios = [a / b for a, b in zip(per_round[config], per_round[base], strict=True)] if ratio else []
        over = cpu[config] - cpu["none"] if "none" in cpu else None
        rows.append([CONFIGS[config], f"{cpu[config]:.1f}", f"{thread[config]:.1f}",
                     f"{over:.1f}" if over is not None else "", f"{ratio:.2f}x vs {base}" if ratio else "",
                     f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "", dropped[config]])
        raw.append({"config": config, "label": CONFIGS[config], "workload": workload,
                    "process_cpu_us_per_span": cpu[config], "agent_thread_us_per_span": thread[config],
                    "over_no_processor_us": over, "ratio": ratio, "ratio_base": base if ratio else None,
                    "ratio_by_round": ratios, "dropped": dropped[config],
                    "samples_process_cpu_us": samples[config]["cpu"],
                    "samples_agent_thread_us": samples[config]["thread"]})
    name = "processor" if workload == "plain" else f"processor {workload}"
    return record.table(name, ["configuration", "process CPU us/span", "agent thread us/span",
                               "over no processor", "ratio", "ratio by round", "dropped"], rows, raw=raw)


if __name__ == "__main__":
    sys.exit(main())
