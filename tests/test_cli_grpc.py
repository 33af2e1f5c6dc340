"""``--grpc-port`` of ``otel-dashboard serve`` and ``demo``: the default, off, a free port, a busy port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from server_support import read_line_matching

from otel_dashboard import cli

pytestmark = pytest.mark.timeout(60)

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
GRPC_RE = re.compile(r"^otel-dashboard OTLP/gRPC on 127\.0\.0\.1:(\d+)$")
URL_RE = re.compile(r"otel-dashboard serving on (http://\S+)/dashboard")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otel_dashboard", *args]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("OTEL_DASHBOARD_TOKEN", None)
    return env


@pytest.mark.parametrize(("argv", "expected"), [
    (["serve"], 4317),
    (["serve", "--port", "8123"], 4317),
    (["serve", "--port", "0"], 0),  # a free HTTP port: a free gRPC port too (no fight over 4317)
    (["serve", "--grpc-port", "0"], None),  # 0 turns gRPC off
    (["serve", "--port", "0", "--grpc-port", "4400"], 4400),
    (["demo"], 4317),
    (["demo", "--grpc-port", "0"], None),
])
def test_the_grpc_port_the_server_gets(argv: list[str], expected: int | None) -> None:
    assert cli.grpc_port_of(cli.build_parser().parse_args(argv)) == expected


@pytest.mark.parametrize("bad", ["-1", "65536", "grpc"])
def test_a_bad_grpc_port_is_an_argument_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args(["serve", "--grpc-port", bad])
    assert caught.value.code == 2
    assert "--grpc-port" in capsys.readouterr().err


def test_serve_prints_the_grpc_port_and_a_busy_one_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(_command("serve", "--port", "0", "--db", ":memory:", "--log-level", "warning"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    try:
        read_line_matching(proc, URL_RE, STARTUP_TIMEOUT)
        grpc_port = int(read_line_matching(proc, GRPC_RE, STARTUP_TIMEOUT).group(1))
        assert grpc_port > 0
        # A second server asked for the first one's gRPC port: exit 1, one line, no traceback.
        busy = subprocess.run(
            _command("serve", "--port", "0", "--db", ":memory:", "--grpc-port", str(grpc_port)),
            capture_output=True, text=True, timeout=STARTUP_TIMEOUT, env=_env(tmp_path))
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines() == [
            f"otel-dashboard: cannot listen for OTLP/gRPC on 127.0.0.1:{grpc_port}: address in use; "
            "pass --grpc-port N, or 0 to turn it off"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_demo_reports_a_busy_grpc_port(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        proc = subprocess.run(_command("demo", "--port", "0", "--grpc-port", str(port)), capture_output=True,
                              text=True, timeout=STARTUP_TIMEOUT, env=_env(tmp_path))
    assert proc.returncode == 1
    assert (f"otel-dashboard: cannot listen for OTLP/gRPC on 127.0.0.1:{port}: address in use; "
            "pass --grpc-port N, or 0 to turn it off") in proc.stderr
    assert "Traceback" not in proc.stderr
