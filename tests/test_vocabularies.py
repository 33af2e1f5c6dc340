"""The vocabulary layer, row by row: what each vocabulary's attributes make of a span.

One parametrized table per question (kind, names, tokens, task, error); each row is one attribute
set a real instrumentation writes (docs/events.md, "Vocabularies", lists the same rows).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from otel_dashboard.model.failures import FailureChain
from otel_dashboard.model.runs import Run, Tally
from otel_dashboard.model.vocab import error_of, task_of, view_of
from otel_dashboard.model.vocab.names import name_from_span_name
from otel_dashboard.model.vocab.text import MAX_TASK_CHARS


@pytest.mark.parametrize(
    ("span_name", "attrs", "kind", "vocabulary"),
    [
        # this project's decorators
        ("agent", {"otel_dashboard.span.kind": "agent"}, "agent", "otel_dashboard"),
        ("tool", {"otel_dashboard.span.kind": "tool"}, "tool", "otel_dashboard"),
        ("s", {"otel_dashboard.span.kind": "synthesis"}, "synthesis", "otel_dashboard"),
        # GenAI semantic conventions (v0.1.0 and before)
        ("invoke_agent A", {"gen_ai.operation.name": "invoke_agent"}, "agent", "genai"),
        ("w", {"gen_ai.operation.name": "invoke_workflow"}, "agent", "genai"),
        ("create_agent A", {"gen_ai.operation.name": "create_agent"}, "registration", "genai"),
        ("execute_tool t", {"gen_ai.operation.name": "execute_tool"}, "tool", "genai"),
        ("chat gpt-4o", {"gen_ai.operation.name": "chat"}, "model", "genai"),
        ("g", {"gen_ai.operation.name": "generate_content"}, "model", "genai"),
        ("t", {"gen_ai.operation.name": "text_completion"}, "model", "genai"),
        ("e", {"gen_ai.operation.name": "embeddings"}, "model", "genai"),
        ("r", {"gen_ai.operation.name": "retrieval"}, "retrieval", "genai"),
        ("m", {"gen_ai.operation.name": "search_memory"}, "retrieval", "genai"),
        ("m", {"gen_ai.operation.name": "update_memory"}, "chain", "genai"),
        ("p", {"gen_ai.operation.name": "plan"}, "chain", "genai"),
        # OpenInference (upper case on the wire)
        ("WeatherAgent.run", {"openinference.span.kind": "AGENT"}, "agent", "openinference"),
        ("generation", {"openinference.span.kind": "LLM"}, "model", "openinference"),
        ("e", {"openinference.span.kind": "EMBEDDING"}, "model", "openinference"),
        ("SimpleTool", {"openinference.span.kind": "TOOL"}, "tool", "openinference"),
        ("r", {"openinference.span.kind": "RETRIEVER"}, "retrieval", "openinference"),
        ("turn", {"openinference.span.kind": "CHAIN"}, "chain", "openinference"),
        ("g", {"openinference.span.kind": "GUARDRAIL"}, "chain", "openinference"),
        # OpenLLMetry
        ("w.workflow", {"traceloop.span.kind": "workflow"}, "agent", "openllmetry"),
        ("a.agent", {"traceloop.span.kind": "agent"}, "agent", "openllmetry"),
        ("t.tool", {"traceloop.span.kind": "tool"}, "tool", "openllmetry"),
        ("t.task", {"traceloop.span.kind": "task"}, "chain", "openllmetry"),
        ("openai.chat", {"llm.request.type": "chat"}, "model", "openllmetry"),
        # MCP
        ("tools/call get_weather", {"mcp.method.name": "tools/call"}, "tool", "mcp"),
        ("MCP send tools/list", {"mcp.method.name": "tools/list"}, "other", "mcp"),
        ("resources/read", {"mcp.method.name": "resources/read"}, "retrieval", "mcp"),
        # no kind attribute: the span name, then a model hint, else other
        ("invoke_agent Planner", {}, "agent", "span_name"),
        ("execute_tool search", {}, "tool", "span_name"),
        ("tools/call search", {}, "tool", "span_name"),
        ("call", {"gen_ai.request.model": "gpt-4o"}, "model", "model_hint"),
        ("plain", {"gen_ai.agent.name": "copied onto a child"}, "other", "other"),
    ],
)
def test_kind(span_name: str, attrs: dict[str, Any], kind: str, vocabulary: str) -> None:
    view = view_of(span_name, attrs)
    assert (view.kind, view.vocabulary) == (kind, vocabulary)


def test_the_first_vocabulary_with_a_known_kind_decides() -> None:
    # fastmcp's client span: MCP's method and GenAI's operation; both say tool
    assert view_of("tools/call x", {"mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool"}
                   ).vocabulary == "genai"
    # an unknown GenAI operation falls through to the next vocabulary
    unknown = {"gen_ai.operation.name": "frobnicate", "openinference.span.kind": "LLM"}
    assert view_of("x", unknown).kind == "model"


@pytest.mark.parametrize(
    ("span_name", "attrs", "agent_name"),
    [
        ("invoke_agent X", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Weather"},
         "Weather"),
        ("WeatherAgent", {"openinference.span.kind": "AGENT", "agent.name": "Weather", "graph.node.id": "n1"},
         "Weather"),
        ("node", {"openinference.span.kind": "AGENT", "graph.node.id": "researcher"}, "researcher"),
        ("WeatherAgent.run", {"openinference.span.kind": "AGENT"}, "WeatherAgent"),
        ("Weather Researcher._execute_core", {"openinference.span.kind": "AGENT"}, "Weather Researcher"),
        ("WeatherAgent.agent", {"traceloop.span.kind": "agent", "traceloop.entity.name": "Weather"},
         "Weather"),
        ("invoke_agent Planner", {"gen_ai.operation.name": "invoke_agent"}, "Planner"),
        # the task text as the span name is not a name
        ("What is the weather in Paris today and tomorrow, and should I take an umbrella with me?",
         {"openinference.span.kind": "AGENT"}, "agent"),
        ("line one\nline two", {"openinference.span.kind": "AGENT"}, "agent"),
    ],
)
def test_agent_name(span_name: str, attrs: dict[str, Any], agent_name: str) -> None:
    assert view_of(span_name, attrs).agent_name == agent_name


@pytest.mark.parametrize(
    ("span_name", "attrs", "tool_name"),
    [
        ("execute_tool get_weather", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "gw"},
         "gw"),
        ("SimpleTool", {"openinference.span.kind": "TOOL", "tool.name": "get_weather"}, "get_weather"),
        ("get_weather.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "get_weather"},
         "get_weather"),
        ("tools/call get_weather", {"mcp.method.name": "tools/call"}, "get_weather"),
        ("MCP send tools/call get_weather", {"mcp.method.name": "tools/call"}, "get_weather"),
        ("get_weather.run", {"openinference.span.kind": "TOOL"}, "get_weather"),
    ],
)
def test_tool_name(span_name: str, attrs: dict[str, Any], tool_name: str) -> None:
    assert view_of(span_name, attrs).tool_name == tool_name


@pytest.mark.parametrize(
    ("attrs", "tokens"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
          "gen_ai.usage.cache_read.input_tokens": 4, "gen_ai.usage.cache_creation.input_tokens": 2,
          "gen_ai.usage.reasoning.output_tokens": 3},
         {"input": 10, "output": 5, "cache_read_input": 4, "cache_creation_input": 2, "reasoning_output": 3}),
        ({"gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 1}, {"input": 7, "output": 1}),
        ({"llm.token_count.prompt": 101, "llm.token_count.completion": 17, "llm.token_count.total": 118,
          "llm.token_count.prompt_details.cache_read": 50, "llm.token_count.completion_details.reasoning": 9},
         {"input": 101, "output": 17, "total": 118, "cache_read_input": 50, "reasoning_output": 9}),
        ({"llm.usage.prompt_tokens": 3, "llm.usage.completion_tokens": 2, "llm.usage.total_tokens": 5,
          "gen_ai.usage.cache_read_input_tokens": 1},
         {"input": 3, "output": 2, "total": 5, "cache_read_input": 1}),
        ({"gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": -1}, {"input": 12}),
        ({}, None),
    ],
)
def test_model_call_tokens(attrs: dict[str, Any], tokens: dict[str, int] | None) -> None:
    view = view_of("chat", {"gen_ai.operation.name": "chat", **attrs})
    assert view.tokens == tokens


def test_run_totals_are_read_apart_from_a_model_calls_keys() -> None:
    view = view_of("invoke_agent A", {"gen_ai.operation.name": "invoke_agent",
                                      "gen_ai.aggregated_usage.input_tokens": 264,
                                      "gen_ai.aggregated_usage.output_tokens": 41})
    assert (view.tokens, view.run_tokens) == (None, {"input": 264, "output": 41})


@pytest.mark.parametrize(
    ("attrs", "model", "provider"),
    [
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
          "gen_ai.provider.name": "openai"}, "gpt-4o-2024-08-06", "openai"),
        ({"gen_ai.request.model": "claude", "gen_ai.system": "anthropic"}, "claude", "anthropic"),
        ({"llm.model_name": "fake-gpt", "llm.provider": "openai"}, "fake-gpt", "openai"),
        ({"llm.model_name": "fake-gpt", "llm.system": "openai"}, "fake-gpt", "openai"),
    ],
)
def test_model_and_provider(attrs: dict[str, Any], model: str, provider: str) -> None:
    view = view_of("chat", {"gen_ai.operation.name": "chat", **attrs})
    assert (view.model, view.provider) == (model, provider)


class _Event:
    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name, self.attributes, self.timestamp = name, attributes, 1


GENAI_MESSAGES = json.dumps([
    {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
    {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
])
CHAT_MESSAGES = json.dumps([{"role": "user", "content": [{"type": "text", "text": "Plan a trip"}]}])


@pytest.mark.parametrize(
    ("attrs", "events", "task"),
    [
        ({"otel_dashboard.task.description": "Own task"}, [], "Own task"),
        ({"gen_ai.input.messages": GENAI_MESSAGES}, [], "What is the weather in Paris?"),
        ({"gen_ai.input.messages": CHAT_MESSAGES}, [], "Plan a trip"),
        ({"llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "sys",
          "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "Hi there"},
         [], "Hi there"),
        ({"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Old style"}, [], "Old style"),
        ({"input.value": '{"task": "What is the weather?", "stream": false}',
          "input.mime_type": "application/json"}, [], "What is the weather?"),
        ({"input.value": '{"query": "find docs"}'}, [], "find docs"),
        ({"input.value": "plain text task", "input.mime_type": "text/plain"}, [], "plain text task"),
        ({"input.value": '{"stream": false}', "input.mime_type": "application/json"}, [], None),
        ({"traceloop.entity.input": '{"args": ["What is the weather in Paris?"], "kwargs": {}}'}, [],
         "What is the weather in Paris?"),
        ({"traceloop.entity.input": '{"args": [], "kwargs": {"prompt": "Summarise"}}'}, [], "Summarise"),
        ({}, [_Event("gen_ai.user.message", {"content": "From an event"})], "From an event"),
        ({}, [], None),
    ],
)
def test_task(attrs: dict[str, Any], events: list[_Event], task: str | None) -> None:
    assert task_of(attrs, events) == task


def test_a_long_task_is_cut_with_an_ellipsis() -> None:
    task = task_of({"input.value": "x" * 1000})
    assert task is not None and len(task) == MAX_TASK_CHARS and task.endswith("\u2026")


def test_model_calls_read_messages_only() -> None:
    attrs = {"input.value": '{"messages": ["ChatMessage(...)"]}', "gen_ai.input.messages": GENAI_MESSAGES}
    assert task_of(attrs, messages_only=True) == "What is the weather in Paris?"
    assert task_of({"input.value": "raw request"}, messages_only=True) is None


@pytest.mark.parametrize(
    ("attrs", "exception", "status", "expected"),
    [
        ({}, {"exception.type": "ValueError", "exception.message": "bad"}, "ValueError: bad",
         ("ValueError", "bad")),
        ({"error.type": "InternalServerError"}, None, "Error code: 500",
         ("InternalServerError", "Error code: 500")),
        ({"error.type": "tool_error"}, None, None, ("tool_error", None)),
        ({}, None, "failed", (None, "failed")),
    ],
)
def test_error(attrs: dict[str, Any], exception: dict[str, Any] | None, status: str | None,
               expected: tuple[str | None, str | None]) -> None:
    assert error_of(attrs, exception, status) == expected


@pytest.mark.parametrize(
    ("span_name", "name"),
    [("invoke_agent A", "A"), ("A.run", "A"), ("tools/call t", "t"), ("plain", "plain"), ("", None),
     (".run", ".run"), ("x" * 65, None)],
)
def test_name_from_span_name(span_name: str, name: str | None) -> None:
    assert name_from_span_name(span_name) == name


# ------------------------------------------------------------------ one failure, one error
def test_a_failure_travelling_up_the_chain_is_one_failure() -> None:
    chain = FailureChain()
    first, new = chain.ended_failed(1, 3, 2, "ToolFailure", "down", frozenset({2, 1}))
    assert new
    again, new = chain.ended_failed(1, 2, 1, "Wrapped", "something else", frozenset({1}))
    assert (again, new) == (first, False)


def test_a_successful_sibling_after_a_failure_means_the_parent_recovered() -> None:
    chain = FailureChain()
    chain.ended_failed(1, 3, 2, "ToolFailure", "down", frozenset({2}))
    chain.ended_ok(4, 2)  # the next model call, under the same parent
    _, new = chain.ended_failed(1, 2, 0, "LimitExceeded", "usage limit", frozenset())
    assert new


def test_a_descendants_failure_with_an_overlapping_message_is_the_same_failure() -> None:
    chain = FailureChain()
    inner = "Error code: 500 - The model backend failed (scripted error)."
    first, _ = chain.ended_failed(1, 4, 3, None, f"Error getting response: {inner}", frozenset({3, 2}))
    chain.ended_ok(3, 2)  # a step that ended OK in between
    again, new = chain.ended_failed(1, 2, 0, None, f"Error in agent run: {inner}", frozenset())
    assert (again, new) == (first, False)


def test_the_same_message_on_two_sibling_calls_is_two_failures() -> None:
    chain = FailureChain()
    chain.ended_failed(1, 3, 2, "ToolFailure", "down", frozenset({2}))
    chain.ended_ok(5, 2)
    _, new = chain.ended_failed(1, 4, 2, "ToolFailure", "down", frozenset({2}))
    assert new


def test_same_type_without_a_message_is_the_same_failure() -> None:
    chain = FailureChain()
    first, _ = chain.ended_failed(1, 5, 4, "tool_error", None, frozenset({4, 3}))
    chain.ended_ok(4, 3)
    again, new = chain.ended_failed(1, 3, 2, "tool_error", "Error executing tool", frozenset({2}))
    assert (again, new) == (first, False)


# ------------------------------------------------------------------ runs
def test_tokens_counted_once_model_calls_before_the_run_span() -> None:
    run = Run("a" * 16, None, "A", None, None, None, None, None)
    run.tally.add_model_call("m", {"input": 10, "output": 2}, None)
    totals = run.totals({"input": 999, "output": 999}, None, None)
    assert totals["tokens"]["input"] == 10 and totals["tokens_source"] == "model_calls"
    bare = Run("b" * 16, None, "B", None, None, None, None, None)
    totals = bare.totals({"input": 5, "output": 1}, 0.5, "m")
    assert (totals["tokens"]["total"], totals["tokens_source"], totals["cost_usd"]) == (6, "run_span", 0.5)


def test_cost_status() -> None:
    tally = Tally()
    assert tally.cost_fields() == (None, "no_tokens")
    tally.add_model_call("unknown", {"input": 1}, None)
    assert tally.cost_fields() == (None, "no_price")
    tally.add_model_call("gpt-4o", {"input": 1}, 0.25)
    assert tally.cost_fields() == (0.25, "partial")


def test_tool_names_are_capped() -> None:
    tally = Tally()
    for index in range(60):
        tally.add_tool_call(f"t{index}", index == 59)
    assert len(tally.tools) == 51 and tally.tools["(other)"] == [10, 1]
    assert (tally.tool_calls, tally.tool_failures) == (60, 1)
