"""Zero-code, as the README says: an application run under the real ``opentelemetry-instrument`` (with
``opentelemetry-distro``, as ``pip install otel-dashboard opentelemetry-distro`` gives it), configured by
the README's environment variables alone, reaches a real server: its spans arrive as events on the
WebSocket, its metrics at ``/v1/metrics`` and its log records at ``/v1/logs``.

And the failure the README line avoids: setting only ``OTEL_TRACES_EXPORTER`` leaves the distro's
default, ``otlp``, for metrics and logs, which is the OTLP/gRPC exporter; a user who did not install
``opentelemetry-exporter-otlp-proto-grpc`` gets the configurator's error and an untraced app.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest
from otlp_support import TINY_APP, IntakeRecorder, clean_environment, instrument_command, run_app
from packaging.requirements import Requirement
from server_support import EventStream, of_type, running_server

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parent.parent / "README.md"
_ZERO_CODE_LINE = re.compile(
    r"^(OTEL_TRACES_EXPORTER=otel_dashboard .*opentelemetry-instrument python app\.py)$", re.MULTILINE)


def readme_zero_code_command() -> tuple[dict[str, str], list[str]]:
    """The README's zero-code line: its environment variables and its command."""
    (line,) = _ZERO_CODE_LINE.findall(README.read_text())
    words = line.split()
    env = dict(word.split("=", 1) for word in words if "=" in word)
    command = [word for word in words if "=" not in word]
    return env, command


def test_the_readme_line_sets_all_three_exporters() -> None:
    env, command = readme_zero_code_command()
    assert env == {
        "OTEL_TRACES_EXPORTER": "otel_dashboard", "OTEL_METRICS_EXPORTER": "otel_dashboard",
        "OTEL_LOGS_EXPORTER": "otel_dashboard", "OTEL_DASHBOARD_ENDPOINT": "http://127.0.0.1:8000",
    }
    assert command == ["opentelemetry-instrument", "python", "app.py"]


async def test_the_readme_line_works(
    session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = IntakeRecorder().install(monkeypatch)
    (tmp_path / "app.py").write_text(TINY_APP)
    env, command = readme_zero_code_command()
    async with running_server() as server:
        stream = await EventStream.connect(session, server)
        env["OTEL_DASHBOARD_ENDPOINT"] = server.url  # the test server's in place of 127.0.0.1:8000
        argv = [instrument_command(), sys.executable, *command[2:]]
        run = await run_app(argv, clean_environment(**env, OTEL_SERVICE_NAME="zero-code-app",
                                                    TINY_APP_AGENT="ZeroCode"), tmp_path)
        assert run.returncode == 0, run.stderr
        assert "tiny app done TracerProvider" in run.stdout  # the SDK's provider: configured
        assert "not found in entry point" not in run.stderr, run.stderr
        assert "Failed to auto initialize" not in run.stderr, run.stderr
        assert "Configuration of" not in run.stderr, run.stderr

        completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="ZeroCode"))
        assert completed["data"]["service_name"] == "zero-code-app"
        await stream.close()
    # The metric and the log record reached the server's intake, sent by the dashboard's exporters.
    assert "gen_ai.client.token.usage" in intake.metric_names()
    assert intake.metric_services() == {"zero-code-app"}
    (body,) = intake.log_bodies()
    assert body.kvlist_value.values[0].key == "content"
    assert body.kvlist_value.values[0].value.string_value == "hello from ZeroCode"
    intake.check_accepted()


def test_the_distro_defaults_metrics_and_logs_to_otlp_over_grpc() -> None:
    """Why the README sets all three: what ``opentelemetry-instrument`` does with only the first."""
    from opentelemetry.distro import OpenTelemetryDistro
    from opentelemetry.sdk._configuration import _get_exporter_names

    with pytest.MonkeyPatch.context() as patch:
        for name in ("OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL",
                     "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"):
            patch.setenv(name, "")  # recorded, so that what the distro sets below is undone
            patch.delenv(name)
        patch.setenv("OTEL_TRACES_EXPORTER", "otel_dashboard")
        OpenTelemetryDistro().configure()  # what opentelemetry-instrument runs first
        assert _get_exporter_names("traces") == ["otel_dashboard"]
        assert _get_exporter_names("metrics") == ["otlp_proto_grpc"]
        assert _get_exporter_names("logs") == ["otlp_proto_grpc"]

    # ... and neither otel-dashboard nor the distro requires that exporter (the test extras do).
    grpc_exporters = {"opentelemetry-exporter-otlp", "opentelemetry-exporter-otlp-proto-grpc"}
    for distribution in ("otel-dashboard", "opentelemetry-distro"):
        requirements = [Requirement(text) for text in metadata.requires(distribution) or []]
        mandatory = {req.name for req in requirements if req.marker is None or "extra" not in str(req.marker)}
        assert not mandatory & grpc_exporters, (distribution, mandatory)


def test_without_the_grpc_exporter_the_configurator_fails_as_the_issue_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user's environment, which lacks opentelemetry-exporter-otlp-proto-grpc: the configurator's
    entry-point lookup is given the installed entry points minus that distribution's (the one
    stand-in here: this test environment has that exporter for the gRPC tests)."""
    from opentelemetry.sdk import _configuration

    real_entry_points = _configuration.entry_points

    def entry_points_without_grpc(**selection: str) -> list[metadata.EntryPoint]:
        return [entry_point for entry_point in real_entry_points(**selection)
                if not entry_point.value.startswith("opentelemetry.exporter.otlp.proto.grpc")]

    monkeypatch.setattr(_configuration, "entry_points", entry_points_without_grpc)
    with pytest.raises(RuntimeError, match="Requested component 'otlp_proto_grpc' not found in entry point "
                                           "'opentelemetry_metrics_exporter'"):
        _configuration._import_exporters(["otel_dashboard"], ["otlp_proto_grpc"], ["otlp_proto_grpc"])
    # The README's line needs nothing more than otel-dashboard itself.
    traces, metrics, logs = _configuration._import_exporters(
        ["otel_dashboard"], ["otel_dashboard"], ["otel_dashboard"])
    assert [cls.__name__ for cls in (*traces.values(), *metrics.values(), *logs.values())] == [
        "DashboardSpanExporter", "DashboardMetricExporter", "DashboardLogExporter"]
