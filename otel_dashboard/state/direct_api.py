"""The original design's direct API: one ``async`` method per event type, each building the event
from keyword fields and publishing it.

:class:`DirectApi` is a mixin of :class:`~otel_dashboard.state.dashboard.DashboardState`; every
method ends in its ``publish``. The methods are ``async`` because the original's were (callers
``await`` them); none of them waits for anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_dashboard.model.events import DashboardEvent, EventType, QualityThresholds, Severity

__all__ = ["DirectApi"]


def _check_number(name: str, value: Any, *, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


class DirectApi:
    """Publish events from their fields (a mixin: it uses the state's ``publish`` and
    ``quality_thresholds``, declared below)."""

    publish: Callable[[DashboardEvent], DashboardEvent]
    quality_thresholds: QualityThresholds

    async def broadcast_event(self, event: DashboardEvent) -> DashboardEvent:
        """Accept a hand-built event (the original design's entry point); see ``publish``."""
        return self.publish(event)

    async def agent_started(
        self, agent_id: str, agent_name: str, task_description: str, **extra: Any
    ) -> DashboardEvent:
        """Publish ``agent_execution_started``; ``extra`` goes into ``data``."""
        data = {"agent_id": agent_id, "agent_name": agent_name,
                "task_description": task_description, **extra}
        return self.publish(DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, data))

    async def agent_completed(
        self,
        agent_id: str,
        agent_name: str,
        task_description: str,
        duration_ms: float,
        success: bool,
        data_source: str | None = None,
        quality_score: float | None = None,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``agent_execution_completed`` (``success``, or ``error`` when not successful).

        Raises:
            ValueError: ``duration_ms`` negative or ``quality_score`` outside 0-100.
        """
        _check_number("duration_ms", duration_ms, low=0)
        if quality_score is not None:
            _check_number("quality_score", quality_score, low=0, high=100)
        data = {
            "agent_id": agent_id, "agent_name": agent_name, "task_description": task_description,
            "duration_ms": duration_ms, "success": bool(success), "data_source": data_source,
            "quality_score": quality_score, **extra,
        }
        severity = Severity.SUCCESS if success else Severity.ERROR
        return self.publish(DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, data, severity))

    async def opportunity_discovered(
        self,
        opportunity_id: str,
        title: str,
        description: str,
        confidence_score: float,
        revenue_potential: str,
        category: str,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``opportunity_discovered``.

        Raises:
            ValueError: ``confidence_score`` outside 0-1.
        """
        _check_number("confidence_score", confidence_score, low=0, high=1)
        data = {
            "opportunity_id": opportunity_id, "title": title, "description": description,
            "confidence_score": confidence_score, "revenue_potential": revenue_potential,
            "category": category, **extra,
        }
        return self.publish(
            DashboardEvent.create(EventType.OPPORTUNITY_DISCOVERED, data, Severity.SUCCESS)
        )

    async def synthesis_started(self, phase: str, description: str, **extra: Any) -> DashboardEvent:
        """Publish ``synthesis_started``."""
        data = {"phase": phase, "description": description, **extra}
        return self.publish(DashboardEvent.create(EventType.SYNTHESIS_STARTED, data))

    async def synthesis_completed(
        self, phase: str, duration_ms: float, patterns_found: int, **extra: Any
    ) -> DashboardEvent:
        """Publish ``synthesis_completed``."""
        _check_number("duration_ms", duration_ms, low=0)
        data = {"phase": phase, "duration_ms": duration_ms, "patterns_found": patterns_found,
                "success": True, **extra}
        return self.publish(
            DashboardEvent.create(EventType.SYNTHESIS_COMPLETED, data, Severity.SUCCESS)
        )

    async def quality_score_updated(
        self,
        source: str,
        overall_score: float,
        dimension_scores: dict[str, float] | None = None,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``quality_score_updated``; its severity follows ``quality_thresholds``.

        Raises:
            ValueError: ``overall_score`` outside 0-100.
        """
        _check_number("overall_score", overall_score, low=0, high=100)
        data = {"source": source, "overall_score": overall_score,
                "dimension_scores": dict(dimension_scores or {}), **extra}
        severity = self.quality_thresholds.severity(overall_score)
        return self.publish(DashboardEvent.create(EventType.QUALITY_SCORE_UPDATED, data, severity))

    async def error_occurred(
        self, source: str, error_message: str, error_type: str, **extra: Any
    ) -> DashboardEvent:
        """Publish ``error_occurred``."""
        data = {"source": source, "error_message": error_message, "error_type": error_type, **extra}
        return self.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.ERROR))

    async def system_health_updated(
        self,
        cpu_percent: float | None = None,
        memory_percent: float | None = None,
        active_agents: int = 0,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``system_health_updated`` (``warning`` when ``extra`` says ``status="degraded"``)."""
        data = {"cpu_percent": cpu_percent, "memory_percent": memory_percent,
                "active_agents": active_agents, **extra}
        severity = Severity.WARNING if data.get("status") == "degraded" else Severity.INFO
        return self.publish(DashboardEvent.create(EventType.SYSTEM_HEALTH_UPDATED, data, severity))
