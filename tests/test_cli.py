"""The ``otel-dashboard`` command: ``serve`` as a real subprocess, argument errors, ``demo`` wiring."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_dashboard import cli

pytestmark = pytest.mark.timeout(60)

STARTUP_TIMEOUT = 20.0  # a loaded 2-core machine can be slow to import aiohttp
STOP_TIMEOUT = 5.0
URL_RE = re.compile(r"otel-dashboard serving on (http://\S+)/dashboard")
WEB_INDEX = Path(__file__).resolve().parent.parent / "web" / "index.html"


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `serve` keeps its database under the user's data directory by default; tests use their own.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otel_dashboard", *args]


def _read_url(proc: subprocess.Popen[str]) -> str:
    """The base URL the server prints, read from its stdout within STARTUP_TIMEOUT."""
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = URL_RE.search(line)
            if match:
                return match.group(1)
    raise AssertionError(f"no URL printed; stdout so far: {seen!r}, exit code {proc.poll()}")


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers.get_content_type() == "application/json"
        return json.loads(response.read())


@pytest.fixture(name="serve")
def fixture_serve() -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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


@pytest.mark.skipif(not WEB_INDEX.is_file(), reason="web/index.html is not there yet")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_and_stops_cleanly_on_signal(serve: Any, sig: signal.Signals) -> None:
    proc, url = serve("--name", "Lab A", "--history", "50")
    assert url.startswith("http://127.0.0.1:")
    health = _get_json(url + "/health")
    assert health["status"] == "ok" and health["name"] == "Lab A"
    assert health["service"] == "otel-dashboard"
    with urllib.request.urlopen(url + "/dashboard", timeout=5) as response:
        assert response.status == 200
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


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

    async def fake_run_demo(host: str, port: int) -> int:
        calls.append((host, port))
        return 0

    import otel_dashboard.demo

    monkeypatch.setattr(otel_dashboard.demo, "run_demo", fake_run_demo)
    assert cli.main(["demo", "--port", "8123", "--host", "127.0.0.2"]) == 0
    assert calls == [("127.0.0.2", 8123)]
