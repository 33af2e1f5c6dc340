"""The one context manager that owns a span's lifetime, shared by every decorator and ``*_span`` form.

It starts the span, classifies how the body ended (success, early close, failure, cancellation),
sets the status of a failure, records an escaping exception exactly once, and ends the span. Under
suppressed instrumentation it starts nothing and leaves the context alone. The wrappers in
:mod:`instrumentation.decorators` differ only in how they run the body inside it.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from instrumentation import semconv
from instrumentation._serialize import safe_str
from instrumentation._suppression import suppressed
from instrumentation.guard import check_step, with_run

TRACER_NAME: Final = "otel_dashboard.instrumentation"
"""Instrumentation scope name of every span this package starts."""

_DISTRIBUTION: Final = "otel-dashboard"
_AGENT_KEY: Final = context_api.create_key("otel_dashboard.agent")
_UNCHANGED: Final = nullcontext()

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanSpec:
    """What to start: the span's name and start attributes, plus per-kind extras.

    Attributes:
        name: Span name.
        attributes: Attributes set at span start (samplers and span-start listeners see them).
        agent_name: Set for agent spans: the span is then also the "current agent" for the code it
            runs (see :func:`current_agent`).
        on_result: Called with the span and the body's result on success, to add result attributes.
        stop_on_budget: For agent spans: a flagged run of this agent stops at its next decorated
            step (:mod:`instrumentation.guard`).
    """

    name: str
    attributes: Mapping[str, AttributeValue]
    agent_name: str | None = None
    on_result: Callable[[Span, object], None] | None = None
    stop_on_budget: bool = False


@dataclass(frozen=True)
class AgentRef:
    """The innermost agent span started by this package around the current code."""

    name: str
    span: Span


def current_agent() -> AgentRef | None:
    """Returns the innermost agent run of this package that encloses the current code, if any."""
    value = context_api.get_value(_AGENT_KEY)
    return value if isinstance(value, AgentRef) else None


@functools.lru_cache(maxsize=1)
def _version() -> str | None:
    # Imported here, on the first span, to keep ~15 ms off `import instrumentation`.
    from importlib import metadata

    try:
        return metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


_tracer_cache: tuple[trace.TracerProvider, trace.Tracer] | None = None


def get_tracer() -> trace.Tracer:
    """Returns this package's tracer from the global provider.

    The provider is looked up on every span rather than once at import, so a provider the
    application sets after importing its instrumented modules is honoured; the tracer is made once
    per provider (the SDK builds a new one, with its scope, on every ``get_tracer`` call).
    """
    global _tracer_cache
    provider = trace.get_tracer_provider()
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer(TRACER_NAME, _version())
    _tracer_cache = (provider, tracer)
    return tracer


class _Activation:
    """Makes a started span current for one stretch of code (one generator step, say)."""

    __slots__ = ("_context", "_token")

    def __init__(self, ctx: context_api.Context) -> None:
        self._context = ctx
        self._token: Token[context_api.Context] | None = None

    def __enter__(self) -> None:
        self._token = context_api.attach(self._context)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            context_api.detach(self._token)
            self._token = None


class SpanScope:
    """Context manager that runs a body inside one span and ends the span however the body ends.

    Outcome rules, the contract of every decorator and ``*_span`` form:

    * normal exit: status left as it is: UNSET, or whatever the body set itself (the specification
      says instrumentation libraries should not set OK: that is for the application to say);
    * ``GeneratorExit`` (a generator closed early): not a failure, status left UNSET;
    * ``asyncio.CancelledError``: status ERROR with description ``"cancelled"``, one ``exception`` event;
    * any other exception, ``KeyboardInterrupt`` and ``SystemExit`` included: status ERROR with
      description ``"<type name>: <message>"`` and exactly one ``exception`` event.

    The exception itself always propagates unchanged. A scope can be entered once.

    Entering raises :class:`~instrumentation.guard.BudgetExceeded`, before any span starts, when a
    run enclosing this step is flagged to stop and its stop is enabled (:mod:`instrumentation.guard`).

    When instrumentation is suppressed in the context the scope is entered in (the SDK does so while
    exporting; so does contrib's ``suppress_instrumentation()``), it starts no span, makes nothing
    current, and its ``as`` target is ``trace.INVALID_SPAN``: the body runs as if not instrumented.

    Args:
        spec: What span to start; None for no span at all (the decorators pass None under
            suppression, so as not to build a spec for nothing).
        activate: Whether entering makes the span current until exit. Generator wrappers pass False
            and use :meth:`activated` around each step instead: a suspended generator must not leave
            its span current in the code that iterates it.
    """

    __slots__ = ("_activate", "_context", "_entered", "_span", "_spec", "_token")

    def __init__(self, spec: SpanSpec | None, *, activate: bool = True) -> None:
        self._spec = spec
        self._activate = activate
        self._entered = False
        self._span: Span | None = None
        self._context: context_api.Context | None = None
        self._token: Token[context_api.Context] | None = None

    def __enter__(self) -> Span:
        if self._entered:
            raise RuntimeError("a span scope can only be entered once")
        self._entered = True
        spec = self._spec
        parent = context_api.get_current()
        if spec is None or suppressed(parent):
            return trace.INVALID_SPAN  # and no span to end: _span stays None
        # A step of a run flagged to stop raises BudgetExceeded here, before its span starts: the
        # step never ran, and the agent's own code unwinds from it.
        check_step(parent)
        try:
            span = get_tracer().start_span(
                spec.name,
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=spec.attributes,
                # This scope records failures itself; the SDK must not record them a second time.
                record_exception=False,
                set_status_on_exception=False,
            )
        except Exception:
            # A broken provider or span processor must not stop the agent: run it untraced.
            _logger.warning("could not start span %r; running without it", spec.name, exc_info=True)
            span = trace.INVALID_SPAN
        ctx = trace.set_span_in_context(span, parent)
        if spec.agent_name is not None:
            ctx = context_api.set_value(_AGENT_KEY, AgentRef(spec.agent_name, span), ctx)
            span_id = span.get_span_context().span_id
            if span_id:  # a real span (not INVALID_SPAN): its id is the run id the dashboard flags
                ctx = with_run(ctx, format(span_id, "016x"), spec.stop_on_budget)
        self._span, self._context = span, ctx
        if self._activate:
            self._token = context_api.attach(ctx)
        return span

    def activated(self) -> AbstractContextManager[None]:
        """Returns a context manager that makes this scope's span (and agent) current while it runs."""
        if not self._entered:
            raise RuntimeError("the span scope has not been entered")
        if self._context is None:  # suppressed: each step runs in its caller's context, as untraced
            return _UNCHANGED
        return _Activation(self._context)

    def set_result(self, result: object) -> None:
        """Lets the span's kind add attributes derived from the body's result. Never raises."""
        span, spec = self._span, self._spec
        if span is None or spec is None or spec.on_result is None or not span.is_recording():
            return
        try:
            spec.on_result(span, result)
        except Exception:
            _logger.debug("could not record the result of span %r", spec.name, exc_info=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span, spec = self._span, self._spec
        if span is None or spec is None:
            return
        # Whatever goes wrong in here is logged, never raised: an exception from __exit__ would
        # replace the body's own exception or result. Success sets no status: it stays UNSET.
        try:
            if exc is not None and not isinstance(exc, GeneratorExit):
                _record_failure(span, exc)
        except Exception:
            _logger.warning("could not record the outcome of span %r", spec.name, exc_info=True)
        if self._token is not None:
            context_api.detach(self._token)
            self._token = None
        try:
            span.end()
        except Exception:
            # The SDK runs span processors' on_end inside end(), and does not guard them.
            _logger.warning("could not end span %r", spec.name, exc_info=True)


def _record_failure(span: Span, exc: BaseException) -> None:
    if not span.is_recording():
        return
    # Looked up, not imported: asyncio costs ~15 ms to import, and if nobody imported it, no
    # asyncio.CancelledError can be in flight.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and isinstance(exc, asyncio.CancelledError):
        description = "cancelled"
    else:
        description = f"{type(exc).__name__}: {safe_str(exc)}"
    try:
        span.record_exception(exc, escaped=True)
    except Exception:
        # The SDK calls str(exc), which a broken __str__ makes raise: record the bare facts instead,
        # so the span still carries its one exception event and the user's exception propagates.
        span.add_event(
            semconv.EXCEPTION_EVENT,
            {semconv.EXCEPTION_TYPE: _type_name(exc), semconv.EXCEPTION_MESSAGE: safe_str(exc)},
        )
    span.set_status(Status(StatusCode.ERROR, description))


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
