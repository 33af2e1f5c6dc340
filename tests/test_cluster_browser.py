"""The page on a cluster replica (``broker=``) in a real headless Chromium, Redis down and back.

While Redis is unreachable the replica shows its own events at once, without a ``seq``; when Redis
is back the same events arrive numbered and the page gives the rows it shows their seq instead of
showing them twice.
"""

from __future__ import annotations

import re
import uuid

from browser_support import ServerThread, error_occurred
from playwright.sync_api import Page, expect
from redis_support import RedisServer

from otel_dashboard.server.broker import BrokerConfig
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.state.dashboard import DashboardState

ROW = "#stream > li.ev[data-type='error_occurred']"


def test_events_shown_while_redis_is_down_are_not_doubled_when_it_is_back(
    page: Page, redis_server: RedisServer
) -> None:
    config = BrokerConfig(redis_server.url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    state = DashboardState(max_history=1000)
    with ServerThread(state, broker=config, health_interval_seconds=None,
                      metrics_interval_seconds=None) as server:
        page.goto(server.dashboard_url)
        expect(page.locator("#conn-text")).to_have_text("Connected - Live Updates")
        state.publish(error_occurred("before", "with Redis"))
        expect(page.locator(ROW)).to_have_count(1)
        before = page.evaluate("() => window.otelDashboard.lastSeq")

        redis_server.stop()
        for i in range(3):
            state.publish(error_occurred("during", f"without Redis {i}"))
        expect(page.locator(ROW)).to_have_count(4)  # shown at once, before they have a seq
        assert page.evaluate("() => window.otelDashboard.lastSeq") == before

        redis_server.start()
        page.wait_for_function("s => window.otelDashboard.lastSeq >= s + 3", arg=before, timeout=20_000)
        state.publish(error_occurred("after", "with Redis again"))
        expect(page.locator(ROW)).to_have_count(5)
        expect(page.locator(ROW).first).to_contain_text(re.compile("with Redis again"))
        assert page.locator(ROW).filter(has_text="without Redis").count() == 3
        page.goto("about:blank")  # the page leaves before its server stops (no refused poll logged)


def test_the_health_card_shows_the_replica_the_page_is_connected_to(
    page: Page, redis_server: RedisServer
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    timers = {"health_interval_seconds": None, "metrics_interval_seconds": None}
    with ServerThread(DashboardState(), broker=BrokerConfig(redis_server.url, prefix=prefix, replica="a"),
                      **timers) as a, \
         ServerThread(DashboardState(), broker=BrokerConfig(redis_server.url, prefix=prefix, replica="b"),
                      **timers) as b:
        page.goto(b.dashboard_url)
        expect(page.locator("#conn-text")).to_have_text("Connected - Live Updates")
        b.call(lambda: _publish_health(b))  # b's own report: the page is its one client
        expect(page.locator("#health-clients")).to_have_text("1")
        a.call(lambda: _publish_health(a))  # a's report (no clients) reaches the page too, but is not b's
        page.wait_for_function("() => window.otelDashboard.lastSeq >= 2", timeout=10_000)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        expect(page.locator("#health-clients")).to_have_text("1")
        page.goto("about:blank")  # the page leaves before its servers stop (no refused poll logged)


def _publish_health(server: ServerThread) -> None:
    assert server.server is not None and server.server.app is not None
    server.server.app[HEALTH_KEY].publish_health()
