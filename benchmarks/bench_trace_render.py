"""The trace page's time to first render: a generated trace of 1,000 and of 10,000 spans, opened in
headless Chromium from a real server on loopback.

    python benchmarks/bench_trace_render.py [--runs 5] [--sizes 1000,10000] [--json PATH]

For each size, one ``otel-dashboard serve`` (in memory) is fed a generated agent trace
(``big_trace.py``) as span records over ``POST /api/events``; a headless Chromium (Playwright, at
``OTEL_DASHBOARD_CHROMIUM`` or /usr/bin/chromium, 1440x900) opens the dashboard, then ``--runs`` times
sets ``#trace=<id>`` and measures with ``performance.now()`` in the page: *first render*, from the hash
change to the frame after the first span rows are in the DOM (the first page of spans fetched, the
tree built and the visible rows drawn); *all spans*, until the waterfall holds every span (the last
page fetched and drawn). Between runs the page goes back to the live dashboard, which stops the trace
page; every run fetches the trace again. The table shows the median and the range, and the rows in
the DOM (the waterfall is virtualized: only the rows in view). Target: first render < 1 s at 10,000.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Record, add_json_argument, dashboard_server
from big_trace import big_trace, ingest_body

TARGET_MS = 1000.0
CHROMIUM = os.environ.get("OTEL_DASHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

_OPEN = """([hash, count]) => new Promise(resolve => {
    const t0 = performance.now();
    let first = null;
    location.hash = hash;
    const want = new Intl.NumberFormat('en-US').format(count) + ' span';
    const check = () => {
        const view = document.querySelector('#trace-page-view');
        if (first === null && view && view.querySelector('.trace-row')) first = performance.now() - t0;
        const summary = view && view.querySelector('.trace-summary');
        const notice = view && view.querySelector('.trace-notice');
        const done = first !== null && summary && summary.textContent.startsWith(want)
            && (!notice || notice.hidden || notice.dataset.kind !== 'loading');
        if (done) {
            requestAnimationFrame(() => resolve({first, all: performance.now() - t0,
                rows: view.querySelectorAll('.trace-row').length}));
        } else if (performance.now() - t0 > 30000) {
            resolve({first, all: null, rows: null});
        } else {
            requestAnimationFrame(check);
        }
    };
    check();
})"""


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(f"{url}/api/events", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def measure(spans: int, runs: int) -> dict[str, Any]:
    """Runs of opening a trace of ``spans`` spans: ``{"first": [ms], "all": [ms], "rows": [n]}``."""
    from playwright.sync_api import sync_playwright

    trace_id = f"{0xbe7c4000 + spans:032x}"
    items, _ = big_trace(spans, trace_id, workers=max(2, min(20, spans // 50)))
    out: dict[str, list[Any]] = {"first": [], "all": [], "rows": []}
    with dashboard_server() as url:
        _post(url, ingest_body(items))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="en-US")
                page.goto(f"{url}/dashboard")
                page.wait_for_selector("#conn-text:has-text('Connected')")
                for _ in range(runs):
                    result = page.evaluate(_OPEN, [f"#trace={trace_id}", spans])
                    if result["all"] is None:
                        raise RuntimeError(f"the {spans}-span trace did not load in 30 s")
                    for key in out:
                        out[key].append(result[key])
                    page.evaluate("location.hash = ''")
                    page.wait_for_selector("#page-trace", state="hidden")
                    time.sleep(0.2)
                page.goto("about:blank")
            finally:
                browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated span counts")
    add_json_argument(parser)
    args = parser.parse_args()
    started = time.monotonic()
    record = Record(args, ("playwright",))
    print(record.facts())
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"{args.runs} runs per size: `otel-dashboard serve` on loopback, the trace posted as span "
          f"records, opened in headless Chromium ({CHROMIUM}) at 1440x900\n")
    rows, raw = [], []
    for spans in sizes:
        result = measure(spans, args.runs)
        first, everything = statistics.median(result["first"]), statistics.median(result["all"])
        met = first < TARGET_MS
        rows.append([f"{spans:,}", f"{first:.0f}", f"{min(result['first']):.0f}-{max(result['first']):.0f}",
                     f"{everything:.0f}", f"{min(result['all']):.0f}-{max(result['all']):.0f}",
                     max(result["rows"]), f"< {TARGET_MS:g}", "yes" if met else "NO"])
        raw.append({"spans": spans, "first_render_ms": result["first"], "all_spans_ms": result["all"],
                    "dom_rows": result["rows"], "first_render_median_ms": first,
                    "all_spans_median_ms": everything, "target_below_ms": TARGET_MS, "met": met})
    headers = ["spans", "first render (ms, median)", "range", "all spans (ms, median)", "range", "DOM rows",
               "target (ms)", "met"]
    print(record.table("trace_render", headers, rows, raw=raw))
    print(f"(took {time.monotonic() - started:.0f} s)")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
