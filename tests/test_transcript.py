"""otel_dashboard.model.transcript: one span's chat transcript and tool input/output.

What a transcript must hold is read from the recorded fixtures (tests/fixtures/spans) and from the
GenAI semantic conventions' own examples (tests/fixtures/genai_message_examples.json, copied verbatim
from the spec's docs/gen-ai/non-normative/examples-llm-calls.md), never written here from memory.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from fuzz_support import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from otel_dashboard.model.otlp import decode_body, spans_from_request
from otel_dashboard.model.transcript import (
    MAX_MESSAGES,
    MAX_PARTS,
    MAX_TEXT_BYTES,
    MAX_TOTAL_BYTES,
    _transcript_of,
    tool_io_of,
    transcript_of,
)

FIXTURES_DIR = Path(__file__).parent / "fixtures"
SPANS_DIR = FIXTURES_DIR / "spans"
FIXTURES = sorted(SPANS_DIR.glob("*/*.json"))
OK_FIXTURES = sorted(SPANS_DIR.glob("*/ok*.json"))
EXAMPLES = json.loads((FIXTURES_DIR / "genai_message_examples.json").read_text())["examples"]

Span = tuple[str, int, dict[str, Any], list[dict[str, Any]]]  # name, start, attributes, events


def _ids(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@cache
def _spans(path: Path) -> tuple[Span, ...]:
    request, _ = decode_body(path.read_bytes(), content_type="application/json", content_encoding=None,
                             max_decoded_bytes=1024 * 1024)
    spans, rejected, _ = spans_from_request(request)
    assert rejected == 0
    return tuple(sorted(
        ((span.name, span.start_time or 0, dict(span.attributes or {}),
          [{"name": event.name, "attributes": dict(event.attributes or {})} for event in span.events])
         for span in spans),
        key=lambda span: span[1],
    ))


# --- what a fixture holds, read from its raw attributes ----------------------------------------


def _summary(messages: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """A transcript's messages as (role, [(part type, its text, name or response)])."""
    out = []
    for message in messages:
        parts = []
        for part in message["parts"]:
            if part["type"] in ("text", "reasoning"):
                parts.append((part["type"], part["content"]))
            elif part["type"] == "tool_call":
                parts.append(("tool_call", part["name"]))
            elif part["type"] == "tool_call_response":
                parts.append(("tool_call_response", part.get("response", part.get("result"))))
            else:
                parts.append(("other", None))
        out.append((message["role"], parts))
    return out


def _genai_expected(raw: str | None) -> list[tuple[str, list[tuple[str, Any]]]]:
    if raw is None:
        return []
    expected = []
    for message in json.loads(raw):
        parts = []
        for part in message["parts"]:
            if part["type"] == "text":
                parts.append(("text", part["content"]))
            elif part["type"] == "tool_call":
                parts.append(("tool_call", part["name"]))
            elif part["type"] == "tool_call_response":
                parts.append(("tool_call_response", part.get("response", part.get("result"))))
            else:
                parts.append(("other", None))
        expected.append((message["role"], parts))
    return expected


def _oi_expected(attributes: dict[str, Any], side: str) -> list[tuple[str, list[tuple[str, Any]]]]:
    prefix = f"llm.{side}_messages."
    indices = sorted({int(key[len(prefix):].split(".")[0]) for key in attributes if key.startswith(prefix)})
    expected = []
    for i in indices:
        base = f"{prefix}{i}.message."
        role = attributes[base + "role"]
        parts: list[tuple[str, Any]] = []
        if base + "content" in attributes:
            kind = "tool_call_response" if base + "tool_call_id" in attributes else "text"
            parts.append((kind, attributes[base + "content"]))
        j = 0
        while f"{base}contents.{j}.message_content.text" in attributes:
            parts.append(("text", attributes[f"{base}contents.{j}.message_content.text"]))
            j += 1
        k = 0
        while f"{base}tool_calls.{k}.tool_call.function.name" in attributes:
            parts.append(("tool_call", attributes[f"{base}tool_calls.{k}.tool_call.function.name"]))
            k += 1
        expected.append((role, parts))
    return expected


