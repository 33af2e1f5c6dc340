"""Metric and log exporters for the zero-code path (``OTEL_METRICS_EXPORTER=otel_dashboard``,
``OTEL_LOGS_EXPORTER=otel_dashboard``).

(Skeleton: helper H4 fills this module.)
"""

from __future__ import annotations

__all__ = ["DashboardLogExporter", "DashboardMetricExporter"]


class DashboardMetricExporter:
    """Skeleton."""


class DashboardLogExporter:
    """Skeleton."""
