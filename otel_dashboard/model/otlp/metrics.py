"""OTLP metrics to the usage the agents table shows: the GenAI and MCP metrics, read; the rest counted.

:func:`read_metrics` turns one ``ExportMetricsServiceRequest`` into :class:`MetricPoint` values, one
per data point of a metric it knows, without any memory of earlier requests: turning cumulative
points into deltas, the window and the merge with the span figures are
:class:`~otel_dashboard.state.metric_usage.MetricUsage`'s (docs/otlp.md, "Metrics").

The metrics read, by the figure they feed (names from the OpenTelemetry GenAI semantic conventions:
semantic-conventions up to v1.41 and, since, the semantic-conventions-genai repository; OpenLLMetry's
instrumentations emit the same token and duration names), each family in the order it is preferred:

* **tokens** (the value of a counter, the sum of a histogram), input or output:
  ``gen_ai.client.inference.usage.input_tokens`` / ``.output_tokens`` (counters; histograms in an
  earlier draft: both read), ``gen_ai.client.inference.operation.input_tokens`` / ``.output_tokens``
  (histograms), ``gen_ai.client.inference.tokens`` (the proposed counter, by ``gen_ai.token.type``),
  ``gen_ai.client.token.usage`` (histogram, by ``gen_ai.token.type``: ``input``/``output``, or the
  older ``prompt``/``completion``);
* **model calls** (a histogram's count, failures, seconds): ``gen_ai.client.inference.duration``,
  ``gen_ai.client.operation.duration``; model operations only (``gen_ai.operation.name`` ``chat``,
  ``text_completion``, ``generate_content``, ``embeddings``, or none: the latter also times agents,
  tools and memory operations);
* **agent runs** (count, failures, seconds and buckets): ``gen_ai.invoke_agent.duration``;
* **tool calls** (count, failures): ``gen_ai.execute_tool.duration``;
* **MCP calls** (count, failures): ``mcp.client.operation.duration``, ``mcp.server.operation.duration``.

A failure is a data point with ``error.type`` set. Each point is attributed to an agent: its
``gen_ai.agent.name`` attribute, else its resource's ``service.name``, else ``"unknown_service"``;
its service is the resource's ``service.name`` (None without one). Its model is
``gen_ai.response.model``, else ``gen_ai.request.model``; its provider ``gen_ai.provider.name``, else
the older ``gen_ai.system`` (for the cost).

Everything else (other names, gauges, summaries, token points of another ``gen_ai.token.type``, a
non-monotonic sum, an operation that is not a model call) is counted in ``data_points`` and not used.

A data point is rejected (``partial_success.rejected_data_points``) when it cannot be read: a
histogram whose ``bucket_counts`` are neither empty nor one more than its ``explicit_bounds``, whose
bounds are not increasing finite numbers, or whose bucket counts do not add up to its ``count``; and,
for the metrics read, a value or sum that is not a finite number >= 0, or a missing
``time_unix_nano``. The other points of the request are kept. A histogram without its (optional)
sum gives its count only (no tokens, no seconds).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FIGURES",
    "MetricPoint",
    "MetricsRead",
    "read_metrics",
]

# Figures, and for each the metric families that feed it, the preferred first: an application that
# sends the same calls under several names (a library in transition) is counted once, from the first
# family that has data (state/metric_usage.py applies the order).
FIGURE_TOKENS = "tokens"
FIGURE_MODEL_CALLS = "model_calls"
FIGURE_RUNS = "runs"
FIGURE_TOOLS = "tool_calls"
FIGURE_MCP = "mcp_calls"

_USAGE_IN = "gen_ai.client.inference.usage.input_tokens"
_USAGE_OUT = "gen_ai.client.inference.usage.output_tokens"
_OPERATION_IN = "gen_ai.client.inference.operation.input_tokens"
_OPERATION_OUT = "gen_ai.client.inference.operation.output_tokens"
_INFERENCE_TOKENS = "gen_ai.client.inference.tokens"
_TOKEN_USAGE = "gen_ai.client.token.usage"
_INFERENCE_DURATION = "gen_ai.client.inference.duration"
_OPERATION_DURATION = "gen_ai.client.operation.duration"
_INVOKE_AGENT_DURATION = "gen_ai.invoke_agent.duration"
_EXECUTE_TOOL_DURATION = "gen_ai.execute_tool.duration"
_MCP_CLIENT_DURATION = "mcp.client.operation.duration"
_MCP_SERVER_DURATION = "mcp.server.operation.duration"

FIGURES: dict[str, tuple[str, ...]] = {
    FIGURE_TOKENS: ("gen_ai.client.inference.usage", "gen_ai.client.inference.operation",
                    _INFERENCE_TOKENS, _TOKEN_USAGE),
    FIGURE_MODEL_CALLS: (_INFERENCE_DURATION, _OPERATION_DURATION),
    FIGURE_RUNS: (_INVOKE_AGENT_DURATION,),
    FIGURE_TOOLS: (_EXECUTE_TOOL_DURATION,),
    FIGURE_MCP: (_MCP_CLIENT_DURATION, _MCP_SERVER_DURATION),
}
"""Each figure's metric families, the preferred first."""