@pytest.mark.parametrize("path", FIXTURES, ids=_ids)
def test_every_recorded_span_gives_the_messages_it_holds(path: Path) -> None:
    model_spans = 0
    for name, _, attributes, events in _spans(path):
        transcript = transcript_of(attributes, events)
        if "gen_ai.input.messages" in attributes or "gen_ai.output.messages" in attributes:
            assert transcript is not None, name
            assert transcript["source"] == "genai"
            assert _summary(transcript["input"]) == _genai_expected(attributes.get("gen_ai.input.messages"))
            assert _summary(transcript["output"]) == _genai_expected(attributes.get("gen_ai.output.messages"))
            model_spans += 1
        elif any(key.startswith(("llm.input_messages.", "llm.output_messages.")) for key in attributes):
            assert transcript is not None, name
            assert transcript["source"] == "openinference"
            assert _summary(transcript["input"]) == _oi_expected(attributes, "input")
            assert _summary(transcript["output"]) == _oi_expected(attributes, "output")
            model_spans += 1
        elif "gen_ai.system_instructions" in attributes:  # pydantic-ai's invoke_agent span
            assert transcript is not None
            assert (transcript["input"], transcript["output"]) == ([], [])
            assert transcript["system"] == json.loads(attributes["gen_ai.system_instructions"])[0]["content"]
        else:
            assert transcript is None, name
        if transcript is not None:
            assert transcript["cut"] is False
            orjson.dumps(transcript)
    if path.stem == "model_error" and path.parent.name in ("pydantic_ai", "mcp"):
        # pydantic-ai records no messages on a model call that fails: the span holds no transcript
        assert model_spans == 0
    else:
        assert model_spans >= 1, "every other recorded run has a model call with its messages"


def _model_transcripts(path: Path) -> list[dict[str, Any]]:
    found = [transcript_of(attributes, events) for _, _, attributes, events in _spans(path)]
    return [t for t in found if t is not None and (t["input"] or t["output"])]


