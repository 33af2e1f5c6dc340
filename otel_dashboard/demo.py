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
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from instrumentation import agent, record_opportunity, record_quality_score, register_agent, synthesis, tool
from otel_dashboard.model.guardrails import Budget
from otel_dashboard.model.prices import PriceBook
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

__all__ = ["DEMO_BUDGETS", "DEMO_STALL_THRESHOLD_SECONDS", "RateLimitError", "run_demo", "run_scenario"]

logger = logging.getLogger(__name__)
_TRACER = trace.get_tracer("otel_dashboard.demo")  # a proxy: spans go to the provider set later

DEMO_STALL_THRESHOLD_SECONDS: Final = 45.0
"""The demo's stall threshold: past it a running run shows as stalled. DeepDiver takes 27-65 s, so
it crosses it now and then (when its slow filing download happens); no other agent ever does."""
DEMO_BUDGETS: Final = (Budget(scope="run", agent="MarketResearcher", limits={"tokens": 5_000}),)
"""The demo's one budget (docs/guardrails.md): a MarketResearcher run goes over 5,000 tokens now and
then, so the page shows the budgets line, the "over budget" marks and a ``BudgetExceeded``."""


@dataclass(frozen=True)
class _Market:
    """A market the agents research. Its name is written out twice, once for a sentence and once for a
    title, because no casing rule gets both right ("AI Code Review", "B2B", "SaaS")."""

    phrase: str
    title: str
    category: str


_MARKETS: Final = (
    _Market("home energy storage", "Home Energy Storage", "energy"),
    _Market("B2B invoice automation", "B2B Invoice Automation", "fintech"),
    _Market("pet telehealth", "Pet Telehealth", "health"),
    _Market("urban vertical farming", "Urban Vertical Farming", "agritech"),
    _Market("AI code review", "AI Code Review", "devtools"),
    _Market("cold-chain logistics", "Cold-Chain Logistics", "logistics"),
    _Market("senior fitness apps", "Senior Fitness Apps", "consumer"),
    _Market("carbon accounting SaaS", "Carbon Accounting SaaS", "climate"),
)

# (title suffix, description): with the markets, 64 distinct opportunities, each found once (at the
# demo's pace, over about ten minutes; then the researchers find nothing new).
_ANGLES: Final = (
    ("mid-market gap", "Underserved mid-market buyers in {phrase}; incumbents focus on enterprise."),
    ("self-serve tier for small teams", "Small teams in {phrase} cannot buy without a sales call."),
    ("compliance add-on", "New reporting rules leave {phrase} vendors without an audit trail."),
    ("usage-based pricing", "Seat-based pricing in {phrase} overcharges seasonal users."),
    ("EU expansion", "Few {phrase} vendors serve EU buyers in their own languages."),
    ("integration marketplace", "Tools for {phrase} do not connect to the systems buyers already run."),
    ("partner channel", "Vendors of {phrase} sell only direct; resellers ask for a partner program."),
    ("data export API", "Buyers of {phrase} tools cannot get their own data out in bulk."),
)
_REVENUE: Final = ("$250K ARR", "$1.2M ARR", "$4M ARR", "$800K ARR", "$12M TAM", "$2.5M ARR")


class RateLimitError(Exception):
    """What a model client raises when the provider answers HTTP 429 (the demo's model-call failure)."""


