"""One failure, one error: which failed spans are the same failure travelling up the span chain.

An exception that propagates out of nested spans fails each of them, and most instrumentations
record it on each (a status, an ``exception`` event, an ``error.type``), sometimes wrapped in
another exception type. :class:`FailureChain` decides, span by span in end order, whether a failed
span is a NEW failure (the dashboard emits ``error_occurred`` for it) or the continuation of one
already seen below it. ``docs/events.md`` ("One failure, one error") states the rules:

1. A failed span whose child failed, with no successful child ending after that failure, continues
   the child's failure (the exception propagated through the parent link).
2. Otherwise a failed span continues a failure recorded on one of its descendants when the messages
   overlap (one contains the other, or they share a run of at least 24 characters) or, when one of
   them has no message, when their types are equal.
3. Everything else is a new failure.

A span ending without failure absorbs its children's failure (it was handled there), and a
successful child ending after a failed one means its parent recovered from that failure.
"""

from __future__ import annotations

from collections import OrderedDict
from difflib import SequenceMatcher

__all__ = ["Failure", "FailureChain"]

_MIN_SHARED_CHARS = 24
_MIN_CONTAINED_CHARS = 8
_COMPARED_CHARS = 500
_MAX_FAILURES_PER_TRACE = 16


class Failure:
    """A failure where it first appeared: its type, message and span, and that span's ancestors."""

    __slots__ = ("ancestors", "error_type", "message", "span_id")

    def __init__(self, span_id: int, error_type: str | None, message: str | None,
                 ancestors: frozenset[int]) -> None:
        self.span_id = span_id
        self.error_type = error_type
        self.message = message
        self.ancestors = ancestors

    def __repr__(self) -> str:
        return f"Failure({self.error_type!r}, {self.message!r})"


def _overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= _MIN_CONTAINED_CHARS and short in long_:
        return True
    a, b = a[:_COMPARED_CHARS], b[:_COMPARED_CHARS]
    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size >= _MIN_SHARED_CHARS


class FailureChain:
    """The failures of recent traces and the failures waiting at their parent spans. Bounded: the
    oldest entries go first when a table is full. Not thread-safe (one mapper's state)."""

    def __init__(self, *, max_pending: int = 10_000, max_traces: int = 1_000) -> None:
        self._max_pending = max_pending
        self._max_traces = max_traces
        # parent span id -> the failure of a child, until the parent ends or recovers
        self._pending: dict[int, Failure] = {}
        self._by_trace: OrderedDict[int, list[Failure]] = OrderedDict()

    def ended_ok(self, span_id: int, parent_id: int) -> None:
        """A span ended without failure: its children's failure ends here, and its parent, if a
        child of it had failed before, recovered."""
        pending = self._pending
        if pending:
            pending.pop(span_id, None)
            if parent_id:
                pending.pop(parent_id, None)

    def ended_failed(self, trace_id: int, span_id: int, parent_id: int, error_type: str | None,
                     message: str | None, ancestors: frozenset[int]) -> tuple[Failure, bool]:
        """A span ended failed: ``(failure, is_new)``, the failure it continues or a new one."""
        origin = self._pending.pop(span_id, None)
        if origin is None:
            origin = self._match(trace_id, span_id, error_type, message)
        is_new = origin is None
        if origin is None:
            origin = Failure(span_id, error_type, message, ancestors)
            failures = self._by_trace.get(trace_id)
            if failures is None:
                failures = self._by_trace[trace_id] = []
                if len(self._by_trace) > self._max_traces:
                    self._by_trace.popitem(last=False)
            failures.append(origin)
            if len(failures) > _MAX_FAILURES_PER_TRACE:
                del failures[0]
        if parent_id:
            pending = self._pending
            if len(pending) >= self._max_pending and parent_id not in pending:
                del pending[next(iter(pending))]
            pending[parent_id] = origin
        return origin, is_new

    def reported(self, trace_id: int, span_id: int, error_type: str | None, message: str | None) -> bool:
        """Whether a failure already seen is the one an exception log at ``span_id`` reports: one that
        first appeared at that span, or below it with an overlapping message (or, when either has no
        message, an equal type), as rule 2 of the module docstring matches a failed span. A log
        written where a failure was caught (the span then ends OK) is that failure, not a new one."""
        failures = self._by_trace.get(trace_id)
        if not failures:
            return False
        if any(failure.span_id == span_id for failure in failures):
            return True
        return self._match(trace_id, span_id, error_type, message) is not None

    def _match(self, trace_id: int, span_id: int, error_type: str | None,
               message: str | None) -> Failure | None:
        failures = self._by_trace.get(trace_id)
        if not failures:
            return None
        for failure in reversed(failures):
            if span_id not in failure.ancestors:
                continue
            if message and failure.message:
                if _overlap(message, failure.message):
                    return failure
            elif error_type and error_type == failure.error_type:
                return failure
        return None
