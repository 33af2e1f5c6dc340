"""``GET /api/guardrails`` (the budgets and loop thresholds in force, for the page) and
``POST /api/runs/{run_id}/stop``: flag a run to stop, as "Stop run" on the page does (issue 18,
``docs/guardrails.md``, "Stopping a runaway run").

Flagging only marks the run (:meth:`~otel_dashboard.state.run_flags.RunFlags.flag_run`, kind
``"user"``): its live state shows ``"stop"`` at once, and the run's own process stops it at its
next decorated step when it opted in (``@agent(stop_on_budget=True)`` or the processor's
``stop_on_budget=True``), in process or through a remote processor, which learns of the flag from
the answers to its next ``POST /api/events``. Spans sent by OTLP exporters cannot be stopped.

Answers (JSON):
    * 403 ``{"error": "stopping runs needs a token (serve --token)"}`` when the server has no token:
      without one, anybody who can reach the port could stop runs;
    * 401 without the right token (the security layer answers before this handler);
    * 404 when ``run_id`` is not 16 or 32 hex digits;
    * 200 ``{"run_id", "flagged", "stop": {"reason", "kind", "at"}, "running"}``: ``flagged`` is
      False when the run was flagged already (its first flag stays), ``running`` whether the server
      holds the run among its open runs (a remote run it has not heard of yet may still be flagged).
"""

from __future__ import annotations

from aiohttp import web

from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.http_api import json_error, json_response
from otel_dashboard.server.security import SECURITY_KEY

__all__ = ["NO_TOKEN_MESSAGE", "USER_STOP_REASON", "api_guardrails", "stop_run"]

NO_TOKEN_MESSAGE = "stopping runs needs a token (serve --token)"
USER_STOP_REASON = "stop requested on the dashboard"
_HEX = frozenset("0123456789abcdef")


async def api_guardrails(request: web.Request) -> web.Response:
    """``GET /api/guardrails``: the state's budgets and loop thresholds
    (:meth:`~otel_dashboard.model.guardrails.Guardrails.to_dict`), and whether this server can stop
    runs from the page (``"stop_needs_token"``: no token configured)."""
    state = request.app[BROADCASTER_KEY].state
    security = request.app.get(SECURITY_KEY)
    body = state.guardrails.to_dict()
    body["stop_needs_token"] = security is None or security.config.token is None
    return json_response(body)


async def stop_run(request: web.Request) -> web.Response:
    """``POST /api/runs/{run_id}/stop`` (see the module docstring)."""
    security = request.app.get(SECURITY_KEY)
    if security is None or security.config.token is None:
        return json_error(403, NO_TOKEN_MESSAGE)
    run_id = request.match_info.get("run_id", "").lower()
    if len(run_id) not in (16, 32) or not _HEX.issuperset(run_id) or not run_id.strip("0"):
        return json_error(404, "no such run: a run id is 16 (or 32) hex digits")
    state = request.app[BROADCASTER_KEY].state
    flagged = state.flag_run(run_id, reason=USER_STOP_REASON, kind="user")
    return json_response({
        "run_id": run_id,
        "flagged": flagged,
        "stop": state.run_flag(run_id),
        "running": any(run.get("status") != "ended" for run in state.find_open_runs([run_id])),
    })
