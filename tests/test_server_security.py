"""The security layer as wired into the real :class:`DashboardWebSocketServer` (``tests/test_security.py``
tests the module on its own): every auth path, Origin and Host checks, TLS, every limit with its status
code (and the server still healthy), the single body limit, commit-before-200, and clients that send
the token.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from server_support import WAIT, make_certificate, running_server

from otel_dashboard.model.auth import bearer_headers
from otel_dashboard.pipeline.exporter import DashboardSpanExporter
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer, create_app
from otel_dashboard.server.options import make_options
from otel_dashboard.server.security import COOKIE_NAME, SECURITY_KEY, SecurityConfig, TLSConfigError
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EVENT = {"event_type": "error_occurred", "severity": "error",
         "data": {"source": "tests", "error_message": "boom", "error_type": "E"}}


@pytest.fixture(name="session")
async def fixture_session() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies for an IP address host (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture(name="certificate", scope="module")
def fixture_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


async def status_of(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> int:
    async with session.request(method, url, **kwargs) as response:
        await response.read()
        return response.status


async def assert_healthy(session: aiohttp.ClientSession, server: DashboardWebSocketServer, **kw: Any) -> None:
    async with session.get(f"{server.url}/health", **kw) as response:
        assert response.status == 200
        assert (await response.json())["status"] in ("healthy", "degraded")


async def security_stats(session: aiohttp.ClientSession, server: DashboardWebSocketServer,
                         **kw: Any) -> dict[str, int]:
    async with session.get(f"{server.url}/stats", **kw) as response:
        assert response.status == 200
        return (await response.json())["security"]


async def ws_snapshot(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is WSMsgType.TEXT, msg
    snapshot = orjson.loads(msg.data)
    assert snapshot["type"] == "snapshot"
    return snapshot


# --------------------------------------------------------------------------- auth
async def test_every_auth_path_against_the_real_server(session: aiohttp.ClientSession) -> None:
    async with running_server(security=SecurityConfig(token=TOKEN)) as server:
        base = server.url
        # Open: health, the page and its assets, the auth probe.
        for path in ("/health", "/dashboard", "/static/app.js", "/api/auth"):
            assert await status_of(session, "GET", base + path) == 200, path
        async with session.get(f"{base}/api/auth") as response:
            assert await response.json() == {"auth_required": True, "authenticated": False}

        # No token: 401 JSON with a Bearer challenge, on every protected route.
        for method, path in (("GET", "/stats"), ("GET", "/api/events"), ("POST", "/api/events"),
                             ("POST", "/v1/traces"), ("GET", "/api/traces/" + "a" * 32),
                             ("GET", "/no/such/route")):
            async with session.request(method, base + path, json=EVENT if method == "POST" else None) as r:
                assert r.status == 401, (method, path)
                assert r.content_type == "application/json"
                assert (await r.json())["error"] == "unauthorized"
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert server.state.last_seq == 0  # nothing got in

        # Wrong token, from each source: 401 invalid_token.
        wrong = "not-the-right-token"
        for kwargs in ({"headers": {"Authorization": f"Bearer {wrong}"}},
                       {"params": {"token": wrong}},
                       {"headers": {"Cookie": f"{COOKIE_NAME}={wrong}"}}):
            async with session.get(f"{base}/stats", **kwargs) as r:
                assert r.status == 401
                assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]

        # The right token from the header, the query (stripped before the handler: /api/events
        # refuses unknown parameters) and the cookie.
        assert await status_of(session, "GET", f"{base}/api/events", headers=BEARER) == 200
        query = {"token": TOKEN, "limit": "5"}
        assert await status_of(session, "GET", f"{base}/api/events", params=query) == 200
        async with session.post(f"{base}/api/events", json=EVENT, headers=BEARER) as r:
            assert r.status == 200 and (await r.json())["accepted"] == 1
        async with session.get(f"{base}/dashboard", params={"token": TOKEN}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/dashboard"
            assert "httponly" in r.headers["Set-Cookie"].lower()
        assert await status_of(session, "GET", f"{base}/stats") == 200  # the cookie now
        async with session.get(f"{base}/api/auth") as response:
            assert await response.json() == {"auth_required": True, "authenticated": True}

        # POST /api/auth (the page's login prompt): wrong 401, right 200 with the cookie.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
            assert await status_of(fresh, "POST", f"{base}/api/auth",
                                   headers={"Authorization": "Bearer nope-nope-nope"}) == 401
            assert await status_of(fresh, "GET", f"{base}/stats") == 401
            assert await status_of(fresh, "POST", f"{base}/api/auth", headers=BEARER) == 200
            assert await status_of(fresh, "GET", f"{base}/stats") == 200

        # The WebSocket: refused without the token, open with the header, the query or the cookie.
        async with aiohttp.ClientSession() as anonymous:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await anonymous.ws_connect(f"{base}/ws")
            assert refused.value.status == 401
            async with anonymous.ws_connect(f"{base}/ws", headers=BEARER) as ws:
                assert (await ws_snapshot(ws))["seq"] == 1
            async with anonymous.ws_connect(f"{base}/ws?token={TOKEN}") as ws:
                await ws_snapshot(ws)
        async with session.ws_connect(f"{base}/ws") as ws:  # the login cookie
            await ws_snapshot(ws)

        stats = await security_stats(session, server)
        assert stats["unauthorized"] >= 10
        await assert_healthy(session, server)


async def test_without_a_token_the_loopback_server_is_open_but_guarded(
    session: aiohttp.ClientSession,
) -> None:
    async with running_server() as server:
        assert server.security == SecurityConfig(bind_host="127.0.0.1")
        async with session.get(f"{server.url}/api/auth") as response:
            assert await response.json() == {"auth_required": False, "authenticated": True}
        assert await status_of(session, "GET", f"{server.url}/stats") == 200
        async with session.get(f"{server.url}/dashboard") as response:  # the security headers
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
        # A revalidated page (304) carries no policy of its own: the cached page keeps its CSP.
        async with session.get(f"{server.url}/dashboard") as response:
            modified = response.headers["Last-Modified"]
        revalidate = {"If-Modified-Since": modified}
        async with session.get(f"{server.url}/dashboard", headers=revalidate) as response:
            assert response.status == 304
            assert "Content-Security-Policy" not in response.headers
        # The Host check is on (loopback bind) even without a token.
        assert await status_of(session, "GET", f"{server.url}/stats",
                               headers={"Host": f"evil.example:{server.port}"}) == 403


# --------------------------------------------------------------------------- Origin and Host
async def test_origin_and_host_checks_on_the_websocket_and_ingest(session: aiohttp.ClientSession) -> None:
    allowed = "https://ops.example.com"
    async with running_server(security=SecurityConfig(allowed_origins=(allowed,))) as server:
        base, port = server.url, server.port
        # Cross-site WebSocket hijacking: a foreign Origin gets 403 before the upgrade.
        for origin in ("http://evil.example", f"http://localhost:{port + 1}", "null"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{base}/ws", headers={"Origin": origin})
            assert refused.value.status == 403, origin
        # The page's own origin, an allowed one, and no Origin at all (a script) pass.
        for headers in ({"Origin": base}, {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
                        {"Origin": allowed}, {}):
            async with session.ws_connect(f"{base}/ws", headers=headers) as ws:
                await ws_snapshot(ws)
        # A foreign page cannot post events.
        evil = {"Origin": "http://evil.example"}
        async with session.post(f"{base}/api/events", json=EVENT, headers=evil) as r:
            assert r.status == 403 and (await r.json())["error"] == "forbidden origin"
        assert server.state.last_seq == 0
        # ... nor preflight a JSON post (no CORS headers for it); the allowed origin can.
        preflight = {"Access-Control-Request-Method": "POST"}
        async with session.options(f"{base}/api/events", headers={**evil, **preflight}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with session.options(f"{base}/api/events", headers={"Origin": allowed, **preflight}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == allowed
        # DNS rebinding: the attacker's name in Host, on the WebSocket and the API.
        rebind = {"Host": f"evil.example:{port}"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{base}/ws", headers=rebind)
        assert refused.value.status == 403
        async with session.get(f"{base}/api/events", headers=rebind) as r:
            assert r.status == 403 and (await r.json())["error"] == "forbidden host"
        # The allowed origin's host is an accepted Host name.
        assert await status_of(session, "GET", f"{base}/health", headers={"Host": "ops.example.com"}) == 200
        stats = await security_stats(session, server)
        assert stats["forbidden_origin"] == 4 and stats["forbidden_host"] == 2
        await assert_healthy(session, server)


async def test_a_network_bind_has_no_host_check(session: aiohttp.ClientSession) -> None:
    config = SecurityConfig(token=TOKEN, bind_host="0.0.0.0")
    app = create_app(DashboardState(), security=config, metrics_interval_seconds=None,
                     health_interval_seconds=None)
    assert app[SECURITY_KEY].config is config
    server = DashboardWebSocketServer("0.0.0.0", 0, state=DashboardState(), metrics_interval_seconds=None,
                                      health_interval_seconds=None)
    assert server.security.bind_host == "0.0.0.0" and not server.security.loopback


# --------------------------------------------------------------------------- TLS
async def test_tls_serves_https_and_wss(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    config = SecurityConfig(token=TOKEN, tls_certfile=cert, tls_keyfile=key)
    client_context = ssl.create_default_context(cafile=str(cert))
    async with running_server(security=config) as server, aiohttp.ClientSession() as session:
        assert server.url == f"https://127.0.0.1:{server.port}"
        assert server.dashboard_url.startswith("https://")
        await assert_healthy(session, server, ssl=client_context)
        async with session.post(f"{server.url}/api/events", json=EVENT, headers=BEARER,
                                ssl=client_context) as r:
            assert r.status == 200
        async with session.get(f"{server.url}/dashboard", params={"token": TOKEN}, ssl=client_context,
                               allow_redirects=False) as r:
            assert "; secure" in r.headers["Set-Cookie"].lower()
        async with session.ws_connect(f"wss://127.0.0.1:{server.port}/ws", headers=BEARER,
                                      ssl=client_context) as ws:
            assert (await ws_snapshot(ws))["seq"] == 1
            await ws.send_json({"type": "ping"})
            assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "pong"
        with pytest.raises(aiohttp.ClientConnectorError):  # plain http to a TLS port, or no trust
            await session.get(f"{server.url}/health", ssl=ssl.create_default_context())


async def test_a_bad_certificate_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    server = DashboardWebSocketServer(port=0, state=DashboardState(),
                                      security=SecurityConfig(tls_certfile=missing))
    with pytest.raises(TLSConfigError, match=str(missing)):
        await server.start()
    assert not server.started


# --------------------------------------------------------------------------- limits
async def test_every_limit_with_its_status_code_and_the_server_still_healthy(
    session: aiohttp.ClientSession,
) -> None:
    config = SecurityConfig(
        max_body_bytes=4096, max_ws_message_bytes=1024, ws_messages_per_second=5, ws_message_burst=5,
        max_connections_per_ip=2, ingest_events_per_second=10, ingest_burst_events=10,
    )
    async with running_server(security=config) as server:
        base = server.url
        assert server.app is not None and server.app._client_max_size == 4096  # one body limit

        # Request body: 413 JSON (announced length, and a chunked body without one).
        big = {"events": [EVENT] * 60}
        async with session.post(f"{base}/api/events", json=big) as r:
            assert r.status == 413 and "4096" in (await r.json())["error"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        async with session.post(f"{base}/api/events", data=chunks(),
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413
        async with session.post(f"{base}/v1/traces", data=b"\0" * 5000,
                                headers={"Content-Type": "application/x-protobuf"}) as r:
            assert r.status == 413 and r.content_type == "application/x-protobuf"  # in OTLP's own format

        # Ingest rate: a batch over the burst goes through once, then 429 with Retry-After.
        async with session.post(f"{base}/api/events", json={"events": [EVENT] * 12}) as r:
            assert r.status == 200
        for path, kwargs in (("/api/events", {"json": EVENT}),
                             ("/v1/traces", {"json": {"resourceSpans": []}})):
            async with session.post(base + path, **kwargs) as r:
                assert r.status == 429, path
                assert int(r.headers["Retry-After"]) >= 1
        assert server.state.last_seq == 12

        # WebSocket message size: an error message, the connection stays.
        async with session.ws_connect(f"{base}/ws") as ws:
            await ws_snapshot(ws)
            await ws.send_str('{"type": "ping", "pad": "' + "x" * 2000 + '"}')
            reply = orjson.loads((await ws.receive(timeout=WAIT)).data)
            assert reply["type"] == "error" and "1024" in reply["message"]
            await ws.send_json({"type": "ping"})
            assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "pong"

        # Connections per address: the third gets 429 with Retry-After before the upgrade.
        first = await session.ws_connect(f"{base}/ws")
        second = await session.ws_connect(f"{base}/ws")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{base}/ws")
        assert refused.value.status == 429
        assert int(refused.value.headers["Retry-After"]) >= 1
        await second.close()

        # Message rate: beyond the burst the connection is closed with 1008 and a reason.
        await ws_snapshot(first)
        for _ in range(20):
            await first.send_json({"type": "ping"})
        while True:
            msg = await asyncio.wait_for(first.receive(), WAIT)
            if msg.type is not WSMsgType.TEXT:
                break
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert first.close_code == 1008
        await first.close()

        stats = await security_stats(session, server)
        assert stats["body_too_large"] >= 1
        assert stats["ingest_rate_exceeded"] == 2
        assert stats["too_many_connections"] == 1
        assert stats["ws_message_rate_exceeded"] == 1
        await assert_healthy(session, server)
        async with session.ws_connect(f"{base}/ws") as ws:  # new connections work again
            await ws_snapshot(ws)


def test_the_body_limit_has_one_source_of_truth() -> None:
    # Without a SecurityConfig, the server options make one.
    options = make_options(None, 100, None, {"max_body_bytes": 8192, "max_message_bytes": 2048})
    assert options.security.max_body_bytes == 8192 and options.security.max_ws_message_bytes == 2048
    # With one, it decides both sizes ...
    config = SecurityConfig(max_body_bytes=50_000, max_ws_message_bytes=4096)
    options = make_options(None, 100, None, {"security": config})
    assert (options.max_body_bytes, options.max_message_bytes) == (50_000, 4096)
    assert make_options(None, 100, None, {"security": config, "max_body_bytes": 50_000}).security is config
    # ... and an option that disagrees with it is an error, not a silent choice.
    with pytest.raises(ValueError, match=r"max_body_bytes=1024 disagrees with security\.max_body_bytes"):
        make_options(None, 100, None, {"security": config, "max_body_bytes": 1024})
    with pytest.raises(ValueError, match="max_message_bytes"):
        make_options(None, 100, None, {"security": config, "max_message_bytes": 100})
    with pytest.raises(ValueError, match="security must be a SecurityConfig"):
        make_options(None, 100, None, {"security": {"token": TOKEN}})
    app = create_app(DashboardState(), security=config)
    assert app._client_max_size == 50_000


# --------------------------------------------------------------------------- commit before 200
class GatedDurability:
    """Stands in for a durable store's confirmation: the test decides when (and whether) it comes."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.confirm = True
        self.asked: list[tuple[int | None, float]] = []

    async def wait_durable_async(self, seq: int | None = None, timeout_seconds: float = 5.0) -> bool:
        self.asked.append((seq, timeout_seconds))
        await self.gate.wait()
        return self.confirm


