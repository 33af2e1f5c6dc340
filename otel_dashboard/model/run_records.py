"""Validation of the ``runs`` of ``POST /api/events``: the live state of open agent runs, shipped by
remote processors next to their events (``docs/server.md``, "POST /api/events"); and
:func:`copy_run`, the copy the state and the remote sender keep of a run they are handed.

A run is checked field by field, known fields only (anything else is dropped), so that what the
server keeps and sends to every browser is bounded whatever a sender sends. The first field of a
wrong type refuses the whole request (:class:`~otel_dashboard.model.ingest.IngestError`, named like
``runs[2].tokens.input``), as the events' fields do. Sizes are capped rather than refused: strings
are cut to :data:`MAX_RUN_TEXT_CHARS`, ``tools`` keeps its first :data:`MAX_RUN_TOOLS` names and the
lists their first :data:`MAX_RUN_MODELS` entries.

Field rules (every field but ``run_id`` optional; ``null`` allowed where the spec allows it)
    ``run_id`` (required), ``parent_run_id``, ``root_run_id``: 16 lowercase hex digits, not all zero.
    ``trace_id``: 32 hex digits, not all zero, or null (normalized to lower case).
    ``agent_id``, ``agent_name``, ``service_name``, ``task_description``, ``current_step``,
    ``status``, ``conversation_id``: strings (or null).
    ``started_at``, ``updated_at``: ISO-8601 date-times with a zone (or null), normalized to UTC.
    ``model_calls``, ``tool_calls``, ``tool_failures``, ``errors``: integers >= 0.
    ``tools``: an object of tool name -> ``{"calls": int >= 0, "failures": int >= 0}``.
    ``models``, ``unpriced_models``: arrays of strings.
    ``tokens``: an object with some of ``input``, ``output``, ``total``, ``cache_read_input``,
    ``cache_creation_input``, ``reasoning_output``, each an integer >= 0 (other keys dropped).
    ``tokens_source``: ``"model_calls"``, ``"run_span"`` or null.
    ``cost_usd``: a finite number >= 0, or null.
    ``cost_status``: ``"priced"``, ``"partial"``, ``"no_price"``, ``"no_tokens"`` (or null).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from otel_dashboard.model.ingest import IngestError, normalize_timestamp

__all__ = [
    "MAX_RUNS_PER_REQUEST",
    "MAX_RUN_MODELS",
    "MAX_RUN_TEXT_CHARS",
    "MAX_RUN_TOOLS",
    "RUN_TOKEN_KEYS",
    "copy_run",
    "parse_run_records",
    "runs_of_body",
]

MAX_RUNS_PER_REQUEST = 1000
"""Runs one ``POST /api/events`` may carry."""
MAX_RUN_TEXT_CHARS = 500
"""A string field (or tool or model name) is cut to this many characters."""
MAX_RUN_TOOLS = 50
"""``tools`` keeps this many names at most."""
MAX_RUN_MODELS = 20
"""``models`` and ``unpriced_models`` keep this many entries at most."""
RUN_TOKEN_KEYS = ("input", "output", "total", "cache_read_input", "cache_creation_input", "reasoning_output")
"""The keys of a run's ``tokens``."""

_HEX = frozenset("0123456789abcdef")
_TOKENS_SOURCES = frozenset({"model_calls", "run_span"})
_COST_STATUSES = frozenset({"priced", "partial", "no_price", "no_tokens"})