def _parts(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [part for message in messages for part in message["parts"] if part["type"] == kind]


def _arguments(part: dict[str, Any]) -> Any:
    arguments = part["arguments"]
    return json.loads(arguments) if isinstance(arguments, str) else arguments


@pytest.mark.parametrize("path", OK_FIXTURES, ids=_ids)
def test_the_ok_run_two_model_calls_the_tool_call_its_result_and_the_answer(path: Path) -> None:
    # tests/fixtures/spans/README.md, "The runs": a get_weather({"city": "Paris"}) call, its result,
    # then the answer (smolagents answers with a call of its final_answer tool).
    first, second = _model_transcripts(path)
    (call,) = _parts(first["output"], "tool_call")
    assert call["name"] == "get_weather"
    assert _arguments(call) == {"city": "Paris"}
    assert "What is the weather in Paris?" in [p["content"] for p in _parts(first["input"], "text")][-1]
    answer = "It is sunny and 21 degrees Celsius in Paris."
    if path.parent.name == "smolagents":
        (final,) = _parts(second["output"], "tool_call")
        assert (final["name"], _arguments(final)) == ("final_answer", {"answer": answer})
        # smolagents sends the call and the result as text messages of its own roles
        roles = [message["role"] for message in second["input"]]
        assert roles == ["system", "user", "tool-call", "tool-response"]
        assert second["input"][3]["parts"][0]["content"].endswith("Paris: sunny, 21 degrees Celsius")
    else:
        assert [p["content"] for p in _parts(second["output"], "text")] == [answer]
        (response,) = _parts(second["input"], "tool_call_response")
        assert response["id"] == call["id"]
        assert response["response"] == "Paris: sunny, 21 degrees Celsius"
        assert _parts(second["input"], "tool_call")[0]["id"] == call["id"]


def test_system_instructions_and_tool_definitions_of_pydantic_ai() -> None:
    for transcript in _model_transcripts(SPANS_DIR / "pydantic_ai" / "ok.json"):
        assert transcript["system"] == "You answer weather questions. Use the get_weather tool."
        assert [tool["name"] for tool in transcript["tools"]] == ["get_weather"]


def test_openinference_tool_schemas_of_smolagents() -> None:
    for transcript in _model_transcripts(SPANS_DIR / "smolagents" / "ok.json"):
        assert [tool["function"]["name"] for tool in transcript["tools"]] == ["get_weather", "final_answer"]
        assert transcript["system"] is None
        assert transcript["input"][0]["role"] == "system"  # kept where OpenInference puts it


def _named(path: Path, name: str) -> list[dict[str, Any]]:
    return [attributes for span_name, _, attributes, _ in _spans(path) if span_name == name]


TOOL_SPANS = {"pydantic_ai": "execute_tool get_weather", "mcp": "execute_tool get_weather",
              "smolagents": "SimpleTool", "traceloop": "get_weather.tool", "openai_agents": "get_weather"}


@pytest.mark.parametrize("path", OK_FIXTURES, ids=_ids)
def test_tool_io_of_the_recorded_tool_span(path: Path) -> None:
    (attributes,) = _named(path, TOOL_SPANS[path.parent.name])
    io = tool_io_of(attributes)
    assert io is not None
    assert io["arguments"] == {"city": "Paris"}
    assert io["result"] == "Paris: sunny, 21 degrees Celsius"
    assert io["cut"] is False
    assert io["source"] == {"pydantic_ai": "genai", "mcp": "genai", "smolagents": "openinference",
                            "traceloop": "openllmetry", "openai_agents": "openinference"}[path.parent.name]


def test_tool_io_of_recorded_tool_errors() -> None:
    (pydantic,) = _named(SPANS_DIR / "mcp" / "tool_error.json", "execute_tool get_weather")
    io = tool_io_of(pydantic)
    assert io is not None
    assert io["result"] == pydantic["gen_ai.tool.call.result"] == "Error executing tool get_weather"
    (agents,) = _named(SPANS_DIR / "openai_agents" / "tool_error.json", "get_weather")
    io = tool_io_of(agents)
    assert io is not None
    assert io["result"] == agents["output.value"]
    # the MCP spans of a call carry no arguments or result in these recordings
    for name, _, attributes, _ in _spans(SPANS_DIR / "mcp" / "ok.json"):
        if "mcp.method.name" in attributes:
            assert tool_io_of(attributes) is None, name


def test_a_traceloop_agent_span_keeps_its_positional_arguments() -> None:
    (agent,) = _named(SPANS_DIR / "traceloop" / "ok.json", "WeatherAgent.agent")
    io = tool_io_of(agent)
    assert io is not None
    assert io["arguments"] == {"args": ["What is the weather in Paris?"], "kwargs": {}}
    assert io["result"] == "It is sunny and 21 degrees Celsius in Paris."


# --- the GenAI conventions' own examples ------------------------------------------------------


def _example_pairs() -> list[str]:
    return sorted(key.removeprefix("gen-ai-input-messages-") for key in EXAMPLES
                  if key.startswith("gen-ai-input-messages-"))


@pytest.mark.parametrize("name", _example_pairs())
@pytest.mark.parametrize("as_json", [True, False], ids=["json-string", "structured"])
def test_the_spec_examples(name: str, as_json: bool) -> None:
    inputs = EXAMPLES[f"gen-ai-input-messages-{name}"]["value"]
    outputs = EXAMPLES[f"gen-ai-output-messages-{name}"]["value"]
    encode = json.dumps if as_json else (lambda value: value)
    transcript = transcript_of({"gen_ai.input.messages": encode(inputs),
                                "gen_ai.output.messages": encode(outputs)})
    assert transcript is not None
    assert transcript["source"] == "genai"
    assert transcript["cut"] is False
    for got, sent in ((transcript["input"], inputs), (transcript["output"], outputs)):
        assert [m["role"] for m in got] == [m["role"] for m in sent]
        assert [m.get("finish_reason") for m in got] == [m.get("finish_reason") for m in sent]
        for got_message, sent_message in zip(got, sent, strict=True):
            assert len(got_message["parts"]) == len(sent_message["parts"])
            for got_part, sent_part in zip(got_message["parts"], sent_message["parts"], strict=True):
                if sent_part["type"] in ("text", "reasoning", "tool_call", "tool_call_response"):
                    assert got_part == sent_part  # the schema's own parts come through unchanged
                else:  # server_tool_call and the like: kept whole, as JSON text
                    assert got_part["type"] == "other"
                    assert json.loads(got_part["content"]) == sent_part


def test_the_spec_tool_call_arguments_stay_an_object() -> None:
    transcript = transcript_of({"gen_ai.input.messages": json.dumps(
        EXAMPLES["gen-ai-input-messages-tool-call-span-2"]["value"])})
    assert transcript is not None
    (call,) = _parts(transcript["input"], "tool_call")
    assert call == {"type": "tool_call", "id": "call_VSPygqKTWdrhaFErNvMV18Yl", "name": "get_weather",
                    "arguments": {"location": "Paris"}}
    (response,) = _parts(transcript["input"], "tool_call_response")
    assert response["response"] == "rainy, 57\u00b0F"


def test_the_spec_system_instructions_and_tool_definitions() -> None:
    system = EXAMPLES["gen-ai-system-instructions"]["value"]
    tools = EXAMPLES["gen-ai-tool-definitions-tool-call-span-0"]["value"]
    transcript = transcript_of({"gen_ai.system_instructions": json.dumps(system),
                                "gen_ai.tool.definitions": json.dumps(tools),
                                "gen_ai.input.messages": json.dumps(
                                    EXAMPLES["gen-ai-input-messages-instructions"]["value"])})
    assert transcript is not None
    assert transcript["system"] == "You must never tell jokes"
    assert transcript["tools"] == tools


def test_the_spec_multiple_choices_are_several_output_messages() -> None:
    outputs = EXAMPLES["gen-ai-output-messages-choices"]["value"]
    transcript = transcript_of({"gen_ai.output.messages": json.dumps(outputs)})
    assert transcript is not None
    assert len(transcript["output"]) == len(outputs) == 2
    assert transcript["input"] == []


# --- the older GenAI message events ------------------------------------------------------------

# Field names and example values from model/gen-ai/deprecated/events-deprecated.yaml.
CALL_ID = "call_mszuSIzqtI65i1wAUOE8w5H4"
TOOL_CALLS = json.dumps([{"id": CALL_ID, "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}])
MESSAGE_EVENTS = [
    {"name": "gen_ai.system.message", "attributes": {"content": "You're a helpful bot"}},
    {"name": "gen_ai.user.message", "attributes": {"content": "What's the weather in Paris?"}},
    {"name": "gen_ai.assistant.message", "attributes": {"tool_calls": TOOL_CALLS}},
    {"name": "gen_ai.tool.message", "attributes": {"content": "rainy, 57\u00b0F", "id": CALL_ID}},
    {"name": "gen_ai.choice", "attributes": {
        "index": 0, "finish_reason": "stop",
        "message": json.dumps({
            "content": "The weather in Paris is rainy and overcast, with temperatures around 57\u00b0F",
            "role": "assistant"})}},
    {"name": "exception", "attributes": {"exception.type": "ValueError"}},
]


def test_the_message_events() -> None:
    transcript = transcript_of({"gen_ai.operation.name": "chat"}, MESSAGE_EVENTS)
    assert transcript is not None
    assert transcript["source"] == "genai_events"
    assert [m["role"] for m in transcript["input"]] == ["system", "user", "assistant", "tool"]
    assert transcript["input"][0]["parts"] == [{"type": "text", "content": "You're a helpful bot"}]
    assert transcript["input"][2]["parts"] == [{"type": "tool_call", "id": CALL_ID, "name": "get_weather",
                                                "arguments": '{"location": "Paris"}'}]
    assert transcript["input"][3]["parts"] == [{"type": "tool_call_response", "id": CALL_ID,
                                                "response": "rainy, 57\u00b0F"}]
    (choice,) = transcript["output"]
    assert choice["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert choice["parts"][0]["content"].startswith("The weather in Paris is rainy")


def test_an_event_role_overrides_the_event_name() -> None:
    transcript = transcript_of({}, [{"name": "gen_ai.user.message", "attributes": {"role": "customer",
                                                                                      "content": "hi"}}])
    assert transcript is not None
    assert transcript["input"][0]["role"] == "customer"


def test_the_inference_details_event_and_the_oldest_content_events() -> None:
    details = {"name": "gen_ai.client.inference.operation.details", "attributes": {
        "gen_ai.input.messages": json.dumps(EXAMPLES["gen-ai-input-messages-simple"]["value"]),
        "gen_ai.output.messages": json.dumps(EXAMPLES["gen-ai-output-messages-simple"]["value"])}}
    transcript = transcript_of({}, [details])
    assert transcript is not None
    assert transcript["source"] == "genai_events"
    assert [m["role"] for m in transcript["output"]] == ["assistant"]
    oldest = [{"name": "gen_ai.content.prompt", "attributes": {"gen_ai.prompt": json.dumps(
        [{"role": "user", "content": "hello"}])}},
        {"name": "gen_ai.content.completion", "attributes": {"gen_ai.completion": json.dumps(
            [{"role": "assistant", "content": "hi there"}])}},
        {"name": "gen_ai.content.completion.chunk", "attributes": {}}]
    transcript = transcript_of({}, oldest)
    assert transcript is not None
    assert _summary(transcript["input"]) == [("user", [("text", "hello")])]
    assert _summary(transcript["output"]) == [("assistant", [("text", "hi there")])]
    # traceloop's streaming chunk events alone are not a transcript
    assert transcript_of({}, [{"name": "gen_ai.content.completion.chunk", "attributes": {}}] * 3) is None


# --- OpenLLMetry's indexed attributes (pre-2025 releases; not in the recordings) ----------------

OPENLLMETRY = {
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Be brief.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "Weather in Paris?",
    "gen_ai.prompt.2.role": "assistant",
    "gen_ai.prompt.2.tool_calls.0.id": "call_1",
    "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
    "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
    "gen_ai.prompt.3.role": "tool",
    "gen_ai.prompt.3.tool_call_id": "call_1",
    "gen_ai.prompt.3.content": "sunny",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "Sunny.",
    "gen_ai.completion.0.finish_reason": "stop",
}


def test_openllmetry_indexed_attributes() -> None:
    transcript = transcript_of(OPENLLMETRY)
    assert transcript is not None
    assert transcript["source"] == "openllmetry"
    assert _summary(transcript["input"]) == [("system", [("text", "Be brief.")]),
                                             ("user", [("text", "Weather in Paris?")]),
                                             ("assistant", [("tool_call", "get_weather")]),
                                             ("tool", [("tool_call_response", "sunny")])]
    assert transcript["input"][2]["parts"][0]["arguments"] == '{"city": "Paris"}'
    assert transcript["output"] == [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}],
                                     "finish_reason": "stop"}]


def test_indices_are_numbers_not_strings() -> None:
    attributes = {f"gen_ai.prompt.{i}.content": f"m{i}" for i in range(12)}
    transcript = transcript_of(attributes)
    assert transcript is not None
    assert [m["parts"][0]["content"] for m in transcript["input"]] == [f"m{i}" for i in range(12)]


# --- precedence ---------------------------------------------------------------------------------

GENAI = {"gen_ai.input.messages": json.dumps([{"role": "user",
                                               "parts": [{"type": "text", "content": "genai"}]}])}
OPENINFERENCE = {"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "oi"}
EVENTS = [{"name": "gen_ai.user.message", "attributes": {"content": "events"}}]


@pytest.mark.parametrize(("attributes", "events", "source", "text"), [
    ({**OPENLLMETRY, **OPENINFERENCE, **GENAI}, EVENTS, "genai", "genai"),
    ({**OPENLLMETRY, **OPENINFERENCE}, EVENTS, "genai_events", "events"),
    ({**OPENLLMETRY, **OPENINFERENCE}, [], "openinference", "oi"),
])
def test_precedence(attributes: dict[str, Any], events: list[dict[str, Any]], source: str, text: str) -> None:
    transcript = transcript_of(attributes, events)
    assert transcript is not None
    assert transcript["source"] == source
    assert _parts(transcript["input"], "text")[-1]["content"] == text


def test_no_messages_no_transcript() -> None:
    assert transcript_of({}) is None
    assert transcript_of({"gen_ai.operation.name": "chat", "input.value": "hi"}) is None
    assert transcript_of({"gen_ai.tool.definitions": "[]"}) is None


# --- malformed and huge inputs ------------------------------------------------------------------


def test_malformed_json_is_kept_as_text() -> None:
    broken = '[{"role": "user", "parts": ['
    transcript = transcript_of({"gen_ai.input.messages": broken, "gen_ai.output.messages": "42"})
    assert transcript is not None
    assert transcript["input"] == [{"role": "unknown", "parts": [{"type": "other", "content": broken}]}]
    assert transcript["output"] == [{"role": "unknown", "parts": [{"type": "other", "content": "42"}]}]


@pytest.mark.parametrize("value", [
    '["just a string", 7, null]',
    '[{"role": 5, "parts": "text"}]',
    '[{"parts": [{"type": "text"}, {"no": "type"}, 3, null]}]',
    '{"role": "user", "parts": [{"type": "text", "content": "one message, not a list"}]}',
    '[{"role": "user", "content": "chat-completions form"}]',
    '[{"role": "user", "parts": [{"type": "tool_call", "arguments": {"deep": [[[[1]]]]}}]}]',
])
def test_odd_shapes_never_raise(value: str) -> None:
    transcript = transcript_of({"gen_ai.input.messages": value})
    assert transcript is not None
    assert transcript["input"]
    orjson.dumps(transcript)


def test_deeply_nested_json_does_not_raise() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    transcript = transcript_of({"gen_ai.input.messages": deep, "gen_ai.tool.definitions": deep})
    assert transcript is not None
    assert transcript["input"][0]["parts"][0]["type"] == "other"


def test_message_and_part_counts_are_bounded() -> None:
    many = [{"role": "user", "parts": [{"type": "text", "content": str(i)}] * (MAX_PARTS + 20)}
            for i in range(MAX_MESSAGES + 100)]
    transcript = transcript_of({"gen_ai.input.messages": json.dumps(many)})
    assert transcript is not None
    assert transcript["cut"] is True
    assert len(transcript["input"]) == MAX_MESSAGES
    assert all(len(message["parts"]) == MAX_PARTS for message in transcript["input"])
    attributes = {f"llm.input_messages.{i}.message.content": "x" for i in range(MAX_MESSAGES + 5)}
    attributes["llm.input_messages.999999999.message.content"] = "last"
    transcript = transcript_of(attributes)
    assert transcript is not None
    assert len(transcript["input"]) == MAX_MESSAGES
    assert transcript["cut"] is True


def test_a_huge_text_is_cut_with_the_marker() -> None:
    huge = "é" * (MAX_TEXT_BYTES * 2)
    transcript = transcript_of({"gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": huge}]}])})
    assert transcript is not None
    assert transcript["cut"] is True
    text = transcript["input"][0]["parts"][0]["content"]
    assert len(text.encode()) <= MAX_TEXT_BYTES
    assert "\u2026[cut " in text and text.endswith(" bytes]")


