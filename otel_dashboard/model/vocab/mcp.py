"""The Model Context Protocol's OpenTelemetry conventions (the mcp SDK's and fastmcp's native spans),
as a table.

A ``tools/call`` is a tool call; the tool's name is ``gen_ai.tool.name`` where the span has it, else
the span name after the method (``tools/call get_weather``, ``MCP send tools/call get_weather``).
The client's span and the server's span of one call both say ``tools/call``: the run model counts
the outermost tool span of a call only.
"""

from __future__ import annotations

from otel_dashboard.model.vocab.table import KIND_OTHER, KIND_RETRIEVAL, KIND_TOOL, Vocabulary

__all__ = ["MCP"]

MCP = Vocabulary(
    name="mcp",
    kind_key="mcp.method.name",
    kinds={
        "tools/call": KIND_TOOL,
        "resources/read": KIND_RETRIEVAL,
        "prompts/get": KIND_OTHER,
        "tools/list": KIND_OTHER,
        "initialize": KIND_OTHER,
    },
    name_prefixes={"tools/call ": KIND_TOOL, "MCP send tools/call ": KIND_TOOL},
    tool_name_keys=("gen_ai.tool.name", "fastmcp.component.key"),
    conversation_keys=("mcp.session.id",),
    error_type_keys=("error.type", "rpc.jsonrpc.error_code"),
)
