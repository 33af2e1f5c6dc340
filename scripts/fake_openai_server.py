"""A scripted OpenAI-compatible chat-completions server on loopback, for recording real agent spans.

Standard library only. ``POST /<mode>/v1/chat/completions`` answers by script, not by a model:

* ``ok`` (and ``tool_error``: the server does not know the tool fails, the agent's tool does):
  the first call of a conversation (no assistant message in ``messages`` yet, nor the tool's result
  or error text) answers with a tool call ``get_weather({"city": "Paris"})``; any later call answers
  with the final text ``FINAL_ANSWER`` (``FAILED_ANSWER`` when the conversation holds the tool's
  error), or, when the request offers a ``final_answer`` tool as smolagents does, a call of that
  tool with that text. Every answer carries ``usage``: 101/17 tokens for the first turn, 163/24 for the
  later ones, so a reader of the spans can tell the turns apart.
* ``runaway``: a model stuck in a loop: every call answers the same tool call
  ``get_weather({"city": "Paris"})`` until the conversation holds :data:`RUNAWAY_TOOL_CALLS` results of
  it, then the final answer (text, or the ``final_answer`` call); bounded, so the run ends. The
  recorded ``runaway`` scenario (loop detection's fixture) is this mode.
* ``error500`` / ``error400``: every call fails with that HTTP status and an OpenAI-style JSON error
  body (``{"error": {"message", "type", "param", "code"}}``).

``"stream": true`` is answered as server-sent events (chat.completion.chunk objects, the usage in a
last chunk with empty choices when ``stream_options.include_usage`` is set, then ``data: [DONE]``).

Run alone: ``python scripts/fake_openai_server.py [--port 0]`` prints its base URL; the recorder starts
it in a thread with :func:`start`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fake-gpt"
CITY = "Paris"
TOOL_RESULT_HINT = "Paris: sunny"  # the recorder's get_weather returns "Paris: sunny, 21 degrees Celsius"
# ... or raises "weather service unavailable for Paris" (the OpenAI Agents SDK redacts that into the
# second text, an MCP server into the third)
TOOL_ERROR_HINTS = ("unavailable", "An error occurred while running the tool", "Error executing tool")
FINAL_ANSWER = "It is sunny and 21 degrees Celsius in Paris."
FAILED_ANSWER = "Sorry, I could not get the weather for Paris: the weather tool failed."
USAGE_FIRST = {"prompt_tokens": 101, "completion_tokens": 17, "total_tokens": 118}
USAGE_LATER = {"prompt_tokens": 163, "completion_tokens": 24, "total_tokens": 187}
RUNAWAY_TOOL_CALLS = 8
"""How many identical get_weather calls the ``runaway`` mode asks for before it answers."""
MODES = ("ok", "tool_error", "runaway", "error500", "error400")


def _usage(base: dict[str, int]) -> dict[str, object]:
    return {
        **base,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _tool_names(body: dict) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if fn.get("name"):
            names.append(fn["name"])
    return names


def scripted_message(body: dict, turn_id: int, mode: str = "ok") -> tuple[dict, dict[str, int], str]:
    """The assistant message, the usage and the finish reason for one request of mode ``ok`` (or
    ``runaway``: the tool call again while fewer than :data:`RUNAWAY_TOOL_CALLS` results are in)."""
    messages = body.get("messages") or []
    tools = _tool_names(body)
    text = json.dumps(messages)
    tool_failed = any(hint in text for hint in TOOL_ERROR_HINTS)
    # The tool has run once the conversation holds an assistant turn, or (smolagents folds tool
    # results and tool errors into user text) the tool's result or error text.
    first_turn = not (any(m.get("role") == "assistant" for m in messages) or TOOL_RESULT_HINT in text
                      or tool_failed)
    if mode == "runaway" and not tool_failed:
        # Each result of the tool is in the conversation once (a tool message, or smolagents' text).
        first_turn = text.count(TOOL_RESULT_HINT) < RUNAWAY_TOOL_CALLS
    if first_turn and "get_weather" in tools:
        call = {
            "id": f"call_weather_{turn_id}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": CITY})},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, USAGE_FIRST, "tool_calls"
    answer = FAILED_ANSWER if tool_failed else FINAL_ANSWER
    if "final_answer" in tools:
        call = {
            "id": f"call_final_{turn_id}",
            "type": "function",
            "function": {"name": "final_answer", "arguments": json.dumps({"answer": answer})},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, USAGE_LATER, "tool_calls"
    return {"role": "assistant", "content": answer}, USAGE_LATER, "stop"


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-openai/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/v1/models"):
            models = [{"id": MODEL, "object": "model", "owned_by": "fake"}]
            self._send_json(200, {"object": "list", "data": models})
            return
        self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.strip("/").split("/")
        mode = parts[0] if parts and parts[0] in MODES else "ok"
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}",
                                            "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        server: FakeServer = self.server  # type: ignore[assignment]
        turn_id = server.next_id()
        server.log.append({"mode": mode, "stream": bool(body.get("stream")),
                           "messages": len(body.get("messages") or []), "tools": _tool_names(body)})
        if mode == "error500":
            self._send_json(500, {"error": {"message": "The model backend failed (scripted error).",
                                            "type": "server_error", "param": None, "code": "internal_error"}})
            return
        if mode == "error400":
            self._send_json(400, {"error": {"message": "Invalid request: scripted model error.",
                                            "type": "invalid_request_error", "param": "messages",
                                            "code": "scripted_error"}})
            return
        message, usage, finish = scripted_message(body, turn_id, mode)
        completion_id = f"chatcmpl-fake{turn_id:04d}"
        created = int(time.time())
        if body.get("stream"):
            self._stream(body, completion_id, created, message, usage, finish)
            return
        self._send_json(200, {
            "id": completion_id, "object": "chat.completion", "created": created,
            "model": body.get("model") or MODEL, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(usage),
        })

    def _stream(
        self, body: dict, cid: str, created: int, message: dict, usage: dict[str, int], finish: str
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        model = body.get("model") or MODEL

        def chunk(
            delta: dict, finish_reason: str | None = None, usage_obj: object = None, choices: bool = True
        ) -> None:
            payload: dict[str, object] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                          "model": model, "system_fingerprint": "fp_fake"}
            payload["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                                   "finish_reason": finish_reason}] if choices else []
            if usage_obj is not None:
                payload["usage"] = usage_obj
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        chunk({"role": "assistant", "content": ""})
        if message.get("tool_calls"):
            for i, call in enumerate(message["tool_calls"]):
                args = call["function"]["arguments"]
                chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"], "arguments": ""}}]})
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        else:
            text = message["content"]
            for piece in (text[: len(text) // 2], text[len(text) // 2:]):
                chunk({"content": piece})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk({}, usage_obj=_usage(usage), choices=False)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.log: list[dict] = []
        self._ids = 0
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def base_url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/v1"


def start(port: int = 0) -> FakeServer:
    """Starts the server in a daemon thread; ``server.shutdown()`` stops it."""
    server = FakeServer(port)
    threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeServer(args.port)
    print(f"fake OpenAI server: {server.base_url('ok')} (modes: {', '.join(MODES)})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
