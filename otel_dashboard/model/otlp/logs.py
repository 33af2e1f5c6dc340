"""OTLP log records to span events (GenAI events join their span's transcript) and failures.

(Skeleton: helper H3 fills this module; the names below are the contract the others use.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LogsRead", "read_logs"]


@dataclass
class LogsRead:
    """What one ``ExportLogsServiceRequest`` carried.

    Attributes:
        span_events: the log events tied to a span, to attach to it (see the module docstring).
        failures: exception log records, for the one-failure-one-error rule.
        log_records: every log record in the request, for the counters.
        rejected: log records rejected one by one (partial success).
        message: why they were rejected ("" when none was).
    """

    span_events: list[Any] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    log_records: int = 0
    rejected: int = 0
    message: str = ""


def read_logs(request: Any) -> LogsRead:
    """The span events and failures of one ``ExportLogsServiceRequest``; never raises on its content."""
    raise NotImplementedError