def copy_run(run: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``run`` that shares no dict or list with it (the producer may reuse its own).

    A run is shallow JSON (``tokens`` and ``tools`` are the deepest: two levels), so this is a few
    small copies, not a generic deep copy.
    """
    out = dict(run)
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif isinstance(value, list):
            out[key] = list(value)
    return out


def runs_of_body(body: bytes) -> list[dict[str, Any]]:
    """The checked runs of an ingest body that :func:`~otel_dashboard.model.ingest.parse_ingest_payload`
    accepted: its ``"runs"`` when it is a batch (a single event carries none).

    Raises:
        IngestError: as :func:`parse_run_records`.
    """
    if b'"runs"' not in body:
        return []  # the common case: no second parse of the body
    document = orjson.loads(body)
    if not isinstance(document, dict) or "events" not in document or "event_type" in document:
        return []
    return parse_run_records(document.get("runs"))


def parse_run_records(value: Any) -> list[dict[str, Any]]:
    """The runs of a batch's ``"runs"`` value, checked and cleaned; ``None`` gives none.

    Args:
        value: the decoded JSON value of ``"runs"``.

    Returns:
        One clean dict per run, in request order, with only the known fields.

    Raises:
        IngestError: not an array, more than :data:`MAX_RUNS_PER_REQUEST` runs, or a run with a
            missing ``run_id`` or a field of the wrong type (named, e.g. ``runs[2].tool_calls``).
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise IngestError("runs", "must be an array of run objects")
    if len(value) > MAX_RUNS_PER_REQUEST:
        raise IngestError("runs", f"at most {MAX_RUNS_PER_REQUEST} runs per request, got {len(value)}")
    return [_run(item, f"runs[{index}]") for index, item in enumerate(value)]


def _run(item: Any, field: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise IngestError(field, "must be a run object")
    if "run_id" not in item:
        raise IngestError(f"{field}.run_id", "missing")
    run: dict[str, Any] = {"run_id": _span_id(item["run_id"], f"{field}.run_id", nullable=False)}
    for key, check in _CHECKS.items():
        if key in item:
            run[key] = check(item[key], f"{field}.{key}")
    return run


# ---------------------------------------------------------------------------------- field checks
def _span_id(value: Any, field: str, *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if (not isinstance(value, str) or len(value) != 16 or not _HEX.issuperset(value)
            or not value.strip("0")):
        raise IngestError(field, f"must be 16 lowercase hex digits, not all zero, got {_show(value)}")
    return value


def _trace_id(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 32 or not _HEX.issuperset(value.lower()) \
            or not value.strip("0"):
        raise IngestError(field, f"must be 32 hex digits, not all zero, or null, got {_show(value)}")
    return value.lower()


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestError(field, f"must be a string or null, got {_show(value)}")
    return _cut(value)


def _timestamp(value: Any, field: str) -> str | None:
    if value is None:
        return None
    try:
        return normalize_timestamp(value)
    except ValueError as exc:
        raise IngestError(field, str(exc)) from None


def _count(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise IngestError(field, f"must be an integer >= 0, got {_show(value)}")
    return value


def _tools(value: Any, field: str) -> dict[str, dict[str, int]]:
    if not isinstance(value, dict):
        raise IngestError(field, f"must be an object of tool name -> {{calls, failures}}, got {_show(value)}")
    tools: dict[str, dict[str, int]] = {}
    for name, counts in value.items():
        if len(tools) >= MAX_RUN_TOOLS:
            break
        where = f"{field}[{_cut(name, 64)!r}]"
        if not isinstance(counts, dict):
            raise IngestError(where, f"must be an object {{calls, failures}}, got {_show(counts)}")
        tools[_cut(name)] = {
            key: _count(counts[key], f"{where}.{key}") for key in ("calls", "failures") if key in counts
        }
    return tools


def _tokens(value: Any, field: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise IngestError(field, f"must be an object of token counts, got {_show(value)}")
    return {key: _count(value[key], f"{field}.{key}") for key in RUN_TOKEN_KEYS if key in value}


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise IngestError(field, f"must be an array of strings, got {_show(value)}")
    out = []
    for index, entry in enumerate(value[:MAX_RUN_MODELS]):
        if not isinstance(entry, str):
            raise IngestError(f"{field}[{index}]", f"must be a string, got {_show(entry)}")
        out.append(_cut(entry))
    return out


def _tokens_source(value: Any, field: str) -> str | None:
    if value is None or (isinstance(value, str) and value in _TOKENS_SOURCES):
        return value
    allowed = ", ".join(sorted(_TOKENS_SOURCES))
    raise IngestError(field, f"must be one of {allowed} or null, got {_show(value)}")


def _cost_usd(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value < 0):
        raise IngestError(field, f"must be a finite number >= 0 or null, got {_show(value)}")
    return float(value)


def _cost_status(value: Any, field: str) -> str | None:
    if value is None or (isinstance(value, str) and value in _COST_STATUSES):
        return value
    allowed = ", ".join(sorted(_COST_STATUSES))
    raise IngestError(field, f"must be one of {allowed} or null, got {_show(value)}")


# In the order of the spec's run object, which the clean run keeps.
_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "trace_id": _trace_id,
    "agent_id": _text,
    "agent_name": _text,
    "service_name": _text,
    "task_description": _text,
    "parent_run_id": _span_id,
    "root_run_id": _span_id,
    "started_at": _timestamp,
    "updated_at": _timestamp,
    "status": _text,
    "current_step": _text,
    "model_calls": _count,
    "tool_calls": _count,
    "tool_failures": _count,
    "errors": _count,
    "tools": _tools,
    "models": _strings,
    "tokens": _tokens,
    "tokens_source": _tokens_source,
    "cost_usd": _cost_usd,
    "cost_status": _cost_status,
    "unpriced_models": _strings,
    "conversation_id": _text,
}


# ---------------------------------------------------------------------------------- helpers
def _cut(value: str, limit: int = MAX_RUN_TEXT_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(_cut(value, 64))
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"