@pytest.mark.parametrize("path", ["/api/events", "/v1/traces"])
async def test_ingest_answers_only_once_the_events_are_durable(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    state = DashboardState()
    durability = GatedDurability()
    monkeypatch.setattr(state, "wait_durable_async", durability.wait_durable_async)
    body: dict[str, Any] = EVENT if path == "/api/events" else _otlp_json_request()
    async with running_server(state) as server:
        request = asyncio.ensure_future(session.post(server.url + path, json=body))
        for _ in range(200):
            if durability.asked:
                break
            await asyncio.sleep(0.01)
        assert durability.asked, "the handler never waited for durability"
        seq, timeout = durability.asked[0]
        assert seq == state.last_seq and seq >= 1 and timeout == 10
        await asyncio.sleep(0.2)
        assert not request.done(), "answered before the store confirmed the events"
        durability.gate.set()
        async with await request as response:
            assert response.status == 200

        # A store that does not confirm: 503 with Retry-After (the sender sends again).
        durability.confirm = False
        async with session.post(server.url + path, json=body) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
        await assert_healthy(session, server)


def _otlp_json_request() -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
            "name": "invoke_agent Researcher", "kind": 1,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                           {"key": "gen_ai.agent.name", "value": {"stringValue": "Researcher"}}],
        }]}],
    }]}


