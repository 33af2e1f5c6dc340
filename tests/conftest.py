"""Fixtures shared by several test modules.

* ``browser``, ``page``, ``console``: the real-browser tests. Every test that uses ``page`` fails on a
  console error or an uncaught page error, unless it explains it with ``console.allow(pattern)``.
* ``session``: an aiohttp client session for the tests that talk to a real server.
* ``forwarder``, ``exporter``: spans made through the GLOBAL tracer provider (as the decorators make
  them), captured per test.
* ``redis_server``: a real ``redis-server`` of the test's own on a free loopback port (scale-out tests).
* ``big_db``: a 1,000,000-event SQLite database (``bigdb_support``), generated once per test process in
  a session temporary directory. Read it, or copy it before a server opens it (a server writes).

``make test`` runs these tests on two pytest-xdist workers with ``--dist loadfile``: module fixtures
(``browser``, the modules' shared servers) live in the one worker that runs their file, and session
fixtures are per worker (``big_db`` is made only by the worker that gets a file using it). So nothing
here may use a fixed port or path: servers bind port 0, ``redis_server`` takes a free port, files go
under ``tmp_path``/``tmp_path_factory`` (a directory per worker).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from bigdb_support import BigDbFacts, generate_big_db
from browser_support import CHROMIUM, CHROMIUM_ARGS, Console
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import Browser, Page, sync_playwright
from redis_support import RedisServer
from tracing_support import SpanForwarder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `make system-deps` "
                    "(Debian package chromium) or set OTEL_DASHBOARD_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, locale="en-US", timezone_id="UTC",
        reduced_motion="reduce",
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    try:
        yield page
    finally:
        context.close()
    assert console.unexplained() == [], "errors in the browser console"


@pytest.fixture(scope="module", name="forwarder")
def fixture_forwarder() -> Iterator[SpanForwarder]:
    # The API lets a process set the global provider once: reuse one that another test module set.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.fail("the global tracer provider is not an SDK TracerProvider")
    forwarder = SpanForwarder()
    provider.add_span_processor(forwarder)  # processors cannot be removed: disabled at teardown
    yield forwarder
    forwarder.exporter = None


@pytest.fixture(name="exporter")
def fixture_exporter(forwarder: SpanForwarder) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    forwarder.exporter = exporter
    yield exporter
    forwarder.exporter = None
    forwarder.fail = False


@pytest.fixture(name="session")
async def fixture_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> BigDbFacts:
    """A database of 1,000,000 events, made once per worker that needs it (10-25 s) and shared."""
    return generate_big_db(tmp_path_factory.mktemp("big-db") / "events.db")
