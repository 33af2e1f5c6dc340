"""Received spans to dashboard events, through the same mapping as in-process spans."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan

from otel_dashboard.model import mapping
from otel_dashboard.model.events import DashboardEvent, QualityThresholds

__all__ = ["events_from_otlp_spans"]

logger = logging.getLogger(__name__)


def events_from_otlp_spans(
    spans: Iterable[ReadableSpan], *, thresholds: QualityThresholds | None = None
) -> list[DashboardEvent]:
    """The dashboard events of received spans, through the same mapping as in-process spans.

    A received span has ended, so each gives its start events (those of
    :func:`~otel_dashboard.model.mapping.map_span_start`, stamped with the span's start time) and its end
    events (:func:`~otel_dashboard.model.mapping.map_span_end`): an agent span yields
    ``agent_execution_started`` and later ``agent_execution_completed``.

    The result is in time order across spans: the start events of every span sit at its start time,
    its end events at its end time (in the mapping's order), and these groups are sorted stably. An
    exporter sends a parent after its children (it ends last), yet the page sees the parent agent
    start before its children's events. A span the mapping fails on is skipped and logged.
    """
    groups: list[tuple[int, list[DashboardEvent]]] = []
    failures = 0
    for span in spans:
        try:
            started = mapping.map_span_start(span, thresholds=thresholds)
            ended = mapping.map_span_end(span, thresholds=thresholds)
        except Exception:
            failures += 1
            if failures == 1:
                logger.exception("Mapping a received span failed; skipping it")
            continue
        if started:
            groups.append((span.start_time or 0, started))
        if ended:
            groups.append((span.end_time or 0, ended))
    if failures > 1:
        logger.warning("Mapping failed for %d received spans; they were skipped", failures)
    groups.sort(key=lambda group: group[0])
    return [event for _, events in groups for event in events]
