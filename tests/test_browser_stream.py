"""The quieter stream (issue 15), in a real headless Chromium against a real server.

One row per run that updates in place (running -> succeeded or failed, an error folded in), the
system events behind a toggle, the raw mode with every event, the outcome filters, the quality
scale, and rows that do not move under the pointer or while a row is open. One server for the
module: each test names its own agents and runs, and looks at its own rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    ServerThread,
    agent_completed,
    agent_started,
    error_occurred,
    opportunity,
    quality_score,
    synthesis_started,
)
from playwright.sync_api import Page, expect

from otel_dashboard.model.events import Severity
from otel_dashboard.state.dashboard import DashboardState

CONNECTED = "Connected - Live Updates"
ROW = "#stream > li.ev"
SYSTEM_TYPES = ("metrics_updated", "system_health_updated", "agent_registered")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    # Health every 0.3 s and metrics every 0.3 s: the system events the stream hides by default.
    srv = ServerThread(DashboardState(), health_interval_seconds=0.3, metrics_interval_seconds=0.3).start()
    try:
        yield srv
    finally:
        srv.stop()


def open_dashboard(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)
    expect(page.locator("#conn-text")).to_have_text(CONNECTED)
    expect(page.locator("#metric-total-events")).to_have_text(re.compile(r"^\d"))


def wait_for_seq(page: Page, seq: int) -> None:
    page.wait_for_function("s => window.otelDashboard.lastSeq >= s", arg=seq)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def run_row(page: Page, run_id: str) -> Any:
    return page.locator(f'{ROW}.run-row[data-run="{run_id}"]')


def fields(row: Any) -> dict[str, str]:
    return dict(row.locator(".run-fields .kv").evaluate_all(
        "kvs => kvs.filter(kv => kv.querySelector('.k')).map(kv => "
        "[kv.querySelector('.k').textContent, kv.querySelector('.v').textContent])"))


def figures(run_id: str) -> dict[str, Any]:
    return {"model_calls": 2, "tool_calls": 1, "tool_failures": 0, "tools": {"search": {"calls": 1}},
            "models": ["gpt-4o"], "tokens": {"input": 1200, "output": 340, "total": 1540},
            "tokens_source": "model_calls", "cost_usd": 0.0123, "cost_status": "priced",
            "unpriced_models": [], "parent_run_id": None, "root_run_id": run_id}


# ---------------------------------------------------------------------------------------------- tests

def test_a_run_row_updates_in_place_to_succeeded_and_to_failed_with_the_error(page: Page, server) -> None:
    open_dashboard(page, server)
    server.publish(agent_started("planner", "Planner", "Plan the trip", run_id="ok-run"))
    server.publish(agent_started("booker", "Booker", "Book the hotel", run_id="bad-run"))
    ok, bad = run_row(page, "ok-run"), run_row(page, "bad-run")
    expect(ok).to_have_attribute("data-status", "running")
    expect(ok.locator(".run-status")).to_have_text("Running")
    expect(ok.locator(".ev-desc")).to_have_text("Planner running: Plan the trip")
    expect(ok.locator(".run-elapsed .v")).to_have_text(re.compile(r"^0:0\d$"))
    ok.evaluate("r => { window.__okRow = r; }")
    height = ok.evaluate("r => r.getBoundingClientRect().height")

    server.publish(agent_completed("planner", "Planner", "Plan the trip", run_id="ok-run",
                                   duration_ms=1500, quality_score=85.0, **figures("ok-run")))
    expect(ok).to_have_attribute("data-status", "succeeded")
    assert ok.evaluate("r => r === window.__okRow")  # the same element, updated in place
    assert ok.evaluate("r => r.getBoundingClientRect().height") == height
    expect(ok.locator(".run-status")).to_have_text("Succeeded")
    expect(ok.locator(".ev-desc")).to_have_text("Planner succeeded in 1.5 s: Plan the trip")
    got = fields(ok)
    assert got["duration"] == "1.5 s"
    assert got["tokens"] == "1,200 in / 340 out"
    assert got["cost"] == "$0.0123"
    assert got["quality"] == "85.0"
    expect(ok.locator(".kv.q-fair")).to_have_count(1)  # the fair band's colour, not an error's

    # An error naming the run folds into its row (no second row), then the run fails.
    server.publish(error_occurred("Booker", "hotel API down", "ConnectionError", run_id="bad-run"))
    expect(bad.locator(".run-error .v")).to_have_text("ConnectionError: hotel API down")
    server.publish(agent_completed("booker", "Booker", "Book the hotel", run_id="bad-run", duration_ms=0,
                                   success=False, error_type="TimeoutError", error_message="gave up"))
    expect(bad).to_have_attribute("data-status", "failed")
    expect(bad.locator(".ev-desc")).to_have_text("Booker failed after < 1 ms: TimeoutError: gave up")
    errors = page.locator(f"{ROW}[data-type=error_occurred]")
    expect(errors.filter(has_text="hotel API down")).to_have_count(0)
    expect(page.locator(f"{ROW}.run-row").filter(has_text="Booker")).to_have_count(1)
    expect(page.locator("#stream-count")).to_have_text(re.compile(r"^\d+ runs?\b"))


def test_system_events_hidden_by_default_shown_by_the_toggle_and_raw_mode_shows_every_event(
    page: Page, server
) -> None:
    open_dashboard(page, server)
    server.publish(agent_started("sys", "SysAgent", "a task", run_id="sys-run"))
    last = server.publish(synthesis_started("sys-phase"))
    wait_for_seq(page, last.seq)
    types = "rs => rs.map(r => r.dataset.type)"
    assert not set(page.eval_on_selector_all(ROW, types)) & set(SYSTEM_TYPES)
    # ... while the cards keep following the metrics and health events.
    expect(page.locator("#health-eps")).to_have_text(re.compile(r"^\d+\.\d$"))

    toggle = page.locator("#mode-system")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f"{ROW}[data-type=metrics_updated]").first).to_be_visible()
    expect(page.locator(f"{ROW}[data-type=system_health_updated]").first).to_be_attached()
    toggle.click()
    expect(page.locator(f"{ROW}[data-type=metrics_updated]")).to_have_count(0)

    # Raw: every event its own row, the run's two events too.
    page.click("#mode-raw")
    expect(page.locator("#mode-raw")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f"{ROW}.run-row")).to_have_count(0)
    expect(page.locator(f"{ROW}[data-type=agent_execution_started]").filter(has_text="SysAgent")).to_have_count(1)
    expect(page.locator(f"{ROW}[data-type=metrics_updated]").first).to_be_attached()
    seqs = page.eval_on_selector_all(ROW, "rs => rs.map(r => Number(r.dataset.seq))")
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs))
    # The badge counts events, against the server's total when the page holds fewer.
    expect(page.locator("#stream-count")).to_have_text(re.compile(r"^(shown [\d,]+ of )?[\d,]+ events?$"))
    page.click("#mode-raw")
    expect(run_row(page, "sys-run")).to_have_count(1)


def test_failed_shows_failed_runs_and_errors_never_a_quality_of_85(page: Page, server) -> None:
    open_dashboard(page, server)
    publish = server.publish
    publish(agent_started("f1", "Fine", "works", run_id="f-ok"))
    publish(agent_completed("f1", "Fine", "works", run_id="f-ok", quality_score=85.0))
    publish(agent_started("f2", "Broken", "fails", run_id="f-bad"))
    publish(agent_completed("f2", "Broken", "fails", run_id="f-bad", success=False,
                            error_type="ValueError", error_message="bad input"))
    publish(agent_started("f3", "Slow", "still going", run_id="f-run"))
    publish(error_occurred("Loose", "no run named", "KeyError"))
    # The wire keeps severity "error" for a score below 90.
    last = publish(quality_score("Fine", 85.0, severity=Severity.ERROR))
    wait_for_seq(page, last.seq)

    page.click(".outcome-chip[data-outcome=failed]")
    expect(page.locator(".outcome-chip[data-outcome=failed]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".outcome-chip[data-outcome=all]")).to_have_attribute("aria-pressed", "false")
    # At 1440 px the filter bar is one line, "Clear" included.
    expect(page.locator("#filter-clear")).to_be_visible()
    bar = page.eval_on_selector("#filters", """f => ({tops: [...f.children].filter(c => !c.hidden)
        .map(c => c.getBoundingClientRect()).map(r => Math.round(r.top + r.height / 2)),
        overflow: f.scrollWidth - f.clientWidth})""")
    assert max(bar["tops"]) - min(bar["tops"]) <= 2 and bar["overflow"] <= 0, bar
    shown = page.eval_on_selector_all(
        ROW, "rs => rs.map(r => [r.dataset.type, r.dataset.status || '', r.textContent])")
    assert shown, "no row under Failed"
    for kind, status, text in shown:
        assert (kind == "agent_run" and status == "failed") or kind == "error_occurred", (kind, status, text)
    assert any("Broken" in text for _, _, text in shown)
    assert any("no run named" in text for _, _, text in shown)
    assert not any("Quality score" in text or "Fine" in text for _, _, text in shown)

    page.click(".outcome-chip[data-outcome=running]")
    expect(run_row(page, "f-run")).to_have_count(1)
    statuses = page.eval_on_selector_all(ROW, "rs => rs.map(r => r.dataset.status)")
    assert set(statuses) == {"running"}
    publish(agent_completed("f3", "Slow", "still going", run_id="f-run"))
    expect(run_row(page, "f-run")).to_have_count(0)  # it ended: it leaves the "Running" list
    page.click(".outcome-chip[data-outcome=succeeded]")
    expect(run_row(page, "f-ok")).to_have_count(1)
    expect(run_row(page, "f-run")).to_have_count(1)
    expect(run_row(page, "f-bad")).to_have_count(0)
    page.click("#filter-clear")
    expect(page.locator(".outcome-chip[data-outcome=all]")).to_have_attribute("aria-pressed", "true")
    expect(run_row(page, "f-bad")).to_have_count(1)


def test_quality_pill_colours_follow_the_quality_bands_in_both_themes(page: Page, server) -> None:
    open_dashboard(page, server)
    for score in (96.0, 80.0, 55.0):
        severity = Severity.ERROR if score < 90 else Severity.SUCCESS  # the wire's rule, kept
        last = server.publish(quality_score("Bands", score, severity=severity))
    wait_for_seq(page, last.seq)
    pills = page.locator(f"{ROW}[data-type=quality_score_updated] .q-pill")
    expect(pills.first).to_be_visible()
    got = pills.evaluate_all("ps => ps.slice(0, 3).map(p => [p.textContent, p.className])")
    assert got == [["55.0", "q-pill q-poor"], ["80.0", "q-pill q-fair"], ["96.0", "q-pill q-good"]]
    for theme, colours in (("dark", ("rgb(62, 207, 142)", "rgb(242, 184, 75)", "rgb(255, 93, 108)")),
                           ("light", ("rgb(11, 112, 72)", "rgb(138, 90, 0)", "rgb(184, 35, 58)"))):
        if page.get_attribute("html", "data-theme") != theme:
            page.click("#theme-toggle")
        for band, colour in zip(("good", "fair", "poor"), colours, strict=True):
            pill = page.locator(f".q-pill.q-{band}").first
            assert pill.evaluate("p => getComputedStyle(p).color") == colour
        # The poor row is not painted as an error: its border is the quality colour.
        poor = page.locator(f"{ROW}[data-quality=poor]").first
        assert poor.evaluate("r => getComputedStyle(r).borderLeftColor") == colours[2]


def next_frame(page: Page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_rows_do_not_move_under_the_pointer_nor_while_a_row_is_open(page: Page, server) -> None:
    open_dashboard(page, server)
    for i in range(6):
        server.publish(synthesis_started(f"still-{i}"))
    server.publish(agent_started("above", "Above", "runs above the pointer", run_id="above-run"))
    above = run_row(page, "above-run")
    expect(above).to_have_attribute("data-status", "running")
    target = page.locator(f"{ROW}[data-type=synthesis_started]").filter(has_text="still-3")
    target.hover()
    before = target.bounding_box()
    assert before is not None
    for i in range(4):
        server.publish(synthesis_started(f"held-{i}"))
    server.publish(agent_started("hover", "Hover", "arrives while hovered", run_id="hover-run"))
    # The run above updates in place (its row on screen, the same height): nothing below moves.
    server.publish(agent_completed("above", "Above", "runs above the pointer", run_id="above-run",
                                   success=False, error_type="E" * 40, error_message="x" * 400,
                                   **figures("above-run")))
    expect(above).to_have_attribute("data-status", "failed")
    wait_for_seq(page, server.state.last_seq)
    # A new agent is in the agents table above the stream: the table keeps its height.
    expect(page.locator('#agents-table-body > tr.at-row[data-agent="Hover"]')).to_have_count(1)
    next_frame(page)
    assert target.bounding_box() == before
    expect(page.locator("#new-pill")).to_be_visible()
    expect(page.locator("#new-pill-text")).to_have_text("5 new rows")
    expect(page.locator(f"{ROW}[data-type=synthesis_started]").filter(has_text="held-0")).to_have_count(0)
    page.click("#new-pill")
    expect(page.locator(f"{ROW}[data-type=synthesis_started]").filter(has_text="held-3")).to_have_count(1)
    expect(page.locator("#new-pill")).to_be_hidden()

    # A row open in the detail view stays put, wherever the pointer is.
    opened = page.locator(f"{ROW}[data-type=synthesis_started]").filter(has_text="held-1")
    opened.click()
    expect(page.locator("#detail")).to_be_visible()
    assert re.search(r"#event=\d+$", page.url)
    page.mouse.move(5, 5)
    before = opened.bounding_box()
    last = server.publish(synthesis_started("while-open"))
    wait_for_seq(page, last.seq)
    assert opened.bounding_box() == before
    expect(page.locator("#new-pill-text")).to_have_text("1 new event")
    page.keyboard.press("Escape")
    expect(page.locator(f"{ROW}").filter(has_text="while-open")).to_have_count(1)  # shown once closed


def test_a_run_row_opens_the_run_route(page: Page, server) -> None:
    open_dashboard(page, server)
    server.publish(agent_started("route", "Router", "follow the link", run_id="route-run"))
    row = run_row(page, "route-run")
    row.click()
    page.wait_for_function("location.hash === '#run=route-run'")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("Escape")  # close the run view (once there is one): rows are no longer held
    page.mouse.move(5, 5)
    server.publish(opportunity("opp-route", "Own row", confidence=0.8))
    opps = page.locator(f"{ROW}[data-type=opportunity_discovered]")
    expect(opps.filter(has_text="Own row")).to_have_count(1)
