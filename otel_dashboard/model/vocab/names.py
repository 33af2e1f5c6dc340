"""Names from span names: the fallbacks used when no vocabulary attribute names the agent or tool.

``docs/events.md`` ("Names and their fallbacks") lists these rules; keep the two in step.
"""

from __future__ import annotations

__all__ = ["MAX_FALLBACK_NAME_CHARS", "name_from_span_name"]

# A span name longer than this, or with a line break, is not a name: some frameworks put the task
# text there, and taking it would register a new agent per task.
MAX_FALLBACK_NAME_CHARS = 64

# "<prefix><name>": GenAI semconv and MCP span names.
_PREFIXES = (
    "invoke_agent ",
    "invoke_workflow ",
    "execute_tool ",
    "create_agent ",
    "MCP send tools/call ",
    "tools/call ",
)
# "<name><suffix>": a framework's method or decorator span (smolagents "WeatherAgent.run", CrewAI
# "Weather Researcher._execute_core", OpenLLMetry "WeatherAgent.agent" / "get_weather.tool").
_SUFFIXES = (
    ".run",
    ".arun",
    "._execute_core",
    ".execute_task",
    ".kickoff",
    ".invoke",
    ".ainvoke",
    ".forward",
    ".agent",
    ".workflow",
    ".tool",
    ".task",
)


def name_from_span_name(span_name: str | None) -> str | None:
    """The agent or tool name a span name gives, or ``None`` when it gives none usable.

    ``"invoke_agent WeatherAgent"`` and ``"WeatherAgent.run"`` give ``"WeatherAgent"``; a plain name
    is itself; an empty name, or one that looks like text rather than a name (longer than
    :data:`MAX_FALLBACK_NAME_CHARS` or with a line break), gives ``None``.
    """
    if not span_name:
        return None
    name = span_name.strip()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):].strip()
            break
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)].strip()
            break
    if not name or len(name) > MAX_FALLBACK_NAME_CHARS or "\n" in name or "\r" in name:
        return None
    return name
