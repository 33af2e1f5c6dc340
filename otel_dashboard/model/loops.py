"""Loop detection: which runs look stuck (``LoopSuspected``, ``docs/guardrails.md`` "Loop detection").

Three checks, each with a threshold in :class:`~otel_dashboard.model.guardrails.LoopThresholds`
(0 turns it off):

* ``repeated_tool_call``: the same tool called with the same arguments ``repeated_tool_calls`` times
  in one run. The arguments are read as the trace view reads them
  (:func:`~otel_dashboard.model.transcript.tool_io_of`: GenAI ``gen_ai.tool.call.arguments``,
  OpenLLMetry ``traceloop.entity.input``, OpenInference ``input.value``, call wrappers unwrapped) and
  compared as canonical JSON (keys sorted). A tool span that carries no arguments is not counted: the
  same tool with unknown arguments is not evidence of a loop.
* ``repeated_prompt``: the same model input sent ``repeated_prompts`` times in one run: the same
  values of the input attributes and message events that
  :func:`~otel_dashboard.model.transcript.transcript_of` reads (``gen_ai.input.messages`` and
  ``gen_ai.system_instructions``, ``llm.input_messages.*``, ``gen_ai.prompt.*``, the GenAI message
  events of the input side), compared as they came, unparsed.
* ``self_invocation``: an agent running inside its own run, through other agents or directly,
  ``self_invocation_depth`` times (``A > B > A > B > A`` is depth 2 for ``A``).

What is kept per run is a :class:`LoopMemory`: counts by evidence key (a hash of the tool's name and
arguments, or of the prompt), each with the last span ids; at most :data:`MAX_KEYS_PER_MEMORY` keys,
the least recently seen forgotten beyond (a loop's key is seen again and again, so it stays). Each
finding is reported once per run and key, when its count first reaches the threshold.

Pure: no state beyond the memories the caller holds, no SDK, no I/O; never raises on odd values.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from otel_dashboard.model.guardrails import LoopThresholds
from otel_dashboard.model.transcript import tool_io_of

__all__ = [
    "LOOP_KINDS",
    "MAX_ARGUMENT_CHARS",
    "MAX_KEYS_PER_MEMORY",
    "MAX_SPAN_IDS",
    "LoopDetector",
    "LoopFinding",
    "LoopMemory",
]

REPEATED_TOOL_CALL = "repeated_tool_call"
REPEATED_PROMPT = "repeated_prompt"
SELF_INVOCATION = "self_invocation"
LOOP_KINDS = (REPEATED_TOOL_CALL, REPEATED_PROMPT, SELF_INVOCATION)
"""The ``loop.kind`` values of a ``LoopSuspected`` event."""

MAX_KEYS_PER_MEMORY = 256
"""Distinct evidence keys kept per run; the least recently seen is forgotten beyond."""
MAX_SPAN_IDS = 10
"""Span ids kept per key (the last ones), and reported in ``loop.span_ids``."""
MAX_ARGUMENT_CHARS = 200
"""``loop.arguments`` is the arguments' text cut to this many characters."""
MAX_CHAIN_AGENTS = 20
"""``loop.agents`` lists at most this many agent names (the innermost)."""

# Only these attributes are read for a tool's arguments and a model call's input: the transcript
# readers then skip the results and outputs (the larger half of a span's content).
_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "traceloop.entity.input", "input.value", "input.mime_type")
_PROMPT_KEYS = frozenset({"gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.prompt"})
_PROMPT_PREFIXES = ("llm.input_messages.", "gen_ai.prompt.")
_PROMPT_EVENTS = frozenset({
    "gen_ai.client.inference.operation.details", "gen_ai.system.message", "gen_ai.user.message",
    "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.content.prompt",
})
_HASH_BYTES = 16


@dataclass(frozen=True)
class LoopFinding:
    """One suspected loop: the evidence a ``LoopSuspected`` event reports.

    Attributes:
        kind: one of :data:`LOOP_KINDS`.
        count: how many times it was seen in the run when reported (at least ``threshold``).
        threshold: the threshold it reached.
        span_ids: the spans involved, up to the last :data:`MAX_SPAN_IDS` (16 hex digits each).
        tool_name: the tool (``repeated_tool_call``).
        arguments: the arguments' text, cut to :data:`MAX_ARGUMENT_CHARS` (``repeated_tool_call``).
        agents: the chain of agent names, outermost first (``self_invocation``).
    """

    kind: str
    count: int
    threshold: int
    span_ids: tuple[str, ...]
    tool_name: str | None = None
    arguments: str | None = None
    agents: tuple[str, ...] = ()

    def loop_data(self) -> dict[str, Any]:
        """The event's ``loop`` object (``docs/guardrails.md``)."""
        data: dict[str, Any] = {"kind": self.kind, "count": self.count, "threshold": self.threshold}
        if self.kind == REPEATED_TOOL_CALL:
            data["tool_name"] = self.tool_name
            data["arguments"] = self.arguments
        if self.kind == SELF_INVOCATION:
            data["agents"] = list(self.agents)
        data["span_ids"] = list(self.span_ids)
        return data

    def message(self, agent_name: str) -> str:
        """The event's human ``error_message``."""
        if self.kind == REPEATED_TOOL_CALL:
            return (f"{self.tool_name} called {self.count} times with the same arguments in one run of "
                    f"{agent_name}")
        if self.kind == REPEATED_PROMPT:
            return f"the same prompt sent to the model {self.count} times in one run of {agent_name}"
        chain = " > ".join(self.agents)
        return f"{agent_name} running inside its own run {self.count} deep ({chain})"


