"""Helpers for the real-browser tests: a dashboard server in a background thread, and event builders.

Playwright's sync API cannot run inside a running asyncio loop, so the browser tests are plain
``def`` tests and the server gets its own thread and loop here. Publishing into the server's
:class:`DashboardState` from the test thread is safe: ``publish`` is thread-safe and the server hands
events to its loop itself.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from playwright.sync_api import ConsoleMessage

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "ServerThread",
    "agent_completed",
    "agent_started",
    "error_occurred",
    "opportunity",
    "quality_score",
    "synthesis_completed",
    "synthesis_started",
]

CHROMIUM = os.environ.get("OTEL_DASHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

_START_TIMEOUT_SECONDS = 10.0


class ServerThread:
    """A :class:`DashboardWebSocketServer` running in a daemon thread with its own event loop.

    Args:
        state: the state to serve; a fresh :class:`DashboardState` by default. Pass the state of a
            stopped server to restart "the same" server.
        port: the port to bind; 0 picks a free one.
        **server_kwargs: passed on to :class:`DashboardWebSocketServer` (``name``, intervals ...).
    """

    def __init__(self, state: DashboardState | None = None, *, port: int = 0, **server_kwargs: Any) -> None:
        self.state = state if state is not None else DashboardState()
        self._port = port
        self._server_kwargs = server_kwargs
        self._loop = asyncio.new_event_loop()
        self._ready: Future[DashboardWebSocketServer] = Future()
        self._thread = threading.Thread(target=self._run, name="dashboard-server", daemon=True)
        self._stopped = False
        self.server: DashboardWebSocketServer | None = None

    def start(self) -> ServerThread:
        """Start the server; returns once it accepts connections.

        Raises:
            Exception: whatever the server raised while starting.
        """
        self._thread.start()
        self.server = self._ready.result(timeout=_START_TIMEOUT_SECONDS)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = DashboardWebSocketServer(
                "127.0.0.1", self._port, state=self.state, **self._server_kwargs
            )
            self._loop.run_until_complete(server.start())
        except BaseException as exc:  # hand any start failure to the test thread
            self._ready.set_exception(exc)
            self._loop.close()
            return
        self._ready.set_result(server)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.server is not None, "server not started"
        return self.server.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard page."""
        return f"{self.url}/dashboard"

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn()`` (a coroutine function or a plain one) in the server's loop; return its result."""

        async def runner() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self._loop).result(timeout)

    def publish(self, event: DashboardEvent) -> DashboardEvent:
        """Publish ``event`` into the state (from the calling thread, as agents do)."""
        return self.state.publish(event)

    def stop(self) -> None:
        """Stop the server and its thread; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.server is not None and self._thread.is_alive():
            try:
                self.call(self.server.stop, timeout=10.0)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10.0)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- events

_run_ids = itertools.count(1)


def agent_started(agent_id: str, agent_name: str, task: str, *, run_id: str | None = None,
                  **extra: Any) -> DashboardEvent:
    """An ``agent_execution_started`` event (a fresh ``run_id`` unless given)."""
    data = {"agent_id": agent_id, "agent_name": agent_name, "task_description": task,
            "run_id": run_id or f"run-{next(_run_ids)}", "service_name": "tests", **extra}
    return DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, data, Severity.INFO)


def agent_completed(agent_id: str, agent_name: str, task: str, *, run_id: str | None,
                    duration_ms: float = 1234.0, success: bool = True,
                    quality_score: float | None = None, **extra: Any) -> DashboardEvent:
    """An ``agent_execution_completed`` event (``success``, or ``error`` when not successful)."""
    data = {"agent_id": agent_id, "agent_name": agent_name, "task_description": task, "run_id": run_id,
            "duration_ms": duration_ms, "success": success, "quality_score": quality_score,
            "data_source": "tests", **extra}
    return DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, data,
                                 Severity.SUCCESS if success else Severity.ERROR)


def opportunity(opportunity_id: str, title: str, *, confidence: float, category: str = "fintech",
                revenue: str = "$1.2M ARR", description: str = "An underserved market.",
                **extra: Any) -> DashboardEvent:
    """An ``opportunity_discovered`` event."""
    data = {"opportunity_id": opportunity_id, "title": title, "description": description,
            "confidence_score": confidence, "revenue_potential": revenue, "category": category, **extra}
    return DashboardEvent.create(EventType.OPPORTUNITY_DISCOVERED, data, Severity.SUCCESS)


def error_occurred(source: str, message: str, error_type: str = "RuntimeError",
                   **extra: Any) -> DashboardEvent:
    """An ``error_occurred`` event."""
    data = {"source": source, "error_message": message, "error_type": error_type, **extra}
    return DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.ERROR)


def quality_score(source: str, score: float, dimensions: dict[str, float] | None = None,
                  severity: Severity = Severity.SUCCESS) -> DashboardEvent:
    """A ``quality_score_updated`` event."""
    data = {"source": source, "overall_score": score, "dimension_scores": dimensions or {}}
    return DashboardEvent.create(EventType.QUALITY_SCORE_UPDATED, data, severity)


def synthesis_started(phase: str, description: str = "Cluster findings") -> DashboardEvent:
    """A ``synthesis_started`` event."""
    return DashboardEvent.create(EventType.SYNTHESIS_STARTED, {"phase": phase, "description": description})


def synthesis_completed(phase: str, duration_ms: float = 420.0, patterns: int = 3) -> DashboardEvent:
    """A ``synthesis_completed`` event."""
    data = {"phase": phase, "duration_ms": duration_ms, "patterns_found": patterns, "success": True}
    return DashboardEvent.create(EventType.SYNTHESIS_COMPLETED, data, Severity.SUCCESS)


class Console:
    """Console errors and uncaught exceptions of a page; a test fails if any is left unexplained."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Accept errors matching ``pattern`` (e.g. the browser's log of a 404 or a refused connection)."""
        self._allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"pageerror: {error}")

    def unexplained(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self._allowed)]
