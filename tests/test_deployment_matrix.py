"""``docs/deployment.md``, "The OTLP matrix": every command in it runs, as written, and what it sends arrives.

The test reads the section's numbered ``bash`` blocks and its JSON documents, starts a real server per
row (with a token, with TLS and a token, as the row says; with its OTLP/gRPC receiver on a free port),
puts the server's ports and token in place of the document's (8000, 4317, ``$OTEL_DASHBOARD_TOKEN``)
and runs each command in a subprocess: ``opentelemetry-instrument`` with the stock OTLP exporters and
an application that uses only the OpenTelemetry API (so the environment alone configures it), or
``curl`` with the JSON documents. Then it checks each signal arrived: the span as an
``agent_execution_completed`` event in the server's state, the metric and the log record at the
server's metrics and logs intake (``otlp_support.IntakeRecorder``, which hands them on to the real
intake).

The gRPC rows run against the server's OTLP/gRPC receiver on a free port
(``DashboardWebSocketServer(grpc_port=0)``, read back from its ``grpc_port`` property).
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from otlp_support import TINY_APP, IntakeRecorder, clean_environment, instrument_command, run_app
from server_support import make_certificate, running_server

from otel_dashboard.model.events import EventType
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.server.security import SecurityConfig

pytestmark = pytest.mark.timeout(60)

DEPLOYMENT_DOC = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
TOKEN = "matrix-token-for-the-tests"
_SECTION = re.compile(r"^## The OTLP matrix\n(.*?)(?=^## )", re.MULTILINE | re.DOTALL)
_BASH_BLOCK = re.compile(r"^```bash\n# (\d+)\. ([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_JSON_FILE = re.compile(r"^`(\w+\.json)`[^\n]*\n\n```json\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TABLE_ROW = re.compile(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \| yes \| yes \| yes \|$", re.MULTILINE)


@dataclass(frozen=True)
class Row:
    number: int
    title: str
    commands: tuple[str, ...]  # one per line, continuation lines joined

    @property
    def grpc(self) -> bool:
        return "gRPC" in self.title

    @property
    def security(self) -> str:
        return "tls" if "TLS" in self.title else "none" if "no token" in self.title else "token"


def matrix_section() -> str:
    match = _SECTION.search(DEPLOYMENT_DOC.read_text())
    assert match, "docs/deployment.md has no '## The OTLP matrix' section"
    return match.group(1)


def matrix_rows() -> list[Row]:
    rows = []
    for number, title, body in _BASH_BLOCK.findall(matrix_section()):
        joined = body.replace("\\\n", " ")
        commands = tuple(line.strip() for line in joined.splitlines() if line.strip())
        rows.append(Row(int(number), title, commands))
    return rows


def json_documents() -> dict[str, str]:
    return dict(_JSON_FILE.findall(matrix_section()))


def test_the_table_and_the_commands_agree() -> None:
    rows = matrix_rows()
    assert [row.number for row in rows] == list(range(1, 9))
    table = {int(number): (protocol.strip(), auth.strip())
             for number, protocol, auth in _TABLE_ROW.findall(matrix_section())}
    assert sorted(table) == list(range(1, 9))
    for row in rows:
        protocol, auth = table[row.number]
        assert ("gRPC" in protocol) == row.grpc, row
        assert ("JSON" in protocol) == row.title.startswith("OTLP/HTTP JSON"), row
        assert {"none": "none", "token": "token", "TLS + token": "tls"}[auth] == row.security, row
        assert ("gzip" in protocol) == ("gzip" in row.title), row
    assert sorted(json_documents()) == ["logs.json", "metrics.json", "traces.json"]


def server_options(row: Row, directory: Path) -> dict[str, Any]:
    options: dict[str, Any] = {"grpc_port": 0}
    if row.security == "token":
        options["security"] = SecurityConfig(token=TOKEN)
    elif row.security == "tls":
        cert, key = make_certificate(directory)
        options["security"] = SecurityConfig(token=TOKEN, tls_certfile=cert, tls_keyfile=key)
    return options


def concrete(command: str, server: DashboardWebSocketServer) -> tuple[dict[str, str], list[str]]:
    """The command with the test server's ports and token, as its environment and its argv."""
    text = command.replace("$OTEL_DASHBOARD_TOKEN", TOKEN)
    text = re.sub(r"(127\.0\.0\.1|localhost):8000", rf"\g<1>:{server.port}", text)
    text = re.sub(r"(127\.0\.0\.1|localhost):4317", rf"\g<1>:{server.grpc_port}", text)
    words = shlex.split(text)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def executable(argv: list[str]) -> list[str]:
    if argv[:2] == ["opentelemetry-instrument", "python"]:
        return [instrument_command(), sys.executable, *argv[2:]]
    assert argv[0] == "curl", argv
    curl = shutil.which("curl")
    assert curl, "the JSON rows run curl: install it (Debian package curl)"
    return [curl, *argv[1:]]


@pytest.mark.parametrize("row", matrix_rows(), ids=lambda row: f"{row.number}-{row.title}")
async def test_the_documented_command_delivers_every_signal(
    row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = IntakeRecorder().install(monkeypatch)
    (tmp_path / "app.py").write_text(TINY_APP)
    for name, document in json_documents().items():
        (tmp_path / name).write_text(document)
    service, agent = f"matrix-row-{row.number}", f"MatrixRow{row.number}"
    json_row = row.commands[0].startswith("curl")
    if json_row:
        service, agent = "curl-agents", "Curled"  # what the JSON documents say

    async with running_server(**server_options(row, tmp_path)) as server:
        for command in row.commands:
            env, argv = concrete(command, server)
            environment = clean_environment(**env, OTEL_SERVICE_NAME=service, TINY_APP_AGENT=agent)
            if row.security == "tls":  # the document's note: requests prefers these to the certificate
                for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                    environment.pop(name, None)
            run = await run_app(executable(argv), environment, tmp_path)
            assert run.returncode == 0, (command, run.stdout, run.stderr)
            assert "Failed to export" not in run.stderr, run.stderr
            if not json_row:
                assert "tiny app done TracerProvider" in run.stdout, run.stderr
        completed = [event for event in server.state.get_events_after(0)
                     if event.event_type is EventType.AGENT_EXECUTION_COMPLETED]
    assert [(event.data["agent_name"], event.data["service_name"]) for event in completed] == [
        (agent, service)]
    assert "gen_ai.client.token.usage" in intake.metric_names()
    assert intake.metric_services() == {service}
    assert intake.log_services() == {service}
    (body,) = intake.log_bodies()
    assert body.kvlist_value.values[0].key == "content"
    assert body.kvlist_value.values[0].value.string_value in (f"hello from {agent}", "Plan a trip")
    intake.check_accepted()
