"""A simulated multi-agent system, instrumented with the decorators, that makes the dashboard come alive.

``otel-dashboard demo`` and ``make demo`` run it. Everything it shows goes the real way: decorated
functions make OpenTelemetry spans, :class:`DashboardSpanProcessor` maps them to events, the server
broadcasts them. Nothing is published to the dashboard directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Coroutine
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from instrumentation import agent, record_opportunity, record_quality_score, register_agent, synthesis, tool
from otel_dashboard.model.prices import PriceBook
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

__all__ = ["run_demo", "run_scenario"]

logger = logging.getLogger(__name__)
_TRACER = trace.get_tracer("otel_dashboard.demo")  # a proxy: spans go to the provider set later

_MARKETS = ["home energy storage", "B2B invoice automation", "pet telehealth", "urban vertical farming",
            "AI code review", "cold-chain logistics", "senior fitness apps", "carbon accounting SaaS"]
_CATEGORIES = ["energy", "fintech", "health", "agritech", "devtools", "logistics", "consumer", "climate"]
_REVENUE = ["$250K ARR", "$1.2M ARR", "$4M ARR", "$800K ARR", "$12M TAM", "$2.5M ARR"]


class _SimulatedFailure(RuntimeError):
    """What the demo's agents raise now and then, to show failures on the dashboard."""


