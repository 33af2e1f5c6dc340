"""The three OTLP signals the receivers accept: their export request and response messages, the
partial-success field that counts what was rejected, and the gRPC method that carries them."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["SIGNALS", "SIGNAL_LOGS", "SIGNAL_METRICS", "SIGNAL_TRACES", "Signal", "signal_of"]

SIGNAL_TRACES = "traces"
SIGNAL_METRICS = "metrics"
SIGNAL_LOGS = "logs"


@dataclass(frozen=True)
class Signal:
    """One OTLP signal.

    Attributes:
        name: ``"traces"``, ``"metrics"`` or ``"logs"`` (the OTLP/HTTP path is ``/v1/<name>``).
        singular: ``"trace"``, ``"metrics"``, ``"logs"``, for messages.
        items: what one request carries, for messages (``"spans"``, ``"data points"``, ``"log records"``).
        request_type: the ``Export*ServiceRequest`` message class.
        response_type: the ``Export*ServiceResponse`` message class.
        rejected_field: the field of ``partial_success`` that counts the rejected items.
        grpc_method: the full gRPC method name (``/package.Service/Export``).
    """

    name: str
    singular: str
    items: str
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str
    grpc_method: str

    @property
    def http_path(self) -> str:
        """``/v1/traces``, ``/v1/metrics`` or ``/v1/logs``."""
        return f"/v1/{self.name}"


SIGNALS: dict[str, Signal] = {
    SIGNAL_TRACES: Signal(SIGNAL_TRACES, "trace", "spans", ExportTraceServiceRequest,
                          ExportTraceServiceResponse, "rejected_spans",
                          "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
    SIGNAL_METRICS: Signal(SIGNAL_METRICS, "metrics", "data points", ExportMetricsServiceRequest,
                           ExportMetricsServiceResponse, "rejected_data_points",
                           "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
    SIGNAL_LOGS: Signal(SIGNAL_LOGS, "logs", "log records", ExportLogsServiceRequest,
                        ExportLogsServiceResponse, "rejected_log_records",
                        "/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
}


def signal_of(name: str) -> Signal:
    """The :class:`Signal` named ``name``.

    Raises:
        ValueError: not ``"traces"``, ``"metrics"`` or ``"logs"``.
    """
    try:
        return SIGNALS[name]
    except (KeyError, TypeError):
        raise ValueError(f"signal must be 'traces', 'metrics' or 'logs', got {name!r}") from None
