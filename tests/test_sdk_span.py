"""The SDK span adapter: the fast path holds for the installed SDK, the fallback gives the same
answers, and no other module reads the SDK's private fields.

If ``test_the_installed_sdk_keeps_the_internals_the_fast_path_reads`` fails, the SDK renamed or
retyped ``ReadableSpan._attributes._dict`` or ``._events._dq``: mapping still works (through the
public properties) but costs more per span. Update ``otel_dashboard/model/sdk_span.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

from otel_dashboard.model import sdk_span

PACKAGE = Path(__file__).resolve().parent.parent / "otel_dashboard"


class _Ended(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


@pytest.fixture(name="traced")
def fixture_traced() -> Iterator[tuple[Tracer, _Ended]]:
    provider = TracerProvider()
    ended = _Ended()
    provider.add_span_processor(ended)
    yield provider.get_tracer("tests.sdk_span"), ended
    provider.shutdown()


def test_the_installed_sdk_keeps_the_internals_the_fast_path_reads(traced: tuple[Tracer, _Ended]) -> None:
    tracer, ended = traced
    live = tracer.start_span("work", attributes={"a": 1, "b": "two"})
    live.add_event("step", {"n": 1})
    assert sdk_span.reads_internals(live)  # the live span, as on_start sees it
    live.set_attribute("c", (1, 2))
    # Not a copy: what the live span's thread sets is there.
    assert sdk_span.attributes(live) == {"a": 1, "b": "two", "c": (1, 2)}
    live.end()
    (readable,) = ended.spans
    assert sdk_span.reads_internals(readable)  # the snapshot on_end gets
    assert dict(sdk_span.attributes(readable)) == dict(readable.attributes)
    assert [e.name for e in sdk_span.events(readable)] == ["step"]
    assert sdk_span.events(readable) == tuple(readable.events)
    # internal_fields ends with the events, the SDK's own deque: a span record reads them with the
    # other fields, in the one call (spans without events pay nothing more).
    fields = sdk_span.internal_fields(readable)
    assert fields is not None and tuple(fields[9]) == tuple(readable.events)
    assert sdk_span.internal_fields(rebuilt_without_internals()) is None


def rebuilt_without_internals() -> ReadableSpan:
    """A span as the OTLP receiver builds it: plain containers, not the SDK's bounded ones."""
    return ReadableSpan("received", attributes={"a": 1}, events=[Event("step", {"n": 1}, timestamp=5)])


def test_spans_without_the_internals_are_read_through_the_public_properties() -> None:
    event = Event("step", {"n": 1}, timestamp=5)
    # As the OTLP receiver builds them: plain containers, not the SDK's bounded ones.
    rebuilt = ReadableSpan("received", attributes={"a": 1}, events=[event])
    assert not sdk_span.reads_internals(rebuilt)
    assert dict(sdk_span.attributes(rebuilt)) == {"a": 1}
    assert tuple(sdk_span.events(rebuilt)) == (event,)

    class Foreign:
        attributes: Any = None
        events: Any = None

    assert not sdk_span.reads_internals(Foreign())  # type: ignore[arg-type]
    assert dict(sdk_span.attributes(Foreign())) == {}  # type: ignore[arg-type]
    assert tuple(sdk_span.events(Foreign())) == ()  # type: ignore[arg-type]


def test_a_span_without_events_has_an_empty_tuple(traced: tuple[Tracer, _Ended]) -> None:
    tracer, ended = traced
    tracer.start_span("quiet").end()
    assert sdk_span.events(ended.spans[0]) == ()


def test_only_the_adapter_reads_the_sdk_internals() -> None:
    pattern = re.compile(r"_attributes\._dict|_events\._dq")
    readers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if pattern.search(path.read_text())
    )
    assert readers == ["model/sdk_span.py"]