# --------------------------------------------------------------------------- clients with the token
async def test_the_span_processor_and_the_exporter_send_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    state = DashboardState()
    async with running_server(state, security=SecurityConfig(token=TOKEN)) as server:
        provider = TracerProvider(resource=Resource.create({"service.name": "token-test"}))
        processor = DashboardSpanProcessor(endpoint=server.url, token=TOKEN)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span("invoke_agent Researcher",
                                          attributes={"gen_ai.operation.name": "invoke_agent",
                                                      "gen_ai.agent.name": "Researcher"}):
            pass
        assert await asyncio.to_thread(processor.force_flush, 10_000)
        assert any(e.event_type.value == "agent_execution_completed" for e in state.get_events_after(0))

        # The exporter: the token from OTEL_DASHBOARD_TOKEN (the zero-code path) ...
        monkeypatch.setenv("OTEL_DASHBOARD_TOKEN", TOKEN)
        with_token = DashboardSpanExporter(server.url)
        monkeypatch.delenv("OTEL_DASHBOARD_TOKEN")
        without_token = DashboardSpanExporter(server.url)
        agent_span = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Exported"}
        for exporter in (with_token, without_token):
            exporting = TracerProvider()
            exporting.add_span_processor(SimpleSpanProcessor(exporter))
            with exporting.get_tracer("tests").start_as_current_span("invoke_agent Exported",
                                                                      attributes=agent_span):
                pass
            await asyncio.to_thread(exporter.force_flush, 10_000)
            await asyncio.to_thread(exporting.shutdown)
        await asyncio.to_thread(provider.shutdown)
        completed = [e for e in state.get_events_after(0) if e.data.get("agent_name") == "Exported"
                     and e.event_type.value == "agent_execution_completed"]
        assert len(completed) == 1  # ... and without it, refused (401)
        assert with_token._sender is not None and with_token._sender.sent_events >= 1
        assert without_token._sender is not None and without_token._sender.rejected_events >= 1
        assert server.app is not None
        assert server.app[SECURITY_KEY].stats()["unauthorized"] >= 1


def test_token_options_of_the_clients() -> None:
    headers = bearer_headers({"authorization": "Basic x", "X-Team": "a"}, TOKEN)
    assert headers == {"X-Team": "a", "Authorization": f"Bearer {TOKEN}"}
    with pytest.raises(ValueError, match="token must be"):
        bearer_headers(None, "bad token\r\n")
    with pytest.raises(ValueError, match="endpoint"):
        DashboardSpanProcessor(token=TOKEN)
    with pytest.raises(ValueError, match="endpoint"):
        DashboardSpanExporter(token=TOKEN)


# --------------------------------------------------------------------------- the access log
async def test_the_access_log_never_shows_the_token(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    async with running_server(security=SecurityConfig(token=TOKEN)) as server:
        assert await status_of(session, "GET", f"{server.url}/api/events", params={"token": TOKEN}) == 200
        assert await status_of(session, "GET", f"{server.url}/health") == 200
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/api/events?token=***" in line for line in access), access
    assert not any(TOKEN in line for line in access)
