"""The span details pane (web/js/span-detail.js, transcript-view.js) in a real browser, on spans
recorded from real agent stacks (tests/fixtures/spans) POSTed to a real server's ``/v1/traces``.

One server and one page load for the module: each test draws one span after another into a test
container with the module's own ``renderSpanDetail`` (the function the trace page calls with its
``#trace-span-pane``) and reads the pane back:

* the transcript of a model call whose messages came as OTLP log records (opentelemetry-
  instrumentation-openai-v2, tests/fixtures/signals), sent before their span;
* the transcript of the second model call of each vocabulary (GenAI attributes: pydantic_ai, mcp;
  OpenInference: smolagents, openai_agents; OpenLLMetry's GenAI form: traceloop): roles in order,
  the tool call's name and pretty-printed arguments, the tool result, the answer, the model figures;
* a streamed model call's time to first token;
* a tool span's arguments and result, drawn after another span was asked for and aborted;
* the exception of a ``tool_error`` fixture, its stack trace folded after 20 lines ("Show more");
* a hostile value (markup in a message, a span name, an attribute) shown as text, never as markup;
* a span the server does not keep: the "not kept" message;
* the transcript view alone on parts no fixture has (reasoning, "other") and values of odd types;
* every text of the pane meets WCAG AA contrast in both themes (test_browser_layout's measure).
"""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Console, ServerThread
from playwright.sync_api import Browser, Page, expect
from test_browser_layout import CONTRAST_JS

from otel_dashboard.state.dashboard import DashboardState

SPANS_DIR = Path(__file__).parent / "fixtures" / "spans"
SIGNALS_DIR = Path(__file__).parent / "fixtures" / "signals"
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_TRACE = "c0ffee00c0ffee00c0ffee00c0ffee01"

# stack -> the name of its model-call spans (the test shows the LAST one: its input holds the
# user's question, the assistant's tool call and the tool's result; its output the answer).
MODEL_SPAN = {
    "pydantic_ai": "chat fake-gpt",
    "smolagents": "OpenAIModel.generate",
    "traceloop": "openai.chat",
    "openai_agents": "generation",
    "mcp": "chat fake-gpt",
}
ANSWER = "It is sunny and 21 degrees Celsius in Paris."
TOOL_RESULT = "Paris: sunny, 21 degrees Celsius"
SYSTEM = "You answer weather questions. Use the get_weather tool."
PRETTY_CITY = '{\n  "city": "Paris"\n}'

# The roles of the last model call's input messages, per stack, as the transcript reader gives them.
INPUT_ROLES = {
    "pydantic_ai": ["user", "assistant", "user"],  # the tool result is a user message in GenAI form
    "mcp": ["user", "assistant", "user"],
    "traceloop": ["system", "user", "assistant", "tool"],
    "openai_agents": ["system", "user", "assistant", "tool"],
    "smolagents": ["system", "user", "tool-call", "tool-response"],
}


def _spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for rs in doc["resourceSpans"] for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]


