"""This project's own decorators (``@agent``, ``@tool``, ``@synthesis``), as a table: they write the
GenAI names too, and ``otel_dashboard.span.kind`` says which decorator made the span."""

from __future__ import annotations

from instrumentation import semconv as sc
from otel_dashboard.model.vocab.table import (
    KIND_AGENT,
    KIND_REGISTRATION,
    KIND_SYNTHESIS,
    KIND_TOOL,
    Vocabulary,
)

__all__ = ["OWN"]

OWN = Vocabulary(
    name="otel_dashboard",
    kind_key=sc.SPAN_KIND,
    kinds={
        sc.SPAN_KIND_AGENT: KIND_AGENT,
        sc.SPAN_KIND_TOOL: KIND_TOOL,
        sc.SPAN_KIND_SYNTHESIS: KIND_SYNTHESIS,
        sc.SPAN_KIND_REGISTRATION: KIND_REGISTRATION,
    },
    input_keys=(sc.TASK_DESCRIPTION,),
)
