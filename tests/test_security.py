"""Tests of :mod:`otel_dashboard.server.security`: a small real aiohttp app on loopback, every protection.

The app here mimics the dashboard's routes (page, static file, API, ingest, WebSocket) so that the
security layer is tested on its own; the real server wires the same ``install()`` in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.pytest_plugin import AiohttpClient, AiohttpServer
from aiohttp.test_utils import make_mocked_request
from fuzz_support import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from otel_dashboard.server import security
from otel_dashboard.server.security import (
    COOKIE_NAME,
    PAGE_CSP,
    SECURITY_KEY,
    TOKEN_ENV,
    SecurityConfig,
    TLSConfigError,
    check_ingest,
    install,
    ws_rate_guard,
)
from otel_dashboard.server.security.config import is_loopback_host, parse_host_header, parse_origin
from otel_dashboard.server.security.ratelimit import (
    ConnectionLimiter,
    IngestRateLimiter,
    TokenBucket,
    retry_after_header,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "correct-horse-battery-staple"
PAGE = "<!doctype html><html><head><title>t</title><script type=\"module\" src=\"static/app.js\"></script>" \
       "</head><body><p>dashboard</p></body></html>"


# --------------------------------------------------------------------------- the test app
def make_app(config: SecurityConfig, web_dir: Path) -> web.Application:
    """The dashboard's route layout, with trivial handlers, protected by ``install``."""
    app = web.Application(client_max_size=config.max_body_bytes)
    install(app, config)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"secret": "metrics", "security": request.app[SECURITY_KEY].stats()})

    async def dashboard(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(web_dir / "index.html")

    async def static(request: web.Request) -> web.StreamResponse:
        path = (web_dir / request.match_info["path"]).resolve()
        if not path.is_relative_to(web_dir) or not path.is_file():
            return web.json_response({"error": "not found"}, status=404)
        return web.FileResponse(path)

    async def events_get(request: web.Request) -> web.Response:
        # Like the real handler: an unknown parameter is an error, so a leaked "token" would show.
        unknown = sorted(set(request.query) - {"limit"})
        if unknown:
            return web.json_response({"error": f"unknown parameter {unknown[0]}"}, status=400)
        return web.json_response({"events": []})

    async def events_post(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return web.json_response({"error": "unsupported media type"}, status=415)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "too large"}, status=413)
        try:
            payload = __import__("json").loads(body)
        except ValueError:
            return web.json_response({"error": "bad json"}, status=400)
        n_events = len(payload) if isinstance(payload, list) else 1
        refused = check_ingest(request, n_events)
        if refused is not None:
            return refused
        return web.json_response({"accepted": n_events})

    async def traces(request: web.Request) -> web.Response:
        if request.content_type not in ("application/json", "application/x-protobuf"):
            return web.json_response({"error": "unsupported media type"}, status=415)
        await request.read()
        refused = check_ingest(request, 1)
        return refused if refused is not None else web.json_response({"partialSuccess": {}})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="# metrics\n")

    async def echo(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1024 * 1024)
        if not ws.can_prepare(request).ok:
            return web.json_response({"error": "expected a WebSocket upgrade request"}, status=400)
        await ws.prepare(request)
        guard = ws_rate_guard(request)
        async for msg in ws:
            if not guard.allow():
                await guard.close(ws)
                break
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/static/{path:.*}", static)
    app.router.add_get("/api/events", events_get)
    app.router.add_post("/api/events", events_post)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/ws", echo)
    return app


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard")