def _last_span(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return max((s for s in _spans(doc) if s["name"] == name), key=lambda s: int(s["startTimeUnixNano"]))


def _post(server: ServerThread, doc: dict[str, Any], signal: str = "traces") -> None:
    request = urllib.request.Request(f"{server.url}/v1/{signal}", data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _hostile_doc() -> dict[str, Any]:
    """pydantic_ai/ok.json under another trace id, with markup in a message, the model span's
    name, an attribute, and an exception event with a 30-line stack trace."""
    doc = copy.deepcopy(json.loads((SPANS_DIR / "pydantic_ai" / "ok.json").read_text()))
    for span in _spans(doc):
        span["traceId"] = HOSTILE_TRACE
    span = _last_span(doc, "chat fake-gpt")
    for attr in span["attributes"]:
        if attr["key"] == "gen_ai.input.messages":
            messages = json.loads(attr["value"]["stringValue"])
            messages[0]["parts"][0]["content"] = f"Weather? {HOSTILE}"
            attr["value"]["stringValue"] = json.dumps(messages)
    span["attributes"].append({"key": "app.note", "value": {"stringValue": HOSTILE}})
    span["name"] = f"chat {HOSTILE}"
    stack = "\n".join(f'  File "/app/{HOSTILE}.py", line {i}, in f{i}' for i in range(30))
    span["events"] = [*span.get("events", []), {
        "timeUnixNano": span["endTimeUnixNano"], "name": "exception",
        "attributes": [{"key": "exception.type", "value": {"stringValue": "HostileError"}},
                       {"key": "exception.message", "value": {"stringValue": HOSTILE}},
                       {"key": "exception.stacktrace", "value": {"stringValue": stack}}]}]
    return doc


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(DashboardState(), health_interval_seconds=60).start()
    try:
        for stack in MODEL_SPAN:
            _post(srv, json.loads((SPANS_DIR / stack / "ok.json").read_text()))
        _post(srv, json.loads((SPANS_DIR / "pydantic_ai" / "tool_error.json").read_text()))
        _post(srv, json.loads((SPANS_DIR / "traceloop" / "ok_stream.json").read_text()))
        _post(srv, _hostile_doc())
        # openai-v2 sends a model call's messages as log records: the logs first, their spans after.
        _post(srv, json.loads((SIGNALS_DIR / "openai_v2" / "ok.logs.json").read_text()), "logs")
        _post(srv, json.loads((SIGNALS_DIR / "openai_v2" / "ok.traces.json").read_text()))
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def console_m() -> Console:
    return Console()


@pytest.fixture(scope="module")
def pane_page(browser: Browser, server: ServerThread, console_m: Console) -> Iterator[Page]:
    """The dashboard, loaded once, with a test container for the pane over it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC",
                                  reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("console", console_m.on_console)
    page.on("pageerror", console_m.on_page_error)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server.dashboard_url)
    page.evaluate("""() => {
      const pane = document.createElement("div");
      pane.id = "test-span-pane";
      pane.style.cssText = "position:fixed;inset:0;overflow:auto;z-index:10000;background:var(--bg)";
      document.body.append(pane);
    }""")
    try:
        yield page
    finally:
        page.goto("about:blank")
        context.close()
    assert dialogs == [], "a value ran as script"
    assert console_m.unexplained() == [], "errors in the browser console"


def show(page: Page, trace_id: str, span_id: str, state: str = "ok") -> Any:
    """Draws one span into the test pane and waits for its answer; returns the pane's locator."""
    page.evaluate("""async ([traceId, spanId]) => {
      const { renderSpanDetail } = await import("/static/js/span-detail.js");
      renderSpanDetail(document.getElementById("test-span-pane"), traceId, spanId);
    }""", [trace_id, span_id])
    pane = page.locator(f'#test-span-pane[data-span-id="{span_id}"][data-state="{state}"]')
    expect(pane).to_have_count(1)
    return pane


def _messages(pane: Any, side: str) -> list[dict[str, Any]]:
    return pane.locator(f".chat-{side} > .chat-msg").evaluate_all("""items => items.map(m => ({
      role: m.dataset.role,
      text: [...m.querySelectorAll(":scope > .fold .fold-text")].map(p => p.textContent),
      calls: [...m.querySelectorAll(".chat-tool-call")].map(c => ({
        name: c.querySelector(".chat-tool-name").textContent,
        args: c.querySelector(".fold-text").textContent})),
      results: [...m.querySelectorAll(".chat-tool-result .fold-text")].map(p => p.textContent),
    }))""")


@pytest.mark.parametrize("stack", list(MODEL_SPAN))
def test_the_transcript_of_each_vocabulary(pane_page: Page, stack: str) -> None:
    doc = json.loads((SPANS_DIR / stack / "ok.json").read_text())
    span = _last_span(doc, MODEL_SPAN[stack])
    pane = show(pane_page, span["traceId"], span["spanId"])

    # The order of the sections: title, model call, transcript, then raw attributes (collapsed).
    sections = pane.locator(".span-detail-body > *").evaluate_all("els => els.map(e => e.className)")
    assert sections[0] == "span-detail-head"
    assert sections[1].endswith("span-detail-model") and sections[2].endswith("span-detail-transcript")
    assert sections[-1].endswith("span-detail-raw")
    assert pane.locator("details.span-detail-raw").evaluate("d => d.open") is False

    expect(pane.locator(".span-detail-name")).to_have_text(MODEL_SPAN[stack])
    expect(pane.locator(".span-detail-kind")).to_have_text("model")
    figures = _figures(pane)
    assert figures["Model"] == "fake-gpt", figures
    assert figures["Tokens in"] == "163" and figures["Tokens out"] == "24", figures
    assert "Latency" in figures and "Time to first token" in figures

    inputs = _messages(pane, "input")
    assert [m["role"] for m in inputs] == INPUT_ROLES[stack]
    output = _messages(pane, "output")
    if stack == "smolagents":
        # smolagents answers with a call of its final_answer tool; its own roles carry the tool turn.
        assert output[0]["calls"][0]["name"] == "final_answer"
        assert json.loads(output[0]["calls"][0]["args"]) == {"answer": ANSWER}
        assert "get_weather" in inputs[2]["text"][0] and TOOL_RESULT in inputs[3]["text"][0]
        # The long system prompt is folded; "show more" shows it whole.
        system = pane.locator('.chat-input > .chat-msg[data-role="system"] .fold').first
        folded = system.locator(".fold-text").text_content() or ""
        system.locator(".fold-more").click()
        expect(system.locator(".fold-more")).to_have_text("show less")
        assert len(system.locator(".fold-text").text_content() or "") > len(folded)
        return
    call = next(m for m in inputs if m["calls"])
    assert call["role"] == "assistant"
    assert call["calls"][0]["name"] == "get_weather"
    assert call["calls"][0]["args"] == PRETTY_CITY  # pretty-printed, whether a JSON string or an object
    assert [r for m in inputs for r in m["results"]] == [TOOL_RESULT]
    assert output == [{"role": "assistant", "text": [ANSWER], "calls": [], "results": []}]
    assert SYSTEM in pane.locator(".span-detail-transcript").text_content()


def _figures(pane: Any) -> dict[str, str]:
    return dict(zip(pane.locator(".span-detail-figures dt").all_text_contents(),
                    pane.locator(".span-detail-figures dd").all_text_contents(), strict=True))


def test_a_streamed_model_call_has_its_time_to_first_token(pane_page: Page) -> None:
    doc = json.loads((SPANS_DIR / "traceloop" / "ok_stream.json").read_text())
    span = _last_span(doc, "openai.chat")
    figures = _figures(show(pane_page, span["traceId"], span["spanId"]))
    assert figures["Time to first token"].endswith(" ms"), figures


def test_a_tool_span_and_a_tool_error_with_its_stack_trace(pane_page: Page) -> None:
    doc = json.loads((SPANS_DIR / "pydantic_ai" / "ok.json").read_text())
    tool = _last_span(doc, "execute_tool get_weather")
    # Another span selected while the first one loads: the first fetch is aborted, the pane shows
    # the second and stays on it.
    model = _last_span(doc, "chat fake-gpt")
    pane_page.evaluate("""async ([traceId, first, second]) => {
      const { renderSpanDetail } = await import("/static/js/span-detail.js");
      const pane = document.getElementById("test-span-pane");
      renderSpanDetail(pane, traceId, first);
      renderSpanDetail(pane, traceId, second);
    }""", [tool["traceId"], model["spanId"], tool["spanId"]])
    pane = show(pane_page, tool["traceId"], tool["spanId"])
    expect(pane.locator(".span-detail-kind")).to_have_text("tool")
    texts = pane.locator(".span-detail-tool .fold-text").all_text_contents()
    assert texts == [PRETTY_CITY, TOOL_RESULT]
    assert pane.locator(".span-detail-transcript").count() == 0
    expect(pane.locator(".span-detail-name")).to_have_text("execute_tool get_weather")

    doc = json.loads((SPANS_DIR / "pydantic_ai" / "tool_error.json").read_text())
    failed = _last_span(doc, "execute_tool get_weather")
    pane = show(pane_page, failed["traceId"], failed["spanId"])
    expect(pane.locator(".span-detail-status")).to_have_text("error")
    exception = pane.locator(".span-detail-exception")
    expect(exception.locator(".span-detail-exception-type")).to_have_text("__main__.ToolFailure")
    expect(exception.locator(".span-detail-exception-message")).to_have_text(
        "weather service unavailable for Paris")
    stack = exception.locator(".span-detail-stack")
    assert len((stack.text_content() or "").split("\n")) == 20
    more = exception.locator(".fold-more")
    expect(more).to_contain_text("Show more")
    more.click()
    expect(more).to_have_text("Show less")
    whole = stack.text_content() or ""
    assert len(whole.split("\n")) > 20 and "ToolFailure" in whole


def test_hostile_values_are_text_and_a_missing_span_says_so(pane_page: Page, console_m: Console) -> None:
    doc = _hostile_doc()
    span = _last_span(doc, f"chat {HOSTILE}")
    pane = show(pane_page, HOSTILE_TRACE, span["spanId"])
    expect(pane.locator(".span-detail-name")).to_have_text(f"chat {HOSTILE}")
    assert _messages(pane, "input")[0]["text"] == [f"Weather? {HOSTILE}"]
    expect(pane.locator(".span-detail-exception-message")).to_have_text(HOSTILE)
    pane.locator("details.span-detail-raw > summary").click()
    keys = pane.locator(".span-detail-attr-key").all_text_contents()
    value = pane.locator(".span-detail-attr-value").nth(keys.index("app.note"))
    expect(value).to_have_text(HOSTILE)
    assert pane.locator("img").count() == 0  # the markup stayed text everywhere

    console_m.allow(r"404 \(Not Found\)")  # the browser logs the 404 of the span not kept
    pane = show(pane_page, HOSTILE_TRACE, "0123456789abcdef", state="missing")
    expect(pane.locator(".span-detail-message")).to_contain_text("not kept")


def test_the_transcript_view_draws_reasoning_and_odd_shapes_as_text(pane_page: Page) -> None:
    """Parts no recorded fixture has (reasoning, "other"), and values of unexpected types: drawn,
    as text, without an exception."""
    drawn = pane_page.evaluate("""async (hostile) => {
      const { renderTranscript } = await import("/static/js/transcript-view.js");
      const section = renderTranscript({
        input: ["a bare string", null,
                {role: hostile, parts: [null, 7, {type: "other", content: {k: hostile}}]}],
        output: [{role: "assistant", parts: [
          {type: "reasoning", content: "Thinking about Paris."},
          {type: "tool_call", id: null, name: null, arguments: {city: hostile}},
          {type: "tool_call_response", id: "c1", response: [1, 2]}]}],
        system: null, tools: [{type: "function", function: {name: "get_weather", description: hostile}}],
        source: "genai_events", cut: true}, new Set());
      return {
        roles: [...section.querySelectorAll(".chat-msg")].map(m => m.dataset.role),
        reasoning: section.querySelector(".chat-reasoning .fold-text").textContent,
        call: section.querySelector(".chat-tool-call").textContent,
        result: section.querySelector(".chat-tool-result .fold-text").textContent,
        text: section.textContent,
        images: section.querySelectorAll("img").length,
      };
    }""", HOSTILE)
    assert drawn["roles"] == ["unknown", "unknown", HOSTILE, "assistant"]
    assert drawn["reasoning"] == "Thinking about Paris."
    assert "(no name)" in drawn["call"] and HOSTILE in drawn["call"]
    assert drawn["result"] == "[\n  1,\n  2\n]"
    for text in ("a bare string", "shortened", "span events"):
        assert text in drawn["text"]
    assert drawn["images"] == 0


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_text_of_the_pane_meets_wcag_aa_contrast(pane_page: Page, theme: str) -> None:
    pane_page.evaluate("""theme => {
      document.documentElement.dataset.theme = theme;
      for (const c of document.body.children) if (c.id !== "test-span-pane") c.hidden = true;
    }""", theme)
    span = _last_span(_hostile_doc(), f"chat {HOSTILE}")  # status, figures, chat, tool call, exception
    pane = show(pane_page, HOSTILE_TRACE, span["spanId"])
    details = pane.locator("details.span-detail-raw")
    if not details.evaluate("d => d.open"):
        details.locator("> summary").click()
    results = []
    for selector in (".span-detail-head", ".chat-tool-call", ".span-detail-exception", ".span-detail-attrs"):
        pane.locator(selector).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        results += pane_page.evaluate(CONTRAST_JS)
    assert len(results) > 40, "the walk found too little text"
    failing = [r for r in results if r["ratio"] < r["need"]]
    assert failing == [], f"{len(failing)} texts under WCAG AA in the {theme} theme: {failing[:5]}"


def test_the_trace_page_shows_the_selected_spans_details(pane_page: Page) -> None:
    """The real flow: #trace=&span= opens the trace page with that span's details in its pane, and a
    click on another row of the waterfall shows that span's."""
    doc = json.loads((SPANS_DIR / "pydantic_ai" / "ok.json").read_text())
    model = _last_span(doc, MODEL_SPAN["pydantic_ai"])
    tool = next(s for s in _spans(doc) if s["name"].startswith("execute_tool"))
    page = pane_page
    page.evaluate('document.getElementById("test-span-pane").hidden = true')
    try:
        page.evaluate(f'location.hash = "#trace={model["traceId"]}&span={model["spanId"]}"')
        pane = page.locator(f'#trace-span-pane[data-span-id="{model["spanId"]}"][data-state="ok"]')
        expect(pane).to_have_count(1)
        expect(pane.locator(".chat-output")).to_contain_text(ANSWER)
        page.locator(f'#trace-page-view .trace-row[data-span-id="{tool["spanId"]}"]').click()
        pane = page.locator(f'#trace-span-pane[data-span-id="{tool["spanId"]}"][data-state="ok"]')
        expect(pane).to_have_count(1)
        expect(pane).to_contain_text(TOOL_RESULT)
    finally:
        page.evaluate('location.hash = ""; document.getElementById("test-span-pane").hidden = false')


def test_the_transcript_of_a_model_call_whose_messages_came_as_logs(pane_page: Page) -> None:
    doc = json.loads((SIGNALS_DIR / "openai_v2" / "ok.traces.json").read_text())
    span = _last_span(doc, "chat fake-gpt")
    pane = show(pane_page, span["traceId"], span["spanId"])
    expect(pane.locator(".span-detail-transcript")).to_have_count(1)
    inputs = _messages(pane, "input")
    assert [m["role"] for m in inputs] == ["system", "user", "assistant", "tool"]
    assert inputs[0]["text"] == [SYSTEM]
    assert [c["name"] for c in inputs[2]["calls"]] == ["get_weather"]
    assert TOOL_RESULT in " ".join([*inputs[3]["text"], *inputs[3]["results"]])
    (answer,) = _messages(pane, "output")
    assert answer["role"] == "assistant" and answer["text"] == [ANSWER]
