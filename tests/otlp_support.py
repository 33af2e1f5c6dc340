"""Helpers for the tests that send OTLP from a real SDK in a subprocess (zero-code, the deployment matrix,
the dashboard's metric and log exporters).

``IntakeRecorder`` wraps the two intake functions the shared ingest path calls for metrics and logs
(``server/metrics_intake.accept_metrics``, ``server/logs_intake.accept_logs``; ``otlp_ingest`` imports
them when it dispatches, so the wrapper sees both transports) and records every decoded request that
reached them, then hands it on unchanged. It is a recording wrapper, not a stand-in: the real intake
runs; :meth:`IntakeRecorder.check_accepted` asserts that every request was accepted whole.

``TINY_APP`` is the application the subprocesses run: it uses only the OpenTelemetry API (as an
instrumentation library does), so whatever it exports was configured by the environment alone.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from otel_dashboard.server import logs_intake, metrics_intake
from otel_dashboard.server.otlp_ingest import ExportResult

__all__ = ["TINY_APP", "AppRun", "IntakeRecorder", "clean_environment", "instrument_command", "run_app"]

TINY_APP = '''
import os
from opentelemetry import _logs, metrics, trace

agent = os.environ.get("TINY_APP_AGENT", "TinyAgent")
tracer = trace.get_tracer("tiny-app")
meter = metrics.get_meter("tiny-app")
usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
}):
    usage.record(120, {"gen_ai.token.type": "input", "gen_ai.agent.name": agent,
                       "gen_ai.request.model": "gpt-4o-mini", "gen_ai.operation.name": "chat"})
    _logs.get_logger("tiny-app").emit(event_name="gen_ai.user.message",
                                     body={"content": f"hello from {agent}"},
                                     attributes={"gen_ai.provider.name": "openai"})
print("tiny app done", type(trace.get_tracer_provider()).__name__, flush=True)
'''

APP_TIMEOUT_SECONDS = 30.0


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any ``OTEL_*`` variable (the test runner's own must not leak
    into the app), plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(extra)
    return env


def instrument_command() -> str:
    """The ``opentelemetry-instrument`` of the Python running the tests (its venv's bin directory).

    Without ``opentelemetry-distro`` (its configurator) it would run the application unconfigured,
    and these tests would fail for a reason they do not name: say it here.
    """
    path = Path(sys.executable).parent / "opentelemetry-instrument"
    assert path.exists(), f"{path} missing: install the test extras (opentelemetry-instrumentation)"
    try:
        metadata.distribution("opentelemetry-distro")
    except metadata.PackageNotFoundError:
        raise AssertionError("opentelemetry-distro is missing: install the test extras "
                             "(pip install -e '.[test]')") from None
    return str(path)


@dataclass
class AppRun:
    """A finished subprocess: exit code and its output."""

    returncode: int
    stdout: str
    stderr: str


async def run_app(argv: list[str], env: dict[str, str], cwd: Path) -> AppRun:
    """Runs ``argv`` to its end (bounded) without blocking the event loop the test server runs on."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=str(cwd), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), APP_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        process.kill()
        _, err = await process.communicate()
        raise AssertionError(
            f"{argv} did not finish in {APP_TIMEOUT_SECONDS} s; stderr: {err.decode()}") from None
    assert process.returncode is not None
    return AppRun(process.returncode, out.decode(), err.decode())


@dataclass
class IntakeRecorder:
    """The metric and log export requests a real server received (see the module docstring)."""

    metrics: list[Any] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)
    outcomes: list[ExportResult | BaseException] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> IntakeRecorder:
        real_metrics, real_logs = metrics_intake.accept_metrics, logs_intake.accept_logs

        async def record_metrics(app: Any, request: Any, *, address: str) -> ExportResult:
            self.metrics.append(request)
            return await self._outcome(real_metrics(app, request, address=address))

        async def record_logs(app: Any, request: Any, *, address: str) -> ExportResult:
            self.logs.append(request)
            return await self._outcome(real_logs(app, request, address=address))

        monkeypatch.setattr(metrics_intake, "accept_metrics", record_metrics)
        monkeypatch.setattr(logs_intake, "accept_logs", record_logs)
        return self

    async def _outcome(self, accepting: Any) -> ExportResult:
        try:
            result: ExportResult = await accepting
        except BaseException as exc:
            self.outcomes.append(exc)
            raise
        self.outcomes.append(result)
        return result

    def metric_names(self) -> set[str]:
        return {metric.name for request in self.metrics for resource in request.resource_metrics
                for scope in resource.scope_metrics for metric in scope.metrics}

    def metric_services(self) -> set[str]:
        return {_service(resource.resource)
                for request in self.metrics for resource in request.resource_metrics}

    def log_bodies(self) -> list[Any]:
        return [record.body for request in self.logs for resource in request.resource_logs
                for scope in resource.scope_logs for record in scope.log_records]

    def log_services(self) -> set[str]:
        return {_service(resource.resource) for request in self.logs for resource in request.resource_logs}

    def check_accepted(self) -> None:
        """Every recorded request was accepted whole."""
        for outcome in self.outcomes:
            assert isinstance(outcome, ExportResult), f"the intake failed: {outcome!r}"
            assert outcome.rejected == 0, outcome


def _service(resource: Any) -> str:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return ""