# metric name -> (figure, family, fixed token direction or None (read gen_ai.token.type), None for durations)
_KNOWN: dict[str, tuple[str, str, str | None]] = {
    _USAGE_IN: (FIGURE_TOKENS, "gen_ai.client.inference.usage", "input"),
    _USAGE_OUT: (FIGURE_TOKENS, "gen_ai.client.inference.usage", "output"),
    _OPERATION_IN: (FIGURE_TOKENS, "gen_ai.client.inference.operation", "input"),
    _OPERATION_OUT: (FIGURE_TOKENS, "gen_ai.client.inference.operation", "output"),
    _INFERENCE_TOKENS: (FIGURE_TOKENS, _INFERENCE_TOKENS, None),
    _TOKEN_USAGE: (FIGURE_TOKENS, _TOKEN_USAGE, None),
    _INFERENCE_DURATION: (FIGURE_MODEL_CALLS, _INFERENCE_DURATION, None),
    _OPERATION_DURATION: (FIGURE_MODEL_CALLS, _OPERATION_DURATION, None),
    _INVOKE_AGENT_DURATION: (FIGURE_RUNS, _INVOKE_AGENT_DURATION, None),
    _EXECUTE_TOOL_DURATION: (FIGURE_TOOLS, _EXECUTE_TOOL_DURATION, None),
    _MCP_CLIENT_DURATION: (FIGURE_MCP, _MCP_CLIENT_DURATION, None),
    _MCP_SERVER_DURATION: (FIGURE_MCP, _MCP_SERVER_DURATION, None),
}

_TOKEN_TYPES = {"input": "input", "prompt": "input", "output": "output", "completion": "output"}
# gen_ai.operation.name values of a model call (gen_ai.client.operation.duration also times agents,
# tools and memory operations, which are not model calls); a point without one counts as a call.
_MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

