"""OTLP metrics to the usage the agents table shows: the GenAI and MCP metrics, read; the rest counted.

(Skeleton: helper H2 fills this module; the names below are the contract the others use.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MetricsRead", "read_metrics"]


@dataclass
class MetricsRead:
    """What one ``ExportMetricsServiceRequest`` carried.

    Attributes:
        points: the GenAI / MCP data points the agents table can use (see the module docstring).
        data_points: every data point in the request (recognised or not), for the counters.
        rejected: data points rejected one by one (partial success).
        message: why they were rejected ("" when none was).
    """

    points: list[Any] = field(default_factory=list)
    data_points: int = 0
    rejected: int = 0
    message: str = ""


def read_metrics(request: Any) -> MetricsRead:
    """The GenAI and MCP usage of one ``ExportMetricsServiceRequest``; never raises on its content."""
    raise NotImplementedError