class _Scenario:
    """The simulated agents; every method that does agent work is decorated like real code would be."""

    def __init__(self, rng: random.Random, *, speed: float) -> None:
        self._rng = rng
        self._speed = speed

    async def _work(self, low: float, high: float) -> None:
        await asyncio.sleep(self._rng.uniform(low, high) / self._speed)

    # ---- tools -------------------------------------------------------------------------------
    @tool(name="web_search", description="Searches the web")
    async def web_search(self, query: str) -> list[str]:
        await self._work(0.2, 0.8)
        if self._rng.random() < 0.04:
            raise TimeoutError(f"search backend timed out for {query!r}")
        return [f"https://example.test/{i}?q={query}" for i in range(self._rng.randint(2, 6))]

    @tool(name="fetch_page")
    async def fetch_page(self, url: str) -> str:
        await self._work(0.1, 0.5)
        return f"<html>{url}</html>"

    # ---- model calls -------------------------------------------------------------------------
    async def _chat(self, model: str, provider: str, prompt: str) -> None:
        """A model call as a model client's instrumentation records it (GenAI semantic
        conventions): the dashboard counts it in its run, with its tokens and their cost."""
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
            ),
        }
        client = trace.SpanKind.CLIENT
        with _TRACER.start_as_current_span(f"chat {model}", kind=client, attributes=attributes) as span:
            await self._work(0.3, 1.2)
            input_tokens = self._rng.randint(400, 3000)
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", self._rng.randint(50, 600))
            cached = self._rng.choice([0, 0, input_tokens // 2])
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)

    # ---- agents ------------------------------------------------------------------------------
    @agent(name="MarketResearcher", agent_id="market-researcher")
    async def research_market(self, task: str, market: str) -> None:
        await self._chat("gpt-4o-mini", "openai", task)
        for url in (await self.web_search(market))[:2]:
            await self.fetch_page(url)
        await self._chat("gpt-4o-mini", "openai", f"Summarise what the pages say about {market}")
        if self._rng.random() < 0.08:
            raise _SimulatedFailure(f"source data for {market!r} was inconsistent")
        if self._rng.random() < 0.6:
            record_opportunity(
                f"{market.title()}: mid-market gap",
                description=f"Underserved buyers in {market}; incumbents focus on enterprise.",
                category=_CATEGORIES[_MARKETS.index(market)],
                confidence=round(self._rng.uniform(0.35, 0.97), 2),
                revenue_potential=self._rng.choice(_REVENUE),
            )
        record_quality_score(
            round(self._rng.uniform(84, 99.5), 1),
            dimension_scores={"accuracy": round(self._rng.uniform(80, 100), 1),
                              "coverage": round(self._rng.uniform(75, 100), 1)},
        )

    @agent(name="TrendScout", agent_id="trend-scout")
    async def scout_trends(self, task: str) -> int:
        signals = 0
        await self._chat("claude-3-5-haiku-latest", "anthropic", task)
        for _ in range(self._rng.randint(1, 3)):
            signals += len(await self.web_search("emerging trends " + self._rng.choice(_MARKETS)))
        record_quality_score(round(self._rng.uniform(88, 99), 1))
        return signals

    @agent(name="CompetitorAnalyst", agent_id="competitor-analyst")
    async def analyse_competitors(self, task: str, market: str) -> None:
        await self._work(1.0, 3.0)
        await self.web_search(f"competitors {market}")
        # A self-hosted model: no price is known for it (serve --prices FILE can give one).
        await self._chat("local-llama-3-8b", "self-hosted", task)
        if self._rng.random() < 0.1:
            raise _SimulatedFailure("pricing page could not be parsed")
        record_quality_score(round(self._rng.uniform(80, 98), 1))

    @agent(name="DeepDiver", agent_id="deep-diver", description="Long-running due diligence")
    async def deep_dive(self, task: str) -> None:
        # Slow on purpose: with the demo's stall threshold it sometimes shows as stalled.
        for _ in range(3):
            await self._chat("gpt-4o", "openai", task)
            await self._work(2.0, 8.0)
        record_quality_score(round(self._rng.uniform(92, 100), 1))

    @synthesis(phase="pattern_extraction", description="Cluster findings into patterns")
    async def extract_patterns(self) -> list[str]:
        await self._work(0.5, 1.5)
        return [f"pattern-{i}" for i in range(self._rng.randint(2, 7))]

    @synthesis(phase="opportunity_ranking", description="Rank opportunities by confidence x revenue")
    async def rank_opportunities(self) -> int:
        await self._work(0.3, 1.0)
        return self._rng.randint(3, 9)

    # ---- the loop ----------------------------------------------------------------------------
    async def _wave(self) -> None:
        markets = self._rng.sample(_MARKETS, 3)
        runs: list[Coroutine[Any, Any, object]] = [
            self.research_market(f"Research the {m} market", m) for m in markets
        ]
        runs.append(self.scout_trends("Scan news and filings for emerging trends"))
        runs.append(self.analyse_competitors(f"Map competitors in {markets[0]}", markets[0]))
        # Failures are part of the show: they are on the spans, the demo carries on.
        await asyncio.gather(*runs, return_exceptions=True)
        await self.extract_patterns()
        await self.rank_opportunities()

    async def run(self) -> None:
        for agent_id, name, role in [
            ("market-researcher", "MarketResearcher", "market research"),
            ("trend-scout", "TrendScout", "trend detection"),
            ("competitor-analyst", "CompetitorAnalyst", "competitive analysis"),
            ("deep-diver", "DeepDiver", "due diligence"),
        ]:
            register_agent(agent_id, name, role=role)
        diving: asyncio.Task[None] | None = None
        try:
            while True:
                await self._wave()
                if diving is None or diving.done():
                    diving = asyncio.ensure_future(self.deep_dive("Due diligence on the top opportunity"))
                await self._work(0.5, 1.5)
        finally:
            if diving is not None:
                diving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await diving


async def run_scenario(*, seed: int | None = None, speed: float = 1.0) -> None:
    """Run the simulated agents forever (until cancelled), using the global tracer provider.

    Args:
        seed: seed of the random choices, for a repeatable run.
        speed: time factor; 2.0 runs twice as fast.

    Raises:
        ValueError: ``speed`` is not positive.
    """
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    await _Scenario(random.Random(seed), speed=speed).run()


def install_demo_tracing(state: DashboardState, prices: PriceBook | None = None) -> TracerProvider:
    """A tracer provider, set globally, whose spans reach ``state`` through the processor (which
    prices the model calls with ``prices``; the built-in book when ``None``)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-dashboard-demo"}))
    provider.add_span_processor(DashboardSpanProcessor(state=state, prices=prices))
    trace.set_tracer_provider(provider)
    return provider


async def run_demo(
    host: str = "127.0.0.1", port: int = 8000, *, name: str = "demo", prices: PriceBook | None = None
) -> int:
    """Serve the dashboard and run the simulated agents until SIGINT/SIGTERM.

    ``prices`` (a :class:`~otel_dashboard.model.prices.PriceBook`; None: the built-in one) goes to the
    server's options, as ``serve --prices`` does.

    Returns:
        The process exit code (0 after a clean stop).
    """
    state = DashboardState(stall_threshold_seconds=20.0)
    provider = install_demo_tracing(state, prices)
    server = DashboardWebSocketServer(host, port, state=state, name=name, prices=prices)
    scenario: asyncio.Future[None] | None = None

    def announce(server: DashboardWebSocketServer) -> None:
        nonlocal scenario
        print(f"otel-dashboard demo running: open {server.dashboard_url}  (Ctrl+C to stop)", flush=True)
        scenario = asyncio.ensure_future(run_scenario())

    try:
        await server.run_forever(on_started=announce)
    finally:
        if scenario is not None:
            scenario.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scenario
        provider.shutdown()
    return 0