_UNKNOWN_SERVICE = "unknown_service"
_MAX_NAME_CHARS = 256  # agent, service, model, provider and error names are cut to this (table cells)
_MAX_BOUNDS = 256  # explicit bounds kept per point for the percentiles; more: the point keeps none
_CUMULATIVE = 2  # AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = 1


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One data point of a GenAI or MCP metric, as read (not yet a delta).

    Attributes:
        figure: what it feeds: ``tokens``, ``model_calls``, ``runs``, ``tool_calls``, ``mcp_calls``.
        family: the metric family (:data:`FIGURES`: one figure is taken from one family per agent).
        direction: ``input`` or ``output`` for tokens, else None.
        agent: the agent it is attributed to (see the module docstring).
        service: the resource's ``service.name``, None without one.
        model: ``gen_ai.response.model``, else ``gen_ai.request.model``; None without either.
        provider: ``gen_ai.provider.name``, else ``gen_ai.system``; None without either.
        error_type: ``error.type``, None when the operations succeeded.
        stream: a 16-byte digest of the stream (metric name, resource, scope, point attributes).
        cumulative: the point holds the total since ``start_time_unix_nano`` (else a delta).
        start_time_unix_nano: the start of the point's interval (0 when not given).
        time_unix_nano: the end of the point's interval.
        count: a histogram's count (the operations); 0 for a counter.
        total: a histogram's sum, or a counter's value (tokens, or seconds).
        bounds: a histogram's explicit bounds (seconds), empty without buckets.
        bucket_counts: its bucket counts (``len(bounds) + 1`` of them), empty without buckets.
    """

    figure: str
    family: str
    direction: str | None
    agent: str
    service: str | None
    model: str | None
    provider: str | None
    error_type: str | None
    stream: bytes
    cumulative: bool
    start_time_unix_nano: int
    time_unix_nano: int
    count: int
    total: float
    bounds: tuple[float, ...] = ()
    bucket_counts: tuple[int, ...] = ()


@dataclass
class MetricsRead:
    """What one ``ExportMetricsServiceRequest`` carried.

    Attributes:
        points: the GenAI / MCP data points the agents table can use (see the module docstring).
        data_points: every data point in the request (recognised or not), for the counters.
        rejected: data points rejected one by one (partial success).
        message: why they were rejected ("" when none was).
    """

    points: list[MetricPoint] = field(default_factory=list)
    data_points: int = 0
    rejected: int = 0
    message: str = ""


class _Rejected(Exception):
    """A data point that cannot be read (the message says why)."""


def read_metrics(request: Any) -> MetricsRead:
    """The GenAI and MCP usage of one ``ExportMetricsServiceRequest``; never raises on its content.

    Args:
        request: the decoded request (``opentelemetry.proto`` message, from protobuf or OTLP/JSON).

    Returns:
        The points read, every data point counted, the points rejected and the first reason.
    """
    read = MetricsRead()
    for resource_metrics in getattr(request, "resource_metrics", ()):
        resource_attrs = resource_metrics.resource.attributes
        service = _text(_string_attr(resource_attrs, "service.name"))
        resource_key = _attrs_key(resource_attrs)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_key = b"%s\x00%s\x00" % (scope.name.encode(), scope.version.encode())
            for metric in scope_metrics.metrics:
                _read_metric(read, metric, service, resource_key + scope_key)
    if read.rejected:
        read.message = f"{read.rejected} data point(s) rejected; the first: {read.message}"
    return read


def _read_metric(read: MetricsRead, metric: Any, service: str | None, prefix: bytes) -> None:
    kind = metric.WhichOneof("data")
    if kind is None:
        return
    data = getattr(metric, kind)
    points = data.data_points
    read.data_points += len(points)
    known = _KNOWN.get(metric.name)
    for point in points:
        try:
            if kind == "histogram":
                _check_histogram(point)
            if known is None or kind not in ("sum", "histogram", "exponential_histogram"):
                continue  # counted only
            if kind == "sum" and not data.is_monotonic:
                continue  # an up-down counter is no usage
            made = _point(metric.name, known, kind, data, point, service, prefix)
        except _Rejected as exc:
            read.rejected += 1
            if not read.message:
                read.message = f"metric {metric.name[:_MAX_NAME_CHARS]!r}: {exc}"
            continue
        if made is not None:
            read.points.append(made)


def _check_histogram(point: Any) -> None:
    """Raises _Rejected for a histogram point whose buckets cannot be read."""
    bounds = point.explicit_bounds
    counts = point.bucket_counts
    if counts and len(counts) != len(bounds) + 1:
        raise _Rejected(f"{len(counts)} bucket counts for {len(bounds)} explicit bounds "
                        "(want none, or one more than the bounds)")
    previous = -math.inf
    for bound in bounds:
        if not math.isfinite(bound) or bound <= previous:
            raise _Rejected("explicit_bounds must be increasing finite numbers")
        previous = bound
    if counts and sum(counts) != point.count:
        raise _Rejected(f"bucket counts add up to {sum(counts)}, not to the count {point.count}")


def _point(name: str, known: tuple[str, str, str | None], kind: str, data: Any, point: Any,
           service: str | None, prefix: bytes) -> MetricPoint | None:
    """The point read, or None when it is of no figure (another token type, not a model call)."""
    figure, family, direction = known
    attrs = _attr_map(point.attributes)
    if figure == FIGURE_TOKENS and direction is None:
        direction = _TOKEN_TYPES.get(str(attrs.get("gen_ai.token.type", "")).lower())
        if direction is None:
            return None
    if figure == FIGURE_MODEL_CALLS:
        operation = attrs.get("gen_ai.operation.name")
        if operation is not None and operation not in _MODEL_OPERATIONS:
            return None
    if not point.time_unix_nano:
        raise _Rejected("a data point without time_unix_nano")
    bounds: tuple[float, ...] = ()
    bucket_counts: tuple[int, ...] = ()
    if kind == "sum":
        which = point.WhichOneof("value")
        total = float(point.as_int if which == "as_int" else point.as_double)
        count = 0
    else:
        count = int(point.count)
        # OTLP lets a histogram leave its sum out: its count still counts the operations.
        total = float(point.sum) if point.HasField("sum") else 0.0
        if kind == "histogram" and point.bucket_counts and len(point.explicit_bounds) <= _MAX_BOUNDS:
            bounds = tuple(point.explicit_bounds)
            bucket_counts = tuple(point.bucket_counts)
    if not math.isfinite(total) or total < 0:
        raise _Rejected(f"a value that is not a finite number >= 0 ({total!r})")
    temporality = data.aggregation_temporality
    if temporality not in (_CUMULATIVE, _DELTA):
        raise _Rejected("aggregation_temporality must be DELTA or CUMULATIVE")
    agent = _text(attrs.get("gen_ai.agent.name")) or service or _UNKNOWN_SERVICE
    stream = hashlib.blake2b(prefix + name.encode() + b"\x00" + _attrs_key(point.attributes),
                             digest_size=16).digest()
    return MetricPoint(
        figure=figure,
        family=family,
        direction=direction,
        agent=agent,
        service=service,
        model=_text(attrs.get("gen_ai.response.model")) or _text(attrs.get("gen_ai.request.model")),
        provider=_text(attrs.get("gen_ai.provider.name")) or _text(attrs.get("gen_ai.system")),
        error_type=_text(attrs.get("error.type")),
        stream=stream,
        cumulative=temporality == _CUMULATIVE,
        start_time_unix_nano=int(point.start_time_unix_nano),
        time_unix_nano=int(point.time_unix_nano),
        count=count,
        total=total,
        bounds=bounds,
        bucket_counts=bucket_counts,
    )


_READ_KEYS = frozenset({
    "gen_ai.token.type", "gen_ai.operation.name", "gen_ai.agent.name", "gen_ai.response.model",
    "gen_ai.request.model", "gen_ai.provider.name", "gen_ai.system", "error.type",
})


def _attr_map(key_values: Iterable[Any]) -> dict[str, str]:
    """The string attributes this module reads (others are not converted)."""
    out: dict[str, str] = {}
    for kv in key_values:
        if kv.key in _READ_KEYS:
            value = kv.value
            which = value.WhichOneof("value")
            if which == "string_value":
                out[kv.key] = value.string_value
            elif which in ("int_value", "bool_value", "double_value"):
                out[kv.key] = str(getattr(value, which))  # error.type "500" sent as an int
    return out


def _string_attr(key_values: Iterable[Any], key: str) -> str | None:
    for kv in key_values:
        if kv.key == key and kv.value.WhichOneof("value") == "string_value":
            return str(kv.value.string_value)
    return None


def _attrs_key(key_values: Iterable[Any]) -> bytes:
    """The attributes as bytes, whatever their order (for a stream's identity)."""
    return b"\x01".join(sorted(kv.SerializeToString() for kv in key_values)) + b"\x02"


def _text(value: str | None) -> str | None:
    """A non-empty name, cut to a table cell's size; None for none."""
    if not value:
        return None
    return value[:_MAX_NAME_CHARS]
