"""Tests of record_opportunity, record_quality_score and register_agent, with real SDK spans."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_support import instrumentation_suppressed

from instrumentation import (
    agent,
    agent_span,
    record_opportunity,
    record_quality_score,
    register_agent,
    tool,
    tool_span,
)
from instrumentation import semconv as sc


# --- fixtures: one global SDK provider per process, a fresh exporter per test ---------------------
def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def _only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# --- record_opportunity ---------------------------------------------------------------------------
class TestRecordOpportunity:
    def test_event_on_current_span_with_all_attributes(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="Scout")
        def scout() -> None:
            assert (
                record_opportunity(
                    "Edge caching",
                    description="CDN for models",
                    category="infra",
                    confidence=0.8,
                    revenue_potential="$2M ARR",
                    opportunity_id="opp-1",
                )
                is None
            )

        scout()

        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert [e.name for e in span.events] == ["opportunity_discovered"]
        attributes = dict(span.events[0].attributes or {})
        for key, value in {
            sc.OPPORTUNITY_ID: "opp-1",
            sc.OPPORTUNITY_TITLE: "Edge caching",
            sc.OPPORTUNITY_DESCRIPTION: "CDN for models",
            sc.OPPORTUNITY_CATEGORY: "infra",
            sc.OPPORTUNITY_CONFIDENCE: 0.8,
            sc.OPPORTUNITY_REVENUE_POTENTIAL: "$2M ARR",
        }.items():
            assert attributes.pop(key) == value, key
        assert not attributes

    def test_defaults_and_generated_id(self, exporter: InMemorySpanExporter) -> None:
        with tool_span("crawler"):
            record_opportunity("First")
            record_opportunity("Second", confidence=1)

        events = _only_span(exporter).events
        assert [e.name for e in events] == ["opportunity_discovered"] * 2
        first, second = (dict(e.attributes or {}) for e in events)
        assert re.fullmatch(r"[0-9a-f]{32}", str(first[sc.OPPORTUNITY_ID]))
        assert first[sc.OPPORTUNITY_ID] != second[sc.OPPORTUNITY_ID]
        assert first[sc.OPPORTUNITY_DESCRIPTION] == first[sc.OPPORTUNITY_CATEGORY] == ""
        assert first[sc.OPPORTUNITY_REVENUE_POTENTIAL] == ""
        assert first[sc.OPPORTUNITY_CONFIDENCE] == 0.0
        assert second[sc.OPPORTUNITY_CONFIDENCE] == 1.0
        assert isinstance(second[sc.OPPORTUNITY_CONFIDENCE], float)

    def test_goes_to_the_innermost_span(self, exporter: InMemorySpanExporter) -> None:
        with agent_span("Outer"), tool_span("inner"):
            record_opportunity("Found in tool")

        spans = _by_name(exporter)
        assert [e.name for e in spans["execute_tool inner"].events] == ["opportunity_discovered"]
        assert spans["invoke_agent Outer"].events == ()

    def test_outside_any_span_is_a_logged_no_op(
        self, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="instrumentation.records"):
            assert record_opportunity("Nobody listens") is None

        assert exporter.get_finished_spans() == ()
        assert "record_opportunity" in caplog.text and "no recording span" in caplog.text

    @pytest.mark.parametrize(
        ("kwargs", "argument"),
        [
            ({"title": ""}, "title"),
            ({"title": "   "}, "title"),
            ({"title": None}, "title"),
            ({"title": 42}, "title"),
            ({"title": "t", "confidence": -0.01}, "confidence"),
            ({"title": "t", "confidence": 1.01}, "confidence"),
            ({"title": "t", "confidence": math.nan}, "confidence"),
            ({"title": "t", "confidence": math.inf}, "confidence"),
            ({"title": "t", "confidence": True}, "confidence"),
            ({"title": "t", "confidence": "high"}, "confidence"),
            ({"title": "t", "opportunity_id": ""}, "opportunity_id"),
            ({"title": "t", "description": None}, "description"),
            ({"title": "t", "category": 3}, "category"),
            ({"title": "t", "revenue_potential": 1e6}, "revenue_potential"),
        ],
    )
    def test_validation_inside_and_outside_spans(
        self, exporter: InMemorySpanExporter, kwargs: dict[str, Any], argument: str
    ) -> None:
        title = kwargs.pop("title")
        with pytest.raises(ValueError, match=argument):
            record_opportunity(title, **kwargs)
        with pytest.raises(ValueError, match=argument), tool_span("t"):
            record_opportunity(title, **kwargs)


# --- record_quality_score -------------------------------------------------------------------------
def _quality_events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "quality_score_updated"]


class TestRecordQualityScore:
    def test_event_and_span_attribute(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="Critic")
        def critic() -> None:
            assert (
                record_quality_score(
                    91.5, source="reviewer", dimension_scores={"accuracy": 95, "style": 88.0}
                )
                is None
            )

        critic()

        span = _only_span(exporter)
        (event,) = _quality_events(span)
        assert json.loads(event.pop(sc.QUALITY_DIMENSIONS)) == {"accuracy": 95.0, "style": 88.0}
        assert event.pop(sc.QUALITY_SCORE) == 91.5
        assert event.pop(sc.QUALITY_SOURCE) == "reviewer"
        assert not event
        assert (span.attributes or {})[sc.QUALITY_SCORE] == 91.5

    def test_last_score_wins_and_ints_become_floats(self, exporter: InMemorySpanExporter) -> None:
        with agent_span("Critic"):
            record_quality_score(40)
            record_quality_score(0)

        span = _only_span(exporter)
        assert [e[sc.QUALITY_SCORE] for e in _quality_events(span)] == [40.0, 0.0]
        assert (span.attributes or {})[sc.QUALITY_SCORE] == 0.0
        assert isinstance((span.attributes or {})[sc.QUALITY_SCORE], float)
        assert [e[sc.QUALITY_DIMENSIONS] for e in _quality_events(span)] == ["{}", "{}"]

    def test_default_source_is_the_agent_name(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="grader")
        def grader() -> None:
            record_quality_score(97)

        @agent(name="Writer")
        def writer() -> None:
            grader()

        writer()

        spans = _by_name(exporter)
        tool_s, agent_s = spans["execute_tool grader"], spans["invoke_agent Writer"]
        (event,) = _quality_events(tool_s)
        assert event[sc.QUALITY_SOURCE] == "Writer"
        assert _quality_events(agent_s) == []
        # The score is on the tool span, and also on the agent run it belongs to.
        assert (tool_s.attributes or {})[sc.QUALITY_SCORE] == 97.0
        assert (agent_s.attributes or {})[sc.QUALITY_SCORE] == 97.0

    def test_default_source_from_foreign_span(self, exporter: InMemorySpanExporter) -> None:
        tracer = trace.get_tracer("other.instrumentation")
        with tracer.start_as_current_span("plain work"):
            record_quality_score(50)
        with tracer.start_as_current_span("chat", attributes={sc.GEN_AI_AGENT_NAME: "Their agent"}):
            record_quality_score(60)

        spans = _by_name(exporter)
        assert _quality_events(spans["plain work"])[0][sc.QUALITY_SOURCE] == "plain work"
        assert _quality_events(spans["chat"])[0][sc.QUALITY_SOURCE] == "Their agent"

    def test_outside_any_span_is_a_logged_no_op(
        self, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="instrumentation.records"):
            assert record_quality_score(80) is None

        assert exporter.get_finished_spans() == ()
        assert "record_quality_score" in caplog.text

    @pytest.mark.parametrize(
        ("kwargs", "argument"),
        [
            ({"score": -1}, "score"),
            ({"score": 100.5}, "score"),
            ({"score": math.nan}, "score"),
            ({"score": False}, "score"),
            ({"score": "90"}, "score"),
            ({"score": None}, "score"),
            ({"score": 90, "source": ""}, "source"),
            ({"score": 90, "source": 7}, "source"),
            ({"score": 90, "dimension_scores": [("a", 1)]}, "dimension_scores"),
            ({"score": 90, "dimension_scores": {"a": 101}}, r"dimension_scores\['a'\]"),
            ({"score": 90, "dimension_scores": {"a": math.nan}}, r"dimension_scores\['a'\]"),
            ({"score": 90, "dimension_scores": {"a": "high"}}, r"dimension_scores\['a'\]"),
            ({"score": 90, "dimension_scores": {"": 50}}, "dimension_scores key"),
            ({"score": 90, "dimension_scores": {1: 50}}, "dimension_scores key"),
        ],
    )
    def test_validation_inside_and_outside_spans(
        self, exporter: InMemorySpanExporter, kwargs: dict[str, Any], argument: str
    ) -> None:
        score = kwargs.pop("score")
        with pytest.raises(ValueError, match=argument):
            record_quality_score(score, **kwargs)
        with pytest.raises(ValueError, match=argument), agent_span("A"):
            record_quality_score(score, **kwargs)
        # Nothing half-recorded by the failed call.
        assert _quality_events(_only_span(exporter)) == []

    @pytest.mark.parametrize("score", [0, 0.0, 100, 100.0, 42])
    def test_bounds_are_inclusive(self, exporter: InMemorySpanExporter, score: float) -> None:
        with agent_span("A"):
            record_quality_score(score, dimension_scores={"d": score})

        assert (_only_span(exporter).attributes or {})[sc.QUALITY_SCORE] == float(score)


# --- register_agent ---------------------------------------------------------------------------------
class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


class TestRegisterAgent:
    def test_span_and_attributes(self, exporter: InMemorySpanExporter) -> None:
        assert (
            register_agent(
                "r-1",
                "Researcher",
                description="Finds papers",
                model="gpt-4o",
                temperature=0.2,
                max_steps=5,
                streaming=True,
                tools=["search", "fetch"],
                weights=[1.0, 2.0],
                config={"k": 1},
                mixed=[1, "a"],
                obj=Opaque(),
                nothing=None,
            )
            is None
        )

        span = _only_span(exporter)
        assert span.name == "create_agent Researcher"
        assert span.kind is SpanKind.INTERNAL
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()
        assert span.end_time is not None
        attributes = dict(span.attributes or {})
        prefix = sc.AGENT_ATTRIBUTE_PREFIX
        for key, value in {
            sc.GEN_AI_OPERATION_NAME: "create_agent",
            sc.GEN_AI_AGENT_ID: "r-1",
            sc.GEN_AI_AGENT_NAME: "Researcher",
            sc.GEN_AI_AGENT_DESCRIPTION: "Finds papers",
            sc.SPAN_KIND: "registration",
            prefix + "model": "gpt-4o",
            prefix + "temperature": 0.2,
            prefix + "max_steps": 5,
            prefix + "streaming": True,
            prefix + "tools": ("search", "fetch"),
            prefix + "weights": (1.0, 2.0),
            prefix + "config": "{'k': 1}",
            prefix + "mixed": "[1, 'a']",
            prefix + "obj": "Opaque()",
        }.items():
            assert attributes.pop(key) == value, key
        assert not attributes  # `nothing=None` is skipped

    def test_minimal(self, exporter: InMemorySpanExporter) -> None:
        register_agent("a-1", "Solo")

        assert dict(_only_span(exporter).attributes or {}) == {
            sc.GEN_AI_OPERATION_NAME: "create_agent",
            sc.GEN_AI_AGENT_ID: "a-1",
            sc.GEN_AI_AGENT_NAME: "Solo",
            sc.SPAN_KIND: "registration",
        }

    def test_child_of_current_span(self, exporter: InMemorySpanExporter) -> None:
        with agent_span("Orchestrator"):
            register_agent("w-1", "Worker")

        spans = _by_name(exporter)
        child, parent = spans["create_agent Worker"], spans["invoke_agent Orchestrator"]
        assert child.parent is not None and child.parent.span_id == parent.context.span_id

    @pytest.mark.parametrize(
        ("call", "argument"),
        [
            (lambda: register_agent("", "Name"), "agent_id"),
            (lambda: register_agent(None, "Name"), "agent_id"),  # type: ignore[arg-type]
            (lambda: register_agent("id", ""), "name"),
            (lambda: register_agent("id", "  "), "name"),
            (lambda: register_agent("id", "Name", description=3), "description"),  # type: ignore[arg-type]
        ],
    )
    def test_validation(
        self, exporter: InMemorySpanExporter, call: Callable[[], None], argument: str
    ) -> None:
        with pytest.raises(ValueError, match=argument):
            call()
        assert exporter.get_finished_spans() == ()


# --- suppressed instrumentation -------------------------------------------------------------------
class TestSuppression:
    def test_nothing_is_recorded_on_the_current_span(self, exporter: InMemorySpanExporter) -> None:
        with agent_span("Scout"), tool_span("search"), instrumentation_suppressed():
            assert record_opportunity("Edge caching", confidence=0.8) is None
            assert record_quality_score(92.5, dimension_scores={"accuracy": 95}) is None
            assert register_agent("r-1", "Researcher", model="gpt-4o") is None

        spans = _by_name(exporter)
        assert sorted(spans) == ["execute_tool search", "invoke_agent Scout"]
        for span in spans.values():
            assert span.events == ()
            assert sc.QUALITY_SCORE not in (span.attributes or {})

    @pytest.mark.parametrize(
        "call",
        [
            lambda: record_opportunity(""),
            lambda: record_quality_score(101),
            lambda: register_agent("", "Researcher"),
        ],
        ids=["record_opportunity", "record_quality_score", "register_agent"],
    )
    def test_arguments_are_still_checked(
        self, exporter: InMemorySpanExporter, call: Callable[[], Any]
    ) -> None:
        with agent_span("Scout"), instrumentation_suppressed(), pytest.raises(ValueError):
            call()
