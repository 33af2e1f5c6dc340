"""Received spans to dashboard events, through the same mapping as in-process spans."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan

from otel_dashboard.model.events import DashboardEvent, QualityThresholds
from otel_dashboard.model.span_mapper import SpanMapper

__all__ = ["events_from_otlp_spans"]

logger = logging.getLogger(__name__)


def events_from_otlp_spans(
    spans: Iterable[ReadableSpan],
    *,
    thresholds: QualityThresholds | None = None,
    mapper: SpanMapper | None = None,
) -> list[DashboardEvent]:
    """The dashboard events of received spans, through the same mapping as in-process spans.

    A received span has ended, so each gives its start events (stamped with the span's start time)
    and its end events: an agent span yields ``agent_execution_started`` and later
    ``agent_execution_completed``, with its run's totals. The spans go through ``mapper``
    (:meth:`~otel_dashboard.model.span_mapper.SpanMapper.map_received`) in time order: every start
    and end sorted by time, parents starting before their children, so an exporter that sends a
    parent after its children still gives the page the parent agent's start first, and the run's
    model and tool calls are counted in it. Runs, failures and spans waiting for their parent carry
    over between requests when the caller keeps one ``mapper`` (the server does); without one, a
    fresh mapper sees this request alone.

    A span the mapping fails on is skipped.
    """
    mapper = mapper if mapper is not None else SpanMapper(thresholds=thresholds)
    return mapper.map_received(spans)
