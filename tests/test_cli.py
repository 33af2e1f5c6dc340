"""The ``otel-dashboard`` command: ``serve`` as a real subprocess, argument errors, ``demo`` wiring."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_support import make_certificate, read_line_matching

from otel_dashboard import cli

pytestmark = pytest.mark.timeout(60)

STARTUP_TIMEOUT = 20.0  # a loaded 2-core machine can be slow to import aiohttp
STOP_TIMEOUT = 5.0
URL_RE = re.compile(r"otel-dashboard serving on (https?://\S+)/dashboard")
LOGIN_RE = re.compile(r"^open (https?://(\S+):(\d+)/dashboard\?token=(\S+))  to log in")
TOKEN = "cli-test-token-1234"
WEB_INDEX = Path(__file__).resolve().parent.parent / "web" / "index.html"


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `serve` keeps its database under the user's data directory by default; tests use their own.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otel_dashboard", *args]


def _read_url(proc: subprocess.Popen[str]) -> str:
    """The base URL the server prints, read from its stdout within STARTUP_TIMEOUT."""
    return _read_match(proc, URL_RE).group(1)


def _read_match(proc: subprocess.Popen[str], pattern: re.Pattern[str]) -> re.Match[str]:
    """The first line of the server's stdout matching ``pattern``, read within STARTUP_TIMEOUT."""
    return read_line_matching(proc, pattern, STARTUP_TIMEOUT)