def test_all_texts_together_are_bounded() -> None:
    message = {"role": "user", "parts": [{"type": "text", "content": "a" * (MAX_TEXT_BYTES - 1)}]}
    transcript = transcript_of({"gen_ai.input.messages": json.dumps([message] * MAX_MESSAGES)})
    assert transcript is not None
    assert transcript["cut"] is True
    assert len(orjson.dumps(transcript)) < MAX_TOTAL_BYTES + MAX_MESSAGES * 200


def test_a_huge_tool_result_is_cut() -> None:
    io = tool_io_of({"gen_ai.tool.call.arguments": json.dumps({"x": "y" * MAX_TEXT_BYTES}),
                     "gen_ai.tool.call.result": "z" * (MAX_TEXT_BYTES * 3)})
    assert io is not None
    assert io["cut"] is True
    assert isinstance(io["arguments"], str) and len(io["arguments"]) <= MAX_TEXT_BYTES
    assert len(io["result"]) <= MAX_TEXT_BYTES


def test_hostile_mappings_do_not_raise() -> None:
    class Hostile(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("no")

    assert transcript_of(Hostile({"llm.input_messages.0.message.role": "user"})) is None
    assert transcript_of({"gen_ai.input.messages": object()}) is not None
    assert tool_io_of({"gen_ai.tool.call.result": object()}) is not None


# --- never raises -------------------------------------------------------------------------------

_KEYS = st.sampled_from([
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "llm.input_messages.0.message.role", "llm.input_messages.1.message.content",
    "llm.input_messages.0.message.contents.0.message_content.text",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments", "llm.tools.0.tool.json_schema",
    "gen_ai.prompt.0.content", "gen_ai.completion.3.tool_calls.1.name", "gen_ai.prompt.x.role",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "input.value", "output.value", "input.mime_type",
    "traceloop.entity.input", "traceloop.entity.output",
]) | st.text(max_size=30)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "parts", "type", "content", "id", "name", "arguments", "response", "result",
                         "tool_calls", "function", "finish_reason", "message", "text", "kwargs", "args"])
        | st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
