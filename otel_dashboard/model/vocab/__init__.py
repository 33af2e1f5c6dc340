"""The vocabulary layer: one table per instrumentation family, and one normalized view of a span.

* :mod:`.table`: the shape of a table and the kinds (``agent``, ``model``, ``tool``, ...).
* :mod:`.own`, :mod:`.genai`, :mod:`.openinference`, :mod:`.openllmetry`, :mod:`.mcp`: the tables.
* :mod:`.names`, :mod:`.text`: names from span names, tasks from messages and inputs.
* :mod:`.reader`: :func:`view_of`, :func:`task_of`, :func:`error_of`.

``docs/events.md`` ("Vocabularies") is the user-facing table of what is read where.
"""

from otel_dashboard.model.vocab.reader import RECORD_KEYS, SpanView, error_of, kind_of, task_of, view_of
from otel_dashboard.model.vocab.table import (
    KIND_AGENT,
    KIND_CHAIN,
    KIND_MODEL,
    KIND_OTHER,
    KIND_REGISTRATION,
    KIND_RETRIEVAL,
    KIND_SYNTHESIS,
    KIND_TOOL,
    TOKEN_FIELDS,
)

__all__ = [
    "KIND_AGENT",
    "KIND_CHAIN",
    "KIND_MODEL",
    "KIND_OTHER",
    "KIND_REGISTRATION",
    "KIND_RETRIEVAL",
    "KIND_SYNTHESIS",
    "KIND_TOOL",
    "RECORD_KEYS",
    "TOKEN_FIELDS",
    "SpanView",
    "error_of",
    "kind_of",
    "task_of",
    "view_of",
]