def _status(url: str, headers: dict[str, str] | None = None, data: bytes | None = None,
            context: ssl.SSLContext | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers.get_content_type() == "application/json"
        return json.loads(response.read())


@pytest.fixture(name="serve")
def fixture_serve() -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OTEL_DASHBOARD_TOKEN", None)  # only the tests that set it have a token
        env.update(env_extra or {})
        proc = subprocess.Popen(
            _command("serve", "--port", "0", "--log-level", "warning", *args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        procs.append(proc)
        return proc, _read_url(proc)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_and_stops_cleanly_on_signal(serve: Any, sig: signal.Signals) -> None:
    proc, url = serve("--name", "Lab A", "--history", "50")
    assert url.startswith("http://127.0.0.1:")
    health = _get_json(url + "/health")
    assert health["status"] == "healthy" and health["reasons"] == [] and health["name"] == "Lab A"
    assert health["service"] == "otel-dashboard"
    with urllib.request.urlopen(url + "/dashboard", timeout=5) as response:
        assert response.status == 200
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_serve_with_a_price_file(serve: Any, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": [{"model": "my-llama", "input_per_mtok": 0.2, "output_per_mtok": 0.6}]}')
    proc, url = serve("--db", ":memory:", "--prices", str(prices))
    assert _get_json(url + "/health")["status"] == "healthy"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr


def test_serve_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            _command("serve", "--port", str(port)), capture_output=True, text=True, timeout=STARTUP_TIMEOUT
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_arguments_exit_2_as_a_process() -> None:
    proc = subprocess.run(_command("serve", "--port", "http"), capture_output=True, text=True,
                          timeout=STARTUP_TIMEOUT)
    assert proc.returncode == 2
    assert "--port" in proc.stderr and "not an integer" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--port", "65536"], "--port"),
        (["serve", "--history", "0"], "--history"),
        (["serve", "--history", "lots"], "--history"),
        (["serve", "--log-level", "loud"], "--log-level"),
        (["serve", "--host", ""], "--host"),
        (["serve", "--name", "x" * 201], "--name"),
        (["serve", "--colour"], "unrecognized"),
        (["demo", "--port", "x"], "--port"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2
    assert needle in capsys.readouterr().err


def test_demo_calls_run_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    async def fake_run_demo(host: str, port: int, *, prices: object = None, grpc_port: object = None) -> int:
        assert prices is None  # no --prices
        calls.append((host, port))
        return 0

    import otel_dashboard.demo

    monkeypatch.setattr(otel_dashboard.demo, "run_demo", fake_run_demo)
    assert cli.main(["demo", "--port", "8123", "--host", "127.0.0.2"]) == 0
    assert calls == [("127.0.0.2", 8123)]


def test_the_running_demo_is_healthy() -> None:
    # The demo's agents run, some slowly (past its 45 s stall threshold now and then): the server is
    # healthy all along, whatever its agents do (the original design's /health contract).
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OTEL_DASHBOARD_TOKEN", None)
    proc = subprocess.Popen(_command("demo", "--port", "0", "--log-level", "warning"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = _read_match(proc, re.compile(r"open (http://\S+)/dashboard")).group(1)
        statuses = set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            health = _get_json(url + "/health")
            statuses.add((health["status"], tuple(health["reasons"])))
            time.sleep(0.2)
        assert statuses == {("healthy", ())}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=STOP_TIMEOUT + 5)


# ----------------------------------------------------------------------------------------- security
def test_serve_with_a_token_requires_it(serve: Any) -> None:
    proc, url = serve("--db", ":memory:", "--token", TOKEN)
    assert _status(url + "/health") == 200
    assert _status(url + "/stats") == 401
    assert _status(url + "/stats", {"Authorization": f"Bearer {TOKEN}"}) == 200
    assert _status(url + "/stats", {"Authorization": "Bearer wrong-token-here"}) == 401
    assert _status(f"{url}/api/events?token={TOKEN}") == 200
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr
    assert TOKEN not in stdout + stderr  # a token the user chose is never printed


def test_serve_takes_the_token_from_the_environment(serve: Any) -> None:
    _, url = serve("--db", ":memory:", env_extra={"OTEL_DASHBOARD_TOKEN": TOKEN})
    assert _status(url + "/stats") == 401
    assert _status(url + "/stats", {"Authorization": f"Bearer {TOKEN}"}) == 200


def test_serve_on_all_interfaces_generates_a_token_and_prints_the_login_url(serve: Any) -> None:
    # Listening on 0.0.0.0 is fine here: the test only ever connects through 127.0.0.1.
    proc, url = serve("--db", ":memory:", "--host", "0.0.0.0")
    assert url.startswith("http://0.0.0.0:")
    login = _read_match(proc, LOGIN_RE)
    host, port, token = login.group(2), int(login.group(3)), login.group(4)
    assert host == socket.gethostname() and host != "0.0.0.0"
    assert len(token) >= 32
    local = f"http://127.0.0.1:{port}"
    assert _status(local + "/health") == 200
    assert _status(local + "/stats") == 401
    assert _status(local + "/stats", {"Authorization": f"Bearer {token}"}) == 200
    # The login URL itself: 303 to /dashboard with the cookie, the token no longer in the URL.
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(f"{local}/dashboard?token={token}", timeout=5)
    assert answer.value.code == 303
    assert answer.value.headers["Location"] == "/dashboard"
    assert f"otel_dashboard_token={token}" in answer.value.headers["Set-Cookie"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_serve_with_tls_and_limits(serve: Any, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    proc, url = serve("--db", ":memory:", "--certfile", str(cert), "--keyfile", str(key),
                      "--max-body-bytes", "2048", "--ingest-rate", "5", "--allowed-origin", "https://ops.example")
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(cert))
    assert _status(url + "/health", context=context) == 200
    json_type = {"Content-Type": "application/json"}
    event = b'{"event_type": "error_occurred", "data": {"error_message": "x"}}'
    assert _status(url + "/api/events", json_type, b"[" + b" " * 3000 + b"]", context) == 413
    batch = b'{"events": [' + b",".join([event] * 12) + b"]}"
    assert _status(url + "/api/events", json_type, batch, context) == 200  # over the burst of 10, once
    assert _status(url + "/api/events", json_type, event, context) == 429
    foreign = {**json_type, "Origin": "https://evil.example"}
    assert _status(url + "/api/events", foreign, event, context) == 403
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr


@pytest.mark.parametrize("which", ["certfile", "keyfile"])
def test_serve_with_a_missing_tls_file_exits_1_naming_it(tmp_path: Path, which: str) -> None:
    cert, key = make_certificate(tmp_path)
    missing = tmp_path / "missing.pem"
    files = {"certfile": cert, "keyfile": key, which: missing}
    proc = subprocess.run(
        _command("serve", "--db", ":memory:", "--certfile", str(files["certfile"]),
                 "--keyfile", str(files["keyfile"])),
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT,
    )
    assert proc.returncode == 1
    assert str(missing) in proc.stderr and "cannot read" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--token", "short"], "--token"),
        (["serve", "--token", "has space in it"], "--token"),
        (["serve", "--token", "a-long-enough-token", "--no-token"], "not allowed with"),
        (["serve", "--allowed-origin", "*"], "--allowed-origin"),
        (["serve", "--allowed-origin", "ftp://x.example"], "--allowed-origin"),
        (["serve", "--allowed-host", "a.example:80"], "--allowed-host"),
        (["serve", "--keyfile", "key.pem"], "--keyfile"),
        (["serve", "--max-body-bytes", "10"], "--max-body-bytes"),
        (["serve", "--max-connections-per-ip", "0"], "--max-connections-per-ip"),
        (["serve", "--ingest-rate", "0"], "--ingest-rate"),
        (["serve", "--ingest-rate", "inf"], "--ingest-rate"),
        (["serve", "--max-client-queue-bytes", "1000"], "--max-client-queue-bytes"),
        (["serve", "--max-total-queue-bytes", "x"], "--max-total-queue-bytes"),
        (["serve", "--header-timeout", "0"], "--header-timeout"),
        (["serve", "--keepalive-timeout", "nan"], "--keepalive-timeout"),
        (["serve", "--max-http-connections-per-ip", "0"], "--max-http-connections-per-ip"),
        (["serve", "--max-http-connections", "-1"], "--max-http-connections"),
        (["serve", "--failed-decode-cost", "x"], "--failed-decode-cost"),
    ],
)
def test_bad_security_options_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2
    assert needle in capsys.readouterr().err


def test_a_bad_token_in_the_environment_exits_2(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_DASHBOARD_TOKEN", "bad")
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["serve"])
    assert excinfo.value.code == 2
    assert "OTEL_DASHBOARD_TOKEN" in capsys.readouterr().err
