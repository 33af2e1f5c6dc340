"""The programs in ``examples/`` run as their docstrings say: ``--port`` (0 picks a free port) serves the
dashboard there until SIGTERM/Ctrl+C; ``OTEL_DASHBOARD_ENDPOINT`` sends to a server elsewhere instead.

Each runs as a subprocess against real servers on loopback.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from otlp_support import clean_environment, run_app
from server_support import WAIT, EventStream, of_type, running_server

pytestmark = pytest.mark.timeout(90)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVING = ["direct_api.py", "existing_tracer_provider.py", "in_process_agents.py",
           "websocket_dashboard_demo.py"]
_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/dashboard")


def test_every_example_is_covered() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == SERVING


@pytest.mark.parametrize("example", SERVING)
async def test_help_names_the_port_option(example: str, tmp_path: Path) -> None:
    run = await run_app([sys.executable, str(EXAMPLES / example), "--help"], clean_environment(), tmp_path)
    assert run.returncode == 0, run.stderr
    assert "--port" in run.stdout and "default: 8000" in run.stdout


async def _line_matching(stream: asyncio.StreamReader, pattern: re.Pattern[str]) -> re.Match[str]:
    seen = []
    while True:
        line = (await asyncio.wait_for(stream.readline(), WAIT)).decode()
        assert line, f"the program ended without printing {pattern.pattern!r}: {seen}"
        seen.append(line)
        if match := pattern.search(line):
            return match


@pytest.mark.parametrize("example", SERVING)
async def test_serves_on_the_port_given_and_stops_cleanly(
    example: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / example), "--port", "0", env=clean_environment(), cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        base = (await _line_matching(process.stdout, _URL)).group(1)
        assert not base.endswith(":8000") and not base.endswith(":0")  # a free port, as asked
        async with session.get(f"{base}/health") as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), WAIT)
        assert process.returncode == 0, err.decode()
        assert "Traceback" not in err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_with_an_endpoint_the_agents_send_to_that_server(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with running_server() as server:
        stream = await EventStream.connect(session, server)
        env = clean_environment(OTEL_DASHBOARD_ENDPOINT=server.url)
        # existing_tracer_provider.py ends by itself once its events are delivered.
        run = await run_app([sys.executable, str(EXAMPLES / "existing_tracer_provider.py")], env, tmp_path)
        assert run.returncode == 0, run.stderr
        await stream.wait_for(of_type("agent_execution_completed", agent_name="Planner"))

        # The other two run until stopped: their first agent's events arrive, then SIGINT (Ctrl+C).
        for example, agent in [("in_process_agents.py", "Researcher"),
                               ("websocket_dashboard_demo.py", None)]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(EXAMPLES / example), env=env, cwd=str(tmp_path),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            try:
                fields = {"agent_name": agent} if agent else {}
                await stream.wait_for(of_type("agent_execution_started", **fields))
                stream.received.clear()
                process.send_signal(signal.SIGINT)
                _, err = await asyncio.wait_for(process.communicate(), WAIT)
                assert process.returncode == 0, err.decode()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        await stream.close()
