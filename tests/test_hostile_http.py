"""Hostile HTTP against a real ``otel-dashboard serve``: content codings, garbage floods, half-sent
requests, caching, and the token in log lines (issue 14, attack 4 and the HTTP items of attack 7).

Each test starts its own server (``hostile_support.serve_process``) and attacks it over raw sockets on
loopback, then asserts the bound: a fast 4xx, a 429, connections closed by their deadline or the cap
while ``/health`` keeps answering, ``Cache-Control: no-store`` on data, no token in stderr.
"""

from __future__ import annotations

import base64
import gzip
import os
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from hostile_support import ServeProcess, get_json, health_latency_millis, http, serve_process

TOKEN = "hostile-http-token-0123456789"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
HEADER_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 2.0


def _security(server: ServeProcess, token: str | None = None) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = http("GET", server.url + "/stats", headers=headers)
    assert status == 200, body[:300]
    return dict(orjson.loads(body)["security"])


def _connect(server: ServeProcess, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset) within ``wait`` seconds; its answer, if
    any (a 503 from the cap), is read and skipped."""
    sock.settimeout(wait)
    deadline = time.monotonic() + wait
    try:
        while True:
            if not sock.recv(65536):
                return True
            sock.settimeout(max(0.01, deadline - time.monotonic()))
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


# --------------------------------------------------------------------------- attack 4: content codings
def _layers(payload: bytes, n: int) -> bytes:
    for _ in range(n):
        payload = gzip.compress(payload, compresslevel=1)
    return payload


@pytest.mark.parametrize("content_type", [JSON, PROTOBUF])
def test_repeated_content_encoding_is_a_fast_415(tmp_path: Path, content_type: str) -> None:
    # The attack: a ~26 KB body gzipped layer upon layer, Content-Encoding: gzip repeated; each layer
    # used to be a full inflation (seconds of CPU). Now the header alone refuses it.
    body = _layers(b"{}" if content_type == JSON else b"", 1200)
    assert 20_000 < len(body) < 40_000
    encoding = ", ".join(["gzip"] * 1200)
    with serve_process(tmp_path, "--db", ":memory:") as server:
        started = time.perf_counter()
        status, headers, answer = http("POST", server.url + "/v1/traces", body,
                                       {"Content-Type": content_type, "Content-Encoding": encoding})
        elapsed = time.perf_counter() - started
        assert status == 415
        assert elapsed < 1.0, elapsed
        assert b"Content-Encoding" in answer  # a google.rpc.Status in the request's encoding
        if content_type == JSON:
            assert "Content-Encoding" in orjson.loads(answer)["message"]
        assert headers["Cache-Control"] == "no-store"
        # One layer still works, and deflate too.
        one = gzip.compress(b"{}")
        assert http("POST", server.url + "/v1/traces", one,
                    {"Content-Type": JSON, "Content-Encoding": "gzip"})[0] == 200
        # POST /api/events takes no coding at all: 415 naming the header.
        status, _, answer = http("POST", server.url + "/api/events", one,
                                 {"Content-Type": JSON, "Content-Encoding": "gzip, gzip"})
        assert status == 415
        assert orjson.loads(answer)["parameter"] == "Content-Encoding"
        health = health_latency_millis(server.url, samples=5)
        assert health[-1] < 500, health


# --------------------------------------------------------------------------- attack 4: failed decodes
@pytest.mark.parametrize("garbage", ["json", "gzip"])
def test_a_flood_of_garbage_meets_the_429(tmp_path: Path, garbage: str) -> None:
    # Bodies that fail to decode used to be free for the rate limit; now each is charged at least
    # --failed-decode-cost events (or one per 64 bytes examined), so a flood meets the 429 as a
    # flood of spans does, and valid spans from that address wait too.
    if garbage == "json":
        body, headers = b"{" * 20_000, {"Content-Type": JSON}
    else:
        body = b"\x1f\x8b" + os.urandom(20_000)
        headers = {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
    with serve_process(tmp_path, "--db", ":memory:", "--ingest-rate", "1000") as server:
        statuses = []
        for _ in range(30):
            status, answer_headers, _ = http("POST", server.url + "/v1/traces", body, headers)
            statuses.append(status)
            if status == 429:
                assert int(answer_headers["Retry-After"]) >= 1
                break
        assert statuses[0] == 400
        assert statuses[-1] == 429, statuses
        assert len(statuses) <= 5, statuses  # burst 2000 events, >= 1000 per failed decode
        # The same bucket: valid spans from this address are refused too while it is in debt.
        assert http("POST", server.url + "/v1/traces", b"{}", {"Content-Type": JSON})[0] == 429
        # /api/events garbage is charged as well.
        assert http("POST", server.url + "/api/events", b"[[[", {"Content-Type": JSON})[0] == 429
        numbers = _security(server)
        assert numbers["ingest_failed_decodes"] >= 2
        assert numbers["ingest_rate_exceeded"] >= 1


# --------------------------------------------------------------------------- attack 7: half-sent requests
@contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _allow_open_files(count: int) -> None:
    """This test process holds ``count`` client sockets at once: raise its soft limit if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip(f"needs {count} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def test_half_sent_requests_are_closed_and_capped(tmp_path: Path) -> None:
    # 1,500 requests whose header never ends used to stay open for ever. Now a connection gets
    # --header-timeout to send its header, and beyond --max-http-connections-per-ip the oldest
    # waiting one makes room for the new one: /health keeps answering throughout.
    _allow_open_files(2048)
    with serve_process(tmp_path, "--db", ":memory:", "--header-timeout", str(HEADER_TIMEOUT),
                       "--max-http-connections-per-ip", "200") as server, _sockets() as opened:
        started = time.monotonic()
        for index in range(1500):
            sock = _connect(server)
            opened.append(sock)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Part: " + str(index).encode())
        opening = time.monotonic() - started
        silent = _connect(server)  # no byte at all: the same deadline
        opened.append(silent)
        health = health_latency_millis(server.url, samples=10)
        assert health[-1] < 500, health
        numbers = _security(server)
        assert numbers["open_http_connections"] <= 200
        # Those not evicted were held no longer than the header timeout (opening them takes longer).
        closed = numbers["http_connections_evicted"] + numbers.get("http_header_timeouts", 0)
        assert closed >= 1500 - 200, numbers
        # Every one of them is closed by now or within the header timeout (+ a sweep).
        wait_until = time.monotonic() + HEADER_TIMEOUT + 1.5
        still_open = [s for s in opened if not _closed_by_peer(s, max(0.01, wait_until - time.monotonic()))]
        assert not still_open, (len(still_open), opening)
        numbers = _security(server)
        assert numbers["http_header_timeouts"] >= 1
        assert numbers["http_connections_evicted"] + numbers["http_header_timeouts"] >= 1501
        assert numbers["open_http_connections"] <= 2  # this /stats request's own, at most
        assert server.alive()


def test_keepalive_idle_connections_are_closed_and_websockets_stay(tmp_path: Path) -> None:
    with serve_process(tmp_path, "--db", ":memory:", "--header-timeout", str(HEADER_TIMEOUT),
                       "--keepalive-timeout", str(KEEPALIVE_TIMEOUT),
                       "--max-http-connections-per-ip", "4") as server, _sockets() as opened:
        idle = _connect(server)
        opened.append(idle)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        # WebSockets are not idle HTTP: more of them than the HTTP cap, all kept past both deadlines.
        sockets = []
        for _ in range(6):
            ws = _connect(server)
            opened.append(ws)
            key = base64.b64encode(os.urandom(16))
            ws.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
            assert ws.recv(65536).startswith(b"HTTP/1.1 101"), "upgrade refused"
            sockets.append(ws)
        assert _closed_by_peer(idle, KEEPALIVE_TIMEOUT + 1.5)
        assert not any(_closed_by_peer(ws, 0.05) for ws in sockets)
        numbers = _security(server)
        assert numbers["http_idle_timeouts"] >= 1
        assert numbers["open_websocket_connections"] == 6
        assert numbers.get("http_connections_evicted", 0) == 0


def test_busy_connections_are_not_evicted_and_the_newest_gets_503(tmp_path: Path) -> None:
    # Over the cap with every connection busy (a request being handled), the new one is refused with
    # a 503 rather than cutting a request short.
    with serve_process(tmp_path, "--db", ":memory:", "--max-http-connections-per-ip", "2",
                       "--header-timeout", "5") as server, _sockets() as opened:
        for _ in range(2):  # bodies announced and never sent: busy in the handler's read
            sock = _connect(server)
            opened.append(sock)
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
            # The 100 comes from the request's task: its handler has started, the connection is busy.
            assert sock.recv(65536).startswith(b"HTTP/1.1 100")
            sock.sendall(b"{")
        time.sleep(0.1)
        status, headers, body = http("GET", server.url + "/health")
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert orjson.loads(body)["error"] == "too many open connections"
        for sock in opened:
            sock.close()
        time.sleep(0.3)
        assert http("GET", server.url + "/health")[0] == 200


# --------------------------------------------------------------------------- attack 7: caching
def test_data_answers_are_never_cached(tmp_path: Path) -> None:
    with serve_process(tmp_path, "--db", ":memory:") as server:
        for method, path, body, headers in (
            ("GET", "/health", None, {}),
            ("GET", "/stats", None, {}),
            ("GET", "/api/events?limit=1", None, {}),
            ("GET", "/api/events?limit=0", None, {}),  # a 400
            ("GET", "/api/runs", None, {}),
            ("GET", "/api/auth", None, {}),
            ("GET", "/api/traces/" + "ab" * 16, None, {}),  # a 404
            ("GET", "/no/such/route", None, {}),
            ("POST", "/v1/traces", b"{}", {"Content-Type": JSON}),
            ("POST", "/v1/traces", b"junk", {"Content-Type": PROTOBUF}),
            ("POST", "/api/events", b'{"events": []}', {"Content-Type": JSON}),
            ("GET", "/metrics", None, {}),
        ):
            status, answer_headers, _ = http(method, server.url + path, body, headers)
            assert answer_headers.get("Cache-Control") == "no-store", (path, status, answer_headers)
        # The page and its assets keep their own: revalidated, not forbidden.
        for path in ("/dashboard", "/static/app.js"):
            status, answer_headers, _ = http("GET", server.url + path)
            assert status == 200, path
            assert answer_headers["Cache-Control"] == "no-cache", path


# --------------------------------------------------------------------------- attack 7: the token in logs
def test_the_token_is_in_no_log_line(tmp_path: Path) -> None:
    # The token reached stderr in the access log's Referer and in aiohttp's malformed-request errors,
    # which quote the raw request line. Every line now goes through the redacting filter.
    with serve_process(tmp_path, "--db", ":memory:", "--token", TOKEN, "--log-level", "info") as server:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        referer = f"{server.url}/dashboard?token={TOKEN}"
        assert http("GET", server.url + "/health", headers={"Referer": referer})[0] == 200
        assert http("GET", server.url + f"/api/events?token={TOKEN}&limit=1")[0] == 200
        assert http("GET", server.url + f"/nothing/{TOKEN}", headers=auth)[0] == 404
        wrong = {"Authorization": "Bearer wrong-token-value"}
        assert http("GET", server.url + "/stats", headers=wrong)[0] == 401
        for raw in (
            f"GET /dashboard?token={TOKEN} HTTP/1.1 x\r\nHost: 127.0.0.1\r\n\r\n".encode(),  # bad status line
            f"GET /?token={TOKEN}\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),  # bad char in the query
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: otel_dashboard_token={TOKEN}\r\n"
            f"X-Bad: \x01{TOKEN}\r\n\r\n".encode(),  # a bad header after the cookie
        ):
            sock = _connect(server)
            sock.sendall(raw)
            assert sock.recv(65536).startswith(b"HTTP/1.0 400")
            sock.close()
        time.sleep(0.3)
        server.proc.terminate()
        server.proc.wait(10)
    log = (tmp_path / "serve.log").read_text()
    assert "Error handling request" in log  # the malformed requests were logged...
    assert "aiohttp.access" in log and "token=***" in log  # ...and so were the requests
    assert TOKEN not in log  # ...without the token


def test_stats_reports_the_connection_numbers(tmp_path: Path) -> None:
    with serve_process(tmp_path, "--db", ":memory:") as server:
        numbers = get_json(server.url + "/stats")["security"]
        assert numbers["open_http_connections"] >= 1
        assert numbers["open_websocket_connections"] == 0