_VALUES = _JSON | _JSON.map(lambda value: json.dumps(value)) | st.binary(max_size=20) | st.lists(
    _JSON.map(json.dumps), max_size=3).map(tuple)
_EVENTS = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["gen_ai.user.message", "gen_ai.choice", "gen_ai.tool.message",
                             "gen_ai.client.inference.operation.details", "gen_ai.content.prompt",
                             "exception"]),
    "attributes": st.dictionaries(st.sampled_from(["content", "role", "tool_calls", "id", "message",
                                                   "gen_ai.prompt", "gen_ai.input.messages"]),
                                  _VALUES, max_size=4),
}), max_size=4)


@fuzz_settings(150, derandomize=True)
@given(st.dictionaries(_KEYS, _VALUES, max_size=8), _EVENTS)
def test_never_raises_and_is_json_ready(attributes: dict[str, Any], events: list[dict[str, Any]]) -> None:
    transcript = _transcript_of(attributes, events)  # the inner function: the outer guard hides nothing here
    if transcript is not None:
        orjson.dumps(transcript)
        for message in transcript["input"] + transcript["output"]:
            assert isinstance(message["role"], str)
            assert len(message["parts"]) <= MAX_PARTS
    io = tool_io_of(attributes)
    if io is not None:
        orjson.dumps(io)