class _Seen:
    """One evidence key's count and its last spans."""

    __slots__ = ("arguments", "count", "span_ids", "tool_name")

    def __init__(self, tool_name: str | None, arguments: str | None) -> None:
        self.count = 0
        self.span_ids: deque[str] = deque(maxlen=MAX_SPAN_IDS)
        self.tool_name = tool_name
        self.arguments = arguments


class LoopMemory:
    """What one run (or the spans waiting for their run) has shown so far: counts by evidence key,
    and the keys already reported. Bounded by :data:`MAX_KEYS_PER_MEMORY`."""

    __slots__ = ("forgotten_keys", "reported", "seen")

    def __init__(self) -> None:
        self.seen: dict[tuple[str, bytes], _Seen] = {}
        self.reported: set[tuple[str, Any]] = set()
        self.forgotten_keys = 0

    def forget_tool_calls(self) -> None:
        """Drops the tool calls counted (those of tool spans under a tool span: the same call)."""
        for key in [key for key in self.seen if key[0] == REPEATED_TOOL_CALL]:
            del self.seen[key]

    def _entry(self, key: tuple[str, bytes], tool_name: str | None, arguments: str | None) -> _Seen:
        seen = self.seen
        entry = seen.pop(key, None)  # re-inserted last: the dict's order is least recently seen first
        if entry is None:
            if len(seen) >= MAX_KEYS_PER_MEMORY:
                del seen[next(iter(seen))]
                self.forgotten_keys += 1
            entry = _Seen(tool_name, arguments)
        seen[key] = entry
        return entry


