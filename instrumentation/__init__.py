"""Decorators and helpers that instrument agent code with OpenTelemetry spans.

Depends on ``opentelemetry-api`` only: a library that instruments its agents needs nothing else.
Spans go to whatever tracer provider the application sets (none set: they cost next to nothing
and go nowhere). A run that returns leaves its span's status UNSET, one that raises sets ERROR.
While instrumentation is suppressed in the context (as the SDK does while exporting), nothing is
recorded and instrumented code runs as if undecorated. Usage::

    from instrumentation import agent, tool, record_quality_score

    @tool
    def search(query: str) -> list[str]: ...

    @agent(name="Researcher")
    async def research(topic: str) -> str:
        hits = search(topic)
        record_quality_score(92.5)
        return summarise(hits)

A run can be stopped from inside: ``@agent(stop_on_budget=True)`` makes the next decorated step
of a run the dashboard flagged (a budget crossed, "Stop run") raise :class:`BudgetExceeded`
(``docs/guardrails.md``, :mod:`instrumentation.guard`).

Environment:
    ``OTEL_DASHBOARD_HIDE_INPUTS=true`` keeps call arguments out of spans: an agent's task
    description is then only ever the explicit ``task_description=``.

See ``docs/instrumentation.md`` for the span names and attributes produced.
"""

from instrumentation.decorators import agent, synthesis, tool
from instrumentation.guard import BudgetExceeded
from instrumentation.records import record_opportunity, record_quality_score, register_agent
from instrumentation.spans import agent_span, synthesis_span, tool_span

__all__ = [
    "BudgetExceeded",
    "agent",
    "agent_span",
    "record_opportunity",
    "record_quality_score",
    "register_agent",
    "synthesis",
    "synthesis_span",
    "tool",
    "tool_span",
]
