"""The OTLP/gRPC receiver: TraceService, MetricsService and LogsService on port 4317.

(Skeleton: helper H1 fills this module.)
"""

from __future__ import annotations

__all__ = ["DEFAULT_GRPC_PORT"]

DEFAULT_GRPC_PORT = 4317
"""The OTLP/gRPC port (the OpenTelemetry default)."""
