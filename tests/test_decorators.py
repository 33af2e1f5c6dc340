"""Tests of the @agent/@tool/@synthesis decorators and the *_span context managers.

Real SDK objects throughout: spans go through a TracerProvider to an InMemorySpanExporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_support import SpanForwarder, instrumentation_suppressed

from instrumentation import _suppression, agent, agent_span, synthesis, synthesis_span, tool, tool_span
from instrumentation import semconv as sc
from instrumentation._serialize import DEFAULT_LIMIT
from instrumentation._span import current_agent


# --- fixtures: one global SDK provider per process, a fresh exporter per test ---------------------
@pytest.fixture(autouse=True)
def _inputs_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_DASHBOARD_HIDE_INPUTS", raising=False)


def _spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def _only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = _spans(exporter)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = _spans(exporter)
    named = {s.name: s for s in spans}
    assert len(named) == len(spans), "span names are not unique"
    return named


def _assert_succeeded(span: ReadableSpan) -> None:
    # Instrumentation leaves a success UNSET: the specification keeps OK for the application.
    assert span.status.status_code is StatusCode.UNSET
    assert span.status.description is None
    assert [e.name for e in span.events] == []


def _assert_failed(span: ReadableSpan, exc: BaseException, description: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == description
    assert [e.name for e in span.events] == ["exception"]
    event_attributes = span.events[0].attributes or {}
    assert event_attributes[sc.EXCEPTION_TYPE] == type(exc).__qualname__
    assert event_attributes[sc.EXCEPTION_MESSAGE] == str(exc)


# --- the four callable kinds, with one shared behaviour ------------------------------------------
KINDS = ("function", "coroutine", "generator", "async_generator")


def _make(kind: str) -> Callable[..., Any]:
    """Returns an undecorated `research(topic, error=None)` producing ["p1", "p2"] or raising `error`."""
    if kind == "function":

        def research(topic: str, error: BaseException | None = None) -> list[str]:
            if error is not None:
                raise error
            return ["p1", "p2"]

    elif kind == "coroutine":

        async def research(topic: str, error: BaseException | None = None) -> list[str]:  # type: ignore[misc]
            await asyncio.sleep(0)
            if error is not None:
                raise error
            return ["p1", "p2"]

    elif kind == "generator":

        def research(topic: str, error: BaseException | None = None) -> Iterator[str]:  # type: ignore[misc]
            yield "p1"
            if error is not None:
                raise error
            yield "p2"

    else:

        async def research(topic: str, error: BaseException | None = None):  # type: ignore[misc]
            yield "p1"
            await asyncio.sleep(0)
            if error is not None:
                raise error
            yield "p2"

    return research


async def _drive(result: Any) -> Any:
    """Runs whatever a decorated callable returned to completion."""
    if inspect.isasyncgen(result):
        return [item async for item in result]
    if inspect.isgenerator(result):
        return list(result)
    if inspect.isawaitable(result):
        return await result
    return result


# decorator form -> (decorate, expected span name, expected attributes for `research("quantum")`)
FORMS: dict[str, tuple[Callable[[Callable[..., Any]], Callable[..., Any]], str, dict[str, Any]]] = {
    "agent bare": (
        agent,
        "invoke_agent research",
        {
            sc.GEN_AI_OPERATION_NAME: "invoke_agent",
            sc.GEN_AI_AGENT_NAME: "research",
            sc.GEN_AI_AGENT_ID: "research",
            sc.SPAN_KIND: "agent",
            sc.TASK_DESCRIPTION: "quantum",
        },
    ),
    "agent args": (
        agent(name="Researcher", agent_id="r-1", description="Finds papers", task_description="Survey"),
        "invoke_agent Researcher",
        {
            sc.GEN_AI_OPERATION_NAME: "invoke_agent",
            sc.GEN_AI_AGENT_NAME: "Researcher",
            sc.GEN_AI_AGENT_ID: "r-1",
            sc.GEN_AI_AGENT_DESCRIPTION: "Finds papers",
            sc.SPAN_KIND: "agent",
            sc.TASK_DESCRIPTION: "Survey",
        },
    ),
    "tool bare": (
        tool,
        "execute_tool research",
        {sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_TOOL_NAME: "research", sc.SPAN_KIND: "tool"},
    ),
    "tool args": (
        tool(name="search", description="Web search"),
        "execute_tool search",
        {
            sc.GEN_AI_OPERATION_NAME: "execute_tool",
            sc.GEN_AI_TOOL_NAME: "search",
            sc.GEN_AI_TOOL_DESCRIPTION: "Web search",
            sc.SPAN_KIND: "tool",
        },
    ),
    "synthesis bare": (
        synthesis,
        "synthesis research",
        {sc.SPAN_KIND: "synthesis", sc.SYNTHESIS_PHASE: "research"},
    ),
    "synthesis args": (
        synthesis(phase="clustering", description="Groups findings"),
        "synthesis clustering",
        {
            sc.SPAN_KIND: "synthesis",
            sc.SYNTHESIS_PHASE: "clustering",
            sc.SYNTHESIS_DESCRIPTION: "Groups findings",
        },
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", FORMS)
class TestEveryFormAndKind:
    async def test_success(self, exporter: InMemorySpanExporter, form: str, kind: str) -> None:
        decorate, span_name, expected = FORMS[form]
        decorated = decorate(_make(kind))

        assert await _drive(decorated("quantum")) == ["p1", "p2"]

        span = _only_span(exporter)
        assert span.name == span_name
        assert span.kind is SpanKind.INTERNAL
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "otel_dashboard.instrumentation"
        _assert_succeeded(span)
        attributes = dict(span.attributes or {})
        if form.startswith("synthesis"):
            # A returned list counts its items; a generator counts what it yielded: 2 either way.
            assert attributes.pop(sc.SYNTHESIS_PATTERNS_FOUND) == 2
        for key, value in expected.items():
            assert attributes.pop(key) == value, key
        assert not attributes

    async def test_exception_propagates_and_is_recorded_once(
        self, exporter: InMemorySpanExporter, form: str, kind: str
    ) -> None:
        decorate, span_name, expected = FORMS[form]
        decorated = decorate(_make(kind))
        error = ValueError("boom")

        with pytest.raises(ValueError) as raised:
            await _drive(decorated("quantum", error))

        assert raised.value is error
        span = _only_span(exporter)
        assert span.name == span_name
        _assert_failed(span, error, "ValueError: boom")
        attributes = dict(span.attributes or {})
        for key, value in expected.items():
            assert attributes.pop(key) == value, key
        assert not attributes  # no patterns_found without a result

    def test_wraps_keeps_identity_and_kind(
        self, exporter: InMemorySpanExporter, form: str, kind: str
    ) -> None:
        decorate = FORMS[form][0]
        original = _make(kind)
        decorated = decorate(original)

        assert decorated.__name__ == "research"
        assert decorated.__qualname__ == original.__qualname__
        assert decorated.__wrapped__ is original  # type: ignore[attr-defined]
        assert inspect.signature(decorated) == inspect.signature(original)
        assert inspect.iscoroutinefunction(decorated) is inspect.iscoroutinefunction(original)
        assert inspect.isgeneratorfunction(decorated) is inspect.isgeneratorfunction(original)
        assert inspect.isasyncgenfunction(decorated) is inspect.isasyncgenfunction(original)
        assert _spans(exporter) == []  # decorating starts nothing


# --- methods ------------------------------------------------------------------------------------
class Library:
    def __init__(self, shelf: str) -> None:
        self.shelf = shelf

    @agent
    def lookup(self, topic: str) -> str:
        return f"{self.shelf}:{topic}"

    @agent
    async def alookup(self, topic: str) -> str:
        await asyncio.sleep(0)
        return topic

    @agent
    def scan(self, topic: str) -> Iterator[str]:
        yield topic

    @agent
    async def ascan(self, topic: str):  # type: ignore[no-untyped-def]
        yield topic

    @staticmethod
    @agent
    def static_below(topic: str) -> str:
        return topic

    @agent
    @staticmethod
    def static_above(topic: str) -> str:
        return topic

    @classmethod
    @agent
    def class_below(cls, topic: str) -> str:
        return cls.__name__ + topic

    @agent
    @classmethod
    def class_above(cls, topic: str) -> str:
        return cls.__name__ + topic

    @tool(name="catalogue")
    def catalogue(self) -> int:
        return 3


class TestMethods:
    @pytest.mark.parametrize(
        ("call", "method_name"),
        [
            (lambda lib: lib.lookup("quantum"), "lookup"),
            (lambda lib: lib.alookup("quantum"), "alookup"),
            (lambda lib: lib.scan("quantum"), "scan"),
            (lambda lib: lib.ascan("quantum"), "ascan"),
            (lambda lib: lib.static_below("quantum"), "static_below"),
            (lambda lib: lib.static_above("quantum"), "static_above"),
            (lambda lib: Library.static_above("quantum"), "static_above"),
            (lambda lib: lib.class_below("quantum"), "class_below"),
            (lambda lib: lib.class_above("quantum"), "class_above"),
            (lambda lib: Library.class_above("quantum"), "class_above"),
        ],
    )
    async def test_named_class_dot_method_and_self_skipped(
        self, exporter: InMemorySpanExporter, call: Callable[[Library], Any], method_name: str
    ) -> None:
        await _drive(call(Library("A")))

        span = _only_span(exporter)
        assert span.name == f"invoke_agent Library.{method_name}"
        attributes = dict(span.attributes or {})
        assert attributes[sc.GEN_AI_AGENT_NAME] == f"Library.{method_name}"
        assert attributes[sc.GEN_AI_AGENT_ID] == f"Library.{method_name}"
        # The first argument after self/cls, not the instance or the class.
        assert attributes[sc.TASK_DESCRIPTION] == "quantum"

    def test_method_results_and_binding_unchanged(self, exporter: InMemorySpanExporter) -> None:
        assert Library("A").lookup("x") == "A:x"
        assert Library.class_above("x") == "Libraryx"
        assert Library("A").catalogue() == 3
        assert isinstance(Library.__dict__["static_above"], staticmethod)
        assert isinstance(Library.__dict__["class_above"], classmethod)
        assert inspect.signature(Library.lookup) == inspect.signature(Library.lookup.__wrapped__)

    def test_method_without_arguments_has_no_task_description(self, exporter: InMemorySpanExporter) -> None:
        class Bot:
            @agent
            def run(self) -> None:
                pass

        Bot().run()

        span = _only_span(exporter)
        assert span.name == "invoke_agent Bot.run"  # the class is local: "<locals>" is dropped
        assert sc.TASK_DESCRIPTION not in (span.attributes or {})


# --- generators: span lifetime and early close ------------------------------------------------
def _numbers(n: int) -> Iterator[int]:
    yield from range(n)


async def _anumbers(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        await asyncio.sleep(0)
        yield i


class TestGenerators:
    def test_span_starts_at_first_advance_not_at_call(self, exporter: InMemorySpanExporter) -> None:
        counter = synthesis(phase="count")(_numbers)

        gen = counter(3)
        assert _spans(exporter) == []
        gen.close()  # never advanced: nothing was started, so nothing ends
        assert _spans(exporter) == []

        gen = counter(3)
        assert next(gen) == 0
        assert _spans(exporter) == []  # running: not ended yet
        assert list(gen) == [1, 2]
        span = _only_span(exporter)
        _assert_succeeded(span)
        assert (span.attributes or {})[sc.SYNTHESIS_PATTERNS_FOUND] == 3

    def test_break_ends_span_without_error(self, exporter: InMemorySpanExporter) -> None:
        counter = synthesis(phase="count")(_numbers)

        for item in counter(10):
            if item == 2:
                break

        span = _only_span(exporter)  # CPython closes the dropped generator at once
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()
        assert (span.attributes or {})[sc.SYNTHESIS_PATTERNS_FOUND] == 3

    def test_close_runs_inner_cleanup_and_ends_span(self, exporter: InMemorySpanExporter) -> None:
        cleaned: list[str] = []

        @agent(name="Streamer")
        def stream() -> Iterator[int]:
            try:
                yield 1
                yield 2
            finally:
                cleaned.append("inner finally")

        gen = stream()
        assert next(gen) == 1
        gen.close()

        assert cleaned == ["inner finally"]
        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()

    def test_error_in_inner_cleanup_on_close_is_recorded(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="leaky")
        def leaky() -> Iterator[int]:
            try:
                yield 1
            finally:
                raise OSError("disk gone")

        gen = leaky()
        next(gen)
        with pytest.raises(OSError, match="disk gone"):
            gen.close()

        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "OSError: disk gone"
        assert [e.name for e in span.events] == ["exception"]

    def test_send_throw_and_return_value_pass_through(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="Echo")
        def echo() -> Any:
            received = []
            while True:
                try:
                    value = yield len(received)
                except KeyError:
                    value = "recovered"
                if value is None:
                    return received
                received.append(value)

        gen = echo()
        assert next(gen) == 0
        assert gen.send("a") == 1
        assert gen.throw(KeyError("k")) == 2  # handled inside: the generator goes on
        with pytest.raises(StopIteration) as stop:
            gen.send(None)

        assert stop.value.value == ["a", "recovered"]
        _assert_succeeded(_only_span(exporter))

    def test_unhandled_throw_is_recorded(self, exporter: InMemorySpanExporter) -> None:
        gen = agent(name="Counter")(_numbers)(5)
        next(gen)
        error = RuntimeError("stop now")

        with pytest.raises(RuntimeError) as raised:
            gen.throw(error)

        assert raised.value is error
        _assert_failed(_only_span(exporter), error, "RuntimeError: stop now")

    async def test_async_aclose_ends_span_without_error(self, exporter: InMemorySpanExporter) -> None:
        cleaned: list[str] = []

        @agent(name="AsyncStreamer")
        async def stream():  # type: ignore[no-untyped-def]
            try:
                yield 1
                yield 2
            finally:
                await asyncio.sleep(0)
                cleaned.append("inner finally")

        agen = stream()
        assert await agen.__anext__() == 1
        await agen.aclose()

        assert cleaned == ["inner finally"]
        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()

    async def test_async_break_under_aclosing(self, exporter: InMemorySpanExporter) -> None:
        counter = synthesis(phase="acount")(_anumbers)

        async with contextlib.aclosing(counter(10)) as agen:
            async for item in agen:
                if item == 1:
                    break

        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert (span.attributes or {})[sc.SYNTHESIS_PATTERNS_FOUND] == 2

    async def test_async_break_without_aclose_ends_when_finalized(
        self, exporter: InMemorySpanExporter
    ) -> None:
        counter = agent(name="Abandoned")(_anumbers)

        async for item in counter(10):
            if item == 1:
                break
        for _ in range(5):  # the event loop's async-generator finalizer runs aclose() in a task
            await asyncio.sleep(0)

        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()

    async def test_async_asend_and_athrow_pass_through(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="AsyncEcho")
        async def echo():  # type: ignore[no-untyped-def]
            received = []
            while True:
                try:
                    value = yield len(received)
                except KeyError:
                    value = "recovered"
                received.append(value)

        agen = echo()
        assert await agen.asend(None) == 0
        assert await agen.asend("a") == 1
        assert await agen.athrow(KeyError("k")) == 2
        await agen.aclose()

        assert _only_span(exporter).status.status_code is StatusCode.UNSET

    def test_span_is_current_only_while_the_generator_runs(self, exporter: InMemorySpanExporter) -> None:
        seen_inside: list[str] = []

        @agent(name="Gen")
        def gen() -> Iterator[int]:
            for i in range(2):
                seen_inside.append(trace.get_current_span().get_span_context().span_id)
                with trace.get_tracer("test").start_as_current_span(f"step {i}"):
                    pass
                yield i

        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("caller") as caller:
            for _ in gen():
                # Between steps the caller's own span is current, not the suspended generator's.
                assert trace.get_current_span() is caller

        spans = _by_name(exporter)
        gen_span = spans["invoke_agent Gen"]
        assert seen_inside == [gen_span.context.span_id] * 2
        assert gen_span.parent is not None
        assert gen_span.parent.span_id == spans["caller"].context.span_id
        for step in ("step 0", "step 1"):
            assert spans[step].parent is not None
            assert spans[step].parent.span_id == gen_span.context.span_id

    async def test_async_span_is_current_only_while_running(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="agen")
        async def agen():  # type: ignore[no-untyped-def]
            for i in range(2):
                with trace.get_tracer("test").start_as_current_span(f"astep {i}"):
                    await asyncio.sleep(0)
                yield i

        with trace.get_tracer("test").start_as_current_span("acaller") as caller:
            async for _ in agen():
                assert trace.get_current_span() is caller

        spans = _by_name(exporter)
        tool_span_ = spans["execute_tool agen"]
        assert spans["astep 1"].parent is not None
        assert spans["astep 1"].parent.span_id == tool_span_.context.span_id
        assert tool_span_.parent is not None
        assert tool_span_.parent.span_id == spans["acaller"].context.span_id


# --- nesting and concurrency ----------------------------------------------------------------------
class TestNesting:
    def test_agent_tool_agent_parent_links(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="Inner")
        def inner(question: str) -> str:
            return question.upper()

        @tool(name="ask")
        def ask(question: str) -> str:
            return inner(question)

        @agent(name="Outer")
        def outer(topic: str) -> str:
            return ask(topic)

        assert outer("why") == "WHY"

        spans = _by_name(exporter)
        outer_span, tool_span_, inner_span = (
            spans["invoke_agent Outer"],
            spans["execute_tool ask"],
            spans["invoke_agent Inner"],
        )
        assert outer_span.parent is None
        assert tool_span_.parent is not None and tool_span_.parent.span_id == outer_span.context.span_id
        assert inner_span.parent is not None and inner_span.parent.span_id == tool_span_.context.span_id
        assert {s.context.trace_id for s in spans.values()} == {outer_span.context.trace_id}

    def test_failure_in_child_is_recorded_once_per_span(self, exporter: InMemorySpanExporter) -> None:
        error = KeyError("missing")

        @tool(name="fetch")
        def fetch() -> None:
            raise error

        @agent(name="Boss")
        def boss() -> None:
            fetch()

        with pytest.raises(KeyError) as raised:
            boss()

        assert raised.value is error
        spans = _by_name(exporter)
        _assert_failed(spans["execute_tool fetch"], error, "KeyError: 'missing'")
        _assert_failed(spans["invoke_agent Boss"], error, "KeyError: 'missing'")

    async def test_concurrent_agents_keep_their_own_children(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="lookup")
        async def lookup(delay: float) -> float:
            await asyncio.sleep(delay)
            return delay

        @agent
        async def worker(delay: float) -> float:
            await asyncio.sleep(0)
            return await lookup(delay)

        await asyncio.gather(worker(0.002), worker(0.0))

        spans = _spans(exporter)
        workers = {s.context.span_id: s for s in spans if s.name == "invoke_agent worker"}
        tools = [s for s in spans if s.name == "execute_tool lookup"]
        assert len(workers) == 2 and len(tools) == 2
        assert {t.parent.span_id for t in tools if t.parent} == set(workers)
        assert all(w.parent is None for w in workers.values())


# --- outcome classification ----------------------------------------------------------------------
class TestOutcomes:
    async def test_cancelled_is_an_error_named_cancelled(self, exporter: InMemorySpanExporter) -> None:
        started = asyncio.Event()

        @agent(name="Sleeper")
        async def sleeper() -> None:
            started.set()
            await asyncio.sleep(10)

        task = asyncio.ensure_future(sleeper())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "cancelled"
        assert [e.name for e in span.events] == ["exception"]

    def test_keyboard_interrupt_is_recorded_and_propagates(self, exporter: InMemorySpanExporter) -> None:
        interrupt = KeyboardInterrupt()

        @agent(name="Interrupted")
        def interrupted() -> None:
            raise interrupt

        with pytest.raises(KeyboardInterrupt) as raised:
            interrupted()

        assert raised.value is interrupt
        _assert_failed(_only_span(exporter), interrupt, "KeyboardInterrupt: ")

    def test_exception_with_broken_str_still_propagates_once(self, exporter: InMemorySpanExporter) -> None:
        class Broken(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no str for you")

        error = Broken()

        @tool(name="fragile")
        def fragile() -> None:
            raise error

        with pytest.raises(Broken) as raised:
            fragile()

        assert raised.value is error
        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "Broken: <unprintable Broken>"
        assert [e.name for e in span.events] == ["exception"]

    def test_status_set_by_the_body_is_kept(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="Careful")
        def careful() -> str:
            trace.get_current_span().set_status(StatusCode.ERROR, "partial failure handled")
            return "done"

        assert careful() == "done"

        span = _only_span(exporter)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "partial failure handled"

    def test_ok_is_the_applications_to_set(self, exporter: InMemorySpanExporter) -> None:
        @agent(name="Sure")
        def sure() -> str:
            trace.get_current_span().set_status(StatusCode.OK)
            return "done"

        @agent(name="Quiet")
        def quiet() -> str:
            return "done"

        assert sure() == quiet() == "done"

        spans = _by_name(exporter)
        assert spans["invoke_agent Sure"].status.status_code is StatusCode.OK
        _assert_succeeded(spans["invoke_agent Quiet"])

    def test_broken_span_processor_never_reaches_the_agent(
        self, exporter: InMemorySpanExporter, forwarder: SpanForwarder
    ) -> None:
        forwarder.fail = True
        error = ValueError("the agent's own")

        @agent(name="Robust")
        def robust(fail: bool) -> str:
            if fail:
                raise error
            return "result"

        assert robust(False) == "result"
        with pytest.raises(ValueError) as raised:
            robust(True)
        assert raised.value is error

    @pytest.mark.parametrize(
        ("result", "expected"),
        [
            ([1, 2, 3], 3),
            ((), 0),
            ({"a": 1}, 1),
            ({1, 2}, 2),
            (7, 7),
            (True, None),
            ("abc", None),
            (None, None),
        ],
    )
    def test_patterns_found_from_result(
        self, exporter: InMemorySpanExporter, result: object, expected: int | None
    ) -> None:
        @synthesis(phase="p")
        def phase() -> object:
            return result

        assert phase() is result
        assert (_only_span(exporter).attributes or {}).get(sc.SYNTHESIS_PATTERNS_FOUND) == expected


# --- task description derivation ----------------------------------------------------------------
class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StrWithBrokenStr(str):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def _task(exporter: InMemorySpanExporter) -> object:
    return (_only_span(exporter).attributes or {}).get(sc.TASK_DESCRIPTION)


class TestTaskDescription:
    @pytest.mark.parametrize(
        ("args", "kwargs", "expected"),
        [
            (("plain text",), {}, "plain text"),
            ((42,), {}, "42"),
            ((["a", "b"],), {}, "['a', 'b']"),
            (({"k": 1},), {}, "{'k': 1}"),
            ((None,), {}, "None"),
            ((), {"topic": "by keyword"}, "by keyword"),
            ((Unprintable(),), {}, "<unprintable Unprintable>"),
            (([1, Unprintable()],), {}, "[1, <unprintable Unprintable>]"),
            ((StrWithBrokenStr("x"),), {}, "<unprintable StrWithBrokenStr>"),
        ],
    )
    def test_rendered_from_first_argument(
        self, exporter: InMemorySpanExporter, args: tuple[Any, ...], kwargs: dict[str, Any], expected: str
    ) -> None:
        @agent
        def run(topic: object, depth: int = 1) -> None:
            pass

        run(*args, **kwargs)

        assert _task(exporter) == expected

    def test_truncated_with_ellipsis(self, exporter: InMemorySpanExporter) -> None:
        agent(_make("function"))("x" * 500)

        task = _task(exporter)
        assert isinstance(task, str)
        assert len(task) == DEFAULT_LIMIT
        assert task == "x" * (DEFAULT_LIMIT - 1) + "\u2026"

    def test_huge_container_is_rendered_cheaply(self, exporter: InMemorySpanExporter) -> None:
        agent(_make("function"))(list(range(1_000_000)))

        task = _task(exporter)
        assert isinstance(task, str)
        assert task.startswith("[0, 1, 2") and task.endswith("...]")

    def test_default_of_first_parameter_is_used(self, exporter: InMemorySpanExporter) -> None:
        @agent
        def run(topic: str = "the default") -> None:
            pass

        run()

        assert _task(exporter) == "the default"

    def test_no_arguments_means_no_attribute(self, exporter: InMemorySpanExporter) -> None:
        @agent
        def run() -> None:
            pass

        run()

        assert _task(exporter) is None

    def test_var_positional_first_argument(self, exporter: InMemorySpanExporter) -> None:
        @agent
        def run(*topics: str) -> None:
            pass

        run("first", "second")

        assert _task(exporter) == "first"

    def test_explicit_task_description_wins(self, exporter: InMemorySpanExporter) -> None:
        agent(task_description="fixed")(_make("function"))("ignored")

        assert _task(exporter) == "fixed"

    def test_empty_task_description_disables_derivation(self, exporter: InMemorySpanExporter) -> None:
        agent(task_description="")(_make("function"))("secret")

        assert _task(exporter) is None

    @pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "on", "garbage"])
    def test_hide_inputs_env(
        self, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        monkeypatch.setenv("OTEL_DASHBOARD_HIDE_INPUTS", value)

        agent(_make("function"))("secret")
        agent(task_description="explicit is kept")(_make("function"))("secret")

        tasks = [(s.attributes or {}).get(sc.TASK_DESCRIPTION) for s in _spans(exporter)]
        assert tasks == [None, "explicit is kept"]

    @pytest.mark.parametrize("value", ["false", "0", "no", "off", ""])
    def test_hide_inputs_env_off(
        self, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        monkeypatch.setenv("OTEL_DASHBOARD_HIDE_INPUTS", value)

        agent(_make("function"))("shown")

        assert _task(exporter) == "shown"


# --- option validation ----------------------------------------------------------------------------
class TestOptionValidation:
    @pytest.mark.parametrize(
        ("make", "argument"),
        [
            (lambda: agent(name=""), "name"),
            (lambda: agent(agent_id="  "), "agent_id"),
            (lambda: agent(description=3), "description"),
            (lambda: agent(task_description=b"x"), "task_description"),
            (lambda: tool(name=""), "name"),
            (lambda: tool(description=1.5), "description"),
            (lambda: synthesis(phase=""), "phase"),
            (lambda: synthesis(description=[]), "description"),
        ],
    )
    def test_bad_option_raises_value_error_naming_it(self, make: Callable[[], Any], argument: str) -> None:
        with pytest.raises(ValueError, match=argument):
            make()

    @pytest.mark.parametrize("decorator", [agent, tool, synthesis])
    def test_positional_name_is_a_clear_type_error(self, decorator: Callable[..., Any]) -> None:
        with pytest.raises(TypeError, match="keywords"):
            decorator("Researcher")

    def test_empty_parentheses_work(self, exporter: InMemorySpanExporter) -> None:
        @tool()
        def ping() -> str:
            return "pong"

        assert ping() == "pong"
        assert _only_span(exporter).name == "execute_tool ping"


# --- context-manager forms ------------------------------------------------------------------------
class TestContextManagers:
    def test_agent_span_attributes_and_current_span(self, exporter: InMemorySpanExporter) -> None:
        with agent_span("Researcher", agent_id="r-1", description="Finds", task_description="Survey") as span:
            assert trace.get_current_span() is span
            with tool_span("search", description="Web") as inner:
                assert trace.get_current_span() is inner
            with synthesis_span("merge", description="Merge") as merged:
                merged.set_attribute(sc.SYNTHESIS_PATTERNS_FOUND, 4)

        spans = _by_name(exporter)
        agent_s = spans["invoke_agent Researcher"]
        _assert_succeeded(agent_s)
        attributes = dict(agent_s.attributes or {})
        for key, value in {
            sc.GEN_AI_OPERATION_NAME: "invoke_agent",
            sc.GEN_AI_AGENT_NAME: "Researcher",
            sc.GEN_AI_AGENT_ID: "r-1",
            sc.GEN_AI_AGENT_DESCRIPTION: "Finds",
            sc.SPAN_KIND: "agent",
            sc.TASK_DESCRIPTION: "Survey",
        }.items():
            assert attributes.pop(key) == value
        assert not attributes

        tool_s, synth_s = spans["execute_tool search"], spans["synthesis merge"]
        assert dict(tool_s.attributes or {}) == {
            sc.GEN_AI_OPERATION_NAME: "execute_tool",
            sc.GEN_AI_TOOL_NAME: "search",
            sc.GEN_AI_TOOL_DESCRIPTION: "Web",
            sc.SPAN_KIND: "tool",
        }
        assert dict(synth_s.attributes or {}) == {
            sc.SPAN_KIND: "synthesis",
            sc.SYNTHESIS_PHASE: "merge",
            sc.SYNTHESIS_DESCRIPTION: "Merge",
            sc.SYNTHESIS_PATTERNS_FOUND: 4,
        }
        for child in (tool_s, synth_s):
            assert child.parent is not None and child.parent.span_id == agent_s.context.span_id
            assert child.kind is SpanKind.INTERNAL
        assert trace.get_current_span() is trace.INVALID_SPAN

    def test_minimal_agent_span(self, exporter: InMemorySpanExporter) -> None:
        with agent_span("Solo"):
            pass

        assert dict(_only_span(exporter).attributes or {}) == {
            sc.GEN_AI_OPERATION_NAME: "invoke_agent",
            sc.GEN_AI_AGENT_NAME: "Solo",
            sc.GEN_AI_AGENT_ID: "Solo",
            sc.SPAN_KIND: "agent",
        }

    async def test_with_inside_async_code(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="awaited")
        async def awaited() -> int:
            await asyncio.sleep(0)
            return 1

        with agent_span("AsyncUser") as span:
            await asyncio.sleep(0)
            assert trace.get_current_span() is span
            assert await awaited() == 1

        spans = _by_name(exporter)
        child = spans["execute_tool awaited"]
        assert child.parent is not None
        assert child.parent.span_id == spans["invoke_agent AsyncUser"].context.span_id

    def test_exception_recorded_once_and_propagates(self, exporter: InMemorySpanExporter) -> None:
        error = ValueError("bad input")

        with pytest.raises(ValueError) as raised, tool_span("parser"):
            raise error

        assert raised.value is error
        _assert_failed(_only_span(exporter), error, "ValueError: bad input")

    @pytest.mark.parametrize(
        ("make", "argument"),
        [
            (lambda: agent_span(""), "name"),
            (lambda: agent_span("A", agent_id=""), "agent_id"),
            (lambda: tool_span(None), "name"),  # type: ignore[arg-type]
            (lambda: synthesis_span(" "), "phase"),
            (lambda: synthesis_span("p", description=5), "description"),  # type: ignore[arg-type]
        ],
    )
    def test_validation(self, make: Callable[[], Any], argument: str) -> None:
        with pytest.raises(ValueError, match=argument):
            make()

    def test_single_use(self, exporter: InMemorySpanExporter) -> None:
        scope = tool_span("once")
        with scope:
            pass
        with pytest.raises(RuntimeError, match="once"), scope:
            pass
        assert len(_spans(exporter)) == 1


# --- suppressed instrumentation ------------------------------------------------------------------
DECORATORS = {"agent": agent, "tool": tool, "synthesis": synthesis}
SPAN_FORMS = {
    "agent_span": lambda: agent_span("Researcher"),
    "tool_span": lambda: tool_span("search"),
    "synthesis_span": lambda: synthesis_span("merge"),
}


class TestSuppression:
    def test_the_key_read_is_the_apis(self) -> None:
        # Fails when the API renames or drops its private key: suppression would silently stop working.
        assert _suppression._SUPPRESS_KEY is context_api._SUPPRESS_INSTRUMENTATION_KEY

    def test_the_dashboards_own_threads_suppress_all_keys(self, exporter: InMemorySpanExporter) -> None:
        # What the processor's worker and the remote sender attach: no decorated code they run is traced.
        @tool(name="inside")
        def inside() -> int:
            return 1

        ctx = _suppression.suppressing_context()
        token = context_api.attach(ctx)
        try:
            assert inside() == 1
        finally:
            context_api.detach(token)
        assert _spans(exporter) == []
        assert ctx.get(context_api._SUPPRESS_INSTRUMENTATION_KEY) is True
        assert ctx.get(context_api._SUPPRESS_HTTP_INSTRUMENTATION_KEY) is True
        assert ctx.get("suppress_instrumentation") is True

    def test_code_run_by_an_sdk_exporter_makes_no_span(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="upload")
        def upload(count: int) -> int:
            return count

        class Uploading(SpanExporter):
            def __init__(self) -> None:
                self.uploaded: list[int] = []

            def export(self, spans: Any) -> SpanExportResult:
                self.uploaded.append(upload(len(spans)))
                return SpanExportResult.SUCCESS

        uploading = Uploading()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(uploading))
        provider.get_tracer("tests.suppression").start_span("exported").end()
        provider.shutdown()

        assert uploading.uploaded == [1]
        assert _spans(exporter) == []  # the exporter's own work is not traced

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("decorator", DECORATORS)
    @pytest.mark.parametrize("suppress", [False, True], ids=["traced", "suppressed"])
    async def test_every_kind_returns_and_raises_alike(
        self, exporter: InMemorySpanExporter, suppress: bool, decorator: str, kind: str
    ) -> None:
        decorated = DECORATORS[decorator](_make(kind))
        error = ValueError("boom")

        with instrumentation_suppressed() if suppress else contextlib.nullcontext():
            assert await _drive(decorated("quantum")) == ["p1", "p2"]
            with pytest.raises(ValueError) as raised:
                await _drive(decorated("quantum", error))

        assert raised.value is error
        if suppress:
            assert _spans(exporter) == []
        else:
            succeeded, failed = _spans(exporter)
            _assert_succeeded(succeeded)
            _assert_failed(failed, error, "ValueError: boom")

    async def test_the_body_runs_in_its_callers_context(self, exporter: InMemorySpanExporter) -> None:
        seen: list[object] = []

        def look() -> None:
            seen.append((trace.get_current_span(), current_agent()))

        @tool(name="function")
        def function() -> None:
            look()

        @tool(name="coroutine")
        async def coroutine() -> None:
            look()

        @synthesis(phase="generator")
        def generator() -> Iterator[int]:
            look()
            yield 1
            look()

        @agent(name="async_generator")
        async def async_generator():  # type: ignore[no-untyped-def]
            look()
            yield 1
            look()

        with agent_span("Outer") as outer:
            expected = (outer, current_agent())
            with instrumentation_suppressed():
                function()
                await coroutine()
                assert list(generator()) == [1]
                assert [i async for i in async_generator()] == [1]

        assert seen == [expected] * 6
        assert [s.name for s in _spans(exporter)] == ["invoke_agent Outer"]

    def test_suppression_is_read_per_call(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="search")
        def search() -> str:
            return "hits"

        with instrumentation_suppressed():
            assert search() == "hits"
        assert search() == "hits"

        assert [s.name for s in _spans(exporter)] == ["execute_tool search"]

    def test_no_argument_is_rendered(self, exporter: InMemorySpanExporter) -> None:
        rendered: list[str] = []

        class Topic:
            def __repr__(self) -> str:
                rendered.append("repr")
                return "Topic()"

        @agent(name="Researcher")
        def research(topic: Topic) -> str:
            return "done"

        with instrumentation_suppressed():
            assert research(Topic()) == "done"
        assert rendered == []
        assert research(Topic()) == "done"
        assert rendered == ["repr"]

    def test_the_plain_string_key_of_older_contrib_releases(self, exporter: InMemorySpanExporter) -> None:
        @tool(name="search")
        def search() -> str:
            return "hits"

        with instrumentation_suppressed("suppress_instrumentation"):
            assert search() == "hits"

        assert _spans(exporter) == []

    @pytest.mark.parametrize("form", SPAN_FORMS)
    def test_context_managers_make_no_span(self, exporter: InMemorySpanExporter, form: str) -> None:
        error = ValueError("boom")

        with instrumentation_suppressed():
            with SPAN_FORMS[form]() as span:
                assert span is trace.INVALID_SPAN
                assert trace.get_current_span() is trace.INVALID_SPAN
                assert current_agent() is None
                span.set_attribute(sc.SYNTHESIS_PATTERNS_FOUND, 1)  # a no-op, not an error
            with pytest.raises(ValueError) as raised, SPAN_FORMS[form]():
                raise error
            with pytest.raises(ValueError, match="name"):
                agent_span("")  # arguments are still checked

        assert raised.value is error
        assert _spans(exporter) == []

    def test_a_suppressed_context_manager_is_still_single_use(self, exporter: InMemorySpanExporter) -> None:
        scope = tool_span("once")
        with instrumentation_suppressed():
            with scope:
                pass
            with pytest.raises(RuntimeError, match="once"), scope:
                pass


# --- wrapper plumbing ------------------------------------------------------------------------------
def test_wrapping_preserves_other_decorators_metadata() -> None:
    def original(a: int, /, b: str = "x", *, c: float = 1.0) -> str:
        """Docs."""
        return f"{a}{b}{c}"

    decorated = agent(tool(original))

    assert decorated(1) == "1x1.0"
    assert decorated.__doc__ == "Docs."
    assert inspect.signature(decorated) == inspect.signature(original)
    assert inspect.unwrap(decorated) is original


def test_partial_is_accepted() -> None:
    decorated = tool(functools.partial(lambda a, b: a + b, 1))

    assert decorated(2) == 3


# --- process-level behaviour (subprocesses: a fresh interpreter each) ----------------------------
def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_needs_only_the_api() -> None:
    result = _run_python(
        """
        import sys
        import instrumentation
        forbidden = ("opentelemetry.sdk", "aiohttp", "otel_dashboard")
        bad = sorted(m for m in sys.modules if m.startswith(forbidden))
        assert not bad, bad
        """
    )
    assert result.returncode == 0, result.stderr


def test_provider_set_after_decoration_is_used() -> None:
    result = _run_python(
        """
        from instrumentation import agent

        @agent(name="Early")
        def early():
            return 1

        early()  # no provider yet: a no-op span, and no error

        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        assert early() == 1
        names = [s.name for s in exporter.get_finished_spans()]
        assert names == ["invoke_agent Early"], names
        """
    )
    assert result.returncode == 0, result.stderr


def test_the_tracer_is_made_once_per_provider_not_per_span(exporter: InMemorySpanExporter) -> None:
    # The SDK builds a new Tracer (and its scope) on every get_tracer call: ~10 us per span.
    from instrumentation._span import get_tracer

    assert get_tracer() is get_tracer()
