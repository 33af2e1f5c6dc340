"""The ``@agent``, ``@tool`` and ``@synthesis`` decorators.

Each wraps plain functions, coroutine functions, generator functions and async generator functions
(and methods, static methods and class methods) so that ONE span covers the whole run: the whole
``await`` of a coroutine, and every step of a generator from its first advance until it is
exhausted, closed or raises. The span logic itself lives in :class:`instrumentation._span.SpanScope`;
the four wrappers here only differ in how they drive the wrapped callable inside it. Where
instrumentation is suppressed, a call makes no span and runs as if it were not decorated.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Final, TypeVar, cast, overload

from instrumentation._config import hide_inputs
from instrumentation._serialize import render
from instrumentation._span import SpanScope, SpanSpec
from instrumentation._suppression import suppressed
from instrumentation._validate import check_bool, optional_non_empty_str, optional_str
from instrumentation.spans import agent_spec, synthesis_spec, tool_spec

__all__ = ["agent", "synthesis", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

_MakeSpec = Callable[[tuple[Any, ...], dict[str, Any]], SpanSpec]
"""Builds the spec of one call from that call's arguments."""

_SpecsFor = Callable[[Callable[..., Any]], _MakeSpec]
"""Given the function being decorated, returns its per-call spec builder."""

_MISSING: Final = object()
_BOUND_FIRST_PARAMETERS: Final = frozenset({"self", "cls"})


@overload
def agent(func: F, /) -> F: ...


@overload
def agent(
    *,
    name: str | None = None,
    agent_id: str | None = None,
    description: str | None = None,
    task_description: str | None = None,
    stop_on_budget: bool = False,
) -> Callable[[F], F]: ...


