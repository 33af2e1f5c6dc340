"""Routes the spans of the decorators (which use the GLOBAL tracer provider) to a per-test processor.

The OpenTelemetry API lets a process set its global tracer provider once, and a provider's processors
cannot be removed. So one :class:`RoutingProcessor` is added to the global SDK provider once, and each
test points it at its own processor (``with routed_to(processor): ...``); outside that block the
decorators' spans go nowhere here.

:func:`instrumentation_suppressed` sets the context key that the SDK sets while exporting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["instrumentation_suppressed", "routed_to"]


class RoutingProcessor(SpanProcessor):
    """Forwards span starts and ends to whichever processor is current (none: dropped)."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        target = self.target
        if target is not None:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is not None:
            target.on_end(span)


_router: RoutingProcessor | None = None


def _global_router() -> RoutingProcessor:
    global _router
    if _router is None:
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), "the global tracer provider is not an SDK provider"
        _router = RoutingProcessor()
        provider.add_span_processor(_router)
    return _router


@contextmanager
def routed_to(processor: SpanProcessor) -> Iterator[None]:
    """Sends the global provider's spans to ``processor`` inside the block."""
    router = _global_router()
    router.target = processor
    try:
        yield
    finally:
        router.target = None


class SpanForwarder(SpanProcessor):
    """Sends ended spans to whichever exporter the current test installed (none: dropped)."""

    def __init__(self) -> None:
        self.exporter: InMemorySpanExporter | None = None
        self.fail: bool = False  # simulates a broken processor that raises into span start/end

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.fail:
            raise RuntimeError("broken processor on_start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.fail:
            raise RuntimeError("broken processor on_end")
        exporter = self.exporter
        if exporter is not None:
            exporter.export((span,))


@contextmanager
def instrumentation_suppressed(key: str | None = None) -> Iterator[None]:
    """Suppresses instrumentation inside the block, as the SDK's processors do while exporting.

    Args:
        key: The context key to set; the API's ``_SUPPRESS_INSTRUMENTATION_KEY`` by default.
    """
    token = context_api.attach(
        context_api.set_value(key or context_api._SUPPRESS_INSTRUMENTATION_KEY, True)
    )
    try:
        yield
    finally:
        context_api.detach(token)
