"""The three OTLP signals the receivers accept: their export request and response messages, the
partial-success field that counts what was rejected, and the gRPC method that carries them.

The message classes are imported when first asked for (:attr:`Signal.request_type`): the gRPC
receiver registers its methods by name at start without loading the protobuf modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf.message import Message

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
        service_module: the ``opentelemetry-proto`` module of the service's messages.
        message_prefix: ``"ExportTraceService"``, ...: the messages are ``<prefix>Request`` and
            ``<prefix>Response`` (:attr:`request_type`, :attr:`response_type`).
        rejected_field: the field of ``partial_success`` that counts the rejected items.
        grpc_method: the full gRPC method name (``/package.Service/Export``).
    """

    name: str
    singular: str
    items: str
    service_module: str
    message_prefix: str
    rejected_field: str
    grpc_method: str

    @property
    def request_type(self) -> type[Message]:
        """The ``Export*ServiceRequest`` message class."""
        cls: type[Message] = getattr(importlib.import_module(self.service_module),
                                     f"{self.message_prefix}Request")
        return cls

    @property
    def response_type(self) -> type[Message]:
        """The ``Export*ServiceResponse`` message class."""
        cls: type[Message] = getattr(importlib.import_module(self.service_module),
                                     f"{self.message_prefix}Response")
        return cls

    @property
    def http_path(self) -> str:
        """``/v1/traces``, ``/v1/metrics`` or ``/v1/logs``."""
        return f"/v1/{self.name}"


SIGNALS: dict[str, Signal] = {
    SIGNAL_TRACES: Signal(SIGNAL_TRACES, "trace", "spans",
                          "opentelemetry.proto.collector.trace.v1.trace_service_pb2", "ExportTraceService",
                          "rejected_spans",
                          "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
    SIGNAL_METRICS: Signal(SIGNAL_METRICS, "metrics", "data points",
                           "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
                           "ExportMetricsService", "rejected_data_points",
                           "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
    SIGNAL_LOGS: Signal(SIGNAL_LOGS, "logs", "log records",
                        "opentelemetry.proto.collector.logs.v1.logs_service_pb2", "ExportLogsService",
                        "rejected_log_records",
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