def agent(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    agent_id: str | None = None,
    description: str | None = None,
    task_description: str | None = None,
    stop_on_budget: bool = False,
) -> F | Callable[[F], F]:
    """Records each call of the decorated callable as one agent run (span ``invoke_agent {name}``).

    Usable bare (``@agent``) or with options (``@agent(name="Researcher")``).

    The span carries ``gen_ai.operation.name="invoke_agent"``, ``gen_ai.agent.name``,
    ``gen_ai.agent.id``, ``gen_ai.agent.description`` (if given), ``otel_dashboard.span.kind="agent"``
    and ``otel_dashboard.task.description``. The task description is ``task_description`` when given
    (``""`` means none); otherwise it is derived from the call: the value of the first parameter
    after ``self``/``cls`` (passed positionally, by keyword, or its default), ``str`` of a string and a
    bounded ``repr`` of anything else, cut to 200 characters. The attribute is omitted when there is
    no such value, or when ``OTEL_DASHBOARD_HIDE_INPUTS`` is true.

    Outcome: on return the status is left UNSET (or as the body set it); on an exception, status
    ERROR ``"<Type>: <message>"`` and one ``exception`` event, and the exception propagates
    unchanged. See :class:`SpanScope` for cancellation and generators closed early. Under suppressed
    instrumentation (``opentelemetry.context``'s suppression key set) a call makes no span.

    Args:
        func: The callable to decorate (bare form only).
        name: ``gen_ai.agent.name``; defaults to the callable's qualified name (``Class.method``).
        agent_id: ``gen_ai.agent.id``; defaults to the name.
        description: ``gen_ai.agent.description``.
        task_description: A fixed task description for every run.
        stop_on_budget: once the dashboard flags a run of this agent (a run budget crossed, "Stop
            run"), its next decorated step (tool, synthesis, nested agent, in it or its sub-runs)
            raises :class:`~instrumentation.guard.BudgetExceeded` before it starts (``guard.py``).

    Returns:
        The wrapped callable (bare form), or a decorator.

    Raises:
        ValueError: if ``name``/``agent_id`` is empty or an option has the wrong type.
        TypeError: if what is decorated is not callable (e.g. ``@agent("name")``).
    """
    name = optional_non_empty_str(name, "name")
    agent_id = optional_non_empty_str(agent_id, "agent_id")
    description = optional_str(description, "description")
    task_description = optional_str(task_description, "task_description")
    stop_on_budget = check_bool(stop_on_budget, "stop_on_budget")

    def specs_for(fn: Callable[..., Any]) -> _MakeSpec:
        agent_name = name or _display_name(fn)
        first_argument = _FirstArgument(fn)

        def make_spec(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanSpec:
            task = task_description
            if task is None and not hide_inputs():
                value = first_argument.pick(args, kwargs)
                if value is not _MISSING:
                    task = render(value)
            return agent_spec(agent_name, agent_id=agent_id, description=description, task_description=task,
                              stop_on_budget=stop_on_budget)

        return make_spec

    return _decorator("agent", specs_for, func)


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def tool(
    func: F | None = None, /, *, name: str | None = None, description: str | None = None
) -> F | Callable[[F], F]:
    """Records each call of the decorated callable as one tool call (span ``execute_tool {name}``).

    Usable bare (``@tool``) or with options (``@tool(name="search")``). The span carries
    ``gen_ai.operation.name="execute_tool"``, ``gen_ai.tool.name``, ``gen_ai.tool.description`` (if
    given) and ``otel_dashboard.span.kind="tool"``. Arguments and results are not recorded. Outcome
    rules are those of :func:`agent`, stopping included.

    Args:
        func: The callable to decorate (bare form only).
        name: ``gen_ai.tool.name``; defaults to the callable's qualified name.
        description: ``gen_ai.tool.description``.

    Returns:
        The wrapped callable (bare form), or a decorator.

    Raises:
        ValueError: if ``name`` is empty or ``description`` is not a string.
        TypeError: if what is decorated is not callable.
    """
    name = optional_non_empty_str(name, "name")
    description = optional_str(description, "description")

    def specs_for(fn: Callable[..., Any]) -> _MakeSpec:
        return _constant(tool_spec(name or _display_name(fn), description=description))

    return _decorator("tool", specs_for, func)


@overload
def synthesis(func: F, /) -> F: ...


@overload
def synthesis(*, phase: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def synthesis(
    func: F | None = None, /, *, phase: str | None = None, description: str | None = None
) -> F | Callable[[F], F]:
    """Records each call of the decorated callable as one synthesis phase (span ``synthesis {phase}``).

    Usable bare (``@synthesis``) or with options (``@synthesis(phase="clustering")``). The span
    carries ``otel_dashboard.span.kind="synthesis"``, ``otel_dashboard.synthesis.phase`` and
    ``otel_dashboard.synthesis.description`` (if given). On success it also gets
    ``otel_dashboard.synthesis.patterns_found``: the length of a returned collection (sequence, set
    or mapping, but not a string), or a returned ``int`` (not ``bool``); for a generator, the number
    of items it yielded, once it is exhausted or closed early. Outcome rules are those of :func:`agent`.

    Args:
        func: The callable to decorate (bare form only).
        phase: The phase name; defaults to the callable's qualified name.
        description: ``otel_dashboard.synthesis.description``.

    Returns:
        The wrapped callable (bare form), or a decorator.

    Raises:
        ValueError: if ``phase`` is empty or ``description`` is not a string.
        TypeError: if what is decorated is not callable.
    """
    phase = optional_non_empty_str(phase, "phase")
    description = optional_str(description, "description")

    def specs_for(fn: Callable[..., Any]) -> _MakeSpec:
        return _constant(synthesis_spec(phase or _display_name(fn), description=description))

    return _decorator("synthesis", specs_for, func)


def _decorator(kind: str, specs_for: _SpecsFor, func: F | None) -> F | Callable[[F], F]:
    def decorate(target: F) -> F:
        return cast(F, _instrument(kind, target, specs_for))

    return decorate if func is None else decorate(func)


def _instrument(kind: str, target: Any, specs_for: _SpecsFor) -> Any:
    # Applied above @staticmethod/@classmethod: wrap the function inside and re-wrap it the same way.
    if isinstance(target, (staticmethod, classmethod)):
        return type(target)(_instrument(kind, target.__func__, specs_for))
    if not callable(target):
        raise TypeError(
            f"@{kind} decorates a function, got {render(target)}; "
            f"pass options as keywords, e.g. @{kind}({'phase' if kind == 'synthesis' else 'name'}=...)"
        )
    make_spec = specs_for(target)
    # inspect, not asyncio.iscoroutinefunction (deprecated in 3.14); async generators first,
    # since they are neither generator functions nor coroutine functions but must not be called plainly.
    if inspect.isasyncgenfunction(target):
        return _wrap_async_generator(target, make_spec)
    if inspect.isgeneratorfunction(target):
        return _wrap_generator(target, make_spec)
    if inspect.iscoroutinefunction(target):
        return _wrap_coroutine(target, make_spec)
    return _wrap_function(target, make_spec)


def _wrap_function(func: Callable[..., Any], make_spec: _MakeSpec) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _scope(make_spec, args, kwargs)
        with scope:
            result = func(*args, **kwargs)
            scope.set_result(result)
            return result

    return wrapper


def _wrap_coroutine(func: Callable[..., Any], make_spec: _MakeSpec) -> Callable[..., Any]:
    # An async def wrapper, so the span covers the whole await rather than coroutine creation.
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _scope(make_spec, args, kwargs)
        with scope:
            result = await func(*args, **kwargs)
            scope.set_result(result)
            return result

    return wrapper


def _wrap_generator(
    func: Callable[..., Generator[Any, Any, Any]], make_spec: _MakeSpec
) -> Callable[..., Any]:
    # The wrapper is itself a generator, so the span starts at the first advance, not at the call.
    # It steps the inner generator by hand instead of `yield from`, making the span current only
    # while the inner generator runs: between steps the caller must see its own current span.
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        scope = _scope(make_spec, args, kwargs, activate=False)
        produced = 0
        with scope:
            inner = func(*args, **kwargs)
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                with scope.activated():
                    try:
                        if to_throw is None:
                            item = inner.send(to_send)
                        else:
                            thrown, to_throw = to_throw, None
                            item = inner.throw(thrown)
                    except StopIteration as stop:
                        scope.set_result(produced)
                        return stop.value
                produced += 1
                try:
                    to_send = yield item
                except GeneratorExit:
                    with scope.activated():
                        inner.close()
                    scope.set_result(produced)
                    raise
                except BaseException as exc:
                    # Thrown in by the caller (gen.throw): forward it; the inner generator may
                    # handle it and yield again, exactly as under `yield from`.
                    to_throw = exc

    return wrapper


def _wrap_async_generator(
    func: Callable[..., AsyncGenerator[Any, Any]], make_spec: _MakeSpec
) -> Callable[..., Any]:
    # Same stepping as _wrap_generator; async generators have no `yield from` to lean on anyway.
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope = _scope(make_spec, args, kwargs, activate=False)
        produced = 0
        with scope:
            inner = func(*args, **kwargs)
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                with scope.activated():
                    try:
                        if to_throw is None:
                            item = await inner.asend(to_send)
                        else:
                            thrown, to_throw = to_throw, None
                            item = await inner.athrow(thrown)
                    except StopAsyncIteration:
                        scope.set_result(produced)
                        return
                produced += 1
                try:
                    to_send = yield item
                except GeneratorExit:
                    with scope.activated():
                        await inner.aclose()
                    scope.set_result(produced)
                    raise
                except BaseException as exc:
                    to_throw = exc

    return wrapper


def _scope(
    make_spec: _MakeSpec, args: tuple[Any, ...], kwargs: dict[str, Any], *, activate: bool = True
) -> SpanScope:
    # Suppressed: a scope that starts no span, without building a spec (which may render an argument).
    return SpanScope(None if suppressed() else make_spec(args, kwargs), activate=activate)


def _constant(spec: SpanSpec) -> _MakeSpec:
    def make_spec(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanSpec:
        return spec

    return make_spec


def _display_name(func: Callable[..., Any]) -> str:
    """``Class.method`` for a method, ``name`` for a function, even when defined inside a function."""
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if not isinstance(qualname, str) or not qualname:
        qualname = type(func).__qualname__
    return qualname.rsplit("<locals>.", 1)[-1]


def _defined_in_class(func: Callable[..., Any]) -> bool:
    parts = str(getattr(func, "__qualname__", "")).split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"


class _FirstArgument:
    """Picks the value an agent run is "about": its first parameter after ``self``/``cls``.

    Worked out once per decorated function, so each call costs a couple of lookups.
    """

    __slots__ = ("_default", "_index", "_keyword")

    def __init__(self, func: Callable[..., Any]) -> None:
        self._index = 0
        self._keyword: str | None = None
        self._default: object = _MISSING
        try:
            parameters = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):  # builtins and some C callables have no signature
            return
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if (
            parameters
            and parameters[0].name in _BOUND_FIRST_PARAMETERS
            and parameters[0].kind in positional
            and _defined_in_class(func)
        ):
            parameters = parameters[1:]
            self._index = 1
        if not parameters or parameters[0].kind is inspect.Parameter.VAR_KEYWORD:
            return
        first = parameters[0]
        if first.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            self._keyword = first.name
        if first.default is not inspect.Parameter.empty:
            self._default = first.default

    def pick(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        """Returns the argument's value in this call, or ``_MISSING``."""
        if len(args) > self._index:
            return args[self._index]
        if self._keyword is not None and self._keyword in kwargs:
            return kwargs[self._keyword]
        return self._default
