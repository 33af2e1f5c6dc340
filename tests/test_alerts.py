"""Alerts out (server/alerts.py): BudgetExceeded and LoopSuspected POSTed to webhooks.

Every webhook here is a real aiohttp server on a loopback port (the :class:`Receiver`), scripted to
answer 200, an error, or nothing at all (hung); the dashboard is a real server (``running_server``)
or, for the retry rules alone, a real :class:`AlertSender` on a real state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from server_support import WAIT, read_line_matching, running_server

from otel_dashboard import cli
from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.server.alert_payload import alert_payload, check_webhook_url, redact_url
from otel_dashboard.server.alerts import AlertSender, _retry_after_seconds
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

SECRET = "T0001/B0002/s3cr3tXYZ"  # a Slack-like secret path: never in a log line, health or an error
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RUN_ID = "00f067aa0ba902b7"
HANG = "hang"


@dataclass
class Hit:
    arrived: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver:
    """A loopback webhook: answers each POST with the next scripted answer (then ``default``)."""

    def __init__(self, script: list[Any] | None = None, default: Any = 200) -> None:
        self.script = list(script or [])
        self.default = default
        self.hits: list[Hit] = []
        self.answered = 0
        self.release = asyncio.Event()  # ends the hung requests (teardown)
        self._changed = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(Hit(time.monotonic(), request.path, dict(request.headers),
                             orjson.loads(await request.read())))
        self._changed.set()
        action = self.script.pop(0) if self.script else self.default
        if action == HANG:
            await self.release.wait()
            return web.Response(status=200)
        status, headers = action if isinstance(action, tuple) else (action, {})
        self.answered += 1
        text = "ok" if status < 300 else f"no <{status}>"
        if headers.pop("echo", None):  # an error page quoting the request, as many servers' 404s do
            text = f"Cannot POST {request.path_qs}"
        return web.Response(status=status, text=text, headers=headers)

    async def wait_hits(self, n: int) -> list[Hit]:
        deadline = time.monotonic() + WAIT
        while len(self.hits) < n:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(self.hits)} of {n} webhook requests arrived"
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.hits


@asynccontextmanager
async def receiver(script: list[Any] | None = None, default: Any = 200) -> AsyncIterator[Receiver]:
    rx = Receiver(script, default)
    app = web.Application()
    app.router.add_post("/{tail:.*}", rx.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)  # the receiver logs no secret path
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rx.url = f"http://127.0.0.1:{runner.addresses[0][1]}/services/{SECRET}"
    try:
        yield rx
    finally:
        rx.release.set()
        await runner.cleanup()


def budget_event(run_id: str = RUN_ID, message: str | None = None) -> DashboardEvent:
    data = {
        "source": "Planner", "error_type": "BudgetExceeded",
        "error_message": message or "run of Planner used 120,400 tokens, over its budget of 100,000",
        "agent_name": "Planner", "agent_id": "planner-1", "run_id": run_id, "service_name": "svc",
        "budget": {"scope": "run", "kind": "tokens", "limit": 100000, "value": 120400,
                   "window_seconds": None, "agent": None},
    }
    return DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.ERROR, trace_id=TRACE_ID)


def loop_event() -> DashboardEvent:
    data = {
        "source": "WeatherAgent", "error_type": "LoopSuspected",
        "error_message": "get_weather called 5 times with the same arguments in one run of WeatherAgent",
        "agent_name": "WeatherAgent", "agent_id": "weather-1", "run_id": RUN_ID, "service_name": "svc",
        "loop": {"kind": "repeated_tool_call", "count": 5, "threshold": 5, "tool_name": "get_weather",
                 "arguments": '{"city": "Paris"}', "span_ids": ["a" * 16, "b" * 16]},
    }
    return DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.WARNING)


async def get_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=WAIT)) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def health_until(session: aiohttp.ClientSession, url: str, check: Any) -> dict[str, Any]:
    """``/health`` once ``check(body)`` holds (polled; bounded by WAIT)."""
    deadline = time.monotonic() + WAIT
    while True:
        body = await get_json(session, url + "/health")
        if check(body):
            return body
        assert time.monotonic() < deadline, f"/health never got there: {body}"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- the payload, the URLs
def test_the_payload_of_a_budget_alert() -> None:
    event = budget_event()
    event.seq = 7
    body = alert_payload(event, base_url="http://dash.example:8000")
    assert body == {
        "text": ":rotating_light: BudgetExceeded: run of Planner used 120,400 tokens, over its budget of "
                "100,000",
        "alert": {
            "type": "BudgetExceeded", "severity": "error",
            "message": "run of Planner used 120,400 tokens, over its budget of 100,000",
            "agent_name": "Planner", "run_id": RUN_ID, "trace_id": TRACE_ID, "service_name": "svc",
            "timestamp": event.timestamp, "seq": 7,
            "details": {"scope": "run", "kind": "tokens", "limit": 100000, "value": 120400,
                        "window_seconds": None, "agent": None},
            "dashboard_url": f"http://dash.example:8000/dashboard#trace={TRACE_ID}&span={RUN_ID}",
        },
    }


def test_the_payload_of_a_loop_alert_without_a_trace_or_a_known_url() -> None:
    body = alert_payload(loop_event())
    assert body["text"] == (":warning: LoopSuspected: get_weather called 5 times with the same arguments "
                            "in one run of WeatherAgent")
    alert = body["alert"]
    assert (alert["type"], alert["severity"], alert["trace_id"], alert["dashboard_url"]) == (
        "LoopSuspected", "warning", None, None)
    assert alert["details"]["tool_name"] == "get_weather" and alert["details"]["count"] == 5
    assert alert_payload(loop_event(), base_url="http://h:1/")["alert"]["dashboard_url"] == "http://h:1/dashboard"


def test_the_text_is_one_line_and_cannot_ping_a_slack_channel() -> None:
    body = alert_payload(budget_event(message="run of <!channel> & co\nused\t5 tokens"))
    assert body["text"] == ":rotating_light: BudgetExceeded: run of &lt;!channel&gt; &amp; co used 5 tokens"
    assert body["alert"]["message"] == "run of <!channel> & co used 5 tokens"  # JSON readers get it plain


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "hooks.example/x", "http:///path", "http://h:99999/",
                                 "https://h/ with space", "", 42])
def test_bad_webhook_urls_are_refused_without_showing_their_secret(url: Any) -> None:
    with pytest.raises(ValueError, match="alert webhook") as caught:
        check_webhook_url(url if not isinstance(url, str) or not url else url.replace("/x", f"/{SECRET}"))
    assert SECRET not in str(caught.value)


def test_redacted_urls() -> None:
    assert redact_url(f"https://hooks.slack.com/services/{SECRET}") == "https://hooks.slack.com/***"
    assert redact_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000"
    assert redact_url("https://user:pw@h.example/?key=1") == "https://h.example/***"
    assert redact_url("http://[::1]:80/x") == "http://[::1]:80/***"


def test_server_options_check_the_webhooks() -> None:
    with pytest.raises(ValueError, match="list of http"):
        DashboardWebSocketServer(port=0, alert_webhooks="http://h.example/hook")
    with pytest.raises(ValueError, match="given twice"):
        DashboardWebSocketServer(port=0, alert_webhooks=["http://h.example/a", "http://h.example/a"])
    with pytest.raises(ValueError, match="at most 20"):
        DashboardWebSocketServer(port=0, alert_webhooks=[f"http://h.example/{i}" for i in range(21)])
    with pytest.raises(ValueError, match="alert_timeout_seconds"):
        DashboardWebSocketServer(port=0, alert_webhooks=["http://h.example/a"], alert_timeout_seconds=0)


def test_retry_after_in_seconds_or_as_a_date_is_capped() -> None:
    assert _retry_after_seconds("3", 30.0) == 3.0
    assert _retry_after_seconds("3600", 30.0) == 30.0
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    assert 15.0 <= (_retry_after_seconds(soon, 30.0) or 0) <= 20.0
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 30.0) == 0.0  # in the past: at once
    assert _retry_after_seconds("soon", 30.0) is None and _retry_after_seconds(None, 30.0) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    sender = AlertSender(DashboardState(), ["http://h.example/a"], backoff_base_seconds=0.5,
                         backoff_cap_seconds=4.0)
    for attempt in range(1, 12):
        full = min(4.0, 0.5 * 2 ** (attempt - 1))
        delays = [sender._backoff(attempt) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays), (attempt, delays)
        assert len(set(delays)) > 1  # jittered


# --------------------------------------------------------------------------- through a real server
async def test_an_alert_reaches_the_webhook_and_health_counts_it(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with receiver() as rx, running_server(state, alert_webhooks=[rx.url]) as server:
        # From a worker thread (the span processor's case) and from the loop (the ingest handlers').
        await asyncio.to_thread(state.publish, DashboardEvent.create(
            EventType.ERROR_OCCURRED, {"error_type": "ValueError", "error_message": "not an alert"},
            Severity.ERROR))
        budget = await asyncio.to_thread(state.publish, budget_event())
        loop_alert = state.publish(loop_event())
        hits = await rx.wait_hits(2)
        assert hits[0].path == f"/services/{SECRET}"
        assert hits[0].body == alert_payload(budget, base_url=server.url)  # in order; "not an alert" never
        link = f"{server.url}/dashboard#trace={TRACE_ID}&span={RUN_ID}"
        assert hits[0].body["alert"]["dashboard_url"] == link
        assert hits[0].headers["Content-Type"] == "application/json"
        assert hits[0].headers["X-Otel-Dashboard-Alert-Id"] == budget.event_id  # receivers can dedupe retries
        assert hits[0].headers["User-Agent"].startswith("otel-dashboard/")
        assert hits[1].body["alert"]["type"] == "LoopSuspected"
        assert hits[1].body["alert"]["seq"] == loop_alert.seq
        health = await health_until(session, server.url, lambda h: h["alerts"][0]["sent"] == 2)
        assert health["status"] == "healthy", health
        assert health["alerts"] == [{
            "webhook": f"{rx.url.split('/services')[0]}/***", "sent": 2, "failed": 0, "dropped": 0,
            "retries": 0, "queued": 0, "failing": False, "last_error": None, "last_error_at": None,
            "last_sent_at": health["alerts"][0]["last_sent_at"]}]
        stats = await get_json(session, server.url + "/stats")
        assert stats["alerts"]["webhooks"] == health["alerts"] and stats["alerts"]["max_attempts"] == 5
        assert len(rx.hits) == 2


async def test_500s_then_success_retries_the_same_alert(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with receiver([500, (503, {"Retry-After": "0"}), 200]) as rx, \
            running_server(state, alert_webhooks=[rx.url]) as server:
        event = state.publish(budget_event())
        hits = await rx.wait_hits(3)
        assert [h.body for h in hits] == [hits[0].body] * 3
        assert {h.headers["X-Otel-Dashboard-Alert-Id"] for h in hits} == {event.event_id}
        assert hits[1].arrived - hits[0].arrived >= 0.25  # the first backoff: half of 0.5 s at least
        health = await health_until(session, server.url, lambda h: h["alerts"][0]["sent"] == 1)
        webhook = health["alerts"][0]
        assert (webhook["retries"], webhook["failed"], webhook["failing"]) == (2, 0, False)
        assert webhook["last_error"] == "HTTP 503: no <503>"
        assert health["status"] == "healthy"


async def test_a_hung_webhook_never_blocks_ingest_and_overflow_is_counted(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = DashboardState(max_history=5000)
    async with receiver(default=HANG) as rx, running_server(
        state, alert_webhooks=[rx.url], alert_timeout_seconds=0.3
    ) as server:
        def publish_all() -> None:
            for i in range(1100):
                state.publish(budget_event(run_id=f"{i:016x}"))

        publishing = asyncio.ensure_future(asyncio.to_thread(publish_all))
        while not publishing.done():  # the server answers all along
            await get_json(session, server.url + "/health")
            await asyncio.sleep(0.01)
        await asyncio.wait_for(publishing, WAIT)
        assert rx.answered == 0  # published while the webhook still held the first request
        # Over HTTP too: the ingest endpoint answers at once; the queue stays full, counting the drops.
        posted = {"events": [budget_event(run_id=f"{i:016x}").to_dict() for i in range(50)]}
        async with session.post(server.url + "/api/events", json=posted,
                                timeout=aiohttp.ClientTimeout(total=WAIT)) as resp:
            assert resp.status == 200, await resp.text()
        health = await health_until(session, server.url, lambda h: h["alerts"][0]["failing"])
        assert health["status"] == "degraded" and "alert webhook failing" in health["reasons"]
        webhook = health["alerts"][0]
        assert webhook["last_error"] == "timed out after 0.3 s"
        assert webhook["queued"] == 1000 + 1  # the full queue, and the alert being tried
        assert webhook["dropped"] + webhook["queued"] + webhook["failed"] == 1150, webhook
        assert webhook["dropped"] >= 149 and webhook["sent"] == 0
        assert SECRET not in orjson.dumps(health).decode()
    # Every attempt was for the one alert being tried (the first taken: run 0, or a later one when the
    # thread filled the queue before the loop first ran the sender).
    assert len(rx.hits) >= 2 and len({h.body["alert"]["run_id"] for h in rx.hits}) == 1
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert SECRET not in logged
    assert re.search(r"alert webhook http://127\.0\.0\.1:\d+/\*\*\*: \d+ alert\(s\) not sent at shutdown",
                     logged)


async def test_health_shows_a_failing_webhook_until_an_alert_gets_through(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with receiver(default=500) as rx, running_server(state, alert_webhooks=[rx.url]) as server:
        state.publish(budget_event())
        health = await health_until(session, server.url, lambda h: h["status"] == "degraded")
        assert health["reasons"] == ["alert webhook failing"]
        assert health["alerts"][0]["failing"] and health["alerts"][0]["last_error"] == "HTTP 500: no <500>"
        rx.default = 200  # the webhook heals: the retry gets through
        health = await health_until(session, server.url, lambda h: h["alerts"][0]["sent"] == 1)
        assert health["status"] == "healthy" and not health["alerts"][0]["failing"]


async def test_alerts_queued_at_shutdown_are_sent_to_a_healthy_webhook() -> None:
    state = DashboardState()
    async with receiver() as rx:
        async with running_server(state, alert_webhooks=[rx.url]):
            for i in range(3):
                state.publish(budget_event(run_id=f"{i:016x}"))
        assert [h.body["alert"]["run_id"] for h in rx.hits] == [f"{i:016x}" for i in range(3)]


# --------------------------------------------------------------------------- the sender's rules
@asynccontextmanager
async def sender_of(url: str, **options: Any) -> AsyncIterator[tuple[DashboardState, AlertSender]]:
    state = DashboardState()
    sender = AlertSender(state, [url], **options)
    sender.start()
    try:
        yield state, sender
    finally:
        await sender.stop()


async def test_retry_after_is_honoured() -> None:
    async with receiver([(429, {"Retry-After": "1"}), 200]) as rx, \
            sender_of(rx.url, backoff_base_seconds=0.05) as (state, sender):
        state.publish(budget_event())
        hits = await rx.wait_hits(2)
        assert hits[1].arrived - hits[0].arrived >= 1.0  # not the 0.05 s backoff
        assert sender.health()[0]["sent"] == 1


async def test_a_client_error_is_not_retried() -> None:
    async with receiver([(404, {"echo": "1"})]) as rx, \
            sender_of(rx.url, backoff_base_seconds=0.05) as (state, sender):
        state.publish(budget_event(run_id="1" * 16))
        state.publish(budget_event(run_id="2" * 16))
        hits = await rx.wait_hits(2)
        assert [h.body["alert"]["run_id"] for h in hits] == ["1" * 16, "2" * 16]  # one attempt each
        deadline = time.monotonic() + WAIT
        while sender.health()[0]["sent"] < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        webhook = sender.health()[0]
        assert (webhook["failed"], webhook["retries"], webhook["sent"]) == (1, 0, 1)
        assert webhook["last_error"] == "HTTP 404: Cannot POST ***" and not webhook["failing"]


async def test_a_full_queue_drops_the_oldest_alerts() -> None:
    async with receiver() as rx, sender_of(rx.url, queue_size=5) as (state, sender):
        for i in range(20):  # on the loop, with no await: the sending task cannot run in between
            state.publish(budget_event(run_id=f"{i:016x}"))
        assert sender.health()[0]["dropped"] == 15
        hits = await rx.wait_hits(5)
        assert [h.body["alert"]["run_id"] for h in hits] == [f"{i:016x}" for i in range(15, 20)]


async def test_an_unreachable_webhook_is_failing_and_its_url_stays_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with receiver() as rx:
        url = rx.url  # the port is closed once the receiver is gone
    async with sender_of(url, max_attempts=2, backoff_base_seconds=0.05) as (state, sender):
        state.publish(budget_event())
        deadline = time.monotonic() + WAIT
        while sender.health()[0]["failed"] < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        webhook = sender.health()[0]
        assert webhook["failing"] and webhook["retries"] == 1
        assert webhook["last_error"].startswith("ClientConnectorError")
    assert SECRET not in "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert any("not delivered after 2 attempt(s)" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- the command line
def test_cli_takes_repeated_webhooks_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["serve", "--alert-webhook", "http://a.example/1",
                              "--alert-webhook", "https://b.example/2"])
    assert cli._alert_webhooks(args, parser) == ["http://a.example/1", "https://b.example/2"]
    monkeypatch.setenv("OTEL_DASHBOARD_ALERT_WEBHOOKS", "http://c.example/3  https://d.example/4")
    assert cli._alert_webhooks(parser.parse_args(["serve"]), parser) == ["http://c.example/3",
                                                                          "https://d.example/4"]
    # The command line wins over the environment.
    assert cli._alert_webhooks(args, parser) == ["http://a.example/1", "https://b.example/2"]


@pytest.mark.parametrize(("argv", "env", "needle"), [
    (["--alert-webhook", f"ftp://h.example/{SECRET}"], "", "argument --alert-webhook: must be an http://"),
    (["--alert-webhook", "http://h.example/a", "--alert-webhook", "http://h.example/a"], "", "given twice"),
    ([], f"http://ok.example/x gopher://h.example/{SECRET}",
     "$OTEL_DASHBOARD_ALERT_WEBHOOKS: an alert webhook"),
])
def test_cli_refuses_bad_webhooks_with_exit_2(
    argv: list[str], env: str, needle: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OTEL_DASHBOARD_ALERT_WEBHOOKS", env)
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and SECRET not in err


def _start_serve(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "otel_dashboard", "serve", "--port", "0", "--grpc-port", "0",
         "--db", ":memory:", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


async def test_serve_posts_an_ingested_alert_to_its_webhook(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": str(tmp_path)}
        env.pop("OTEL_DASHBOARD_TOKEN", None)
        env["OTEL_DASHBOARD_ALERT_WEBHOOKS"] = rx.url  # kept off the command line
        proc = _start_serve(env)
        try:
            match = await asyncio.to_thread(
                read_line_matching, proc, re.compile(r"serving on (http://\S+)/dashboard"), 20.0)
            url = match.group(1)
            async with session.post(url + "/api/events", json=budget_event().to_dict(),
                                    timeout=aiohttp.ClientTimeout(total=WAIT)) as resp:
                assert resp.status == 200, await resp.text()
            hits = await rx.wait_hits(1)
            assert hits[0].body["alert"]["message"] == budget_event().data["error_message"]
            assert hits[0].body["alert"]["dashboard_url"] == f"{url}/dashboard#trace={TRACE_ID}&span={RUN_ID}"
        finally:
            proc.terminate()
            _, err = await asyncio.to_thread(proc.communicate, timeout=WAIT)
        assert proc.returncode == 0, err
        assert SECRET not in err


# --------------------------------------------------------------------------- several replicas
async def test_a_cluster_posts_each_alert_once(redis_server: Any, session: aiohttp.ClientSession) -> None:
    from otel_dashboard.server.broker import BrokerConfig

    prefix = f"alerts-{os.getpid()}-{time.monotonic_ns()}"
    def broker(replica: str) -> BrokerConfig:
        return BrokerConfig(redis_server.url, prefix=prefix, replica=replica)

    async with receiver() as rx, running_server(
        DashboardState(), alert_webhooks=[rx.url], broker=broker("a")
    ) as first, running_server(DashboardState(), alert_webhooks=[rx.url], broker=broker("b")) as second:
        # Every replica accepts both events; only the leader posts them.
        first.state.publish(budget_event(run_id="1" * 16))
        second.state.publish(budget_event(run_id="2" * 16))
        deadline = time.monotonic() + WAIT
        while True:
            stats = [(await get_json(session, s.url + "/stats"))["alerts"] for s in (first, second)]
            accounted = [st["webhooks"][0]["sent"] + st["not_leader"] for st in stats]
            if accounted == [2, 2]:
                break
            assert time.monotonic() < deadline, stats
            await asyncio.sleep(0.02)
        assert sorted(st["webhooks"][0]["sent"] for st in stats) == [0, 2]
        assert sorted(h.body["alert"]["run_id"] for h in rx.hits) == ["1" * 16, "2" * 16]