class LoopDetector:
    """Runs the three checks against the memories its caller keeps (one per run).

    Args:
        thresholds: when to report; ``None`` or all thresholds 0: nothing is ever reported.

    Raises:
        ValueError: a threshold that is not an integer >= 0.
    """

    def __init__(self, thresholds: LoopThresholds | None) -> None:
        thresholds = thresholds if thresholds is not None else LoopThresholds(0, 0, 0)
        for name in ("repeated_tool_calls", "repeated_prompts", "self_invocation_depth"):
            value = getattr(thresholds, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"loop threshold {name} must be an integer >= 0, not {value!r}")
        self.thresholds = thresholds
        self._tools = thresholds.repeated_tool_calls
        self._prompts = thresholds.repeated_prompts
        self._depth = thresholds.self_invocation_depth
        self.enabled = bool(self._tools or self._prompts or self._depth)
        self.counts_calls = bool(self._tools or self._prompts)

    # ------------------------------------------------------------------ the checks
    def tool_call(
        self, memory: LoopMemory, attrs: Mapping[str, Any], *, tool_name: str, span_id: str,
        report: bool = True,
    ) -> LoopFinding | None:
        """Counts one tool call (an ended tool span's attributes) in ``memory``; the finding when
        this call brings its (tool, arguments) to the threshold first (``report=False``: count only,
        for spans whose run is not known yet; :meth:`due` reports later). Never raises."""
        if not self._tools:
            return None
        try:
            arguments = _arguments_text(attrs)
            if arguments is None:
                return None
            digest = _digest(tool_name, arguments)
            entry = memory._entry((REPEATED_TOOL_CALL, digest), tool_name, arguments[:MAX_ARGUMENT_CHARS])
            return self._count(memory, (REPEATED_TOOL_CALL, digest), entry, span_id, self._tools, report)
        except Exception:  # the contract: never raises (a hostile value is skipped)
            return None

    def model_call(
        self, memory: LoopMemory, attrs: Mapping[str, Any], span_events: Iterable[Any] = (), *,
        span_id: str, report: bool = True,
    ) -> LoopFinding | None:
        """Counts one model call's input (an ended model span's attributes and span events) in
        ``memory``; the finding when this input reaches the threshold first (``report`` as in
        :meth:`tool_call`). Never raises."""
        if not self._prompts:
            return None
        try:
            prompt = _prompt_text(attrs, span_events)
            if prompt is None:
                return None
            digest = _digest("", prompt)
            entry = memory._entry((REPEATED_PROMPT, digest), None, None)
            return self._count(memory, (REPEATED_PROMPT, digest), entry, span_id, self._prompts, report)
        except Exception:
            return None

    def due(self, memory: LoopMemory) -> list[LoopFinding]:
        """The findings of ``memory`` at or over their threshold and not reported yet (now reported):
        what counting without reporting, or a :meth:`merge`, left to say."""
        found: list[LoopFinding] = []
        for key, entry in memory.seen.items():
            threshold = self._tools if key[0] == REPEATED_TOOL_CALL else self._prompts
            if threshold and entry.count >= threshold and key not in memory.reported:
                memory.reported.add(key)
                found.append(_finding(key[0], entry, threshold))
        return found

    @staticmethod
    def merge(into: LoopMemory, other: LoopMemory) -> None:
        """Adds ``other`` (the memory of spans that waited for their run, or their parent) into
        ``into``; :meth:`due` then says what the sums reach."""
        into.reported |= other.reported
        into.forgotten_keys += other.forgotten_keys
        for key, theirs in other.seen.items():
            entry = into._entry(key, theirs.tool_name, theirs.arguments)
            entry.count += theirs.count
            entry.span_ids.extend(theirs.span_ids)

    def self_invocation(
        self, memory: LoopMemory | None, chain: Sequence[tuple[str, str]]
    ) -> LoopFinding | None:
        """The finding when the innermost agent of ``chain`` runs inside its own runs
        ``self_invocation_depth`` times (or more) and ``memory`` (the outermost such run's) has not
        reported it yet.

        Args:
            memory: the outermost run of the same agent's memory (None: report without remembering).
            chain: ``(agent_name, run_id)`` from the innermost run (the one just started) outwards.
        """
        if not self._depth or len(chain) <= self._depth:
            return None
        name = chain[0][0]
        same = [index for index, (agent, _) in enumerate(chain) if agent == name and index]
        if len(same) < self._depth:
            return None
        key = (SELF_INVOCATION, name)
        if memory is not None:
            if key in memory.reported:
                return None
            memory.reported.add(key)
        outer = same[-1]
        involved = list(reversed(chain[: outer + 1]))  # outermost first
        return LoopFinding(
            SELF_INVOCATION, len(same), self._depth,
            tuple(run_id for _, run_id in involved[-MAX_SPAN_IDS:]),
            agents=tuple(agent for agent, _ in involved[-MAX_CHAIN_AGENTS:]),
        )

    @staticmethod
    def _count(memory: LoopMemory, key: tuple[str, bytes], entry: _Seen, span_id: str,
               threshold: int, report: bool) -> LoopFinding | None:
        entry.count += 1
        entry.span_ids.append(span_id)
        if not report or entry.count < threshold or key in memory.reported:
            return None
        memory.reported.add(key)
        return _finding(key[0], entry, threshold)


def _finding(kind: str, entry: _Seen, threshold: int) -> LoopFinding:
    return LoopFinding(kind, entry.count, threshold, tuple(entry.span_ids), tool_name=entry.tool_name,
                       arguments=entry.arguments)


def _digest(label: str, text: str) -> bytes:
    digest = hashlib.blake2b(label.encode("utf-8", "replace"), digest_size=_HASH_BYTES)
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "replace"))
    return digest.digest()


def _canonical(value: Any) -> str:
    """A decoded value as canonical text: a string as is, anything else as JSON with sorted keys."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def _arguments_text(attrs: Mapping[str, Any]) -> str | None:
    """A tool span's arguments as canonical text, or None when it carries none."""
    found = {key: attrs[key] for key in _ARGUMENT_KEYS if attrs.get(key) is not None}
    if not found:
        return None
    io = tool_io_of(found)
    if io is None or io.get("arguments") is None:
        return None
    return _canonical(io["arguments"])


def _prompt_text(attrs: Mapping[str, Any], span_events: Iterable[Any]) -> str | None:
    """A model call's input as canonical text, or None when it carries none: the raw values of the
    input attributes and message events the transcript reader reads (not parsed: a loop resends the
    same bytes, and hashing them costs a fraction of reading them), keys sorted."""
    inputs = sorted((key, value) for key, value in attrs.items()
                    if key in _PROMPT_KEYS or (type(key) is str and key.startswith(_PROMPT_PREFIXES)))
    events = []
    for span_event in span_events:  # SDK span events, or mappings with "name" and "attributes"
        plain = isinstance(span_event, Mapping)
        name = span_event.get("name") if plain else getattr(span_event, "name", None)
        if name in _PROMPT_EVENTS:
            event_attrs = span_event.get("attributes") if plain else getattr(span_event, "attributes", None)
            events.append((name, sorted(dict(event_attrs or {}).items())))
    if not inputs and not events:
        return None
    return orjson.dumps([inputs, events], default=_as_text,
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode("utf-8")


def _as_text(value: Any) -> str:
    """What orjson cannot encode (bytes, odd objects), as text."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return repr(value)