class _Opportunities:
    """Hands out opportunity titles, each at most once: a dashboard showing the same opportunity
    twice looks broken. When a market's angles are used up, its researchers find nothing new."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()
        self._exhausted_logged = False

    def take(self, market: _Market) -> tuple[str, str] | None:
        """A new (title, description) for ``market``, or None when all of its titles were used."""
        fresh = [(f"{market.title}: {suffix}", text) for suffix, text in _ANGLES
                 if f"{market.title}: {suffix}" not in self._used]
        if not fresh:
            if len(self._used) == len(_MARKETS) * len(_ANGLES) and not self._exhausted_logged:
                self._exhausted_logged = True
                logger.info("the demo found all its %d opportunities; it records no more", len(self._used))
            return None
        title, text = self._rng.choice(fresh)
        self._used.add(title)
        return title, text.format(phrase=market.phrase)


class _Scenario:
    """The simulated agents; every method that does agent work is decorated like real code would be.

    Who calls what, per wave: Planner (claude-sonnet-4-5) delegates two markets to MarketResearcher
    runs inside its own run (nested runs); one more MarketResearcher, TrendScout (gemini-2.0-flash)
    and CompetitorAnalyst (a self-hosted model, deliberately unpriced) run beside it. One DeepDiver
    (gpt-4o, 27-65 s) runs at a time, across waves.
    """

    def __init__(self, rng: random.Random, *, speed: float) -> None:
        self._rng = rng
        self._speed = speed
        self._opportunities = _Opportunities(rng)
        self._waves = 0

    async def _work(self, low: float, high: float) -> None:
        await asyncio.sleep(self._rng.uniform(low, high) / self._speed)

    # ---- tools -------------------------------------------------------------------------------
    @tool(name="web_search", description="Searches the web")
    async def web_search(self, query: str) -> list[str]:
        await self._work(0.2, 0.8)
        if self._rng.random() < 0.03:
            raise TimeoutError(f"search backend did not answer within 10 s for {query!r}")
        return [f"https://example.test/{i}?q={query}" for i in range(self._rng.randint(2, 6))]

    @tool(name="fetch_page", description="Downloads a web page")
    async def fetch_page(self, url: str) -> str:
        await self._work(0.1, 0.5)
        return f"<html>{url}</html>"

    @tool(name="download_filing", description="Downloads a company filing from the regulator")
    async def download_filing(self, company: str, *, slow: bool) -> str:
        # The regulator's server is slow now and then: that is what keeps DeepDiver past the stall
        # threshold, with "calling tool download_filing" as its current step all along.
        await self._work(14.0, 18.0) if slow else await self._work(0.5, 1.5)
        return f"10-K of {company}"

    # ---- model calls -------------------------------------------------------------------------
    async def _chat(self, model: str, provider: str, prompt: str) -> None:
        """A model call as a model client's instrumentation records it (GenAI semantic
        conventions, inference span): the dashboard counts it in its run, with its tokens and cost.
        Now and then the provider rate-limits it (``error.type`` and the exception, as a client's
        instrumentation records a failed call)."""
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
            if self._rng.random() < 0.01:
                span.set_attribute("error.type", f"{__name__}.{RateLimitError.__qualname__}")
                raise RateLimitError(f"429 Too Many Requests: {provider} tokens-per-minute limit for {model}")
            input_tokens = self._rng.randint(400, 3000)
            span.set_attribute("gen_ai.response.id", f"resp_{self._rng.getrandbits(64):016x}")
            span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", self._rng.randint(50, 600))
            cached = self._rng.choice([0, 0, input_tokens // 2])
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)

    # ---- agents ------------------------------------------------------------------------------
    @agent(name="Planner", agent_id="planner", description="Splits a brief and delegates it")
    async def plan(self, brief: str, markets: Sequence[_Market]) -> None:
        # One conversation per three waves, as one user's session of briefs: the traces list links
        # to it and the conversation view lists its plans in order.
        session = f"brief-session-{self._waves // 3 + 1}"
        trace.get_current_span().set_attribute("gen_ai.conversation.id", session)
        await self._chat("claude-sonnet-4-5", "anthropic", brief)
        # The researchers run inside this run (their spans are children of its span): the dashboard
        # shows them as its sub-runs (parent_run_id). One failing does not fail the plan.
        reports = await asyncio.gather(
            *(self.research_market(f"Research the {m.phrase} market", m) for m in markets),
            return_exceptions=True,
        )
        usable = sum(not isinstance(report, BaseException) for report in reports)
        await self._chat("claude-sonnet-4-5", "anthropic", f"Merge {usable} research reports into one plan")
        await self.rank_opportunities()

    @agent(name="MarketResearcher", agent_id="market-researcher")
    async def research_market(self, task: str, market: _Market) -> None:
        await self._chat("gpt-4o-mini", "openai", task)
        for url in (await self.web_search(market.phrase))[:2]:
            await self.fetch_page(url)
        await self._chat("gpt-4o-mini", "openai", f"Summarise what the pages say about {market.phrase}")
        if self._rng.random() < 0.04:
            raise ValueError(f"sources disagree on the size of the {market.phrase} market by more than 3x")
        found = self._opportunities.take(market) if self._rng.random() < 0.35 else None
        if found is not None:
            title, description = found
            record_opportunity(
                title,
                description=description,
                category=market.category,
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
        await self._chat("gemini-2.0-flash", "gcp.gen_ai", task)
        for _ in range(self._rng.randint(1, 3)):
            market = self._rng.choice(_MARKETS)
            signals += len(await self.web_search(f"emerging trends in {market.phrase}"))
        record_quality_score(round(self._rng.uniform(88, 99), 1))
        return signals

    @agent(name="CompetitorAnalyst", agent_id="competitor-analyst")
    async def analyse_competitors(self, task: str, market: _Market) -> None:
        await self._work(1.0, 3.0)
        await self.web_search(f"competitors in {market.phrase}")
        # A self-hosted model: no price is known for it (serve --prices FILE can give one). The
        # demo's one unpriced model, so that "no price" shows beside the priced ones.
        await self._chat("local-llama-3-8b", "self-hosted", task)
        if self._rng.random() < 0.05:
            raise ValueError(f"the pricing page of a {market.phrase} competitor has no prices in it")
        record_quality_score(round(self._rng.uniform(80, 98), 1))

    @agent(name="DeepDiver", agent_id="deep-diver", description="Long-running due diligence")
    async def deep_dive(self, task: str) -> None:
        # Long on purpose (27-49 s, 40-65 s with the slow download): its row in the running runs shows
        # progress step by step. About one run in three waits on a slow filing download and then
        # mostly passes DEMO_STALL_THRESHOLD_SECONDS.
        slow_step = self._rng.randrange(5) if self._rng.random() < 0.35 else -1
        for step, what in enumerate(("the annual report", "the earnings calls", "the patents",
                                     "the customer reviews", "the memo")):
            await self._chat("gpt-4o", "openai", f"{task}: read {what}")
            await self.download_filing(f"target-{step}", slow=step == slow_step)
            await self._work(4.5, 7.0)
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
    async def _dive(self) -> None:
        # A failed dive is on its span, like every run's failure; the task itself ends quietly
        # (otherwise asyncio logs "Task exception was never retrieved").
        with contextlib.suppress(Exception):
            await self.deep_dive("Due diligence on the top opportunity")

    async def _wave(self) -> None:
        planned, alone = self._rng.sample(_MARKETS, 3)[:2], self._rng.choice(_MARKETS)
        runs: list[Coroutine[Any, Any, object]] = [
            self.plan(f"Size the {planned[0].phrase} and {planned[1].phrase} markets", planned),
            self.research_market(f"Research the {alone.phrase} market", alone),
            self.scout_trends("Scan news and filings for emerging trends"),
            self.analyse_competitors(f"Map competitors in {planned[0].phrase}", planned[0]),
        ]
        # Failures are part of the show: they are on the spans, the demo carries on.
        await asyncio.gather(*runs, return_exceptions=True)
        await self.extract_patterns()
        self._waves += 1

    async def run(self, waves: int | None) -> None:
        for agent_id, name, role in [
            ("planner", "Planner", "orchestration"),
            ("market-researcher", "MarketResearcher", "market research"),
            ("trend-scout", "TrendScout", "trend detection"),
            ("competitor-analyst", "CompetitorAnalyst", "competitive analysis"),
            ("deep-diver", "DeepDiver", "due diligence"),
        ]:
            register_agent(agent_id, name, role=role)
        diving: asyncio.Task[None] | None = None
        done = 0
        try:
            while waves is None or done < waves:
                # One DeepDiver at a time: the only long run on the page.
                if diving is None or diving.done():
                    diving = asyncio.ensure_future(self._dive())
                await self._wave()
                done += 1
                await self._work(0.5, 1.5)
            if diving is not None:
                await asyncio.gather(diving, return_exceptions=True)  # a bounded run ends complete
        finally:
            if diving is not None and not diving.done():
                diving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await diving


async def run_scenario(*, seed: int | None = None, speed: float = 1.0, waves: int | None = None) -> None:
    """Run the simulated agents, using the global tracer provider.

    Args:
        seed: seed of the random choices, for a repeatable run.
        speed: time factor; 2.0 runs twice as fast.
        waves: how many waves of runs (about 6 runs each) before returning, after the DeepDiver run
            in progress ends; None: until cancelled.

    Raises:
        ValueError: ``speed`` is not positive, or ``waves`` is negative.
    """
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    if waves is not None and waves < 0:
        raise ValueError(f"waves must be >= 0, got {waves!r}")
    await _Scenario(random.Random(seed), speed=speed).run(waves)


def install_demo_tracing(state: DashboardState, prices: PriceBook | None = None) -> TracerProvider:
    """A tracer provider, set globally, whose spans reach ``state`` through the processor (which
    prices the model calls with ``prices``; the built-in book when ``None``)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-dashboard-demo"}))
    provider.add_span_processor(DashboardSpanProcessor(state=state, prices=prices))
    trace.set_tracer_provider(provider)
    return provider


async def run_demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    name: str = "demo",
    prices: PriceBook | None = None,
    grpc_port: int | None = None,
) -> int:
    """Serve the dashboard and run the simulated agents until SIGINT/SIGTERM.

    ``prices`` (a :class:`~otel_dashboard.model.prices.PriceBook`; None: the built-in one) goes to the
    server's options, as ``serve --prices`` does. ``grpc_port`` is the server's OTLP/gRPC port (None:
    off; ``otel-dashboard demo`` passes 4317, ``--grpc-port``).

    Returns:
        The process exit code (0 after a clean stop).
    """
    state = DashboardState(stall_threshold_seconds=DEMO_STALL_THRESHOLD_SECONDS, budgets=DEMO_BUDGETS)
    provider = install_demo_tracing(state, prices)
    server = DashboardWebSocketServer(host, port, state=state, name=name, prices=prices, grpc_port=grpc_port)
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