@pytest.fixture(name="web_dir")
def fixture_web_dir(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    (root / "app.js").write_text("export const ok = true;\n")
    return root.resolve()


Factory = Callable[..., Any]


@pytest.fixture(name="serve")
def fixture_serve(aiohttp_client: AiohttpClient, web_dir: Path) -> Factory:
    async def serve(**fields: Any) -> Any:
        return await aiohttp_client(make_app(SecurityConfig(**fields), web_dir))
    return serve


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def assert_healthy(client: Any) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert (await response.json()) == {"status": "ok"}


async def assert_json_error(response: aiohttp.ClientResponse, status: int, error: str) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == error
    return body


# --------------------------------------------------------------------------- no token
async def test_without_a_token_everything_is_open(serve: Factory) -> None:
    client = await serve()
    for path in ("/health", "/stats", "/metrics", "/dashboard", "/static/app.js", "/api/events"):
        response = await client.get(path)
        assert response.status == 200, path
    response = await client.post("/api/events", json={"event_type": "x"})
    assert response.status == 200
    response = await client.post("/v1/traces", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 200
    async with client.ws_connect("/ws") as ws:
        await ws.send_str("hi")
        assert (await ws.receive_str(timeout=5)) == "hi"
    response = await client.get("/api/auth")
    assert await response.json() == {"auth_required": False, "authenticated": True}
    # A token parameter is still removed before the handler sees it.
    response = await client.get("/api/events", params={"token": "whatever", "limit": "1"})
    assert response.status == 200


# --------------------------------------------------------------------------- token auth
PROTECTED = [("GET", "/stats"), ("GET", "/metrics"), ("GET", "/api/events"), ("POST", "/api/events"),
             ("POST", "/v1/traces"), ("GET", "/ws"), ("GET", "/no/such/route"), ("POST", "/health")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_missing_token_is_401_json(serve: Factory, method: str, path: str) -> None:
    client = await serve(token=TOKEN)
    response = await client.request(method, path, json={})
    body = await assert_json_error(response, 401, "unauthorized")
    assert "token is required" in body["detail"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="otel-dashboard"'
    assert response.headers["Cache-Control"] == "no-store"


async def test_wrong_token_is_401_from_every_source(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    wrong = TOKEN[:-1] + "X"
    for kwargs in ({"headers": bearer(wrong)}, {"headers": {"Cookie": f"{COOKIE_NAME}={wrong}"}},
                   {"params": {"token": wrong}}, {"headers": bearer(TOKEN + "x")},
                   {"headers": {"Authorization": f"Basic {TOKEN}"}}, {"headers": bearer("ünïcode-töken")}):
        response = await client.get("/stats", **kwargs)
        body = await assert_json_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        if "Basic" not in str(kwargs):
            assert body["detail"] == "the token is wrong"
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_right_token_from_header_cookie_or_query(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    for kwargs in ({"headers": bearer()}, {"headers": {"Authorization": f"bearer  {TOKEN} "}},
                   {"headers": {"Cookie": f"{COOKIE_NAME}={TOKEN}"}}, {"params": {"token": TOKEN}},
                   {"headers": {**bearer("wrong-token-1"), "Cookie": f"{COOKIE_NAME}={TOKEN}"}}):
        response = await client.get("/stats", **kwargs)
        assert response.status == 200, kwargs
        assert (await response.json())["secret"] == "metrics"
    # The query token is stripped before the handler (which rejects unknown parameters).
    response = await client.get("/api/events", params={"token": TOKEN, "limit": "5"})
    assert response.status == 200
    response = await client.post("/api/events", json=[{}, {}], headers=bearer())
    assert await response.json() == {"accepted": 2}
    response = await client.post("/v1/traces", data=b"\x0a\x00", params={"token": TOKEN},
                                 headers={"Content-Type": "application/x-protobuf"})
    assert response.status == 200


async def test_public_routes_need_no_token(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    for path in ("/health", "/dashboard", "/static/app.js", "/"):
        response = await client.get(path)
        assert response.status == 200, path
    response = await client.get("/static/missing.js")
    assert response.status == 404


async def test_path_tricks_do_not_reach_protected_handlers(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    for raw in ("/static/%2e%2e/stats", "/static/../stats", "//stats", "/static/..%2fstats",
                "/health/../stats", "/dashboard/..%2F..%2Fstats", "/STATS", "/stats/"):
        url = client.make_url("/").with_path(raw, encoded=True)
        response = await client.session.get(url, allow_redirects=False)
        text = await response.text()
        assert "metrics" not in text, raw
        assert response.status in (401, 404), (raw, response.status)


async def test_dashboard_login_sets_cookie_and_strips_token(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    response = await client.get("/dashboard", params={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/dashboard"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}={TOKEN};")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert "secure" not in lowered.replace("samesite", "")  # no TLS here
    # The client's jar now holds the cookie: the API and the WebSocket accept it.
    response = await client.get("/stats")
    assert response.status == 200
    async with client.ws_connect("/ws") as ws:
        await ws.send_str("cookie")
        assert (await ws.receive_str(timeout=5)) == "cookie"
    response = await client.get("/api/auth")
    assert await response.json() == {"auth_required": True, "authenticated": True}


async def test_dashboard_login_with_wrong_token_redirects_without_cookie(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    for path in ("/dashboard", "/"):
        response = await client.get(path, params={"token": "not-the-token"}, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/dashboard"
        assert "Set-Cookie" not in response.headers
    response = await client.get("/stats")
    assert response.status == 401
    response = await client.get("/api/auth")
    assert await response.json() == {"auth_required": True, "authenticated": False}


async def test_auth_endpoint_post_logs_in_without_a_url_token(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    response = await client.post("/api/auth", headers=bearer("wrong-token-2"))
    await assert_json_error(response, 401, "unauthorized")
    response = await client.post("/api/auth", headers=bearer())
    assert response.status == 200
    assert COOKIE_NAME in response.cookies
    response = await client.get("/stats")
    assert response.status == 200


async def test_websocket_needs_the_token(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws")
    assert info.value.status == 401
    for kwargs in ({"headers": bearer()}, {"params": {"token": TOKEN}}):
        async with client.ws_connect("/ws", **kwargs) as ws:
            await ws.send_str("ok")
            assert (await ws.receive_str(timeout=5)) == "ok"
    await assert_healthy(client)


# --------------------------------------------------------------------------- Origin and Host
async def test_websocket_origin_check(serve: Factory) -> None:
    client = await serve(token=TOKEN, allowed_origins=("https://dash.example.com",))
    port = client.port
    for origin in (f"http://127.0.0.1:{port}", "https://dash.example.com", "https://DASH.example.com:443"):
        async with client.ws_connect("/ws", headers={**bearer(), "Origin": origin}) as ws:
            await ws.send_str(origin)
            assert (await ws.receive_str(timeout=5)) == origin
    async with client.ws_connect("/ws", headers=bearer()) as ws:  # no Origin: a script
        await ws.send_str("script")
        assert (await ws.receive_str(timeout=5)) == "script"
    # Only host and port are compared with the Host header: behind a TLS-terminating proxy the page is
    # https while this server sees http, and no other page can be served from this very port.
    for origin in ("https://evil.example", f"http://127.0.0.1:{port + 1}", "null", "http://dash.example.com",
                   f"http://localhost:{port}", "garbage"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect("/ws", headers={**bearer(), "Origin": origin})
        assert info.value.status == 403, origin
    await assert_healthy(client)


async def test_foreign_origin_cannot_post(serve: Factory) -> None:
    client = await serve()
    response = await client.post("/api/events", json={}, headers={"Origin": "https://evil.example"})
    await assert_json_error(response, 403, "forbidden origin")
    response = await client.post("/api/events", data=b"{}", headers={
        "Origin": "https://evil.example", "Content-Type": "text/plain"})
    assert response.status == 403
    response = await client.post("/api/events", json={}, headers={"Origin": f"http://127.0.0.1:{client.port}"})
    assert response.status == 200
    # A simple cross-origin GET goes through, but carries no CORS header: the page cannot read it.
    response = await client.get("/api/events", headers={"Origin": "https://evil.example"})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_host_check_on_loopback_bind(serve: Factory) -> None:
    client = await serve(token=TOKEN, allowed_hosts=("dash.internal",))
    port = client.port
    for host in ("evil.example", f"evil.example:{port}", "attacker.localhost.evil", "127.0.0.1.nip.io",
                 "localhost:notaport", "[::1", "", "localhost:99999", "0.0.0.0"):
        response = await client.get("/health", headers={"Host": host})
        await assert_json_error(response, 403, "forbidden host")
        response = await client.get("/stats", headers={**bearer(), "Host": host})
        assert response.status == 403, host
    for host in (f"localhost:{port}", "localhost", f"127.0.0.1:{port}", "127.0.0.2", f"[::1]:{port}",
                 "LOCALHOST.", "dash.internal", f"dash.internal:{port}"):
        response = await client.get("/stats", headers={**bearer(), "Host": host})
        assert response.status == 200, host


async def test_no_host_check_on_a_network_bind(serve: Factory) -> None:
    client = await serve(token=TOKEN, bind_host="0.0.0.0")
    response = await client.get("/stats", headers={**bearer(), "Host": "dashboard.example.org:8000"})
    assert response.status == 200
    response = await client.get("/stats", headers={"Host": "dashboard.example.org:8000"})
    assert response.status == 401  # the token protects it


# --------------------------------------------------------------------------- CORS
async def test_cors_only_for_allowed_origins(serve: Factory) -> None:
    allowed = "https://grafana.example.com:3000"
    client = await serve(token=TOKEN, allowed_origins=(allowed,))
    response = await client.get("/stats", headers={**bearer(), "Origin": allowed})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == allowed
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    response = await client.get("/stats", headers={**bearer(), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]
    # An error answer to an allowed origin is readable by it too.
    response = await client.get("/stats", headers={"Origin": allowed})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == allowed

    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    response = await client.options("/api/events", headers={**preflight, "Origin": allowed})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == allowed
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST"}
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Content-Encoding" in response.headers["Access-Control-Allow-Headers"]
    response = await client.post("/api/events", json=[{}], headers={**bearer(), "Origin": allowed})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == allowed

    for origin, method in (("https://evil.example", "POST"), (allowed, "DELETE"), ("null", "POST")):
        response = await client.options("/api/events", headers={
            **preflight, "Origin": origin, "Access-Control-Request-Method": method})
        await assert_json_error(response, 403, "cross-origin request not allowed")
        assert not any(h.startswith("Access-Control-Allow") for h in response.headers)
    await assert_healthy(client)


async def test_no_cors_by_default(serve: Factory) -> None:
    client = await serve()
    response = await client.options("/v1/traces", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Vary" not in response.headers


# --------------------------------------------------------------------------- limits
async def test_body_too_large_is_413(serve: Factory) -> None:
    client = await serve(token=TOKEN, max_body_bytes=1024)
    response = await client.post("/api/events", data=b"[" + b"0," * 1000 + b"0]",
                                 headers={**bearer(), "Content-Type": "application/json"})
    body = await assert_json_error(response, 413, "request body is larger than 1024 bytes")
    assert body
    await assert_healthy(client)

    async def chunks() -> Any:  # no Content-Length: aiohttp's client_max_size stops it
        for _ in range(10):
            yield b" " * 512

    response = await client.post("/api/events", data=chunks(),
                                 headers={**bearer(), "Content-Type": "application/json"})
    assert response.status == 413
    await assert_healthy(client)


def test_body_limit_precheck_does_not_read_the_body() -> None:
    config = SecurityConfig(max_body_bytes=1000)
    with threaded_server(config) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /api/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000000\r\n\r\n[")
            status, head, body = read_response(sock)  # answered without waiting for 100 MB
        assert status == 413
        assert b"application/json" in head
        assert b"larger than 1000 bytes" in body
        assert status_of(port, "GET", "/health") == 200


async def test_ingest_rate_limit_is_429_with_retry_after(serve: Factory) -> None:
    client = await serve(ingest_events_per_second=10, ingest_burst_events=20)
    response = await client.post("/api/events", json=[{}] * 25)  # one batch beyond the burst: admitted
    assert response.status == 200
    for path, kwargs in (("/api/events", {"json": [{}]}),
                         ("/v1/traces", {"data": b"{}", "headers": {"Content-Type": "application/json"}})):
        response = await client.post(path, **kwargs)
        body = await assert_json_error(response, 429, "rate limit exceeded")
        assert int(response.headers["Retry-After"]) >= 1
        assert body["retry_after_seconds"] > 0
        assert "10 events/s" in body["detail"]
    # Reads are not limited, and the server stays healthy.
    assert (await client.get("/api/events")).status == 200
    await assert_healthy(client)
    stats = (await (await client.get("/stats")).json())["security"]
    assert stats["ingest_rate_exceeded"] == 2


async def test_ingest_check_in_the_handler_refuses_when_empty(serve: Factory) -> None:
    client = await serve(ingest_events_per_second=1, ingest_burst_events=1)
    # Concurrent requests: whichever comes second is refused, by the middleware's pre-check or, when
    # it passed that before the first was charged, by check_ingest in the handler.
    first, second = await asyncio.gather(client.post("/api/events", json=[{}] * 5),
                                         client.post("/api/events", json=[{}] * 5))
    assert sorted([first.status, second.status]) == [200, 429]
    # check_ingest on its own, after the middleware let a request through.
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: {
        "peername": ("127.0.0.1", 40000)}.get(name, default)
    request = make_mocked_request("POST", "/api/events", app=client.app, transport=transport)
    refused = check_ingest(request, 1)
    assert refused is not None and refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1


async def test_websocket_connections_per_address_is_429(serve: Factory) -> None:
    client = await serve(token=TOKEN, max_connections_per_ip=2)
    first = await client.ws_connect("/ws", headers=bearer())
    second = await client.ws_connect("/ws", headers=bearer())
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws", headers=bearer())
    assert info.value.status == 429
    assert info.value.headers is not None and int(info.value.headers["Retry-After"]) >= 1
    assert client.app[SECURITY_KEY].connections.count("127.0.0.1") == 2
    await first.close()
    for _ in range(200):  # the server releases the slot when its handler returns
        if client.app[SECURITY_KEY].connections.count("127.0.0.1") < 2:
            break
        await asyncio.sleep(0.01)
    async with client.ws_connect("/ws", headers=bearer()) as third:
        await third.send_str("again")
        assert (await third.receive_str(timeout=5)) == "again"
    await second.close()
    await assert_healthy(client)


async def test_websocket_message_rate_closes_with_1008(serve: Factory) -> None:
    client = await serve(ws_messages_per_second=1, ws_message_burst=3)
    async with client.ws_connect("/ws") as ws:
        for i in range(10):
            await ws.send_str(str(i))
        echoed = []
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type is not WSMsgType.TEXT:
                break
            echoed.append(msg.data)
        assert echoed == ["0", "1", "2"]
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
        assert ws.close_code == 1008
        assert msg.extra == "message rate exceeded"
    await assert_healthy(client)
    async with client.ws_connect("/ws") as ws:  # a new connection has a fresh budget
        await ws.send_str("fresh")
        assert (await ws.receive_str(timeout=5)) == "fresh"


# --------------------------------------------------------------------------- headers
async def test_security_headers(serve: Factory) -> None:
    client = await serve(token=TOKEN)
    response = await client.get("/dashboard")
    assert response.status == 200
    assert response.content_type == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert csp == PAGE_CSP
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "Strict-Transport-Security" not in response.headers
    for path in ("/dashboard", "/health", "/static/app.js", "/stats", "/nope"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        if path != "/dashboard":
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'"), path


def test_the_real_page_has_no_inline_script_or_style() -> None:
    page = Path(__file__).resolve().parent.parent / "web" / "index.html"
    html = page.read_text()
    assert "<script>" not in html and " style=" not in html and "<style" not in html
    assert " on" + "click=" not in html.lower()


# --------------------------------------------------------------------------- TLS
@pytest.fixture(name="certificate", scope="module")
def fixture_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate"
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost", "-days", "1",
         "-addext", "subjectAltName=DNS:localhost,DNS:dash.test,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


async def test_tls_serves_https_and_wss(
    aiohttp_server: AiohttpServer, web_dir: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    config = SecurityConfig(token=TOKEN, tls_certfile=cert, tls_keyfile=key, allowed_hosts=("dash.test",))
    server_context = config.ssl_context()
    assert server_context is not None
    server = await aiohttp_server(make_app(config, web_dir), ssl=server_context)
    client_context = ssl.create_default_context(cafile=str(cert))
    base = f"https://localhost:{server.port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{base}/stats", ssl=client_context) as response:
            assert response.status == 401
        async with session.get(f"{base}/stats", ssl=client_context, headers=bearer()) as response:
            assert response.status == 200
            assert "Strict-Transport-Security" not in response.headers  # never on loopback names
        async with session.get(f"{base}/health", ssl=client_context,
                               headers={"Host": f"dash.test:{server.port}"}) as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        async with session.get(f"{base}/dashboard?token={TOKEN}", ssl=client_context,
                               allow_redirects=False) as response:
            assert response.status == 303
            assert "; secure" in response.headers["Set-Cookie"].lower()
        async with session.ws_connect(f"wss://localhost:{server.port}/ws", ssl=client_context,
                                      headers={**bearer(), "Origin": base}) as ws:
            await ws.send_str("over tls")
            assert (await ws.receive_str(timeout=5)) == "over tls"
        with pytest.raises(aiohttp.ClientConnectorError):  # an untrusting client refuses the certificate
            await session.get(f"{base}/health", ssl=ssl.create_default_context())


def test_ssl_context_errors_name_the_file(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    assert SecurityConfig().ssl_context() is None
    missing = tmp_path / "missing.pem"
    with pytest.raises(TLSConfigError, match=f"tls_certfile {missing}: cannot read"):
        SecurityConfig(tls_certfile=missing, tls_keyfile=key).ssl_context()
    with pytest.raises(TLSConfigError, match=f"tls_keyfile {missing}: cannot read"):
        SecurityConfig(tls_certfile=cert, tls_keyfile=missing).ssl_context()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TLSConfigError, match=f"tls_certfile {garbage}: not a PEM certificate"):
        SecurityConfig(tls_certfile=garbage, tls_keyfile=key).ssl_context()
    with pytest.raises(TLSConfigError, match=f"tls_keyfile {garbage}"):
        SecurityConfig(tls_certfile=cert, tls_keyfile=garbage).ssl_context()
    with pytest.raises(TLSConfigError, match=f"tls_keyfile {cert}"):  # no key in the cert file
        SecurityConfig(tls_certfile=cert).ssl_context()
    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    assert isinstance(SecurityConfig(tls_certfile=combined).ssl_context(), ssl.SSLContext)


# --------------------------------------------------------------------------- configuration
def test_config_defaults_leave_room_for_one_team() -> None:
    config = SecurityConfig()
    assert config.token is None and not config.auth_required
    assert config.loopback and not config.tls_enabled
    assert config.max_body_bytes == 16 * 1024 * 1024
    assert config.max_ws_message_bytes == 64 * 1024
    assert config.max_connections_per_ip >= 2000
    assert config.ingest_events_per_second >= 200_000
    assert config.ws_messages_per_second >= 100 and config.ws_message_burst >= 200
    assert config.allowed_origins == ()


@pytest.mark.parametrize(("field", "value"), [
    ("token", "short"), ("token", "has space in it"), ("token", "x" * 2000), ("token", 12345678),
    ("allowed_origins", "https://one.example"), ("allowed_origins", ("*",)),
    ("allowed_origins", ("ftp://x.example",)), ("allowed_origins", ("https://x.example/path",)),
    ("allowed_origins", ("x.example",)), ("allowed_hosts", ("host:80",)), ("allowed_hosts", ("::1",)),
    ("bind_host", None), ("max_body_bytes", 0), ("max_body_bytes", True), ("max_body_bytes", 1.5),
    ("max_ws_message_bytes", -1), ("ws_messages_per_second", 0), ("ws_messages_per_second", math.inf),
    ("ws_message_burst", 0), ("max_connections_per_ip", 0), ("ingest_events_per_second", -5),
    ("ingest_events_per_second", math.nan), ("ingest_burst_events", 0), ("tls_certfile", ""),
    ("tls_keyfile", "key.pem"), ("token_generated", True), ("failed_decode_cost_events", 0),
    ("header_timeout_seconds", 0), ("header_timeout_seconds", math.inf), ("keepalive_timeout_seconds", -1),
    ("max_http_connections_per_ip", 0), ("max_http_connections", 1.5),
])
def test_config_rejects_bad_values_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        SecurityConfig(**{field: value})


def test_config_normalizes_and_is_frozen() -> None:
    config = SecurityConfig(
        allowed_origins=["HTTPS://Dash.Example.com:443", "http://x.example:8080/", "https://dash.example.com"],
        allowed_hosts=["Proxy.Local", "[::1]"],
    )
    assert config.allowed_origins == ("https://dash.example.com", "http://x.example:8080")
    assert config.allowed_hosts == ("proxy.local", "::1")
    with pytest.raises(AttributeError):
        config.token = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SecurityConfig("positional")  # type: ignore[misc]


def test_from_options_token_sources() -> None:
    env = {TOKEN_ENV: TOKEN}
    assert SecurityConfig.from_options(environ={}).token is None
    assert SecurityConfig.from_options(environ=env).token == TOKEN
    assert SecurityConfig.from_options(token="from-the-flag", environ=env).token == "from-the-flag"
    assert SecurityConfig.from_options(environ={TOKEN_ENV: "  "}).token is None
    with pytest.raises(ValueError, match=TOKEN_ENV):
        SecurityConfig.from_options(environ={TOKEN_ENV: "bad"})
    with pytest.raises(ValueError, match="token"):
        SecurityConfig.from_options(token="bad", environ={})
    for host in ("127.0.0.1", "localhost", "::1", "127.1.2.3"):
        config = SecurityConfig.from_options(bind_host=host, environ={})
        assert config.token is None and not config.token_generated and config.loopback
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "dashboard.example.com"):
        config = SecurityConfig.from_options(bind_host=host, environ={})
        assert config.token_generated and config.token and len(config.token) >= 40
        assert not config.loopback
    other = SecurityConfig.from_options(bind_host="0.0.0.0", environ={})
    assert other.token != config.token
    config = SecurityConfig.from_options(bind_host="0.0.0.0", environ=env)
    assert config.token == TOKEN and not config.token_generated
    config = SecurityConfig.from_options(bind_host="0.0.0.0", no_token=True, environ=env)
    assert config.token is None
    with pytest.raises(ValueError, match="no_token"):
        SecurityConfig.from_options(token=TOKEN, no_token=True, environ={})
    config = SecurityConfig.from_options(max_body_bytes=1234, ingest_events_per_second=5, environ={})
    assert config.max_body_bytes == 1234 and config.ingest_events_per_second == 5.0
    with pytest.raises(TypeError):
        SecurityConfig.from_options(max_bodybytes=1, environ={})


def test_login_url() -> None:
    assert SecurityConfig().login_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/dashboard"
    config = SecurityConfig(token="a.b_c~d-e")
    assert config.login_url("http://host:8000/") == "http://host:8000/dashboard?token=a.b_c~d-e"


def test_host_and_origin_parsing() -> None:
    assert parse_host_header("LocalHost:8000") == ("localhost", 8000)
    assert parse_host_header("[::1]:9") == ("::1", 9)
    assert parse_host_header("[::1]") == ("::1", None)
    assert parse_host_header("example.com.") == ("example.com", None)
    for bad in ("", "a b", "[::1", "[zz]:1", "host:", "host:1:2", "host:65536", "::1", "h@st", "host:+1"):
        assert parse_host_header(bad) is None, bad
    assert parse_origin("http://localhost") == ("http", "localhost", 80)
    assert parse_origin("https://[::1]:8443") == ("https", "::1", 8443)
    for bad in ("null", "file://", "http://", "http://a/b", "javascript:alert(1)", "http://u@h", "http://h:0"):
        assert parse_origin(bad) is None, bad
    assert is_loopback_host("[::1]") and is_loopback_host("127.9.9.9") and is_loopback_host("localhost.")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("localhost.evil") \
        and not is_loopback_host("::ffff:8.8.8.8")


# --------------------------------------------------------------------------- rate limiters (unit)
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.wait_seconds() == pytest.approx(0.1)
    assert bucket.wait_seconds(6) == math.inf
    clock.now += 0.25
    assert bucket.take(2) and not bucket.take(1)
    clock.now += 100
    assert bucket.tokens == 5  # capped at the burst
    bucket.charge(15)
    assert bucket.tokens == -10 and not bucket.take()
    clock.now += 1.5
    assert bucket.tokens == pytest.approx(5) and bucket.idle_full()
    for rate, burst in ((0, 1), (1, 0), (math.inf, 1), (1, math.nan)):
        with pytest.raises(ValueError):
            TokenBucket(rate, burst)


def test_ingest_rate_limiter_debt_and_bounded_memory() -> None:
    clock = FakeClock()
    limiter = IngestRateLimiter(rate=100, burst=200, max_addresses=3, clock=clock)
    assert limiter.take("a", 1000) == 0.0  # a batch beyond the burst is admitted once...
    wait = limiter.take("a", 1)
    assert wait == pytest.approx(8.0)  # ...and the debt (800) is paid back at 100/s
    assert limiter.retry_after("a") == pytest.approx(8.0)
    assert limiter.take("b", 1) == 0.0  # other addresses are not affected
    clock.now += 8.01
    assert limiter.take("a", 1) == 0.0
    for address in ("c", "d", "e"):
        limiter.take(address, 1)
    assert len(limiter) == 3  # the least recently used were forgotten
    assert limiter.retry_after("never-seen") == 0.0


def test_ingest_rate_sustains_200k_events_per_second_by_default() -> None:
    clock = FakeClock()
    config = SecurityConfig()
    limiter = IngestRateLimiter(config.ingest_events_per_second, config.ingest_burst_events, clock=clock)
    for _ in range(100):  # 10 s of 2,000-event batches, 100 per second
        for _ in range(100):
            assert limiter.take("10.0.0.1", 2000) == 0.0
        clock.now += 1.0


def test_connection_limiter() -> None:
    limiter = ConnectionLimiter(2)
    assert limiter.acquire("a") and limiter.acquire("a") and not limiter.acquire("a")
    assert limiter.acquire("b") and limiter.total == 3 and limiter.count("a") == 2
    limiter.release("a")
    limiter.release("a")
    limiter.release("a")  # more releases than acquires are ignored
    assert limiter.count("a") == 0 and len(limiter) == 1 and limiter.total == 1
    assert limiter.acquire(None) and limiter.count(None) == 1
    with pytest.raises(ValueError):
        ConnectionLimiter(0)


def test_access_log_redacts_the_query_token(caplog: pytest.LogCaptureFixture) -> None:
    access = logging.getLogger("test_security.access")
    log = security.RedactingAccessLogger(access, '%a "%r" %s')
    with caplog.at_level(logging.INFO, logger="test_security.access"):
        log.log(make_mocked_request("GET", f"/ws?limit=1&token={TOKEN}"), web.Response(), 0.01)
        log.log(make_mocked_request("GET", "/health?x=1"), web.Response(), 0.01)
    lines = [record.getMessage() for record in caplog.records]
    assert TOKEN not in "\n".join(lines)
    assert '"GET /ws?limit=1&token=*** HTTP/1.1" 200' in lines[0]
    assert '"GET /health?x=1 HTTP/1.1" 200' in lines[1]


def test_retry_after_header() -> None:
    assert retry_after_header(0.001) == "1"
    assert retry_after_header(2.1) == "3"
    assert retry_after_header(math.inf) == "60"


async def test_helpers_without_install_are_no_ops(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        guard = ws_rate_guard(request)
        assert all(guard.allow() for _ in range(10_000))
        assert check_ingest(request, 10**9) is None
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    assert (await client.get("/")).status == 200
    assert security.security_middleware(SecurityConfig()) is not None


# --------------------------------------------------------------------------- property-based
@contextlib.contextmanager
def threaded_server(config: SecurityConfig) -> Iterator[int]:
    """The test app on 127.0.0.1 in its own thread and event loop; yields the port."""
    web_dir = Path(tempfile.mkdtemp()).resolve()
    (web_dir / "index.html").write_text(PAGE)
    (web_dir / "app.js").write_text("export {};\n")
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        runner = web.AppRunner(make_app(config, web_dir), handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            box["port"] = runner.addresses[0][1]
            box["stop"] = stop = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the test server did not start"
        yield box["port"]
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        shutil.rmtree(web_dir, ignore_errors=True)


def read_response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ")
    assert len(parts) >= 2 and parts[0].startswith(b"HTTP/1."), data[:200]
    return int(parts[1]), head, body


def status_of(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return read_response(sock)[0]


class _ErrorLog(logging.Handler):
    """Collects ERROR records, except aiohttp's own for malformed HTTP framing.

    aiohttp's protocol logs a request its HTTP parser rejects (a bad Content-Length, say) at ERROR and
    answers 400 before any application code runs; those are not failures of ours.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            self.records.append(record)


_URL_TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"),
                    max_size=40)
_HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255,
                                               exclude_characters="\x7f"), max_size=60)
_HEADER_NAMES = st.sampled_from(["Host", "Origin", "Authorization", "Cookie", "Upgrade", "Connection",
                                 "Content-Type", "Content-Length", "Access-Control-Request-Method",
                                 "Sec-WebSocket-Version", "Sec-WebSocket-Key", "X-Forwarded-For",
                                 "Range", "Accept-Encoding"])
_INTERESTING = {
    "Host": st.sampled_from(["localhost", "127.0.0.1:1", "[::1]", "evil.example", "", "[::1", "a:b:c"]),
    "Origin": st.sampled_from(["null", "http://localhost", "https://evil.example", "http://[::1]:1", "x"]),
    "Authorization": st.sampled_from([f"Bearer {TOKEN}", "Bearer ", "Bearer x y", "Basic abc", "Bearer"]),
    "Cookie": st.sampled_from([f"{COOKIE_NAME}={TOKEN}", f'{COOKIE_NAME}="{TOKEN}', "a=b; ;;=", "=;"]),
    "Upgrade": st.sampled_from(["websocket", "WebSocket, h2c", "h2c"]),
    "Content-Length": st.sampled_from(["0", "99999999999", "-1", "x"]),
}


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH", "FOO"]))
    path = draw(st.sampled_from(["/", "/health", "/stats", "/dashboard", "/static/", "/static/app.js", "/ws",
                                 "/api/events", "/v1/traces", "/api/auth", "/metrics", "//", "/%2e%2e/"]))
    path += draw(_URL_TEXT).replace("?", "")
    if draw(st.booleans()):
        path += "?" + draw(st.sampled_from(["token=", f"token={TOKEN}", "token=%ff%fe", "limit=1&token=x&",
                                            "%zz", "a=%"])) + draw(_URL_TEXT)
    header_lines = []
    for name in draw(st.lists(_HEADER_NAMES, max_size=6)):
        value = draw(_INTERESTING.get(name, _HEADER_VALUE) | _HEADER_VALUE)
        header_lines.append(f"{name}: {value}")
    if not any(line.lower().startswith("host:") for line in header_lines):
        header_lines.append("Host: localhost")
    header_lines.append("Connection: close")
    head = f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(header_lines) + "\r\n\r\n"
    body = b""
    for line in header_lines:  # send the body a Content-Length promises, so no request is left waiting
        name, _, value = line.partition(": ")
        if name.lower() == "content-length" and value.strip().isascii() and value.strip().isdigit():
            body = b"x" * min(int(value.strip()), 8192)
            break
    return head.encode("latin-1") + body


def test_any_request_gets_an_answer_below_500_and_logs_no_error() -> None:
    config = SecurityConfig(token=TOKEN, allowed_origins=("http://localhost",), max_body_bytes=4096)
    errors = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        with threaded_server(config) as port:

            @fuzz_settings(250, derandomize=True)
            @given(request=raw_requests())
            def check(request: bytes) -> None:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(request)  # no half-close: aiohttp drops the answer to a half-closed peer
                    status, _, _ = read_response(sock)
                assert 100 <= status < 500, (status, request[:300])
                assert not errors.records, [r.getMessage() for r in errors.records]

            check()
            assert status_of(port, "GET", "/health") == 200
    finally:
        root.removeHandler(errors)


# ------------------------------------------------------------------------------ log redaction
def _capture(handler_filter: logging.Filter | None) -> tuple[logging.Handler, list[str]]:
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    if handler_filter is not None:
        handler.addFilter(handler_filter)
    return handler, lines


def test_a_redacting_filter_on_a_handler_sees_child_loggers_records_on_a_logger_it_does_not() -> None:
    from otel_dashboard.server.security.redact import RedactingFilter

    parent = logging.getLogger("redaction_test_parent")
    child = logging.getLogger("redaction_test_parent.child")
    parent.setLevel(logging.INFO)
    on_logger, logger_lines = _capture(None)
    redacting = RedactingFilter([TOKEN])
    parent.addFilter(redacting)
    parent.addHandler(on_logger)
    try:
        child.info("referer %s", f"http://x/dashboard?token={TOKEN}")
        # The reason the server puts it on handlers: a logger's filter misses its children's records.
        assert TOKEN in logger_lines[-1]
    finally:
        parent.removeFilter(redacting)
        parent.removeHandler(on_logger)
    on_handler, lines = _capture(redacting)
    parent.addHandler(on_handler)
    try:
        child.info("referer %s", f"http://x/dashboard?token={TOKEN}")
        child.info("headers %r", {"Authorization": "Bearer other-secret-value",
                                  "Cookie": "otel_dashboard_token=cookie-secret-value"})
        child.info("a literal %s in a path", TOKEN, extra={"request_header": {"Referer": TOKEN}})
        try:
            raise ValueError(f"b'GET /?token={TOKEN}\\x01 HTTP/1.1'")
        except ValueError:
            child.exception("Error handling request from %s", "127.0.0.1")
    finally:
        parent.removeHandler(on_handler)
    text = "\n".join(lines)
    assert TOKEN not in text
    assert "other-secret-value" not in text and "cookie-secret-value" not in text
    assert "token=***" in text and "Bearer ***" in text and "otel_dashboard_token=***" in text
    assert "Traceback" in text and "ValueError" in text  # the traceback is kept, redacted


def test_install_log_redaction_covers_aiohttp_loggers_and_root_handlers() -> None:
    from otel_dashboard.server.security.redact import install_log_redaction, redact

    root = logging.getLogger()
    handler, lines = _capture(None)
    root.addHandler(handler)
    try:
        install_log_redaction(["install-test-token-1234"])
        logging.getLogger("aiohttp.server").error("bad line %s", "GET /?x=install-test-token-1234")
        logging.getLogger("otel_dashboard.some.new.module").warning("token=abcdef in %s", "a URL")
    finally:
        root.removeHandler(handler)
    assert lines and all("install-test-token-1234" not in line and "abcdef" not in line for line in lines)
    assert redact("a=1&token=xyz&b=2") == "a=1&token=***&b=2"


# ------------------------------------------------------------------------------ HTTP connection tracker
class _FakeTransport:
    def __init__(self, address: str) -> None:
        self.address = address
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return (self.address, 1234) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def test_tracker_deadlines_and_caps_with_a_fake_clock() -> None:
    from otel_dashboard.server.security.connections import HttpConnectionTracker

    now = [100.0]
    tracker = HttpConnectionTracker(header_timeout_seconds=10, keepalive_timeout_seconds=60,
                                    max_per_address=2, max_total=3, clock=lambda: now[0])
    a1, a2, a3, b1 = (_FakeTransport(a) for a in ("a", "a", "a", "b"))
    c1 = tracker.opened(a1)  # type: ignore[arg-type]
    c2 = tracker.opened(a2)  # type: ignore[arg-type]
    assert c1 is not None and c2 is not None
    tracker._request_started(c2, websocket=False)  # busy: never evicted nor timed out
    # Over the per-address cap: the oldest that is not busy (c1) makes room.
    c3 = tracker.opened(a3)  # type: ignore[arg-type]
    assert c3 is not None and a1.closed and not a2.closed
    assert tracker.stats()["http_connections_evicted"] == 1
    tracker._request_started(c3, websocket=False)
    # Over again, every one of them busy: the new one gets a 503 and is closed.
    refused = _FakeTransport("a")
    assert tracker.opened(refused) is None  # type: ignore[arg-type]
    assert refused.closed and refused.written.startswith(b"HTTP/1.1 503")
    assert tracker.stats()["http_connections_refused"] == 1
    # A WebSocket is not counted: room for another address within the total.
    tracker._request_finished(c3)
    tracker._request_started(c3, websocket=True)
    assert tracker.open_connections == 1
    d1 = tracker.opened(b1)  # type: ignore[arg-type]
    assert d1 is not None
    now[0] += 10.5  # d1 sent no header in time; c2 (busy) and c3 (WebSocket) are left alone
    tracker.sweep()
    assert b1.closed and not a2.closed and not a3.closed
    assert tracker.stats()["http_header_timeouts"] == 1
    tracker._request_finished(c2)  # idle from now: the keep-alive deadline
    now[0] += 30
    tracker.received(c2)  # the first byte of its next request: the header deadline instead
    now[0] += 10.5
    tracker.sweep()
    assert a2.closed and tracker.stats()["http_header_timeouts"] == 2
    tracker.lost(c2)  # idempotent after the close
    assert tracker.open_connections == 0
    with pytest.raises(ValueError, match="header_timeout_seconds"):
        HttpConnectionTracker(header_timeout_seconds=0, keepalive_timeout_seconds=1, max_per_address=1,
                              max_total=1)
